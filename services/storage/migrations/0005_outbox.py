from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """H3: failed alerts are retried with backoff (next_attempt_at) for as long as they matter, and delivered
    marked late (failed_since); L10: the retry and recovery scans get their indexes."""

    dependencies = [('ozonbot', '0004_rel')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Notification',
            name='failed_since',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Notification',
            name='next_attempt_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddIndex(model_name='Notification', index=Index(fields=('state', 'next_attempt_at'))),
        ops.AddIndex(model_name='Notification', index=Index(fields=('state', 'claim_until'))),
    ]
