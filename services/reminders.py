"""Deadline reminders: once per posting and lead while it is unpacked, then one 'overdue'. The Event
row's unique key is the once-ever guarantee, so a restart re-derives them without repeating any."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError

from services.durations import parse_leads
from services.notify import Notifier, in_quiet_hours
from services.storage.models import Event, Posting, Seller

log = logging.getLogger(__name__)
OVERDUE = "overdue"
TRACKING = "tracking"


def due_key(deadline: datetime, now: datetime, leads: list[timedelta]) -> str | None:
    """The latest reminder due at `now`: only the nearest passed lead, so a bot that was down
    does not send the stale ones it missed."""
    if now >= deadline:
        return OVERDUE
    passed = [lead for lead in leads if deadline - lead <= now]
    return f"lead:{int(min(passed).total_seconds())}" if passed else None


class Reminders:
    def __init__(self, *, notifier: Notifier, clock: Callable[[], datetime], leads: list[timedelta],
                 tracking_after: timedelta = timedelta(hours=2)):
        self._notifier = notifier
        self._clock = clock
        self._leads = leads
        self._tracking_after = tracking_after

    async def run_due(self) -> int:
        created = await self._deadlines() + await self._missing_tracking()
        if created:
            await self._notifier.dispatch_pending()
        return created

    async def _deadlines(self) -> int:
        now = self._clock()
        horizon = now + await self._longest_lead()
        created = 0
        candidates = await Posting.filter(stage__in=("new", "courier"), status="awaiting_packaging",
                                          shipment_date__lte=horizon).prefetch_related("seller")
        for posting in candidates:
            try:
                created += await self._deadline(posting, now)
            except Exception:  # one seller's broken settings must not silence the others
                log.exception("deadline reminder for posting %s failed", posting.id)
        return created

    async def _deadline(self, posting: Posting, now: datetime) -> int:
        seller = posting.seller
        leads = parse_leads(seller.reminder_leads) if seller.reminder_leads else self._leads
        key = due_key(posting.shipment_date, now, leads)
        if key is None:
            return 0
        urgent = key in (OVERDUE, f"lead:{int(min(leads).total_seconds())}")
        if not urgent and in_quiet_hours(seller.quiet_hours, seller.timezone, now):
            return 0  # held until the quiet hours end; the last lead and overdue break through
        return await _remind_once(posting, key)

    async def _longest_lead(self) -> timedelta:
        """How far ahead to look: the operator's leads or any seller's own, whichever reaches furthest."""
        longest = max(self._leads)
        for leads in await Seller.filter(reminder_leads__not_isnull=True).distinct().values_list(
                "reminder_leads", flat=True):
            try:
                longest = max(longest, *parse_leads(leads))
            except ValueError:
                log.warning("unusable reminder leads %r ignored", leads)
        return longest

    async def _missing_tracking(self) -> int:
        """A packed posting the seller delivers, still without tracking: Ozon cannot follow it."""
        now = self._clock()
        created = 0
        candidates = await Posting.filter(stage="packed", flow="non_integrated", tracking_number="",
                                          packed_at__lte=now - self._tracking_after).prefetch_related("seller")
        for posting in candidates:
            seller = posting.seller
            if in_quiet_hours(seller.quiet_hours, seller.timezone, now):
                continue
            created += await _remind_once(posting, TRACKING)
        return created


async def _remind_once(posting: Posting, key: str) -> int:
    try:
        _, was_created = await Event.get_or_create(posting=posting, kind="remind", key=key)
    except IntegrityError:
        return 0
    return int(was_created)

