"""The scheduler's other duties, on the real APScheduler with an injected clock: morning digest, key-expiry
warnings, the missing-tracking reminder, status announcements and the one report of a stuck intent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.app import build_services
from sandbox.ozon import Faults, OzonSandbox
from services.ozon.client import RetryPolicy
from services.pacing import KeyedTurns, Pacer
from services.storage.models import Event, Intent, Member, Posting, Seller
from services.views import View
from tests.conftest import API_KEY, CLIENT_ID

SHANGHAI = ZoneInfo("Asia/Shanghai")
FAST_RETRY = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05, timeout=5.0)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Desk:
    """A console channel that records what each member was sent and which cards were edited."""

    channel = "console"

    def __init__(self) -> None:
        self.sent: list[tuple[int, View]] = []
        self.edits: list[tuple[int, View]] = []

    async def send(self, member: Member, view: View) -> str:
        self.sent.append((member.id, view))
        return str(len(self.sent))

    async def edit(self, member: Member, message_ref: str, view: View) -> None:
        self.edits.append((member.id, view))

    def texts(self, member: Member | None = None, starting: str = "") -> list[str]:
        return [view.text for who, view in self.sent
                if (member is None or who == member.id) and view.text.startswith(starting)]


def last_morning(at: time = time(8, 0, 30)) -> datetime:
    """The latest local 08:00:30 in Shanghai not after the real now (events carry real creation times)."""
    local = datetime.now(SHANGHAI)
    moment = datetime.combine(local.date(), at, tzinfo=SHANGHAI)
    if moment > local:
        moment -= timedelta(days=1)
    return moment.astimezone(UTC)


@pytest.fixture
async def box_at():
    boxes = []

    async def make(clock: Clock | None, expires_at: datetime | None = None) -> OzonSandbox:
        box = OzonSandbox(seed=21, label_delay=0.2, registration_delay=0.3, clock=clock)
        box.add_seller(CLIENT_ID, API_KEY, expires_at=expires_at)
        await box.start()
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        await box.stop()


@pytest.fixture
async def start(make_settings):
    """Builds the services as `ozonbot run` does (scheduler not yet started), stopped at teardown."""
    running = []

    async def begin(box: OzonSandbox, clock: Clock, *, packer: bool = True, **overrides):
        values = dict(ozon_api_url=box.base_url, reminder_leads="90s,30s")
        values.update(overrides)
        services = build_services(make_settings(**values), clock=clock, retry=FAST_RETRY)
        await services.start(schedule=False)
        running.append(services)
        return await _with_desk(services, packer)

    yield begin
    for services in running:
        await services.stop()  # idempotent: a test that failed midway still leaves nothing running


async def _with_desk(services, packer: bool):
    desk = Desk()
    services.channels.register(desk)
    connected = await services.desk.connect_seller(CLIENT_ID, API_KEY)
    seller = connected.seller
    owner = await services.desk.join_as(seller, channel="console", external_id="owner", chat_id="owner",
                                        name="Owner", locale="en", role="owner")
    members = [owner]
    if packer:
        members.append(await services.desk.join_as(seller, channel="console", external_id="packer",
                                                   chat_id="packer", name="Packer", locale="en", role="packer"))
    return services, desk, seller, members


async def tick(services, seconds: float = 1.3) -> None:
    """Lets the real scheduler run its one-second jobs at the clock's current time."""
    if not services.duties.scheduler.running:
        services.duties.start()
    await asyncio.sleep(seconds)


async def test_morning_digest_matches_the_data_once_per_member_and_day(start, box_at):
    clock = Clock(last_morning())
    box = await box_at(clock)

    def due(hours: float) -> dict:
        when = (clock.now + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return box.add_posting(CLIENT_ID, {"tpl_integration_type": "non_integrated", "shipment_date": when})

    today, soon, late = due(3), due(20), due(-1)  # 11:00 today, 04:00 tomorrow, 07:00 today (local)
    gone, shipped = box.generate_orders(CLIENT_ID, 2, flows=["non_integrated"])
    services, desk, seller, members = await start(box, clock)
    await services.sync.poll(seller)
    box.cancel(CLIENT_ID, gone["posting_number"])
    box.set_status(CLIENT_ID, shipped["posting_number"], "awaiting_deliver")
    await services.sync.poll(seller)
    await Posting.filter(posting_number=shipped["posting_number"]).update(
        packed_at=clock.now - timedelta(hours=10))  # 22:00 yesterday, local

    await tick(services)
    await tick(services)
    for member in members:
        (digest,) = desk.texts(member, "☀️")
        sections = digest.split("\n")
        assert "📦 1 order to pack today" in sections and f"   • {today['posting_number']}" in sections
        assert "⏳ 1 more due within 24 hours" in sections and f"   • {soon['posting_number']}" in sections
        assert "🚨 1 order overdue" in sections and f"   • {late['posting_number']}" in sections
        assert "❌ 1 order cancelled overnight" in sections and f"   • {gone['posting_number']}" in sections
        assert "🚚 1 order shipped yesterday" in sections and f"   • {shipped['posting_number']}" in sections
    await services.stop()

    # a restart the same morning sends nothing again; the next morning sends a new one
    services, desk2, seller, members = await start(box, clock)
    await tick(services)
    assert desk2.texts(starting="☀️") == []
    clock.advance(days=1)
    await tick(services)
    assert len(desk2.texts(starting="☀️")) == 2
    await services.stop()


async def test_digest_respects_time_zone_off_and_late_window(start, box_at):
    clock = Clock(last_morning(time(8, 0, 30)))
    box = await box_at(clock)
    services, desk, seller, _ = await start(box, clock, packer=False)
    await Seller.filter(id=seller.id).update(timezone="Asia/Urumqi")  # 08:00 in Urumqi is 10:00 in Shanghai
    await tick(services)
    assert desk.texts(starting="☀️") == []
    clock.advance(hours=2)
    await tick(services)
    assert len(desk.texts(starting="☀️")) == 1
    await Seller.filter(id=seller.id).update(digest_time="off", timezone="Asia/Shanghai")
    clock.advance(days=1, hours=-2)
    await tick(services)
    assert len(desk.texts(starting="☀️")) == 1
    await Seller.filter(id=seller.id).update(digest_time="08:00")
    clock.advance(hours=4)  # a bot down all morning does not send a stale digest at noon
    await tick(services)
    assert len(desk.texts(starting="☀️")) == 1
    await services.stop()


async def test_key_expiry_warns_the_owner_14_3_and_1_days_ahead_once_each(start, box_at):
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    box = await box_at(clock, expires_at=clock.now + timedelta(days=20))
    services, desk, seller, (owner, packer) = await start(box, clock)
    assert seller.key_expires_at == clock.now + timedelta(days=20)
    await tick(services)
    assert desk.texts(starting="🔑") == []
    clock.advance(days=6, hours=1)  # 13 d 23 h left
    await tick(services)
    await tick(services)
    assert [text.split(" (")[0] for text in desk.texts(owner, "🔑")] == [
        f"🔑 The Ozon API key of seller {CLIENT_ID} expires in 14 days"]
    clock.advance(days=11, hours=1)  # 2 d 22 h left
    await tick(services)
    await services.stop()
    services, desk2, seller, (owner, packer) = await start(box, clock)
    await tick(services)
    assert desk2.texts(starting="🔑") == [], "a restart repeats nothing"
    clock.advance(days=2, hours=1)  # 21 h left
    await tick(services)
    await services.stop()
    warnings = desk.texts(owner, "🔑") + desk2.texts(owner, "🔑")
    assert len(warnings) == 3 and "expires in 3 days" in warnings[1] and "expires in 1 day " in warnings[2]
    assert desk.texts(packer, "🔑") == desk2.texts(packer, "🔑") == [], "only the owner can renew the key"


async def test_missing_tracking_reminder_once_with_the_button_to_enter_it(start, box_at):
    clock = Clock(datetime.now(UTC))
    box = await box_at(clock)
    late, prompt_one = box.generate_orders(CLIENT_ID, 2, flows=["non_integrated"])
    services, desk, seller, (owner, packer) = await start(box, clock, tracking_reminder="60s")
    await services.sync.poll(seller)
    rows = [await Posting.get(posting_number=p["posting_number"]) for p in (late, prompt_one)]
    codec = services.codec
    for row in rows:
        await services.buttons.press(packer, codec.encode("c", row.id, "sf"))
        answer = await services.buttons.press(packer, codec.encode("p", row.id))
        assert answer.toast == "Packed in Ozon ✅"
    # the packer is now asked for the second one's waybill and gives it at once
    assert (await services.shipping.submit_waybill(packer, "SF1402938475613")).toast == "Sent to Ozon ✅"
    await tick(services)
    clock.advance(seconds=61)
    await tick(services)
    await tick(services)
    reminders = [(who, view) for who, view in desk.sent if "still has no tracking number" in view.text]
    assert sorted(who for who, _ in reminders) == [owner.id, packer.id]
    assert all(late["posting_number"] in view.text for _, view in reminders), "not for the one that has tracking"
    button = reminders[0][1].flat_buttons[0]
    assert button.label == "✍️ Enter waybill number"
    prompt = await services.buttons.press(owner, button.action)
    assert prompt.replies and prompt.replies[0].ask_reply
    result = await services.shipping.submit_waybill(owner, "SF1402938475612")
    assert result.toast == "Sent to Ozon ✅"
    clock.advance(hours=5)
    await tick(services)
    assert len([1 for _, view in desk.sent if "still has no tracking number" in view.text]) == 2
    await services.stop()


async def test_delivering_delivered_and_cancelled_are_announced_once_and_update_the_card(start, box_at):
    clock = Clock(datetime.now(UTC))
    box = await box_at(clock)
    travelling, dropped = box.generate_orders(CLIENT_ID, 2, flows=["aggregator"])
    services, desk, seller, members = await start(box, clock)
    await services.sync.poll(seller)
    box.set_status(CLIENT_ID, travelling["posting_number"], "delivering")
    box.cancel(CLIENT_ID, dropped["posting_number"])
    await services.sync.poll(seller)
    await services.sync.poll(seller)
    box.set_status(CLIENT_ID, travelling["posting_number"], "delivered")
    await services.sync.poll(seller)
    await services.sync.poll(seller)
    for member in members:
        assert desk.texts(member, "🚚 Order") == [f"🚚 Order {travelling['posting_number']} is now in delivery."]
        assert desk.texts(member, "🎉") == [f"🎉 Order {travelling['posting_number']} was delivered to the buyer."]
        assert desk.texts(member, "❌ Order") == [f"❌ Order {dropped['posting_number']} was cancelled. Stop packing it."]
        edited = [view.text for who, view in desk.edits if who == member.id]
        assert any(travelling["posting_number"] in text and "delivered" in text for text in edited)
        assert any(text.startswith(f"❌ CANCELLED, stop packing: {dropped['posting_number']}") for text in edited)
    await services.stop()


async def test_a_stuck_ship_is_retried_with_backoff_and_reported_to_the_desk_once(start, box_at):
    clock = Clock(datetime.now(UTC))
    box = await box_at(clock)
    (posting,) = box.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    services, desk, seller, (owner, packer) = await start(box, clock)
    await services.sync.poll(seller)
    row = await Posting.get(posting_number=posting["posting_number"])
    box.faults = Faults(rate_500=1.0, paths={"/v4/posting/fbs/ship"})
    await services.buttons.press(packer, services.codec.encode("c", row.id, "zto"))
    answer = await services.buttons.press(packer, services.codec.encode("p", row.id))
    assert "Ozon is not answering" in answer.toast
    for _ in range(4):  # each retry waits its backoff on the injected clock
        clock.advance(minutes=6)
        await tick(services)
    intent = await Intent.get(posting_id=row.id, kind="ship")
    assert intent.state == "pending" and intent.attempts >= 3 and intent.reported
    for member in (owner, packer):
        (report,) = desk.texts(member, "⚠️ I tried")
        assert f"pack {posting['posting_number']} in Ozon" in report
    box.faults = Faults()
    clock.advance(minutes=6)
    await tick(services)
    await tick(services)
    assert (await Intent.get(id=intent.id)).state == "done"
    assert (await Posting.get(id=row.id)).stage == "packed"
    assert len(box.calls_to("/v4/posting/fbs/ship", CLIENT_ID)) == 1, "only the call Ozon accepted went through"
    assert len(desk.texts(owner, "⚠️ I tried")) == 1
    await services.stop()


async def test_a_late_label_is_retried_by_the_job_until_ozon_has_it(start, box_at):
    clock = Clock(datetime.now(UTC))
    box = await box_at(None)  # Ozon prepares labels in its own (real) time; our retries follow the test clock
    (posting,) = box.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    services, desk, seller, (owner, packer) = await start(box, clock,
                                                          label_delay=0)
    await services.sync.poll(seller)
    row = await Posting.get(posting_number=posting["posting_number"])
    box.faults = Faults(rate_500=1.0, paths={"/v3/posting/fbs/package-label/create"})
    await services.buttons.press(packer, services.codec.encode("c", row.id, "sf"))
    await services.buttons.press(packer, services.codec.encode("p", row.id))
    await services.shipping.drain(10)
    assert (await Posting.get(id=row.id)).label_state == "failed"
    intent = await Intent.get(posting_id=row.id, kind="label")
    assert intent.state == "pending"
    box.faults = Faults()
    clock.advance(seconds=31)
    await tick(services)
    await tick(services)
    assert (await Posting.get(id=row.id)).label_state == "sent"
    assert (await Intent.get(id=intent.id)).state == "done"
    labels = [view for who, view in desk.sent if who == packer.id and view.attachment is not None]
    assert len(labels) == 1 and labels[0].attachment.data.startswith(b"%PDF")
    await services.stop()


async def test_a_new_order_is_alerted_before_a_backlog_of_reminders(start, box_at):
    """A morning's reminders are queued when an order comes in: its alert goes out first, then the rest."""
    clock = Clock(datetime.now(UTC))
    box = await box_at(clock)
    box.generate_orders(CLIENT_ID, 12, flows=["non_integrated"])
    services, desk, seller, (owner,) = await start(box, clock, packer=False)
    await services.sync.poll(seller)
    await services.outbox.dispatch_pending()
    assert len(desk.texts(owner, "🆕 New order")) == 12
    desk.sent.clear()

    for posting in await Posting.filter(seller=seller):
        await Event.create(posting=posting, kind="remind", key="lead:7200")
    (fresh,) = box.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    await services.sync.poll(seller)
    await services.outbox.dispatch_pending()

    texts = desk.texts(owner)
    assert texts[0].startswith(f"🆕 New order {fresh['posting_number']}")
    assert sum(text.startswith("⏰") for text in texts[1:]) == 12  # the reminders still all go, after it


async def test_notices_are_paced_so_a_digest_burst_leaves_room_for_alerts():
    pacer = Pacer(per_second=20)
    began = asyncio.get_running_loop().time()
    moments = []
    for _ in range(5):
        await pacer.wait()
        moments.append(asyncio.get_running_loop().time() - began)
    assert moments[0] < 0.02  # an idle pacer lets the first one through at once
    gaps = [b - a for a, b in zip(moments, moments[1:], strict=False)]
    assert all(gap >= 0.045 for gap in gaps), gaps  # then one every 1/20 s


async def test_card_edits_of_one_posting_take_turns_and_leave_nothing_behind():
    turns, order = KeyedTurns(), []

    async def edit(key: int, name: str, hold: float) -> None:
        async with turns.turn(key):
            order.append(f"{name} in")
            await asyncio.sleep(hold)
            order.append(f"{name} out")

    await asyncio.gather(edit(1, "a", 0.05), edit(1, "b", 0), edit(2, "c", 0))
    assert order.index("b in") > order.index("a out")  # same posting: one after the other
    assert order.index("c in") < order.index("a out")  # another posting does not wait
    assert turns._locks == {}  # the map holds only keys in use


def test_notices_name_the_commands_of_the_readers_own_surface():
    """A digest or a key warning says 订单 / 连接 to a WeChat follower and /orders / /connect in Telegram: each
    reader is told what to send where they read it (services.commands.spelled)."""
    from services import digest, key_expiry
    from services.commands import spelled
    from services.i18n import Catalogs

    catalogs, now = Catalogs(), datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
    seller = Seller(client_id=CLIENT_ID, key_expires_at=now + timedelta(days=3), timezone="Asia/Shanghai")
    summary = digest.DigestSummary(pack_today=["87621408-0014-1"])
    for channel, locale, orders, connect in (("wechat", "zh_CN", "订单", "连接"), ("telegram", "en", "/orders", "/connect"),
                                             ("wecom", "ru", "заказы", "подключить")):
        tr, commands = catalogs.translator(locale), spelled(channel, locale)
        assert orders in digest.render(tr, summary, commands).text
        warning = key_expiry.render(tr, seller, now, commands).text
        assert connect in warning and ("/connect" in warning) == (channel == "telegram")
