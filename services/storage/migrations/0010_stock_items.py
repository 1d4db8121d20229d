from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """Issue 16 item 3: free stock set from the chat, one row per product and warehouse with the change owed."""

    dependencies = [('ozonbot', '0009_inbound')]

    initial = False

    operations = [
        ops.CreateModel(
            name='StockItem',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('seller', fields.ForeignKeyField('ozonbot.Seller', source_field='seller_id', db_constraint=True, to_field='id', related_name='stock_items', on_delete=OnDelete.CASCADE)),
                ('sku', fields.BigIntField()),
                ('offer_id', fields.CharField(default='', max_length=64)),
                ('product_id', fields.BigIntField(null=True)),
                ('warehouse_id', fields.BigIntField()),
                ('warehouse_name', fields.CharField(default='', max_length=128)),
                ('free', fields.IntField(null=True)),
                ('reserved', fields.IntField(null=True)),
                ('present', fields.IntField(null=True)),
                ('target', fields.IntField(null=True)),
                ('state', fields.CharField(default='idle', db_index=True, max_length=16)),
                ('error', fields.TextField(default='', unique=False)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('member', fields.ForeignKeyField('ozonbot.Member', source_field='member_id', null=True, db_constraint=True, to_field='id', related_name='stock_changes', on_delete=OnDelete.SET_NULL)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'stock_item', 'app': 'ozonbot', 'unique_together': (('seller', 'sku', 'warehouse_id'),), 'pk_attr': 'id', 'table_description': 'One product in one FBS warehouse as last read or set, and the change still owed to Ozon (30 s window).'},
            bases=['Model'],
        ),
    ]
