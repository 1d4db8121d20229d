"""Deadline reminders with the real APScheduler and an injectable clock: once per lead, never after
packing or cancelling, never again after a restart; quiet hours hold all but the last lead."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bot.app import build_services
from services.reminders import due_key
from services.storage.models import Posting, Seller
from tests.conftest import API_KEY, CLIENT_ID
from tests.test_sync import RecordingChannel


class Clock:
    def __init__(self):
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_due_key_picks_only_the_nearest_passed_lead():
    deadline = datetime(2026, 12, 1, 12, tzinfo=UTC)
    leads = [timedelta(hours=24), timedelta(hours=4), timedelta(hours=1)]
    assert due_key(deadline, deadline - timedelta(hours=30), leads) is None
    assert due_key(deadline, deadline - timedelta(hours=20), leads) == "lead:86400"
    assert due_key(deadline, deadline - timedelta(minutes=30), leads) == "lead:3600"
    assert due_key(deadline, deadline + timedelta(seconds=1), leads) == "overdue"


async def _start(make_settings, sandbox, clock, **overrides):
    services = build_services(make_settings(ozon_api_url=sandbox.base_url, reminder_leads="90s,30s", poll_interval=1,
                                            **overrides), clock=clock)
    await services.start(schedule=False)
    channel = RecordingChannel()
    services.channels.register(channel)
    return services, channel


async def _run_scheduler_once(services) -> None:
    """The real scheduler (reminder job every second) runs; we let it tick at the clock's current time."""
    if not services.duties.scheduler.running:
        services.duties.start()
    await asyncio.sleep(1.3)


async def test_reminders_fire_once_per_lead_and_stop_after_packing_or_cancel(make_settings, sandbox):
    clock = Clock()
    a, b, c = sandbox.generate_orders(CLIENT_ID, 3, due_in=timedelta(seconds=120))
    services, channel = await _start(make_settings, sandbox, clock)
    connected = await services.desk.connect_seller(CLIENT_ID, API_KEY)
    await services.desk.join_as(connected.seller, channel="console", external_id="o", chat_id="o", name="O",
                                locale="en", role="owner")
    await services.sync.poll(connected.seller)
    deadline = (await Posting.get(posting_number=a["posting_number"])).shipment_date
    clock.now = deadline - timedelta(seconds=80)
    await Posting.filter(posting_number=b["posting_number"]).update(stage="packed", status="awaiting_deliver")
    sandbox.cancel(CLIENT_ID, c["posting_number"])
    await services.sync.poll(connected.seller)
    await _run_scheduler_once(services)
    await _run_scheduler_once(services)
    reminders = [t for _, t in channel.sent if t.startswith("⏰")]
    assert len(reminders) == 1 and reminders[0].startswith(f"⏰ {a['posting_number']} is not packed yet")
    clock.now = deadline - timedelta(seconds=20)
    await _run_scheduler_once(services)
    clock.now = deadline + timedelta(seconds=1)
    await _run_scheduler_once(services)
    await services.stop()

    # a restart: nothing is sent again
    services, channel2 = await _start(make_settings, sandbox, clock)
    await _run_scheduler_once(services)
    assert channel2.sent == []
    await services.stop()
    sent = [t for _, t in channel.sent if a["posting_number"] in t and t[0] in "⏰🚨"]
    assert len(sent) == 3 and sent[-1].startswith("🚨")
    assert not [t for _, t in channel.sent if b["posting_number"] in t and t[0] in "⏰🚨"]
    assert not [t for _, t in channel.sent if c["posting_number"] in t and t[0] in "⏰🚨"]


async def test_quiet_hours_hold_early_leads_but_not_the_last(make_settings, sandbox):
    clock = Clock()
    (a,) = sandbox.generate_orders(CLIENT_ID, 1, due_in=timedelta(seconds=120))
    services, channel = await _start(make_settings, sandbox, clock)
    connected = await services.desk.connect_seller(CLIENT_ID, API_KEY)
    await services.desk.join_as(connected.seller, channel="console", external_id="o", chat_id="o", name="O",
                                locale="en", role="owner")
    await Seller.filter(id=connected.seller.id).update(quiet_hours="00:00-23:59", timezone="UTC")
    await services.sync.poll(connected.seller)
    deadline = (await Posting.get(posting_number=a["posting_number"])).shipment_date
    clock.now = deadline - timedelta(seconds=80)
    await _run_scheduler_once(services)
    assert not [t for _, t in channel.sent if t.startswith("⏰")], "the 90s lead waits for the quiet hours"
    clock.now = deadline - timedelta(seconds=20)
    await _run_scheduler_once(services)
    assert len([t for _, t in channel.sent if t.startswith("⏰")]) == 1, "the last lead breaks through"
    await services.stop()
