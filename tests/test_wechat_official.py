"""The Official Account through `ozonbot run` wiring: QR binding, template-message alerts that open the
action page, passive replies inside the 5 s, menu, unsubscribe, plain and safe (AES) mode."""

from __future__ import annotations

import asyncio
import secrets
import time

import aiohttp
import pytest
from pydantic import SecretStr

from bot.app import build_services
from sandbox.wechat.crypto import CallbackSigner, new_aes_key, new_token, text_field, xml
from sandbox.wechat.official import FakeOfficialAccount
from services.storage.models import Event, InboundCallback, Member, Posting
from tests.conftest import CLIENT_ID
from tests.harness.service import running_bot
from tests.test_wechat_work import cli

APP_ID, APP_SECRET, TEMPLATE = "wx2c2769f8efd9abc2", "oa-secret-0123456789abcdef", "TPL-new-order-01"
GH, OPENID = "gh_10f6c3c3ac5a", "oyORnuP8q7ou2gfYjqLzSIWZf0rs"


@pytest.fixture
async def fake_oa():
    fake = FakeOfficialAccount(APP_ID, APP_SECRET, TEMPLATE)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def oa_keys():
    return new_token(), new_aes_key()


@pytest.fixture
def safe() -> bool:
    return True  # tests parametrized over `safe` override this


@pytest.fixture
def oa_settings(make_settings, sandbox, fake_oa, oa_keys, safe):
    token, aes_key = oa_keys  # the AES key is configured exactly when the account is in safe mode
    return make_settings(ozon_api_url=sandbox.base_url, wechat_api_url=fake_oa.base_url, poll_interval=1,
                         wechat_app_id=APP_ID, wechat_app_secret=SecretStr(APP_SECRET),
                         wechat_token=SecretStr(token), wechat_aes_key=SecretStr(aes_key) if safe else None,
                         wechat_template_id=TEMPLATE, public_url="https://desk.example.com")


class Follower:
    """A WeChat user writing to the Official Account, as WeChat's servers deliver it."""

    def __init__(self, settings, token: str, aes_key: str, openid: str = OPENID, safe: bool = False):
        self.url = f"http://127.0.0.1:{settings.http_port}/wechat/official"
        self.signer = CallbackSigner(token, aes_key, APP_ID)
        self.openid, self.safe = openid, safe

    def _xml(self, kind: str, **fields) -> str:
        return xml({"ToUserName": GH, "FromUserName": self.openid, "CreateTime": int(time.time()),
                    "MsgType": kind, **fields})

    async def send(self, inner: str, signer: CallbackSigner | None = None) -> tuple[int, str]:
        signer = signer or self.signer
        signed = signer.official_safe(inner) if self.safe else signer.official_plain(inner)
        async with aiohttp.ClientSession() as session, session.post(self.url, params=signed.query,
                                                                    data=signed.body.encode()) as response:
            body = await response.text()
        if self.safe and body.startswith("<xml>"):
            body = self.signer.open_reply(body)  # our reply must be encrypted and signed too
        return response.status, body

    async def text(self, content: str) -> str:
        status, body = await self.send(self._xml("text", Content=content, MsgId=secrets.randbelow(10 ** 18)))
        assert status == 200
        return text_field(body, "Content")

    async def event(self, event: str, key: str = "") -> str:
        status, body = await self.send(self._xml("event", Event=event, EventKey=key))
        assert status == 200
        return text_field(body, "Content")


@pytest.mark.parametrize("safe", [False, True], ids=["plain", "safe"])
async def test_bind_by_qr_alert_by_template_reply_passively_and_unsubscribe(oa_settings, oa_keys, sandbox,
                                                                             fake_oa, safe):
    assert (await cli(oa_settings, "add", "--client-id", CLIENT_ID, "--api-key", "sandbox-key-0123456789"))[0] == 0
    code, out = await cli(oa_settings, "invite", CLIENT_ID, "--role", "owner")
    assert code == 0, out
    invite = out.split("invite code: ")[1].split()[0]
    qr_line = next(line for line in out.splitlines() if line.startswith("WeChat binding QR code: "))
    assert qr_line.split(": ", 1)[1].startswith("https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=")
    assert list(fake_oa.qrcodes.values()) == [f"bind_{invite}"]
    async with running_bot(oa_settings):
        await fake_oa.wait_for(lambda: fake_oa.menu)
        assert [b["name"] for b in fake_oa.menu["button"]] == ["待打包", "查询订单", "帮助"]

        follower = Follower(oa_settings, *oa_keys, safe=safe)
        fake_oa.follow(OPENID)
        joined = await follower.event("subscribe", f"qrscene_bind_{invite}")
        assert "✅" in joined
        member = await Member.get(channel="wechat", external_id=OPENID)
        assert member.role == "owner" and member.chat_id == OPENID and member.locale == "zh_CN"

        help_reply = await follower.text("帮助")
        assert "订单" in help_reply and "状态" in help_reply  # passive reply, in Chinese

        (posting,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
        number = posting["posting_number"]
        alert = await fake_oa.wait_for(lambda: next((t for t in fake_oa.templates
                                                     if t["data"]["character_string1"]["value"] == number), None))
        assert alert["touser"] == OPENID and alert["template_id"] == TEMPLATE
        assert alert["url"].startswith("https://desk.example.com/a/")
        claim = oa_settings_links(oa_settings).verify(alert["url"].rsplit("/", 1)[1])
        assert claim is not None and claim.member_id == member.id
        assert fake_oa.custom == []  # alerts never spend the customer-service quota

        status = await follower.text(f"状态 {number}")
        assert number in status and "/a/" in status  # the action page for that posting
        orders = await follower.event("CLICK", "ORDERS")
        assert number in orders
        assert "单号" in await follower.event("CLICK", "QUERY")

        await follower.event("unsubscribe")
        assert (await Member.get(id=member.id)).chat_id is None
        fake_oa.unfollow(OPENID)
        (later,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["aggregator"])
        await _wait_ingested(later["posting_number"])
        assert not [t for t in fake_oa.templates if t["data"]["character_string1"]["value"] ==
                    later["posting_number"]]


def oa_settings_links(settings):
    """Link verification with the same key the running bot uses."""
    return build_services(settings).links


async def _wait_ingested(number: str) -> None:
    for _ in range(200):
        posting = await Posting.get_or_none(posting_number=number)
        if posting and await Event.filter(posting=posting, dispatched_at__isnull=False).exists():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{number} not ingested")


@pytest.mark.parametrize("safe", [False, True], ids=["plain", "safe"])
async def test_forged_stale_and_retried_callbacks(oa_settings, oa_keys, fake_oa, safe):
    async with running_bot(oa_settings):
        follower = Follower(oa_settings, *oa_keys, safe=safe)
        inner = follower._xml("text", Content="帮助", MsgId=42)
        forged = CallbackSigner(new_token(), oa_keys[1], APP_ID)
        assert (await follower.send(inner, forged))[0] == 403
        safe_wrong_key = Follower(oa_settings, oa_keys[0], new_aes_key(), safe=True)
        assert (await safe_wrong_key.send(inner))[0] == 403
        stale = follower.signer.official_plain(inner, timestamp=str(int(time.time()) - 3600))
        async with aiohttp.ClientSession() as session:
            async with session.post(follower.url, params=stale.query, data=stale.body.encode()) as response:
                assert response.status == 403
            verify = follower.signer.official_verify("echo-123")
            async with session.get(follower.url, params=verify.query) as response:
                assert (response.status, await response.text()) == (200, "echo-123")
            async with session.get(follower.url, params={**verify.query, "signature": "0" * 40}) as response:
                assert response.status == 403
        assert await InboundCallback.all().count() == 0
        first = await follower.send(inner)
        again = await follower.send(inner)  # WeChat's retry: taken once, the retry gets 'success'
        assert "订单" in text_field(first[1], "Content") and again == (200, "success")
        assert await InboundCallback.filter(key__startswith="msg:").count() == 1
        if safe:  # a plain body posted to a safe-mode account is a forgery, whatever its signature
            plain = follower.signer.official_plain(follower._xml("text", Content="帮助", MsgId=43))
            async with aiohttp.ClientSession() as session, session.post(
                    follower.url, params=plain.query, data=plain.body.encode()) as response:
                assert response.status == 403
        # a captured signed query replayed with another body: accepted once only, the replay does nothing
        signed = follower.signer.official_safe(inner) if safe else follower.signer.official_plain(
            follower._xml("text", Content="帮助", MsgId=44))
        replay_body = (follower.signer.official_safe(follower._xml("text", Content="订单", MsgId=45)).body if safe
                       else follower._xml("text", Content="订单", MsgId=45))
        async with aiohttp.ClientSession() as session:
            async with session.post(follower.url, params=signed.query, data=signed.body.encode()) as response:
                assert response.status == 200
            async with session.post(follower.url, params=signed.query, data=replay_body.encode()) as response:
                assert response.status in (200, 403) and await response.text() in ("success", "")
        assert not await InboundCallback.filter(key="msg:45").exists(), "the replayed body was not taken in"
