from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('ozonbot', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Notice',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('ozonbot.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='notices', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=32)),
                ('key', fields.CharField(max_length=64)),
                ('state', fields.CharField(default='sending', max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'notice', 'app': 'ozonbot', 'unique_together': (('member', 'kind', 'key'),), 'pk_attr': 'id', 'table_description': 'A desk message that is not about one posting (morning digest, key expiry), sent once per member and key.'},
            bases=['Model'],
        ),
    ]
