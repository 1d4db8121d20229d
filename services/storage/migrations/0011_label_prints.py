from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """Issue 14 item 4: every label printed in a /labels batch, by whom and when, so a reprint says it is one."""

    dependencies = [('ozonbot', '0010_stock_items')]

    initial = False

    operations = [
        ops.CreateModel(
            name='LabelPrint',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('posting', fields.ForeignKeyField('ozonbot.Posting', source_field='posting_id', db_constraint=True, to_field='id', related_name='label_prints', on_delete=OnDelete.CASCADE)),
                ('member', fields.ForeignKeyField('ozonbot.Member', source_field='member_id', null=True, db_constraint=True, to_field='id', related_name='label_prints', on_delete=OnDelete.SET_NULL)),
                ('task_id', fields.BigIntField(db_index=True)),
                ('reprint', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'label_print', 'app': 'ozonbot', 'pk_attr': 'id', 'table_description': 'One posting\'s label in one printed batch (/labels): who printed it, when, and whether it was a reprint.'},
            bases=['Model'],
        ),
    ]
