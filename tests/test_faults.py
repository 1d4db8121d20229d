"""Fault suite: `ozonbot run` as real processes, SIGKILLed and restarted while orders arrive and people press
buttons, with Ozon and Telegram failing 15 % of calls. Afterwards nothing is lost, nothing repeated, and no
intruder's press did anything. The counts are printed in the terminal summary."""

from __future__ import annotations

import asyncio
import time

import pytest

from sandbox.ozon import OzonSandbox
from services.storage import db
from services.storage.models import Intent, Notification, Posting, Seller
from tests.harness.processes import Chaos
from tests.harness.report import report
from tests.harness.rig import CLIENT_A, Rig, ship_counts, tracking_counts
from tests.harness.users import DeskWorker, Intruder, Tally, Work, alerts_per_chat

pytestmark = pytest.mark.faults
ORDERS = 10
FLOWS = ["non_integrated", "aggregator"]


@pytest.fixture
async def rig(tmp_path, db_url, fake_tg):
    sandbox = OzonSandbox(seed=23, label_delay=0.3, registration_delay=0.3)
    await sandbox.start()
    await db.connect(db_url)  # migrated once here, as an operator runs `ozonbot migrate` before a fleet
    rig = Rig(tmp_path, db_url, sandbox, fake_tg)
    yield rig
    rig.kill_all()
    await db.close()
    await sandbox.stop()


async def _burst(rig: Rig, queues: list[asyncio.Queue], numbers: list[str], count: int) -> None:
    """Orders arrive two at a time while the bot is being killed; the jobs go to the desk alternately."""
    for i in range(0, count, 2):
        for posting in rig.sandbox.generate_orders(CLIENT_A, min(2, count - i), flows=FLOWS):
            number = posting["posting_number"]
            numbers.append(number)
            waybill = f"SF{len(numbers):013d}"
            await queues[len(numbers) % 2].put(Work(number, waybill))
        await asyncio.sleep(1.2)
    for queue in queues:
        await queue.put(None)


async def _work(worker: DeskWorker, queue: asyncio.Queue, deadline: float) -> None:
    while (job := await queue.get()) is not None:
        await worker.finish(job, deadline)


async def test_one_process_killed_again_and_again_loses_and_repeats_nothing(rig: Rig):
    bot = rig.process("bot")
    bot.start()
    await bot.wait_ready()
    await rig.set_up_desks()
    rig.sandbox.set_push_url(CLIENT_A, await rig.push_url(bot, CLIENT_A))
    rig.faults_on(0.15)

    tally, numbers = Tally(), []
    queues = [asyncio.Queue(), asyncio.Queue()]
    deadline = time.monotonic() + 150
    chaos = Chaos([bot], seed=41, kills=5, gap=(2.0, 5.0))
    intruder = Intruder(rig.tg, rig.owner, [rig.other_owner, rig.stranger], tally)
    stop_intruder = asyncio.Event()
    started = time.monotonic()
    tasks = [asyncio.create_task(chaos.run()), asyncio.create_task(intruder.run(stop_intruder))]
    workers = [DeskWorker(rig.tg, person, tally) for person in (rig.owner, rig.packer)]
    await asyncio.gather(_burst(rig, queues, numbers, ORDERS),
                         *(_work(w, q, deadline) for w, q in zip(workers, queues, strict=True)))
    await chaos.done.wait()
    stop_intruder.set()
    await asyncio.gather(*tasks)
    assert bot.alive and bot.kills == bot.starts - 1, f"the bot died on its own:\n{bot.tail()}"
    rig.faults_off()
    owed = await rig.settle()
    worked = time.monotonic() - started
    assert await bot.stop() == 0, bot.tail()

    figures = await _check(rig, numbers, tally, intruder)
    figures.update(kills=bot.kills, starts=bot.starts, seconds=round(worked), **owed)
    report("fault run, one process", figures)
    assert not any(owed.values()), owed


OUTAGE = 40  # seconds of Bot API outage (see the test's docstring)


async def test_a_bot_api_outage_while_orders_arrive_delivers_every_alert_once_after_it(rig: Rig):
    """Telegram answers every send with 502/503/429 while orders keep arriving, and the bot is killed and
    restarted in the middle. The alerts arrive once each when it is back, marked late.

    The outage is 40 s of real time, not minutes: this is a real `ozonbot run`, whose clock cannot be
    injected. What used to lose alerts was the count of tries (five), not the time, so the backoff is made
    short (0.5 s doubling to 3 s) and every alert is tried far more than five times; an outage of an hour,
    and the give-up after a day, are proven with the injected clock in test_outbox.py."""
    bot = rig.process("bot", OZONBOT_ALERT_RETRY_FIRST="0.5", OZONBOT_ALERT_RETRY_CAP="3")
    bot.start()
    await bot.wait_ready()
    await rig.set_up_desks()
    rig.sandbox.set_push_url(CLIENT_A, await rig.push_url(bot, CLIENT_A))
    rig.tg.fail_rate(1.0, statuses=(502, 503), seed=3, methods=("sendMessage",))  # 429 is covered by the 15 % run
    started = time.monotonic()
    numbers: list[str] = []
    restarted = False
    while time.monotonic() - started < OUTAGE:
        if len(numbers) < 8:
            numbers += [p["posting_number"] for p in rig.sandbox.generate_orders(CLIENT_A, 2, flows=FLOWS)]
        if not restarted and time.monotonic() - started > OUTAGE / 2:
            bot.kill()
            bot.start()
            await bot.wait_ready()
            restarted = True
        await asyncio.sleep(2)
    assert await Notification.filter(state="sent").count() == 0
    tries = max(await Notification.all().values_list("attempts", flat=True))
    rig.faults_off()
    owed = await rig.settle(timeout=60)
    desk = (rig.owner.user_id, rig.packer.user_id)
    plain, marked = alerts_per_chat(rig.tg, numbers)
    missing = [(c, n) for c in desk for n in numbers if plain[(c, n)] + marked[(c, n)] == 0]
    assert not missing, f"alerts lost: {missing}"
    assert not {k: v for k, v in plain.items() if v > 1}, "alerted twice"
    late = [c for c in rig.tg.calls_of("sendMessage", ok=True) if str(c.params.get("text", "")).startswith("⏳")]
    assert len(late) >= len(numbers) * 2
    assert await bot.stop() == 0, bot.tail()
    report("Bot API outage", {"postings": len(numbers), "outage_seconds": OUTAGE, "most_tries": tries,
                              "alerts": sum(plain.values()), "alerts_resent_marked": sum(marked.values()),
                              "late_marked": len(late), **owed})
    assert tries > 5 and not any(owed.values()), (tries, owed)


async def _no_longer_needed() -> set[tuple[int, str]]:
    """(chat, posting) pairs whose new-order alert failed and was then dropped because the posting had been
    packed meanwhile (H3: an alert is retried for as long as it still asks something of the desk): with
    faults and a takeover, another member may pack it before this member's retry comes."""
    skipped = await Notification.filter(state="skipped", event__kind="new").values_list(
        "member__chat_id", "event__posting__posting_number")
    return {(int(chat), number) for chat, number in skipped if chat and str(chat).lstrip("-").isdigit()}


async def _check(rig: Rig, numbers: list[str], tally: Tally, intruder: Intruder) -> dict:
    """Every invariant of the issue, asserted; the figures returned for the report."""
    desk = (rig.owner.user_id, rig.packer.user_id)
    plain, marked = alerts_per_chat(rig.tg, numbers)
    excused = await _no_longer_needed()
    missing = [(c, n) for c in desk for n in numbers if plain[(c, n)] + marked[(c, n)] == 0 and (c, n) not in excused]
    repeated = {k: v for k, v in plain.items() if v > 1}
    assert not missing, f"alerts lost: {missing}"
    assert not repeated, f"alerted twice: {repeated}"
    applied, ship_requests = ship_counts(rig.sandbox, numbers)
    assert set(applied.values()) == {1}, f"ship applied per posting: {applied}"
    tracked = [n for n in numbers if rig.sandbox.posting(CLIENT_A, n)["tpl_integration_type"] == "non_integrated"]
    tracking = tracking_counts(rig.sandbox, tracked)
    assert set(tracking.values()) <= {1} and len(tracking) == len(tracked), f"tracking per posting: {tracking}"
    for number in tracked:
        remote = rig.sandbox.posting(CLIENT_A, number)
        assert remote["status"] == "delivering" and remote["tracking_number"].startswith("SF"), remote
    assert await Posting.filter(stage="handed_over").count() == len(numbers)
    assert await Intent.filter(state__not="done").count() == 0
    intruder_members = {rig.other_owner.member_id}
    acted = set(await Posting.all().values_list("acted_by_id", flat=True))
    packed = set(await Posting.all().values_list("packed_by_id", flat=True))
    assert not (acted | packed) & intruder_members, "an intruder's press acted"
    assert acted | packed <= {rig.owner.member_id, rig.packer.member_id}
    refused, accepted = intruder.refusals()
    assert not accepted, f"intruder presses answered as if allowed: {accepted[:3]}"
    seller_b = await Seller.get(client_id="515151")
    assert await Posting.filter(seller=seller_b).count() == 0
    return {
        "postings": len(numbers),
        "alerts": sum(plain.values()), "alerts_resent_marked": sum(marked.values()),
        "alert_duplicates": len(repeated),
        "labelled_copies": sum(1 for k in set(plain) | set(marked) if plain[k] + marked[k] > 1),
        "ship_applied": sum(applied.values()), "ship_requests": ship_requests,
        "tracking_applied": sum(tracking.values()), "presses": tally.presses, "waybills_typed": tally.typed,
        "steps_redone": tally.redone, "intruder_presses": tally.intruder_presses, "intruder_refused": refused,
        "intents_unfinished": await Intent.filter(state__not="done").count(),
        "notifications_sent": await Notification.filter(state="sent").count(),
        "ozon_calls": len(rig.sandbox.calls),
        "ozon_faults": sum(1 for c in rig.sandbox.calls if c.status in (429, 500, 504)),
        "telegram_faults": len([c for c in rig.tg.calls if c.status in (429, 502)]),
    }


async def _lease_holders(seller_ids: list[int]) -> dict[int, str | None]:
    from services.storage.models import PollState

    rows = await PollState.filter(seller_id__in=seller_ids).values("seller_id", "lease_owner")
    return {row["seller_id"]: row["lease_owner"] for row in rows}


@pytest.mark.postgres
async def test_two_processes_share_the_work_and_take_over_a_dead_ones_sellers(rig: Rig):
    if not rig.db_url.startswith("postgres"):
        pytest.skip("several processes share one database only on PostgreSQL")
    from tests.harness.processes import WebhookBalancer

    balancer = WebhookBalancer([])
    fleet = [rig.process(name, OZONBOT_TELEGRAM_WEBHOOK_URL=balancer.url) for name in ("bot-1", "bot-2")]
    balancer.backends = fleet
    await balancer.start()
    for bot in fleet:
        bot.start()
    for bot in fleet:
        await bot.wait_ready()
    try:
        await rig.set_up_desks()
        rig.faults_on(0.10)
        figures = await _fleet_run(rig, fleet)
    finally:
        rig.faults_off()
        await balancer.stop()
    figures.update(webhook_served=dict(sorted(balancer.served.items())))
    for bot in fleet:
        assert await bot.stop() == 0, bot.tail()
    report("fault run, two processes", figures)


async def _fleet_run(rig: Rig, fleet) -> dict:
    seller_a = await Seller.get(client_id=CLIENT_A)
    seller_b = await Seller.get(client_id="515151")
    numbers = {CLIENT_A: [], "515151": []}

    def orders(client_id: str, count: int) -> list[Work]:
        made = rig.sandbox.generate_orders(client_id, count, flows=FLOWS)
        numbers[client_id] += [p["posting_number"] for p in made]
        return [Work(p["posting_number"], f"SF{abs(hash(p['posting_number'])) % 10**13:013d}") for p in made]

    tally, deadline = Tally(), time.monotonic() + 120
    owner, packer, other = (DeskWorker(rig.tg, p, tally) for p in (rig.owner, rig.packer, rig.other_owner))
    first_a, first_b = orders(CLIENT_A, 4), orders("515151", 2)
    desk_work = asyncio.gather(owner.work(first_a[:2], deadline), packer.work(first_a[2:], deadline),
                               other.work(first_b, deadline))
    holders = await _wait_for(lambda: _lease_holders([seller_a.id, seller_b.id]),
                              lambda h: len(h) == 2 and all(h.values()))
    victim = next(bot for bot in fleet if f":{bot.proc.pid}:" in holders[seller_a.id])
    victim.kill()
    killed_at = time.monotonic()
    later = orders(CLIENT_A, 2)  # arrive while the dead process still holds seller A's lease
    taken = await _wait_for(lambda: _lease_holders([seller_a.id]),
                            lambda h: h[seller_a.id] and f":{victim.proc.pid}:" not in h[seller_a.id], timeout=20)
    takeover = time.monotonic() - killed_at
    assert takeover <= 2 * rig.poll_interval, f"seller A taken over after {takeover:.1f}s"
    assert taken[seller_a.id]
    await owner.work(later, deadline)
    await desk_work
    victim.start()
    await victim.wait_ready()
    rig.faults_off()
    owed = await rig.settle()
    assert not any(owed.values()), owed

    every = numbers[CLIENT_A] + numbers["515151"]
    plain, marked = alerts_per_chat(rig.tg, every)
    desks = {CLIENT_A: (rig.owner.user_id, rig.packer.user_id), "515151": (rig.other_owner.user_id,)}
    excused = await _no_longer_needed()
    missing = [(c, n) for cid, chats in desks.items() for c in chats for n in numbers[cid] if (c, n) not in excused
               if plain[(c, n)] + marked[(c, n)] == 0]
    assert not missing, f"alerts lost: {missing}"
    assert not [k for k, v in plain.items() if v > 1], "alerted twice"
    applied, requests = ship_counts(rig.sandbox, every)
    assert set(applied.values()) == {1}, applied
    assert await Intent.filter(state__not="done").count() == 0
    return {"postings": len(every), "alerts": sum(plain.values()), "alerts_resent_marked": sum(marked.values()),
            "ship_applied": sum(applied.values()), "ship_requests": requests, "takeover_seconds": round(takeover, 2),
            "poll_interval": rig.poll_interval, "steps_redone": tally.redone, "kills": 1, **owed}


async def _wait_for(read, ok, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last value {value}")
        await asyncio.sleep(0.1)
