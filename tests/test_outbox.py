"""The outbox under outages (H3): a send that fails for a transport reason is tried again with capped
backoff for as long as the alert matters, across restarts, and arrives once, marked late; only a permanent
refusal stops, and the owner hears of it once on another surface. Time is the injected clock, so an
outage of an hour takes a second."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.app import build_services
from services.storage.models import Member, Notice, Notification, Posting, Seller
from services.views import View
from tests.conftest import API_KEY, CLIENT_ID


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class FlakyChannel:
    """A chat platform that can be down (every send raises a transport error) or refuse one chat for good."""

    def __init__(self, channel: str = "console"):
        self.channel = channel
        self.down = False
        self.refusing: set[str] = set()
        self.sent: list[tuple[int, str]] = []
        self.tries = 0

    async def send(self, member: Member, view: View) -> str:
        self.tries += 1
        if member.chat_id in self.refusing:
            raise PermissionError("Forbidden: bot was blocked by the user")
        if self.down:
            raise ConnectionError("Cannot connect to host api.telegram.org")
        self.sent.append((member.id, view.text))
        return str(len(self.sent))

    async def edit(self, member: Member, message_ref: str, view: View) -> None:
        return None

    @staticmethod
    def refusal(exc: Exception) -> str | None:
        return str(exc) if isinstance(exc, PermissionError) else None


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def settings(make_settings, sandbox):
    return make_settings(ozon_api_url=sandbox.base_url, alert_retry_first=15, alert_retry_cap=300)


async def _desk(services) -> Seller:
    connected = await services.desk.connect_seller(CLIENT_ID, API_KEY)
    for i, role in enumerate(("owner", "packer")):
        await services.desk.join_as(connected.seller, channel="console", external_id=f"m{i}", chat_id=f"c{i}",
                                    name=f"M{i}", locale="en", role=role)
    return connected.seller


def _cards(channel: FlakyChannel, number: str) -> list[tuple[int, str]]:
    return [(m, text) for m, text in channel.sent if f"New order {number}" in text]


async def test_an_outage_of_an_hour_with_a_restart_delivers_every_alert_once_marked_late(settings, sandbox, clock):
    first = build_services(settings, clock=clock)
    await first.start(schedule=False)
    channel = FlakyChannel()
    first.channels.register(channel)
    seller = await _desk(first)
    channel.down = True
    numbers = []
    for minute in range(60):  # orders keep arriving while the platform is down; the retry job keeps running
        if minute % 10 == 0:
            numbers += [p["posting_number"] for p in sandbox.generate_orders(CLIENT_ID, 2)]
            await first.sync.poll(seller)
        if minute == 30:  # the process is restarted in the middle of the outage
            await first.stop()
            first = build_services(settings, clock=clock)
            await first.start(schedule=False)
            first.channels.register(channel)
            await first.resume()
        clock.advance(timedelta(minutes=1))
        await first.outbox.retry_failed()
    assert channel.sent == [] and channel.tries > 5 * len(numbers) * 2  # far past the old five tries
    assert await Notification.filter(state="failed").count() == len(numbers) * 2
    backoffs = {n.next_attempt_at - clock.now for n in await Notification.all()}
    assert max(backoffs) <= timedelta(minutes=5)  # capped: a returning platform is found within minutes

    channel.down = False
    clock.advance(timedelta(minutes=5))
    assert await first.outbox.retry_failed() == len(numbers) * 2
    for number in numbers:
        cards = _cards(channel, number)
        assert sorted(m for m, _ in cards) == sorted(m.id for m in await Member.all()), (number, cards)
        assert all(text.startswith("⏳ Late: the chat could not be reached from ") for _, text in cards)
    clock.advance(timedelta(hours=1))
    assert await first.outbox.retry_failed() == 0 and await first.outbox.dispatch_pending() == 0
    assert await Notification.filter(state="sent").count() == len(numbers) * 2
    await first.stop()


async def test_a_short_failure_is_retried_soon_and_not_marked_late(settings, sandbox, clock):
    services = build_services(settings, clock=clock)
    await services.start(schedule=False)
    channel = FlakyChannel()
    services.channels.register(channel)
    seller = await _desk(services)
    channel.down = True
    (posting,) = sandbox.generate_orders(CLIENT_ID, 1)
    await services.sync.poll(seller)
    channel.down = False
    assert await services.outbox.retry_failed() == 0  # backing off
    clock.advance(timedelta(seconds=15))
    assert await services.outbox.retry_failed() == 2
    cards = _cards(channel, posting["posting_number"])
    assert len(cards) == 2 and all(text.startswith("🆕 New order") for _, text in cards)
    await services.stop()


async def test_a_card_no_longer_actionable_or_past_its_budget_is_given_up(settings, sandbox, clock):
    services = build_services(settings, clock=clock)
    await services.start(schedule=False)
    channel = FlakyChannel()
    services.channels.register(channel)
    seller = await _desk(services)
    channel.down = True
    first, second = sandbox.generate_orders(CLIENT_ID, 2)
    await services.sync.poll(seller)
    await Posting.filter(posting_number=first["posting_number"]).update(stage="handed_over")
    clock.advance(timedelta(hours=25))  # a day's budget: the second one is still actionable, but stale
    await services.outbox.retry_failed()
    channel.down = False
    clock.advance(timedelta(hours=1))
    await services.outbox.retry_failed()
    assert channel.sent == []
    states = {n.event.posting.posting_number: n.state
              for n in await Notification.all().prefetch_related("event__posting")}
    assert states == {first["posting_number"]: "skipped", second["posting_number"]: "expired"}
    await services.stop()


async def test_a_refusal_stops_retries_and_the_owner_hears_once_on_another_surface(settings, sandbox, clock):
    services = build_services(settings, clock=clock)
    await services.start(schedule=False)
    telegram, other = FlakyChannel("console"), FlakyChannel("elsewhere")
    services.channels.register(telegram)
    services.channels.register(other)
    seller = await _desk(services)
    owner = await Member.get(external_id="m0")
    await services.desk.join_as(seller, channel="elsewhere", external_id="w0", chat_id="w0", name="M0 at work",
                                locale="en", role="owner")
    telegram.refusing.add("c1")  # the packer blocked the bot
    for _ in range(2):
        sandbox.generate_orders(CLIENT_ID, 1)
        await services.sync.poll(seller)
    packer = await Member.get(external_id="m1")
    refused = await Notification.filter(member=packer)
    assert [n.state for n in refused] == ["refused", "refused"] and all("blocked" in n.error for n in refused)
    tries = telegram.tries
    clock.advance(timedelta(hours=1))
    assert await services.outbox.retry_failed() == 0 and telegram.tries == tries  # never tried again
    warnings = [(m, text) for channel in (telegram, other) for m, text in channel.sent
                if text.startswith("⚠️ Alerts no longer reach M1")]
    work = await Member.get(external_id="w0")
    assert sorted(m for m, _ in warnings) == [owner.id, work.id]  # each owner's surface once, however many refusals
    assert all("blocked by the user" in text for _, text in warnings)
    assert await Notice.filter(kind="alerts_refused").count() == 2
    await services.stop()


class TimingOutChannel(FlakyChannel):
    """Delivers, then times out before the answer comes back (once per chat)."""

    def __init__(self):
        super().__init__()
        self.timed_out: set[str] = set()

    async def send(self, member: Member, view: View) -> str:
        self.sent.append((member.id, view.text))
        if member.chat_id not in self.timed_out:
            self.timed_out.add(member.chat_id)
            raise TimeoutError
        return str(len(self.sent))

    @staticmethod
    def uncertain(exc: Exception) -> bool:
        return isinstance(exc, TimeoutError)


async def test_a_send_that_may_have_arrived_is_sent_again_marked_and_errors_keep_no_secrets(settings, sandbox,
                                                                                             clock):
    """L5: a send that timed out after the chat had it came back as an unmarked duplicate. L4: the error text
    was stored whole, and a proxy's carries the request URL with the bot token."""
    services = build_services(settings, clock=clock)
    await services.start(schedule=False)
    channel = TimingOutChannel()
    services.channels.register(channel)
    seller = await _desk(services)
    (order,) = sandbox.generate_orders(CLIENT_ID, 1)
    await services.sync.poll(seller)
    clock.advance(timedelta(seconds=15))
    assert await services.outbox.retry_failed() == 2
    copies = _cards(channel, order["posting_number"])
    assert len(copies) == 4
    assert [text.split("\n")[0] for _, text in copies[2:]] == [
        "↻ Sent again: the chat did not confirm the first try; if you already have this message, ignore one copy."] * 2

    class LeakyChannel(FlakyChannel):
        async def send(self, member, view):
            raise ConnectionError("Cannot connect to proxy: https://api.telegram.org/bot123456:SECRET-TOKEN/send")

    services.channels.register(LeakyChannel())
    sandbox.generate_orders(CLIENT_ID, 1)
    await services.sync.poll(seller)
    errors = set(await Notification.filter(state="failed").values_list("error", flat=True))
    assert errors == {"ConnectionError"}
    await services.stop()
