"""Leases and claims: which process polls a seller, and which process runs a piece of work right now.

Several `ozonbot run` processes may share one PostgreSQL database. Nothing is coordinated in memory:

- a seller's polling belongs to the process holding the seller's PollState lease (lease_owner,
  lease_until). A process takes expired leases with SELECT … FOR UPDATE SKIP LOCKED, so two processes
  never wait on each other and never both win; the holder renews its leases on a heartbeat, and when
  it dies the lease runs out and another process takes the seller over.
- an Intent or a Notification in flight is claimed the same way (claimed_by plus an expiry that the
  heartbeat renews). A claim that ran out belongs to a dead process: any process may finish the work.

On SQLite (one process by design) the owner name is fixed, so a restarted process recognises the
leases and claims of the process it replaces and resumes at once instead of waiting for them to run out.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from services.security import new_token
from services.storage.models import Intent, Notification, PollState
from services.storage.states import IntentState, NotificationState

log = logging.getLogger(__name__)
SQLITE_OWNER = "single-process"


def process_name(db_url: str) -> str:
    if db_url.startswith("sqlite"):
        return SQLITE_OWNER
    return f"{socket.gethostname()[:24]}:{os.getpid()}:{new_token(6)}"


class Lease:
    def __init__(self, *, owner: str, ttl: float, clock: Callable[[], datetime]):
        self.owner = owner
        self.ttl = timedelta(seconds=ttl)
        self._clock = clock
        self._running: dict[int, int] = {}  # intents this process is running now (nested runs counted)

    @property
    def single_process(self) -> bool:
        return self.owner == SQLITE_OWNER

    def expiry(self) -> datetime:
        return self._clock() + self.ttl

    # ---- seller leases -------------------------------------------------------------------------
    async def hold_sellers(self, seller_ids: list[int]) -> set[int]:
        """Takes every free or expired lease among `seller_ids`; returns the sellers this process holds."""
        now = self._clock()
        await self._ensure_rows(seller_ids)
        free = Q(lease_owner=self.owner) | Q(lease_until__isnull=True) | Q(lease_until__lt=now)
        if self.single_process:
            # one statement per row: the conditional update is atomic on its own
            await PollState.filter(free, seller_id__in=seller_ids).update(lease_owner=self.owner,
                                                                          lease_until=self.expiry())
        else:
            async with in_transaction() as conn:
                rows = await PollState.filter(free, seller_id__in=seller_ids).using_db(conn) \
                    .select_for_update(skip_locked=True)
                if rows:
                    await PollState.filter(id__in=[r.id for r in rows]).using_db(conn) \
                        .update(lease_owner=self.owner, lease_until=self.expiry())
        held = await PollState.filter(seller_id__in=seller_ids, lease_owner=self.owner,
                                      lease_until__gt=now).values_list("seller_id", flat=True)
        return set(held)

    async def _ensure_rows(self, seller_ids: list[int]) -> None:
        existing = set(await PollState.filter(seller_id__in=seller_ids).values_list("seller_id", flat=True))
        for seller_id in set(seller_ids) - existing:
            try:
                await PollState.create(seller_id=seller_id)
            except IntegrityError:
                pass  # another process created it first

    @contextmanager
    def running(self, intent_id: int) -> Iterator[None]:
        """While the block runs, the heartbeat renews the intent's claim. A run that ended without releasing
        it (an error nobody caught) stops being renewed, so the claim runs out and the retry job takes it."""
        self._running[intent_id] = self._running.get(intent_id, 0) + 1
        try:
            yield
        finally:
            self._running[intent_id] -= 1
            if not self._running[intent_id]:
                del self._running[intent_id]

    async def heartbeat(self) -> None:
        """Renews every lease and claim this process holds, so they only run out when it is gone."""
        until = self.expiry()
        await PollState.filter(lease_owner=self.owner).update(lease_until=until)
        if self._running:
            await Intent.filter(claimed_by=self.owner, state=IntentState.PENDING,
                                id__in=list(self._running)).update(next_attempt_at=until)
        await Notification.filter(claimed_by=self.owner, state=NotificationState.SENDING).update(claim_until=until)

    async def release(self) -> None:
        """On a clean stop: hand the sellers over at once, leave unfinished work claimable."""
        now = self._clock()
        await PollState.filter(lease_owner=self.owner).update(lease_owner=None, lease_until=None)
        await Intent.filter(claimed_by=self.owner, state=IntentState.PENDING).update(claimed_by=None,
                                                                                    next_attempt_at=now)
        await Notification.filter(claimed_by=self.owner, state=NotificationState.SENDING).update(claim_until=now)

    async def recover_own(self) -> None:
        """SQLite: whatever 'we' held at start was held by the process we replace, which is gone."""
        if self.single_process:
            await self.release()

    # ---- work claims ---------------------------------------------------------------------------
    async def claim_intent(self, intent_id: int, *, ignore_backoff: bool = False) -> bool:
        """True if this process now runs the intent: nobody holds it (or its holder's claim ran out) and its
        retry time has come. A restart ignores the backoff of the process it replaces."""
        now = self._clock()
        due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        unheld = Q(claimed_by__isnull=True) if ignore_backoff else Q(claimed_by__isnull=True) & due
        lapsed = Q(claimed_by__isnull=False) & Q(next_attempt_at__lt=now)
        updated = await Intent.filter(unheld | lapsed, id=intent_id, state=IntentState.PENDING).update(
            claimed_by=self.owner, next_attempt_at=self.expiry())
        return bool(updated)

    async def claim_notification(self, note_id: int, *, from_state: str) -> bool:
        query = Notification.filter(id=note_id, state=from_state)
        if from_state == NotificationState.SENDING:
            query = query.filter(Q(claim_until__isnull=True) | Q(claim_until__lt=self._clock()))
        return bool(await query.update(state=NotificationState.SENDING, claimed_by=self.owner,
                                       claim_until=self.expiry()))
