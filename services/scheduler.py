"""Background duties on one APScheduler owned by the application; durable state lives in the database."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from tortoise.expressions import Q

from services import metrics, retention
from services.cancellations import Cancellations
from services.channels import Channels
from services.commands import spelled
from services.digest import MorningDigest
from services.firstmile import FirstMile
from services.i18n import Catalogs
from services.key_expiry import KeyExpiry
from services.lease import Lease
from services.orders import OrderSync
from services.outbox import Outbox
from services.ozon.errors import OzonAuthError, OzonError
from services.reminders import Reminders
from services.retries import IntentRunner
from services.stock import StockDesk
from services.storage.models import Member, PollState, Seller
from services.storage.states import KeyState, Role
from services.views import View

log = logging.getLogger(__name__)


class Duties:
    """Every background duty, each an APScheduler job that decides from the database and the injected clock,
    so a restart re-derives all of them without repeating or skipping a message."""

    def __init__(self, *, sync: OrderSync, runner: IntentRunner, outbox: Outbox, channels: Channels,
                 catalogs: Catalogs, lease: Lease, clock: Callable[[], datetime],
                 poll_interval: float, reminders: Reminders, digest: MorningDigest, key_expiry: KeyExpiry,
                 tick: float = 30.0, max_concurrent_polls: int = 100, first_mile: FirstMile | None = None,
                 cancellations: Cancellations | None = None, stock: StockDesk | None = None):
        self._sync = sync
        self._runner = runner
        self._outbox = outbox
        self._channels = channels
        self._catalogs = catalogs
        self._clock = clock
        self._interval = poll_interval
        self._tick = tick
        self._reminders = reminders
        self._digest = digest
        self._key_expiry = key_expiry
        self._lease = lease
        self._first_mile = first_mile
        self._cancellations = cancellations
        self._stock = stock
        self._gate = asyncio.Semaphore(max_concurrent_polls)
        self.scheduler = AsyncIOScheduler(timezone="UTC")

    def start(self) -> None:
        # a short tick: a seller falls due at most a tick late (the due query is one indexed read), and a
        # twentieth of the interval keeps that lateness small next to it (0.25 s at 5 s, 1 s from 20 s up)
        self._every(self.poll_due, min(1.0, max(0.1, self._interval / 20)), "poll")
        self._every(self._reminders.run_due, self._tick, "reminders")
        if self._cancellations is not None:
            self._every(self._cancellations.run_due, self._tick, "cancel_reminders")
        if self._stock is not None:  # Ozon's 30 s window per item: looked at every few seconds at most
            self._every(self._stock.run_due, min(self._tick, 5.0), "stock_changes")
        self._every(self._digest.run_due, self._tick, "digest")
        self._every(self._key_expiry.run_due, self._tick, "key_expiry")
        if self._first_mile is not None:
            self._every(self.first_mile_due, self._tick, "first_mile")
        # the retry job runs at least as often as the outbox's first backoff, so a short one is honoured
        self._every(self.retry_work, min(15.0, self._tick, self._outbox.retry_first.total_seconds()), "retry",
                    start_now=False)
        # leases and claims live while this process does: renewed well inside their lifetime
        self._every(self.prune, 3600.0, "retention", start_now=False)
        self._every(self._lease.heartbeat, self._lease.ttl.total_seconds() / 3, "heartbeat", start_now=False)
        self.scheduler.start()

    def _every(self, job: Callable, seconds: float, name: str, *, start_now: bool = True) -> None:
        # the scheduler keeps its own wall clock; jobs decide with the injected one
        # (next_run_time=None would add the job paused, so it is only passed to start at once)
        first = {"next_run_time": datetime.now(UTC)} if start_now else {}
        self.scheduler.add_job(_until_stopped(job, name), "interval", seconds=seconds, id=name, max_instances=1,
                               coalesce=True, replace_existing=True, **first)

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def poll_due(self) -> None:
        now = self._clock()
        await self._add_poll_states()
        # one query for the due sellers, not one per seller: this job ticks every second
        due = await PollState.filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now),
                                     seller__key_state=KeyState.OK).prefetch_related("seller")
        if not due:
            return
        # only the due sellers' leases are taken (the heartbeat keeps held ones alive): one poller per seller
        held = await self._lease.hold_sellers([state.seller_id for state in due])
        with metrics.POLL_CYCLE.time():
            await asyncio.gather(*(self._poll_one(state.seller, state) for state in due if state.seller_id in held))

    @staticmethod
    async def _add_poll_states() -> None:
        # an anti-join: a tick costs the same whether 10 or 10,000 sellers already have their state
        missing = [PollState(seller_id=seller_id) for seller_id in
                   await Seller.filter(key_state=KeyState.OK, poll_state__id__isnull=True)
                   .values_list("id", flat=True)]
        if missing:
            await PollState.bulk_create(missing, ignore_conflicts=True)

    async def _poll_one(self, seller: Seller, state: PollState) -> None:
        async with self._gate:
            state.last_poll_at = self._clock()
            try:
                report = await self._sync.poll(seller, state.fingerprint)
            except OzonAuthError as exc:
                await self._key_refused(seller, exc)
                state.last_error = exc.reason
            except OzonError as exc:
                state.consecutive_errors += 1
                state.last_error = exc.token
                backoff = min(600.0, self._interval * 2 ** state.consecutive_errors)
                state.next_poll_at = self._clock() + timedelta(seconds=backoff)
                log.warning("poll of seller %s failed (%s); next in %.0fs", seller.id, exc.token, backoff)
            except Exception as exc:  # L3: our own failure backs off too, instead of a poll every tick
                state.consecutive_errors += 1
                state.last_error = type(exc).__name__
                backoff = min(600.0, self._interval * 2 ** state.consecutive_errors)
                state.next_poll_at = self._clock() + timedelta(seconds=backoff)
                log.exception("poll of seller %s failed unexpectedly; next in %.0fs", seller.id, backoff)
            else:
                state.consecutive_errors = 0
                state.fingerprint = report.fingerprint
                state.last_error = None
                state.last_success_at = self._clock()
                # jitter spreads sellers apart; subtracted, so no seller waits longer than the interval
                jitter = random.uniform(0, self._interval * 0.1)
                state.next_poll_at = state.last_poll_at + timedelta(seconds=self._interval - jitter)
                await self._poll_cancellations(seller)
            # never the lease columns: the heartbeat owns them while this poll runs
            await state.save(update_fields=["last_poll_at", "last_success_at", "consecutive_errors", "next_poll_at",
                                            "last_error", "fingerprint"])

    async def _poll_cancellations(self, seller: Seller) -> None:
        """Buyers' cancellation requests have no push: read with the orders, at their own slower pace."""
        if self._cancellations is None:
            return
        try:
            await self._cancellations.poll(seller)
        except OzonError as exc:
            log.warning("cancellation requests of seller %s unread (%s)", seller.id, exc.token)

    async def _key_refused(self, seller: Seller, exc: OzonAuthError) -> None:
        """Polling stops for this seller until a new key is connected; the owner hears it once."""
        updated = await Seller.filter(id=seller.id, key_state=KeyState.OK).update(key_state=KeyState.REVOKED)
        if not updated:
            return
        for owner in await Member.filter(seller=seller, role=Role.OWNER, chat_id__not_isnull=True):
            tr = self._catalogs.for_member(owner, seller)
            await self._channels.send(owner, View(text=tr.gettext(
                "⚠️ Ozon refused the API key of seller {client_id} ({reason}). New orders are not being "
                "fetched. Create a new key in the Ozon cabinet and connect it with {connect}.").format(
                client_id=seller.client_id, reason=exc.reason, connect=spelled(owner.channel, tr.locale)["connect"])))

    async def prune(self) -> None:
        await retention.prune(self._clock())

    async def first_mile_due(self) -> None:
        """Subscriptions Kuaidi100 has not taken yet, then the alerts whose time has come."""
        assert self._first_mile is not None
        await self._first_mile.subscribe_due()
        await self._first_mile.check_due()

    async def retry_work(self) -> None:
        await self._outbox.recover_interrupted()
        await self._outbox.retry_failed()
        await self._outbox.dispatch_pending()
        await self._runner.retry_due()


def _until_stopped(job: Callable, name: str) -> Callable:
    """A job cut short by the scheduler's shutdown ends quietly: each duty reads its state from the database
    and picks up where it stopped on the next start, so the cancellation is no error worth a traceback."""

    async def run() -> None:
        try:
            await job()
        except asyncio.CancelledError:
            log.info("%s stopped mid-run by the shutdown", name)

    return run
