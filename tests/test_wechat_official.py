"""The Official Account through `ozonbot run` wiring: QR binding, template-message alerts that open the
action page, passive replies inside the 5 s, menu, unsubscribe, plain and safe (AES) mode."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from urllib.parse import urlsplit

import aiohttp
import pytest
from pydantic import SecretStr

from bot.app import build_services
from sandbox.wechat.crypto import CallbackSigner, new_aes_key, new_token, text_field, xml
from sandbox.wechat.official import FakeOfficialAccount
from services.storage.models import Event, InboundCallback, Member, Posting, Seller
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.service import running_bot
from tests.page_helpers import WAYBILL
from tests.test_action_page import get, submit, tracking_calls
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
        assert [b["name"] for b in fake_oa.menu["button"]] == ["待打包", "查询订单", "更多"]
        assert [b["name"] for b in fake_oa.menu["button"][2]["sub_button"]] == ["设置", "邀请打包员", "成员", "连接店铺",
                                                                               "帮助"]

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


# ---- a WeChat-only owner, as a new user meets the bot with no Telegram token configured at all: follows the
# Official Account, connects an Ozon key through the one-time key form (never typed into the chat), sets quiet
# hours and a default courier, invites a packer who joins by QR, and the packer ships an order and posts its
# tracking from the action page

PACKER = "oPacker0000000000000000000001"


def local(settings, url: str) -> str:
    """The public link, reached on this machine (the public URL is the operator's HTTPS proxy)."""
    parts = urlsplit(url)
    return f"http://127.0.0.1:{settings.http_port}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def link(text: str, path: str) -> str:
    found = re.search(rf"https://desk\.example\.com{path}\S+", text)
    assert found, f"no {path} link in {text!r}"
    return found.group(0).split('"')[0]


async def test_wechat_only_owner_connects_sets_invites_and_packer_ships(oa_settings, oa_keys, sandbox, fake_oa):
    assert oa_settings.telegram_token is None
    async with running_bot(oa_settings), aiohttp.ClientSession() as http:
        owner = Follower(oa_settings, *oa_keys, safe=True)
        fake_oa.follow(OPENID)  # and never opens the 48-hour window: notices must come as template messages
        welcome = await owner.event("subscribe")
        assert "连接" in welcome and "/connect" not in welcome  # hints name this surface's own commands
        assert "Language set" in await owner.text("语言 en")

        typed = await owner.text(f"连接 {CLIENT_ID} {API_KEY}")  # a key typed where it cannot be deleted
        assert "cannot delete it" in typed and "Revoke" in typed and not await Seller.exists(client_id=CLIENT_ID)
        url = local(oa_settings, link(await owner.text("connect"), "/k/"))

        status, text, page = await get(http, url)
        assert status == 200 and 'type="password"' in text
        form = page.forms[0]
        status, text, page = await submit(http, url, form, client_id=CLIENT_ID, api_key="wrong-key-000000000")
        assert status == 200 and "Ozon refused" in text and not await Seller.exists(client_id=CLIENT_ID)
        status, text, _ = await submit(http, url, page.forms[0], client_id=CLIENT_ID, api_key=API_KEY)
        assert status == 200 and f"Connected Ozon seller {CLIENT_ID}" in text
        member = await Member.get(channel="wechat", external_id=OPENID)
        assert member.role == "owner" and member.chat_id == OPENID and member.locale == "en"
        notice = await fake_oa.wait_for(lambda: next((t for t in fake_oa.templates if t["touser"] == OPENID), None))
        assert notice["data"]["thing2"]["value"].startswith("Connected Ozon") and API_KEY not in str(notice)
        status, text, _ = await get(http, local(oa_settings, notice["url"]))  # the whole text, on the page
        assert status == 200 and f"Connected Ozon seller {CLIENT_ID}" in text and "Warehouses" in text
        assert (await get(http, url))[0] == 410  # the link is spent

        assert "23:00" in await owner.text("设置 quiet 23:00-07:00")
        assert "SF" in await owner.text("settings courier sf")
        seller = await Seller.get(client_id=CLIENT_ID)
        assert seller.quiet_hours == "23:00-07:00" and seller.default_courier == "sf"

        invite = await owner.text("邀请")
        code = re.search(r"code for a packer: (\w+)", invite).group(1)
        qr = link(invite, "/wechat/qr/")
        async with http.get(local(oa_settings, qr), allow_redirects=False) as response:
            assert response.status == 302 and "showqrcode" in response.headers["Location"]
        packer = Follower(oa_settings, *oa_keys, openid=PACKER, safe=True)
        fake_oa.follow(PACKER)
        assert "✅" in await packer.event("subscribe", f"qrscene_bind_{code}")
        assert (await Member.get(channel="wechat", external_id=PACKER)).role == "packer"
        assert "Language set" in await packer.text("language en")

        (order,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
        number = order["posting_number"]
        alert = await fake_oa.wait_for(lambda: next(
            (t for t in fake_oa.templates if t["touser"] == PACKER and
             t["data"]["character_string1"]["value"] == number), None), timeout=15)
        page_url = local(oa_settings, alert["url"])
        status, text, page = await get(http, page_url)
        assert status == 200 and number in text
        if (await Posting.get(posting_number=number)).courier is None:  # the default courier may be applied
            status, text, page = await submit(http, page_url, page.form("SF Express"))
        status, text, page = await submit(http, page_url, page.form("Packed"))
        assert "Packed in Ozon" in text
        status, text, _ = await submit(http, page_url, page.form_to("/waybill"), number=WAYBILL)
        assert f"Tracking number {WAYBILL} sent to Ozon" in text
        assert sandbox.posting(CLIENT_ID, number)["tracking_number"] == WAYBILL
        assert len(tracking_calls(sandbox, number)) == 1
        row = await Posting.get(posting_number=number)
        assert row.courier == "sf" and row.stage == "handed_over" and row.waybill == WAYBILL

        listing = await owner.text("members")  # no buttons here: removal is typed, by the number in the list
        assert "2. " in listing and "packer" in listing and "remove <number>" in listing
        assert "no longer on the desk" in await owner.text("成员 移除 2")
        assert (await Member.get(channel="wechat", external_id=PACKER)).role == "removed"
        assert (await get(http, page_url))[0] == 403  # the packer's link ends with the membership
