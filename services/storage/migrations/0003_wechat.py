from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('ozonbot', '0002_notices')]

    initial = False

    operations = [
        ops.CreateModel(
            name='GroupRobot',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.OneToOneField('ozonbot.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='robot', on_delete=OnDelete.CASCADE)),
                ('key_enc', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'group_robot', 'app': 'ozonbot', 'pk_attr': 'id', 'table_description': 'A WeCom group robot that receives the alerts of a desk (push only). The webhook key is a SecretBox token.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='InboundCallback',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('source', fields.CharField(max_length=80)),
                ('key', fields.CharField(max_length=190)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'inbound_callback', 'app': 'ozonbot', 'unique_together': (('source', 'key'),), 'pk_attr': 'id', 'table_description': 'A WeChat callback already taken in (message id or event key): retries from WeChat are dropped by the key.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WechatQrCode',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('invite', fields.OneToOneField('ozonbot.Invite', source_field='invite_id', db_constraint=True, to_field='id', related_name='qr_code', on_delete=OnDelete.CASCADE)),
                ('ticket', fields.CharField(max_length=256)),
                ('url', fields.TextField(unique=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'wechat_qr_code', 'app': 'ozonbot', 'pk_attr': 'id', 'table_description': 'The Official Account binding QR code made for an invite (scene bind_<code>), reused until it expires.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WecomApp',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('seller', fields.OneToOneField('ozonbot.Seller', source_field='seller_id', db_constraint=True, to_field='id', related_name='wecom_app', on_delete=OnDelete.CASCADE)),
                ('tenant', fields.CharField(unique=True, max_length=64)),
                ('corp_id', fields.CharField(max_length=64)),
                ('agent_id', fields.BigIntField()),
                ('secret_enc', fields.TextField(unique=False)),
                ('token_enc', fields.TextField(unique=False)),
                ('aes_key_enc', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'wecom_app', 'app': 'ozonbot', 'unique_together': (('corp_id', 'agent_id'),), 'pk_attr': 'id', 'table_description': "A seller's WeCom self-built app. The members of the app are the desk of the seller. Secrets are SecretBox tokens."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WecomCard',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('app', fields.ForeignKeyField('ozonbot.WecomApp', source_field='app_id', db_constraint=True, to_field='id', related_name='cards', on_delete=OnDelete.CASCADE)),
                ('member', fields.ForeignKeyField('ozonbot.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='wecom_cards', on_delete=OnDelete.CASCADE)),
                ('posting', fields.ForeignKeyField('ozonbot.Posting', source_field='posting_id', null=True, db_constraint=True, to_field='id', related_name='wecom_cards', on_delete=OnDelete.CASCADE)),
                ('task_id', fields.CharField(unique=True, max_length=128)),
                ('response_code', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'wecom_card', 'app': 'ozonbot', 'pk_attr': 'id', 'table_description': 'A template card sent to one WeCom member. A click brings a single-use response code that pays for'},
            bases=['Model'],
        ),
    ]
