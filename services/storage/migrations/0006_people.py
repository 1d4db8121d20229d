from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """H1: Telegram's shared sender ids (anonymous group admins, "send as channel", automatic forwards) were
    stored as members; whoever used the id acted as them, across desks. They are nobody: removed."""

    dependencies = [('ozonbot', '0005_outbox')]

    initial = False

    operations = [
        ops.RunSQL("DELETE FROM member WHERE channel = 'telegram' "
                   "AND external_id IN ('1087968824', '136817688', '777000')"),
    ]
