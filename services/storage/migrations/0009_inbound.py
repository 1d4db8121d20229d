from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    """Issue 15 item 4: a posting whose goods a supplier sends (无货源) says whether they are on the way or arrived."""

    dependencies = [('ozonbot', '0008_cancel_requests')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Posting',
            name='inbound',
            field=fields.CharField(default='', max_length=16),
        ),
    ]
