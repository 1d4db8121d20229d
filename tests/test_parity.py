"""Parity: the same script of everything a desk does, run on Telegram, the WeCom app, the Official Account
with the action page, and the console, each through its own platform protocol. Every surface must end in
the same Ozon calls and the same stored state. Where a surface cannot carry a step, the test takes what
`services.commands.INSTEAD` says it gets, so the gaps are listed in one place and nowhere else."""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from bot.app import build_services
from handlers.console import ConsoleChannel
from sandbox.telegram import DEFAULT_TOKEN
from sandbox.wechat.crypto import new_aes_key, new_token
from sandbox.wechat.official import FakeOfficialAccount
from sandbox.wechat.wecom import FakeWecom
from services.commands import INSTEAD
from services.storage.models import Member, Notification, Posting, Seller
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.service import running_bot
from tests.parity_drivers import ConsoleDriver, OfficialDriver, TelegramDriver, WecomDriver
from tests.test_wechat_official import APP_ID, APP_SECRET, TEMPLATE, Follower
from tests.test_wechat_work import AGENT, CORP, SECRET, connect_wecom

PHOTO = Path(__file__).parent / "fixtures" / "waybill_sf.jpg"
PHOTO_WAYBILL, TYPED_WAYBILL = "SF1402938475612", "SF1402938475620"
APPROVE = "/v2/conditional-cancellation/approve"
MUTATIONS = ("/v4/posting/fbs/ship", "/v2/fbs/posting/tracking-number/set", "/v2/fbs/posting/delivering")
SURFACES = ("telegram", "wecom", "wechat", "console")
# what every surface must end with: the Ozon calls (posting A typed, B photographed) and the stored state
EXPECTED = {
    "ozon": [(path, posting) for posting in "AB" for path in MUTATIONS],
    "postings": {"A": ("handed_over", "sf", TYPED_WAYBILL), "B": ("handed_over", "sf", PHOTO_WAYBILL)},
    "seller": ("23:00-07:00", "sf"),
}


@pytest.mark.parametrize("surface", SURFACES)
async def test_every_flow_ends_the_same_on_every_surface(surface, make_settings, sandbox, fake_tg, tmp_path):
    async with AsyncExitStack() as stack:
        driver, roles = await stack.enter_async_context(_Surface(surface, make_settings, sandbox, fake_tg))
        await _script(driver, sandbox, roles)
        outcome = await _outcome(sandbox, roles)
    assert outcome == {**EXPECTED, "roles": roles}


async def _script(driver, sandbox, roles: dict[str, str]) -> None:
    surface = driver.surface
    await driver.command("owner", "lang en", expect="Language set")
    if (surface, "connect") not in INSTEAD:
        await driver.connect("owner")
    if (surface, "join") not in INSTEAD:
        invite = await driver.command("owner", "invite", expect="code for a packer")
        await driver.join("packer", re.search(r"code for a packer: (\w+)", invite).group(1))
    hands = "packer" if "packer" in roles.values() else "owner"
    if hands == "packer":
        await driver.command("packer", "lang en", expect="Language set")

    first, second = (o["posting_number"] for o in sandbox.generate_orders(CLIENT_ID, 2, flows=["non_integrated"]))
    for number in (first, second):
        await driver.card(hands, number)
    picks = await driver.command(hands, "picklist", expect="Pick list: 2 postings to pack")
    assert first in picks and second in picks
    if (surface, "files") in INSTEAD:  # the reply links the action page's PDF instead
        url = driver.local(re.search(r"PDF to print: (\S+)", picks).group(1))
        async with driver.http.get(url) as response:
            assert response.status == 200 and (await response.read()).startswith(b"%PDF")
    for number, waybill in ((first, TYPED_WAYBILL), (second, PHOTO_WAYBILL)):
        await driver.press(hands, number, "SF Express")
        await driver.press(hands, number, "Packed")
        if number == first:  # once Ozon has packed it: its label, printed as a batch of one
            for _ in range(300):
                if (await Posting.get(posting_number=number)).stage == "packed":
                    break
                await asyncio.sleep(0.1)
            labels = await driver.command(hands, "labels", expect="Labels of 1 posting in one PDF")
            if (surface, "files") in INSTEAD:
                url = driver.local(re.search(r"🏷 labels: (\S+)", labels).group(1))
                async with driver.http.get(url) as response:
                    assert response.status == 200 and (await response.read()).startswith(b"%PDF")
        sent = f"Tracking number {waybill} sent to Ozon"
        if number == first or (surface, "photo") in INSTEAD:
            await driver.say(hands, waybill, expect=sent)
        else:
            assert sent in await driver.photo(hands, number, PHOTO.read_bytes(), expect=sent)

    await driver.command(hands, f"status {first}", expect=f"Waybill: {TYPED_WAYBILL}")
    await driver.command("owner", "settings quiet 23:00-07:00", expect="Saved")
    if (surface, "buttons") in INSTEAD:
        await driver.command("owner", "settings courier sf", expect="Saved")
    else:
        await driver.command("owner", "settings", expect="Settings of seller")
        await driver.press("owner", f"Settings of seller {CLIENT_ID}", "Default courier")
        await driver.press("owner", "choose a value", "SF Express")

    # stock: shown everywhere; set with a button where there are buttons, typed where the INSTEAD says so
    shown = await driver.command(hands, "stock UR-TEAPOT-500", expect="free ")
    free = int(re.search(r"free (\d+)", shown).group(1))
    if (surface, "stock") in INSTEAD:
        await driver.command(hands, f"stock UR-TEAPOT-500 {free + 1}", expect="Ozon set the free stock")
    else:
        await driver.press(hands, "Stock of UR-TEAPOT-500", f"+1 → {free + 1}")
    sets = [item["stock"] for call in sandbox.calls_to("/v2/products/stocks") for item in call.body["stocks"]]
    assert sets == [free + 1]

    # a buyer's cancellation request: the owner approves it from its card (the Official Account: the order's
    # action page, whose card carries the same buttons for the owner); Ozon hears it once
    third = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])[0]["posting_number"]
    await driver.card("owner", third)
    asked = sandbox.request_cancellation(CLIENT_ID, third)
    for _ in range(200):
        if await Notification.filter(event__kind="cancel_asked", state="sent", member__role="owner").exists():
            break
        await asyncio.sleep(0.1)
    await driver.press("owner", third, "Approve cancellation")
    for _ in range(100):
        if sandbox.calls_to(APPROVE):
            break
        await asyncio.sleep(0.1)
    assert [c.body["cancellation_id"] for c in sandbox.calls_to(APPROVE) if c.status == 200] == \
        [asked["cancellation_id"]]


async def _outcome(sandbox, roles: dict[str, str]) -> dict:
    postings = {p.posting_number: p for p in await Posting.all()}
    names = {}
    for call in sandbox.calls:
        for number in postings:
            if call.path in MUTATIONS and number in str(call.body) and number not in names:
                names[number] = "AB"[len(names)]
    ozon = [(call.path, names[number]) for call in sandbox.calls if call.path in MUTATIONS
            for number in names if number in str(call.body)]
    seller = await Seller.get(client_id=CLIENT_ID)
    members = {m.external_id: m.role for m in await Member.filter(role__in=("owner", "packer"))}
    return {"ozon": ozon,
            "postings": {names[n]: (p.stage, p.courier, p.waybill) for n, p in postings.items() if n in names},
            "seller": (seller.quiet_hours, seller.default_courier),
            "roles": {identity: role for identity, role in members.items() if identity in roles}}


class _Surface:
    """Starts the bot with one surface configured, and gives the driver plus {identity: role}."""

    def __init__(self, surface: str, make_settings, sandbox, fake_tg):
        self.surface, self.make_settings, self.sandbox, self.fake_tg = surface, make_settings, sandbox, fake_tg
        self.stack = AsyncExitStack()

    async def __aenter__(self):
        return await getattr(self, f"_{self.surface}")()

    async def __aexit__(self, *exc) -> None:
        await self.stack.aclose()

    async def _telegram(self):
        tg = self.fake_tg
        settings = self.make_settings(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{tg.base_url}/bot",
                                      telegram_file_url=f"{tg.base_url}/file/bot", ozon_api_url=self.sandbox.base_url,
                                      poll_interval=1, cancel_poll_interval=0.3)
        await self.stack.enter_async_context(running_bot(settings))
        driver = TelegramDriver(tg, {"owner": 1001, "packer": 1002})

        async def connect(who: str) -> None:
            await driver.say(who, f"/connect {CLIENT_ID} {API_KEY}", expect="Connected")

        async def join(who: str, code: str) -> None:
            await driver.say(who, f"/join {code}", expect="You are on the desk")

        driver.connect, driver.join = connect, join
        return driver, {"1001": "owner", "1002": "packer"}

    async def _wecom(self):
        fake = FakeWecom()
        fake.add_app(CORP, SECRET, AGENT, ["LiWei", "ZhangSan"])
        await fake.start()
        self.stack.push_async_callback(fake.stop)
        settings = self.make_settings(ozon_api_url=self.sandbox.base_url, wecom_api_url=fake.base_url,
                                      poll_interval=1, cancel_poll_interval=0.3, public_url="https://desk.example.com")
        callbacks = await connect_wecom(settings, new_token(), new_aes_key())
        callbacks.url = callbacks.url.replace("https://desk.example.com", f"http://127.0.0.1:{settings.http_port}")
        await self.stack.enter_async_context(running_bot(settings))
        http = await self.stack.enter_async_context(aiohttp.ClientSession())
        driver = WecomDriver(fake, callbacks, {"owner": "LiWei", "packer": "ZhangSan"})
        driver.connect = _form_connect(driver, http, settings.http_port)
        return driver, {f"{CORP}:LiWei": "owner", f"{CORP}:ZhangSan": "packer"}

    async def _wechat(self):
        fake = FakeOfficialAccount(APP_ID, APP_SECRET, TEMPLATE)
        await fake.start()
        self.stack.push_async_callback(fake.stop)
        token, aes_key = new_token(), new_aes_key()
        settings = self.make_settings(ozon_api_url=self.sandbox.base_url, wechat_api_url=fake.base_url,
                                      poll_interval=1, cancel_poll_interval=0.3, wechat_app_id=APP_ID, wechat_app_secret=SecretStr(APP_SECRET),
                                      wechat_token=SecretStr(token), wechat_aes_key=SecretStr(aes_key),
                                      wechat_template_id=TEMPLATE, public_url="https://desk.example.com")
        await self.stack.enter_async_context(running_bot(settings))
        http = await self.stack.enter_async_context(aiohttp.ClientSession())
        openids = {"owner": "oOwner00000000000000000000001", "packer": "oPacker0000000000000000000001"}
        followers = {role: Follower(settings, token, aes_key, openid=openid, safe=True)
                     for role, openid in openids.items()}
        for openid in openids.values():
            fake.follow(openid)
            fake.user_wrote(openid)
        driver = OfficialDriver(fake, followers, settings.http_port, http)
        driver.connect = _form_connect(driver, http, settings.http_port)

        async def join(who: str, code: str) -> None:  # scanning the invite's QR code
            assert "✅" in await followers[who].event("subscribe", f"qrscene_bind_{code}")

        driver.join = join
        return driver, {openid: role for role, openid in openids.items()}

    async def _console(self):
        settings = self.make_settings(ozon_api_url=self.sandbox.base_url, poll_interval=1, cancel_poll_interval=0.3, quiet_hours="off")
        services = build_services(settings)
        await services.start(schedule=True)
        self.stack.push_async_callback(services.stop)
        connected = await services.desk.connect_seller(CLIENT_ID, API_KEY)
        member = await services.desk.join_as(connected.seller, channel="console", external_id="demo",
                                             chat_id="console", name="Demo", locale="zh_CN", role="owner")
        lines: list[str] = []
        channel = ConsoleChannel(services.conversation, member, write=lines.append)
        services.channels.register(channel)
        await services.sync.poll(connected.seller)
        return ConsoleDriver(channel, lines), {"demo": "owner"}


def _form_connect(driver, http: aiohttp.ClientSession, port: int):
    """Connecting where a typed key cannot be deleted: the one-time link, then the key form."""

    async def connect(who: str) -> None:
        reply = await driver.say(who, "connect", expect="/k/")
        link = re.search(r"https://desk\.example\.com(/k/[^\s\"\\]+)", reply).group(1)
        url = f"http://127.0.0.1:{port}{link}"
        async with http.get(url) as response:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await response.text()).group(1)
        async with http.post(url, data={"csrf": csrf, "client_id": CLIENT_ID, "api_key": API_KEY}) as response:
            assert response.status == 200 and "Connected Ozon seller" in await response.text()

    return connect
