"""Order sync: poll and push feed one ingest; each event is emitted once, across crashes and restarts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import aiohttp
import pytest

from bot.app import build_services
from services.storage.models import Event, Member, Notification, Posting, Seller
from services.views import View
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.service import running_bot


class RecordingChannel:
    channel = "console"

    def __init__(self, fail_after: int | None = None):
        self.sent: list[tuple[int, str]] = []
        self.fail_after = fail_after

    async def send(self, member: Member, view: View) -> str:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise RuntimeError("process killed")
        self.sent.append((member.id, view.text.splitlines()[0]))
        return str(len(self.sent))

    async def edit(self, member: Member, message_ref: str, view: View) -> None:
        return None


@pytest.fixture
async def services(make_settings, sandbox):
    svc = build_services(make_settings(ozon_api_url=sandbox.base_url))
    await svc.start(schedule=False)
    yield svc
    await svc.stop()


async def _desk(services, members: int = 2) -> Seller:
    connected = await services.desk.connect_seller(CLIENT_ID, API_KEY)
    for i in range(members):
        await services.desk.join_as(connected.seller, channel="console", external_id=f"m{i}", chat_id=f"c{i}",
                                    name=f"M{i}", locale="en", role="owner" if i == 0 else "packer")
    return connected.seller


async def test_poll_reads_every_page_and_alerts_each_posting_once(services, sandbox):
    sandbox.generate_orders(CLIENT_ID, 230)
    channel = RecordingChannel()
    services.channels.register(channel)
    seller = await _desk(services)
    report = await services.sync.poll(seller)
    assert report.postings == 230
    assert len(sandbox.calls_to("/v4/posting/fbs/unfulfilled/list")) == 3  # 100 + 100 + 30
    assert len(channel.sent) == 230 * 2
    again = await services.sync.poll(seller)
    assert again.events == 0 and len(channel.sent) == 230 * 2


async def test_a_crash_inside_ingest_loses_and_repeats_nothing(services, sandbox, monkeypatch):
    sandbox.generate_orders(CLIENT_ID, 6)
    channel = RecordingChannel()
    services.channels.register(channel)
    seller = await _desk(services)
    original = Event.get_or_create
    calls = {"n": 0}

    async def dying_get_or_create(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("killed mid-ingest")
        return await original(*args, **kwargs)

    monkeypatch.setattr(Event, "get_or_create", dying_get_or_create)
    with pytest.raises(RuntimeError):
        await services.sync.poll(seller)
    monkeypatch.setattr(Event, "get_or_create", original)
    # the posting being ingested when it died was rolled back with its event: no half state
    assert await Posting.all().count() == await Event.filter(kind="new").count() == 3
    await services.sync.poll(seller)
    assert await Event.filter(kind="new").count() == 6
    alerted = sorted(text for _, text in channel.sent)
    assert len(alerted) == 12 and len(set(channel.sent)) == 12


async def test_a_crash_during_fan_out_resumes_without_repeating(make_settings, sandbox):
    sandbox.generate_orders(CLIENT_ID, 3)
    settings = make_settings(ozon_api_url=sandbox.base_url)
    first = build_services(settings)
    await first.start(schedule=False)
    dying = RecordingChannel(fail_after=4)  # dies after 4 of 6 alerts
    first.channels.register(dying)
    seller = await _desk(first)
    await first.sync.poll(seller)
    await first.stop()

    second = build_services(settings)  # "the process came back"
    await second.start(schedule=False)
    healthy = RecordingChannel()
    second.channels.register(healthy)
    await second.outbox.retry_failed()
    await second.resume()
    delivered = dying.sent + healthy.sent
    assert len(delivered) == 6 and len(set(delivered)) == 6
    assert await Notification.filter(state="sent").count() == 6
    await second.stop()


async def test_cancellation_and_deadline_change_are_events_once(services, sandbox):
    (posting,) = sandbox.generate_orders(CLIENT_ID, 1)
    channel = RecordingChannel()
    services.channels.register(channel)
    seller = await _desk(services, members=1)
    await services.sync.poll(seller)
    sandbox.cancel(CLIENT_ID, posting["posting_number"])
    await services.sync.poll(seller)
    await services.sync.poll(seller)
    kinds = sorted(e.kind for e in await Event.all())
    assert kinds == ["cancelled", "new", "status"]
    assert [t for _, t in channel.sent if "cancelled" in t.lower()] == [
        f"❌ Order {posting['posting_number']} was cancelled. Stop packing it."]
    row = await Posting.get(posting_number=posting["posting_number"])
    assert row.stage == "cancelled"


async def test_push_receiver_acknowledges_fast_and_dedupes(make_settings, sandbox):
    settings = make_settings(ozon_api_url=sandbox.base_url)
    async with running_bot(settings):
        connected = await _desk_via_services(settings)
        url = f"http://{settings.http_host}:{settings.http_port}/ozon/push/{connected.push_token}"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json={"message_type": "TYPE_PING", "time": "2026-11-26T10:00:00Z"}) as resp:
                body = await resp.json()
                assert resp.status == 200 and set(body) == {"version", "name", "time"}
            (posting,) = sandbox.generate_orders(CLIENT_ID, 1)
            push = {"message_type": "TYPE_NEW_POSTING", "posting_number": posting["posting_number"],
                    "seller_id": int(CLIENT_ID), "products": [], "shipment_date": posting["shipment_date"]}
            started = time.perf_counter()
            statuses = []
            for _ in range(3):  # Ozon retries and duplicates
                async with http.post(url, json=push) as resp:
                    statuses.append((resp.status, await resp.json()))
            assert (time.perf_counter() - started) / 3 < 0.3
            assert statuses == [(200, {"result": True})] * 3
            async with http.post(url, data=b"{not json", headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 400
            async with http.post(url.replace(connected.push_token, "guess"), json=push) as resp:
                assert resp.status == 404
            for _ in range(100):
                if await Event.filter(kind="new").count():
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            assert await Event.filter(kind="new").count() == 1
            row = await Posting.get(posting_number=posting["posting_number"])
            assert row.snapshot["products"][0]["name"]  # re-read from Ozon, not just the thin push


async def _desk_via_services(settings) -> Seller:
    services = build_services(settings)
    await services.gateway.start()
    try:
        connected = await services.desk.connect_seller(CLIENT_ID, API_KEY)
    finally:
        await services.gateway.close()
    return connected.seller


async def test_orders_that_arrived_while_down_are_ingested_on_start(make_settings, sandbox):
    settings = make_settings(ozon_api_url=sandbox.base_url, poll_interval=1)
    await _connect_with_cli(settings)
    sandbox.generate_orders(CLIENT_ID, 150)  # arrived while the bot was not running
    async with running_bot(settings):
        for _ in range(200):
            if await Posting.all().count() == 150:
                break
            await asyncio.sleep(0.05)
        assert await Posting.all().count() == 150
        assert await Event.filter(kind="new").count() == 150


async def _connect_with_cli(settings) -> None:
    """`ozonbot seller add` as a separate process, as an operator would run it."""
    env = {**os.environ, "OZONBOT_OZON_API_URL": settings.ozon_api_url, "OZONBOT_DATA_DIR": str(settings.data_dir),
           "OZONBOT_DATABASE_URL": settings.db_url, "OZONBOT_SECRET_KEY": settings.secret_key.get_secret_value()}
    bad = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "bot.cli", "seller", "add", "--client-id",
                                  CLIENT_ID, "--api-key", "wrong-key-123"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and "Nothing was stored" in bad.stderr and "wrong-key-123" not in bad.stderr
    good = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "bot.cli", "seller", "add", "--client-id",
                                   CLIENT_ID, "--api-key", API_KEY], env=env, capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert "key expires:" in good.stdout and "/ozon/push/" in good.stdout
    assert API_KEY not in good.stdout + good.stderr


@pytest.mark.sqlite_only
async def test_the_api_key_is_encrypted_at_rest(services, make_settings):
    await _desk(services, members=1)
    seller = await Seller.get(client_id=CLIENT_ID)
    assert API_KEY not in seller.api_key_enc
    assert services.box.decrypt(seller.api_key_enc) == API_KEY
    db_file = services.settings.db_url.removeprefix("sqlite://")
    if os.path.exists(db_file):
        with open(db_file, "rb") as handle:
            assert API_KEY.encode() not in handle.read()


async def test_an_unchanged_list_costs_one_request_and_no_parse_and_a_change_is_ingested(services, sandbox):
    sandbox.generate_orders(CLIENT_ID, 3)
    channel = RecordingChannel()
    services.channels.register(channel)
    seller = await _desk(services, members=1)
    first = await services.sync.poll(seller)
    assert first.postings == 3 and first.fingerprint and not first.unchanged
    sandbox.calls.clear()

    again = await services.sync.poll(seller, first.fingerprint)
    assert again.unchanged and again.fingerprint == first.fingerprint
    assert [c.path for c in sandbox.calls] == ["/v4/posting/fbs/unfulfilled/list"]

    (number,) = [p["posting_number"] for p in sandbox.generate_orders(CLIENT_ID, 1)]
    sandbox.cancel(CLIENT_ID, (await Posting.filter(seller=seller).exclude(posting_number=number).first())
                   .posting_number)
    changed = await services.sync.poll(seller, first.fingerprint)
    assert not changed.unchanged
    assert changed.fingerprint not in (None, first.fingerprint)
    assert await Posting.filter(posting_number=number).exists()
    assert await Event.filter(kind="cancelled").count() == 1
    assert [text for _, text in channel.sent].count(f"🆕 New order {number}") == 1


async def test_a_state_push_we_already_hold_costs_no_ozon_read_and_a_new_state_does(services, sandbox):
    (posting,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    number = posting["posting_number"]
    services.channels.register(RecordingChannel())
    seller = await _desk(services, members=1)
    await services.sync.poll(seller)
    await Posting.filter(posting_number=number).update(status="awaiting_deliver")  # as after our own ship
    sandbox.calls.clear()

    push = {"message_type": "TYPE_STATE_CHANGED", "posting_number": number}
    await services.sync.handle_push(seller, {**push, "new_state": "posting_transferring_to_delivery"})
    assert sandbox.calls == []
    await services.sync.handle_push(seller, {**push, "new_state": "posting_created"})  # may hide ship_failed
    assert [c.path for c in sandbox.calls] == ["/v3/posting/fbs/get"]


async def test_a_seller_command_beside_a_live_service_leaves_its_claims_alone(make_settings, sandbox):
    """M3: on SQLite every process has one owner name, so `ozonbot seller list` beside a live service used to
    release the service's claims: a ship or a send in flight was then run a second time by the retry job."""
    from services.lease import SQLITE_OWNER
    from services.storage.models import Intent

    settings = make_settings(ozon_api_url=sandbox.base_url)
    live = build_services(settings)
    await live.start(schedule=False)
    channel = RecordingChannel()
    live.channels.register(channel)
    seller = await _desk(live, members=1)
    sandbox.generate_orders(CLIENT_ID, 1)
    await live.sync.poll(seller)
    row = await Posting.first()
    running = await Intent.create(posting=row, kind="ship", key="", state="pending", claimed_by=live.lease.owner,
                                  next_attempt_at=live.lease.expiry())
    note = await Notification.first()
    await Notification.filter(id=note.id).update(state="sending", claimed_by=live.lease.owner,
                                                 claim_until=live.lease.expiry())
    env = {**os.environ, "OZONBOT_OZON_API_URL": settings.ozon_api_url, "OZONBOT_DATA_DIR": str(settings.data_dir),
           "OZONBOT_DATABASE_URL": settings.db_url, "OZONBOT_SECRET_KEY": settings.secret_key.get_secret_value()}
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "bot.cli", "seller", "list"], env=env,
                                   capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    intent = await Intent.get(id=running.id)
    assert intent.claimed_by == live.lease.owner and intent.next_attempt_at >= running.next_attempt_at
    assert (await Notification.get(id=note.id)).claim_until > live.clock()
    assert await live.runner.retry_due() == 0 and await live.outbox.recover_interrupted() == 0
    assert live.lease.owner == SQLITE_OWNER or settings.db_url.startswith("postgres")
    await live.stop()


async def test_a_status_push_is_read_while_only_a_late_label_is_pending(services, sandbox):
    """L12: any pending intent made status pushes be ignored, a late label too (pending for hours)."""
    from services.storage.models import Intent

    seller = await _desk(services, members=1)
    (order,) = sandbox.generate_orders(CLIENT_ID, 1)
    await services.sync.poll(seller)
    row = await Posting.get(posting_number=order["posting_number"])
    await Intent.create(posting=row, kind="label", key="", state="pending")
    sandbox.cancel(CLIENT_ID, row.posting_number)
    reads = len(sandbox.calls_to("/v3/posting/fbs/get"))
    await services.sync.handle_push(seller, {"message_type": "TYPE_STATE_CHANGED", "posting_number": row.posting_number,
                                             "new_state": "posting_in_carriage"})
    assert len(sandbox.calls_to("/v3/posting/fbs/get")) == reads + 1
    assert (await Posting.get(id=row.id)).stage == "cancelled"


async def test_a_poll_that_fails_unexpectedly_backs_off_and_odd_dates_do_not_break_a_posting(services, monkeypatch):
    """L3: only Ozon errors backed off; any other exception left the seller due, polled every tick. And
    numeric dates out of range (1e20, inf, NaN) raised in Posting.from_api."""
    from datetime import timedelta

    from services.ozon.models import Posting as OzonPosting
    from services.storage.models import PollState

    seller = await _desk(services, members=1)

    async def broken_poll(*args, **kwargs):
        raise RuntimeError("surprise")

    monkeypatch.setattr(services.sync, "poll", broken_poll)
    await services.duties.poll_due()
    state = await PollState.get(seller=seller)
    assert state.consecutive_errors == 1 and state.last_error == "RuntimeError"
    assert state.next_poll_at > services.clock() + timedelta(seconds=60)
    for odd in (1e20, float("inf"), float("nan"), -1e15):
        posting = OzonPosting.from_api({"posting_number": "12345678-0001-1", "shipment_date": odd,
                                        "in_process_at": odd})
        assert posting.shipment_date is None and posting.posting_number == "12345678-0001-1"


async def test_retention_prunes_old_callbacks_and_the_history_of_finished_postings(services, sandbox):
    """L10: callbacks, events, notifications and card copies were never deleted."""
    from datetime import timedelta

    from services import retention
    from services.storage.models import AlertMessage, InboundCallback

    channel = RecordingChannel()
    services.channels.register(channel)
    seller = await _desk(services, members=1)
    sandbox.generate_orders(CLIENT_ID, 2)
    await services.sync.poll(seller)
    done, open_ = await Posting.all().order_by("id")
    await InboundCallback.create(source="wechat", key="old")
    assert await AlertMessage.all().count() == 2 and await Notification.all().count() == 2
    await Posting.filter(id=done.id).update(status="delivered")
    later = services.clock() + timedelta(days=31)
    gone = await retention.prune(later)
    assert gone == {"callbacks": 1, "events": 1, "notifications": 1, "cards": 1}
    assert await Event.filter(posting_id=open_.id).exists() and not await Event.filter(posting_id=done.id).exists()
    assert await Posting.all().count() == 2  # the rows stay: an old order never becomes new again
    assert await retention.prune(services.clock()) == {"callbacks": 0, "events": 0, "notifications": 0, "cards": 0}
