from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """Issue 16 item 1: buyers' rFBS cancellation requests, polled from Ozon, and every chat copy of their card."""

    dependencies = [('ozonbot', '0007_kuaidi100')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CancelRequest',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('seller', fields.ForeignKeyField('ozonbot.Seller', source_field='seller_id', db_constraint=True, to_field='id', related_name='cancel_requests', on_delete=OnDelete.CASCADE)),
                ('posting', fields.ForeignKeyField('ozonbot.Posting', source_field='posting_id', db_constraint=True, to_field='id', related_name='cancel_requests', on_delete=OnDelete.CASCADE)),
                ('cancellation_id', fields.BigIntField()),
                ('state', fields.CharField(default='open', max_length=16)),
                ('reason', fields.CharField(default='', max_length=255)),
                ('message', fields.TextField(default='', unique=False)),
                ('auto_approve_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('comment', fields.TextField(default='', unique=False)),
                ('decided_by', fields.ForeignKeyField('ozonbot.Member', source_field='decided_by_id', null=True, db_constraint=True, to_field='id', related_name='cancel_decisions', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'cancel_request', 'app': 'ozonbot', 'unique_together': (('seller', 'cancellation_id'),), 'pk_attr': 'id', 'table_description': 'A request by the buyer to cancel an rFBS posting, as polled from Ozon, decided here or by the Ozon clock.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CancelCard',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('request', fields.ForeignKeyField('ozonbot.CancelRequest', source_field='request_id', db_constraint=True, to_field='id', related_name='cards', on_delete=OnDelete.CASCADE)),
                ('member', fields.ForeignKeyField('ozonbot.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='cancel_cards', on_delete=OnDelete.CASCADE)),
                ('message_ref', fields.CharField(max_length=128)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'cancel_card', 'app': 'ozonbot', 'unique_together': (('request', 'member'),), 'pk_attr': 'id', 'table_description': 'The message that shows a cancellation request in the chat of one member, so every copy can be edited.'},
            bases=['Model'],
        ),
    ]
