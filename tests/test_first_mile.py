"""First-mile tracking end to end (issue 15): the Kuaidi100 stand-in on loopback, our callback route, the
Telegram desk through `ozonbot run`, the command line as an operator runs it, and an injected clock for
the alerts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.app import build_services
from bot.service import build_web_app
from sandbox.kuaidi100 import Kuaidi100Sandbox
from sandbox.telegram import DEFAULT_TOKEN
from services import digest
from services.firstmile import FirstMile
from services.security import SecretBox
from services.storage import db
from services.storage.models import Event, Posting, Seller, TraceEvent, TrackingAccount, Waybill
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.service import running_bot
from tests.test_sync import RecordingChannel

OWNER = 1001
KD_KEY, KD_CUSTOMER = "kd100key0123456789", "CUSTOMER0042"
WAYBILL = "SF1402938475612"


@pytest.fixture
async def kd():
    box = Kuaidi100Sandbox(push_retry_delay=0.1)
    box.add_account(KD_KEY, KD_CUSTOMER)
    await box.start()
    yield box
    await box.stop()


def _md5u(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest().upper()


async def _post_form(url: str, form: dict[str, str]) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.post(url, data=form) as resp:
        return resp.status, json.loads(await resp.text())


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


# ---- the Telegram desk through `ozonbot run` ---------------------------------------------------------------
async def test_a_typed_waybill_is_subscribed_once_and_pushes_move_the_card_and_status(
        make_settings, sandbox, fake_tg, kd):
    settings = make_settings(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{fake_tg.base_url}/bot",
                             telegram_file_url=f"{fake_tg.base_url}/file/bot", ozon_api_url=sandbox.base_url,
                             kuaidi100_api_url=kd.base_url)
    (posting,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["aggregator"])
    number = posting["posting_number"]
    async with running_bot(settings):
        fake_tg.push_message(OWNER, "/lang en", language_code="en")
        await fake_tg.wait_for_message(OWNER, "Language set: English")
        fake_tg.push_message(OWNER, f"/connect {CLIENT_ID} {API_KEY}", language_code="en")
        await fake_tg.wait_for_message(OWNER, f"Connected Ozon seller {CLIENT_ID}", timeout=10)
        # the account, as `ozonbot seller kuaidi100` connects it (its own test below runs the command itself)
        first_mile = FirstMile(box=SecretBox(settings.secret_key.get_secret_value()), api_url=kd.base_url,
                               callback_base=settings.base_url, clock=lambda: datetime.now(UTC))
        await first_mile.start()
        try:
            account = await first_mile.connect_account(await Seller.get(client_id=CLIENT_ID), KD_KEY, KD_CUSTOMER,
                                                       phone_tail="5678")
        finally:
            await first_mile.close()
        kd.add_parcel("shunfeng", WAYBILL, phone="13912345678")

        card = await fake_tg.wait_for_message(OWNER, f"New order {number}", timeout=10)
        fake_tg.press(OWNER, "SF Express", message_id=card.message_id)
        await fake_tg.wait_for(lambda: "✅ Packed" in str(fake_tg.buttons(OWNER, card.message_id)))
        fake_tg.press(OWNER, "Packed", message_id=card.message_id)
        await fake_tg.wait_for_message(OWNER, f"Waybill number for {number}", timeout=10)
        fake_tg.push_message(OWNER, WAYBILL, language_code="en")
        await fake_tg.wait_for_message(OWNER, "first-mile record", timeout=10)
        await _until(lambda: _subscribed(kd))
        (sub,) = kd.subscriptions
        assert (sub.com, sub.num, sub.phone) == ("shunfeng", WAYBILL, "5678")
        assert sub.callback_url == f"{settings.base_url}/kuaidi100/{account.token}" and len(sub.salt) >= 16

        # typing the same number again subscribes nothing more
        fake_tg.press(OWNER, "Correct waybill number", message_id=card.message_id)
        await fake_tg.wait_for_message(OWNER, f"Waybill number for {number}", after=card.message_id, timeout=10)
        fake_tg.push_message(OWNER, WAYBILL, language_code="en")
        await fake_tg.wait_for_message(OWNER, "first-mile record", after=card.message_id + 3, timeout=10)
        assert len([c for c in kd.calls if c.path == "/poll"]) == 1

        kd.scan("shunfeng", WAYBILL, "【乌鲁木齐市】顺丰速运 已收取快件", state=1, area="新疆,乌鲁木齐市")
        await kd.flush()
        assert kd.pushes[-1].accepted and kd.pushes[-1].http_status == 200
        await fake_tg.wait_for(lambda: "已收取快件" in (fake_tg.message(OWNER, card.message_id).text or ""),
                               timeout=10)
        assert "Last scan" in fake_tg.message(OWNER, card.message_id).text
        last = fake_tg.messages(OWNER)[-1].message_id
        fake_tg.push_message(OWNER, f"/status {number}", language_code="en")
        status = await fake_tg.wait_for_message(OWNER, "Ozon tracking:", after=last)
        assert "Last scan" in status.text and "已收取快件" in status.text
        assert f"{WAYBILL}: 【乌鲁木齐市】顺丰速运 已收取快件" in status.text  # the trace itself, newest first

        # the same trace pushed twice changes nothing
        waybill = await Waybill.get(number=WAYBILL)
        before = await TraceEvent.filter(waybill=waybill).count()
        (param,) = {p.param for p in kd.pushes}
        again = await _post_form(sub.callback_url, {"param": param, "sign": _md5u(param + sub.salt)})
        assert again == (200, {"result": True, "returnCode": "200", "message": "成功"})
        assert await TraceEvent.filter(waybill=waybill).count() == before == 1

        # forged: a moved trace without the salt, a wrong token, garbage; all the same refusal, nothing stored
        forged = param.replace("已收取快件", "已签收").replace('"state":"1"', '"state":"3"')
        refusals = [
            await _post_form(sub.callback_url, {"param": forged, "sign": _md5u(forged + "guess")}),
            await _post_form(sub.callback_url, {"param": forged}),
            await _post_form(f"{settings.base_url}/kuaidi100/{'x' * 24}", {"param": param,
                                                                         "sign": _md5u(param + sub.salt)}),
            await _post_form(sub.callback_url, {"param": "not json", "sign": "00"}),
        ]
        assert {status for status, _ in refusals} == {403} and len({json.dumps(b) for _, b in refusals}) == 1
        assert await TraceEvent.filter(waybill=waybill).count() == 1
        assert (await Waybill.get(id=waybill.id)).state == "subscribed"
        assert (await Posting.get(posting_number=number)).last_scan.endswith("顺丰速运 已收取快件")


async def _subscribed(kd) -> bool:
    return bool(kd.subscriptions)


# ---- the command line -------------------------------------------------------------------------------------
def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OZONBOT_DATA_DIR": str(settings.data_dir), "OZONBOT_DATABASE_URL": settings.db_url,
           "OZONBOT_SECRET_KEY": settings.secret_key.get_secret_value(),
           "OZONBOT_OZON_API_URL": settings.ozon_api_url, "OZONBOT_KUAIDI100_API_URL": settings.kuaidi100_api_url}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


async def test_the_account_is_checked_stored_encrypted_and_removable(make_settings, sandbox, kd):
    settings = make_settings(ozon_api_url=sandbox.base_url, kuaidi100_api_url=kd.base_url)
    added = await asyncio.to_thread(_cli, settings, "seller", "add", "--client-id", CLIENT_ID, "--api-key", API_KEY)
    assert added.returncode == 0, added.stderr
    wrong = await asyncio.to_thread(_cli, settings, "seller", "kuaidi100", CLIENT_ID, "--key", "wrongkey12345",
                                    "--customer", KD_CUSTOMER)
    assert wrong.returncode == 1 and "refused" in wrong.stderr and "Nothing was stored" in wrong.stderr
    assert "wrongkey12345" not in wrong.stdout + wrong.stderr
    kd.faults.down = True
    away = await asyncio.to_thread(_cli, settings, "seller", "kuaidi100", CLIENT_ID, "--key", KD_KEY,
                                   "--customer", KD_CUSTOMER)
    assert away.returncode == 1 and "did not answer" in away.stderr
    kd.faults.down = False
    queries = len([c for c in kd.calls if c.path == "/poll/query.do"])
    done = await asyncio.to_thread(_cli, settings, "seller", "kuaidi100", CLIENT_ID, "--key", KD_KEY,
                                   "--customer", KD_CUSTOMER, "--phone", "5678")
    assert done.returncode == 0, done.stderr
    assert len([c for c in kd.calls if c.path == "/poll/query.do"]) == queries + 1  # checked with a real call
    assert KD_KEY not in done.stdout + done.stderr and "/kuaidi100/" in done.stdout

    await db.connect(settings.db_url, apply_migrations=False)
    try:
        account = await TrackingAccount.get(seller__client_id=CLIENT_ID)
        assert KD_KEY not in account.key_enc
        assert SecretBox(settings.secret_key.get_secret_value()).decrypt(account.key_enc) == KD_KEY
        assert account.customer == KD_CUSTOMER and account.phone_tail == "5678"
    finally:
        await db.close()
    if settings.db_url.startswith("sqlite://"):
        path = settings.db_url.removeprefix("sqlite://")
        for name in (path, path + "-wal"):
            if os.path.exists(name):
                with open(name, "rb") as file:
                    assert KD_KEY.encode() not in file.read()

    removed = await asyncio.to_thread(_cli, settings, "seller", "kuaidi100", CLIENT_ID, "--remove")
    assert removed.returncode == 0 and "removed" in removed.stdout
    await db.connect(settings.db_url, apply_migrations=False)
    try:
        assert not await TrackingAccount.exists()
    finally:
        await db.close()


# ---- the service with an injected clock --------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def _serve(services) -> web.AppRunner:
    runner = web.AppRunner(build_web_app(services))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", services.settings.http_port).start()
    return runner


async def _desk_with_waybill(settings, sandbox, kd, clock):
    services = build_services(settings, clock=clock)
    await services.start(schedule=False)
    channel = RecordingChannel()
    services.channels.register(channel)
    runner = await _serve(services)
    return services, channel, runner


async def _stop(services, runner) -> None:
    await runner.cleanup()
    await services.stop()


async def test_kuaidi100_down_loses_no_subscription_and_no_pickup_alerts_once_across_a_restart(
        make_settings, sandbox, kd):
    clock = Clock()
    settings = make_settings(ozon_api_url=sandbox.base_url, kuaidi100_api_url=kd.base_url)
    services, channel, runner = await _desk_with_waybill(settings, sandbox, kd, clock)
    try:
        connected = await services.desk.connect_seller(CLIENT_ID, API_KEY)
        seller = connected.seller
        await services.desk.join_as(seller, channel="console", external_id="o", chat_id="o", name="O", locale="en",
                                    role="owner")
        await services.first_mile.connect_account(seller, KD_KEY, KD_CUSTOMER)
        (a, b) = sandbox.generate_orders(CLIENT_ID, 2, flows=["aggregator"])
        await services.sync.poll(seller)
        kd.faults.down = True
        for posting, number in ((a, "YT1234567890123"), (b, "75312345678901")):
            row = await Posting.get(posting_number=posting["posting_number"])
            await Posting.filter(id=row.id).update(courier="yto" if number.startswith("YT") else "zto",
                                                   stage="handed_over", waybill=number)
            await services.first_mile.watch(await Posting.get(id=row.id), number)
        await services.first_mile.settle()
        assert kd.subscriptions == [] and await Waybill.filter(state="pending").count() == 2
        # hours of Kuaidi100 away: every retry fails and nothing is dropped
        for _ in range(6):
            clock.now += timedelta(minutes=31)
            await services.duties.first_mile_due()
        assert await Waybill.filter(state="pending").count() == 2 and kd.subscriptions == []
        kd.faults.down = False
        kd.faults.error_code, kd.faults.error_count = "500", 1  # and once more it answers "server error"
        clock.now += timedelta(minutes=31)
        await services.duties.first_mile_due()
        clock.now += timedelta(minutes=31)
        await services.duties.first_mile_due()
        assert sorted(s.num for s in kd.subscriptions) == ["75312345678901", "YT1234567890123"]
        assert await Waybill.filter(state="subscribed").count() == 2

        # b is picked up; a is not, 24 hours after its hand-over
        kd.scan("zhongtong", "75312345678901", "【义乌市】中通快递 已揽件", state=1)
        await kd.flush()
        clock.now = (await Waybill.get(number="YT1234567890123")).since + timedelta(hours=24, minutes=1)
        kd.scan("zhongtong", "75312345678901", "快件已发往 乌鲁木齐", state=0, at=clock.now)
        await kd.flush()
        # the seller's quiet hours hold it (they cover the whole day here), and it comes when they end
        local = clock.now.astimezone(ZoneInfo(seller.timezone))
        around = f"{(local - timedelta(hours=1)):%H:%M}-{(local + timedelta(hours=1)):%H:%M}"
        await Seller.filter(id=seller.id).update(quiet_hours=around)
        await services.duties.first_mile_due()
        assert not [t for _, t in channel.sent if "no pickup scan" in t]
        await Seller.filter(id=seller.id).update(quiet_hours="off")
        await services.duties.first_mile_due()
        await services.duties.first_mile_due()
        alerts = [t for _, t in channel.sent if "no pickup scan" in t]
        assert alerts == [f"📦 YT1234567890123 ({a['posting_number']}) has no pickup scan 24 hours after it was "
                          "handed over. Check with the courier that the parcel was really collected."]
        # the morning digest counts it; b, picked up and moving, is not counted
        summary = await digest.summarize(seller, clock.now)
        assert summary.not_picked_up == [f"YT1234567890123 ({a['posting_number']})"]
        assert summary.frozen == [] and summary.troubled == []
        text = digest.render(services.catalogs.translator("ru"), summary, {"orders": "/orders"}).text
        assert "📭 1 посылка не забрана курьером" in text and "YT1234567890123" in text
        clock.now += timedelta(hours=25)  # and a day later b's trace has not moved
        assert (await digest.summarize(seller, clock.now)).frozen == [f"75312345678901 ({b['posting_number']})"]
    finally:
        await _stop(services, runner)

    # a restart: the same alert is not sent again
    services, channel, runner = await _desk_with_waybill(settings, sandbox, kd, clock)
    try:
        await services.duties.first_mile_due()
        await services.outbox.dispatch_pending()
        assert not [t for _, t in channel.sent if "no pickup" in t]
        assert await Event.filter(kind="trace", key__startswith="no_pickup").count() == 1
    finally:
        await _stop(services, runner)


async def test_a_problem_state_alerts_at_once_and_an_abort_is_renewed_once(make_settings, sandbox, kd):
    clock = Clock()
    kd._clock = clock
    settings = make_settings(ozon_api_url=sandbox.base_url, kuaidi100_api_url=kd.base_url)
    services, channel, runner = await _desk_with_waybill(settings, sandbox, kd, clock)
    try:
        seller = (await services.desk.connect_seller(CLIENT_ID, API_KEY)).seller
        await services.desk.join_as(seller, channel="console", external_id="o", chat_id="o", name="O", locale="ru",
                                    role="owner")
        await services.first_mile.connect_account(seller, KD_KEY, KD_CUSTOMER)
        (a, b) = sandbox.generate_orders(CLIENT_ID, 2, flows=["aggregator"])
        await services.sync.poll(seller)
        for posting, number, courier in ((a, "4312345678901", "yunda"), (b, "YT7512345678901", "yto")):
            await Posting.filter(posting_number=posting["posting_number"]).update(courier=courier, waybill=number,
                                                                                  stage="handed_over")
            await services.first_mile.watch(await Posting.get(posting_number=posting["posting_number"]), number)
        await services.first_mile.settle()
        kd.scan("yunda", "4312345678901", "快件已揽收", state=1)
        kd.scan("yunda", "4312345678901", "收件人拒收，快件退回中", state=6)
        await kd.flush()
        await _until(lambda: _sent(channel, "4312345678901"))
        problems = [t for _, t in channel.sent if "4312345678901" in t]
        assert len(problems) == 1 and problems[0].startswith("🚨")
        # no record for 3 days: Kuaidi100 aborts, we subscribe once more after half an hour, then let it go
        clock.now += timedelta(days=3, minutes=1)
        kd.check_aborts()
        await kd.flush()
        assert (await Waybill.get(number="YT7512345678901")).state == "pending"
        clock.now += timedelta(minutes=31)
        await services.duties.first_mile_due()
        assert len([s for s in kd.subscriptions if s.num == "YT7512345678901"]) == 2
        clock.now += timedelta(days=3, minutes=1)
        kd.check_aborts()
        await kd.flush()
        clock.now += timedelta(minutes=31)
        await services.duties.first_mile_due()
        assert (await Waybill.get(number="YT7512345678901")).state == "aborted"
        assert len([s for s in kd.subscriptions if s.num == "YT7512345678901"]) == 2
    finally:
        await _stop(services, runner)


async def _sent(channel, text: str) -> bool:
    return any(text in t for _, t in channel.sent)


def test_the_alerts_speak_the_members_language_with_real_plurals():
    from services.firstmile import render
    from services.i18n import Catalogs

    catalogs = Catalogs()
    posting = Posting(posting_number="1234-0001-1")
    texts = {}
    for locale, hours in (("ru", 1), ("ru", 3), ("ru", 24), ("zh_CN", 24), ("en", 1)):
        event = Event(kind="trace", key="no_pickup:1", payload={"number": "YT1", "hours": hours})
        texts[(locale, hours)] = render(event, posting, catalogs.translator(locale), datetime.now(UTC)).text
    assert "через 1 час после" in texts[("ru", 1)]
    assert "через 3 часа после" in texts[("ru", 3)]
    assert "через 24 часа после" in texts[("ru", 24)]
    assert "24 小时后仍无揽收记录" in texts[("zh_CN", 24)]
    assert "no pickup scan 1 hour after" in texts[("en", 1)]
    frozen = Event(kind="trace", key="frozen:1:0", payload={"number": "YT1", "hours": 25, "context": "义乌"})
    assert "уже 25 часов" in render(frozen, posting, catalogs.translator("ru"), datetime.now(UTC)).text


async def test_a_waybill_photographed_in_wecom_is_subscribed_once(make_settings, sandbox, kd):
    from sandbox.wechat.crypto import new_aes_key, new_token
    from sandbox.wechat.wecom import FakeWecom
    from tests.test_wechat_work import (
        CORP,
        PHOTO,
        SECRET,
        button_of,
        card_for,
        card_for_update,
        cli,
        click,
        connect_wecom,
        option_of,
    )
    from tests.test_wechat_work import (
        OWNER as WECOM_OWNER,
    )
    from tests.test_wechat_work import (
        PACKER as WECOM_PACKER,
    )

    fake = FakeWecom()
    fake.add_app(CORP, SECRET, 1000002, [WECOM_OWNER, WECOM_PACKER])
    await fake.start()
    try:
        settings = make_settings(ozon_api_url=sandbox.base_url, wecom_api_url=fake.base_url, poll_interval=1,
                                 kuaidi100_api_url=kd.base_url)
        wecom = await connect_wecom(settings, new_token(), new_aes_key())
        code, out = await cli(settings, "kuaidi100", CLIENT_ID, "--key", KD_KEY, "--customer", KD_CUSTOMER)
        assert code == 0, out
        (posting,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
        number = posting["posting_number"]
        async with running_bot(settings):
            card = await fake.wait_for(lambda: card_for(fake, WECOM_OWNER, number))
            await click(fake, wecom, WECOM_OWNER, card["task_id"], "pick", option_of(card, "顺丰"))
            await click(fake, wecom, WECOM_OWNER, card["task_id"],
                        button_of(card_for_update(fake, WECOM_OWNER), "已打包"))
            await fake.wait_for_text(WECOM_OWNER, "快递单号", timeout=15)
            await wecom.post(wecom.image(WECOM_OWNER, fake.add_media(PHOTO.read_bytes())))
            await fake.wait_for(lambda: sandbox.posting(CLIENT_ID, number)["tracking_number"] == WAYBILL, 15)
            await _until(lambda: _subscribed(kd))
            kd.scan("shunfeng", WAYBILL, "顺丰速运 已收取快件", state=1)
            await kd.flush()
            await _until(lambda: Posting.filter(posting_number=number, last_scan__contains="已收取快件").exists())
        assert [(s.com, s.num) for s in kd.subscriptions] == [("shunfeng", WAYBILL)]
        assert len([c for c in kd.calls if c.path == "/poll"]) == 1 and kd.pushes[-1].accepted
    finally:
        await fake.stop()


async def test_a_supplier_parcel_is_watched_and_its_arrival_announced_once(make_settings, sandbox, fake_tg, kd):
    settings = make_settings(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{fake_tg.base_url}/bot",
                             telegram_file_url=f"{fake_tg.base_url}/file/bot", ozon_api_url=sandbox.base_url,
                             kuaidi100_api_url=kd.base_url)
    (posting,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["aggregator"])
    number, parcel = posting["posting_number"], "4312345678901"  # Yunda or China Post: Kuaidi100 tells which
    kd.scan("yunda", parcel, "【义乌市】韵达快递 已揽收", state=1)
    async with running_bot(settings):
        fake_tg.push_message(OWNER, "/lang en", language_code="en")
        await fake_tg.wait_for_message(OWNER, "Language set: English")
        fake_tg.push_message(OWNER, f"/connect {CLIENT_ID} {API_KEY}", language_code="en")
        await fake_tg.wait_for_message(OWNER, f"Connected Ozon seller {CLIENT_ID}", timeout=10)
        card = await fake_tg.wait_for_message(OWNER, f"New order {number}", timeout=10)
        fake_tg.push_message(OWNER, f"{number} {parcel}", language_code="en")
        await fake_tg.wait_for_message(OWNER, "connects an account first")  # no account: nothing watched
        assert kd.subscriptions == []

        first_mile = FirstMile(box=SecretBox(settings.secret_key.get_secret_value()), api_url=kd.base_url,
                               callback_base=settings.base_url, clock=lambda: datetime.now(UTC))
        await first_mile.start()
        try:
            await first_mile.connect_account(await Seller.get(client_id=CLIENT_ID), KD_KEY, KD_CUSTOMER)
        finally:
            await first_mile.close()
        fake_tg.push_message(OWNER, f"{number} {parcel}", language_code="en")
        await fake_tg.wait_for_message(OWNER, f"Supplier parcel {parcel} added to {number}")
        await _until(lambda: _subscribed(kd))
        (sub,) = kd.subscriptions
        assert (sub.com, sub.num) == ("yunda", parcel)  # detected by Kuaidi100 (autoCom)
        await kd.flush()  # the trace so far is pushed at once
        await fake_tg.wait_for(lambda: "Goods on the way" in (fake_tg.message(OWNER, card.message_id).text or ""),
                               timeout=10)
        await fake_tg.wait_for(lambda: "已揽收" in (fake_tg.message(OWNER, card.message_id).text or ""), timeout=10)

        kd.scan("yunda", parcel, "已签收，签收人：仓库", state=3)
        await kd.flush()
        await fake_tg.wait_for_message(OWNER, "the goods are here, ready to pack", timeout=10)
        await fake_tg.wait_for(lambda: "Goods arrived" in (fake_tg.message(OWNER, card.message_id).text or ""),
                               timeout=10)
        param = kd.pushes[-1].param
        assert (await _post_form(sub.callback_url, {"param": param, "sign": _md5u(param + sub.salt)}))[0] == 200
        await asyncio.sleep(0.5)
        arrivals = [m for m in fake_tg.messages(OWNER) if "ready to pack" in (m.text or "")]
        assert len(arrivals) == 1
        assert (await Posting.get(posting_number=number)).inbound == "arrived"
