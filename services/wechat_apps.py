"""WeChat surfaces a seller connects: a WeCom self-built app and WeCom group robots. Credentials are checked
for shape, stored encrypted, and handed back decrypted only to the channel that uses them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from services.security import SecretBox, new_token
from services.storage.models import GroupRobot, Member, Seller, WecomApp
from services.storage.states import Role

CORP_ID_RE = re.compile(r"^[A-Za-z0-9_-]{4,64}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9]{3,32}$")  # the WeCom console: letters and digits, at most 32
ROBOT_KEY_RE = re.compile(r"^[A-Za-z0-9-]{8,64}$")
ROBOT_CHANNEL = "wecom_robot"


class SetupError(ValueError):
    """A credential of the wrong shape: nothing was stored. `field` names the option at fault."""

    def __init__(self, field: str):
        super().__init__(field)
        self.field = field


@dataclass(frozen=True)
class WecomCredentials:
    tenant: str
    corp_id: str
    agent_id: int
    secret: str
    token: str
    aes_key: str


def valid_aes_key(value: str) -> bool:
    if len(value) != 43:
        return False
    try:
        return len(base64.b64decode(value + "=", validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


class WechatApps:
    def __init__(self, box: SecretBox):
        self._box = box

    async def configure_wecom(self, seller: Seller, *, corp_id: str, agent_id: str, secret: str, token: str,
                              aes_key: str) -> WecomApp:
        corp_id, secret, token, aes_key = corp_id.strip(), secret.strip(), token.strip(), aes_key.strip()
        if not CORP_ID_RE.match(corp_id):
            raise SetupError("corp-id")
        if not str(agent_id).strip().isdigit():
            raise SetupError("agent-id")
        if not 8 <= len(secret) <= 128 or not secret.isprintable() or " " in secret:
            raise SetupError("secret")
        if not TOKEN_RE.match(token):
            raise SetupError("token")
        if not valid_aes_key(aes_key):
            raise SetupError("aes-key")
        fields = {"corp_id": corp_id, "agent_id": int(agent_id), "secret_enc": self._box.encrypt(secret),
                  "token_enc": self._box.encrypt(token), "aes_key_enc": self._box.encrypt(aes_key)}
        app = await WecomApp.get_or_none(seller=seller)
        try:
            if app is None:
                return await WecomApp.create(seller=seller, tenant=new_token(12), **fields)
            await WecomApp.filter(id=app.id).update(**fields)
        except IntegrityError:
            raise SetupError("agent-id") from None  # the same app is already another seller's
        await app.refresh_from_db()
        return app

    def credentials(self, app: WecomApp) -> WecomCredentials:
        return WecomCredentials(tenant=app.tenant, corp_id=app.corp_id, agent_id=app.agent_id,
                                secret=self._box.decrypt(app.secret_enc), token=self._box.decrypt(app.token_enc),
                                aes_key=self._box.decrypt(app.aes_key_enc))

    async def add_robot(self, seller: Seller, key_or_url: str, *, name: str = "") -> Member:
        """A group robot as a desk member of its own (channel wecom_robot); the same key twice is one robot."""
        key = key_or_url.strip().rsplit("key=", 1)[-1]
        if not ROBOT_KEY_RE.match(key):
            raise SetupError("key")
        # L9: the same robot is found by its key, not by an id derived from the secret key (which rotate-key
        # changes: the robot was added twice and every alert reached the group twice)
        external_id = "robot:" + hashlib.sha256(key.encode()).hexdigest()[:16]  # stable, and not the key itself
        async with in_transaction():
            member = None
            for robot in await GroupRobot.filter(member__seller_id=seller.id).select_related("member"):
                if self._box.decrypt(robot.key_enc) == key:
                    member = robot.member
                    break
            if member is None:
                # a packer: whoever in the seller's own group opens the robot's link acts for the desk
                member = await Member.create(seller=seller, channel=ROBOT_CHANNEL, external_id=external_id,
                                             chat_id="robot", name=name or "群机器人", role=Role.PACKER)
            await GroupRobot.update_or_create(defaults={"key_enc": self._box.encrypt(key)}, member=member)
        return member

    async def robot_key(self, member: Member) -> str | None:
        robot = await GroupRobot.get_or_none(member=member)
        return self._box.decrypt(robot.key_enc) if robot else None
