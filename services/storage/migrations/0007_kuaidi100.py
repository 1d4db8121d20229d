from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields


class Migration(migrations.Migration):
    """Issue 15: first-mile tracking through Kuaidi100. A seller's tracking account, the watched waybills
    (one subscription each, with its own salt) and their trace events, each stored once."""

    dependencies = [('ozonbot', '0006_people')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Posting',
            name='last_scan_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Posting',
            name='last_scan',
            field=fields.TextField(default='', unique=False),
        ),
        ops.CreateModel(
            name='TrackingAccount',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('seller', fields.OneToOneField('ozonbot.Seller', source_field='seller_id', db_constraint=True, to_field='id', related_name='tracking_account', on_delete=OnDelete.CASCADE)),
                ('key_enc', fields.TextField(unique=False)),
                ('customer', fields.CharField(max_length=64)),
                ('phone_tail', fields.CharField(default='', max_length=16)),
                ('token', fields.CharField(unique=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'tracking_account', 'app': 'ozonbot', 'pk_attr': 'id', 'table_description': "A seller's Kuaidi100 account (first-mile tracking). The key is a SecretBox token, and the token is the"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Waybill',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('seller', fields.ForeignKeyField('ozonbot.Seller', source_field='seller_id', db_constraint=True, to_field='id', related_name='waybills', on_delete=OnDelete.CASCADE)),
                ('posting', fields.ForeignKeyField('ozonbot.Posting', source_field='posting_id', null=True, db_constraint=True, to_field='id', related_name='waybills', on_delete=OnDelete.CASCADE)),
                ('role', fields.CharField(default='outbound', max_length=16)),
                ('courier', fields.CharField(max_length=16)),
                ('company', fields.CharField(max_length=32)),
                ('number', fields.CharField(max_length=64)),
                ('salt_enc', fields.TextField(unique=False)),
                ('state', fields.CharField(default='pending', db_index=True, max_length=16)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('subscribed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('renewed', fields.BooleanField(default=False)),
                ('trace_state', fields.IntField(null=True)),
                ('last_scan_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_context', fields.TextField(default='', unique=False)),
                ('last_area', fields.CharField(default='', max_length=128)),
                ('since', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'waybill', 'app': 'ozonbot', 'unique_together': (('seller', 'company', 'number'),), 'pk_attr': 'id', 'table_description': "A domestic waybill watched through Kuaidi100 push: subscribed once (retried until Kuaidi100 takes it),"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TraceEvent',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('waybill', fields.ForeignKeyField('ozonbot.Waybill', source_field='waybill_id', db_constraint=True, to_field='id', related_name='trace', on_delete=OnDelete.CASCADE)),
                ('key', fields.CharField(max_length=40)),
                ('at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('context', fields.TextField(default='', unique=False)),
                ('area', fields.CharField(default='', max_length=128)),
                ('state', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'trace_event', 'app': 'ozonbot', 'unique_together': (('waybill', 'key'),), 'pk_attr': 'id', 'table_description': 'One scan of a waybill\'s trace, stored once however often Kuaidi100 pushes it (key: its digest).'},
            bases=['Model'],
        ),
    ]
