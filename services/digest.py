"""The morning digest: at each seller's local digest time, one summary of the day's work to every member."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.durations import clock_time
from services.i18n import Translator
from services.notices import NoticeBoard
from services.storage.models import Event, Posting, Seller, Waybill
from services.storage.states import (
    AWAITING_PACKAGING,
    UNPACKED_STAGES,
    EventKind,
    NoticeKind,
    WaybillRole,
    WaybillState,
)
from services.views import View

log = logging.getLogger(__name__)
LATE_WINDOW = timedelta(hours=3)  # a bot that was down at digest time still sends it, if not too late
TROUBLED_STATES = frozenset({2, 4, 6})  # Kuaidi100's 疑难, 退签, 退回
LISTED = 10  # numbers shown per section; the rest are counted


@dataclass
class DigestSummary:
    pack_today: list[str] = field(default_factory=list)
    due_within_day: list[str] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)
    cancelled_overnight: list[str] = field(default_factory=list)
    shipped_yesterday: list[str] = field(default_factory=list)
    # the first mile (services.firstmile), only for a seller with a Kuaidi100 account: "waybill (posting)"
    not_picked_up: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    troubled: list[str] = field(default_factory=list)


def digest_start(seller: Seller, now: datetime) -> datetime | None:
    """The digest moment whose sending window holds `now` (today's, or yesterday's late one just after
    midnight), in the seller's zone; None when the digest is off or not due."""
    if not seller.digest_time or seller.digest_time == "off":
        return None
    zone = ZoneInfo(seller.timezone)
    local = now.astimezone(zone)
    at = clock_time(seller.digest_time)
    for day in (local.date(), local.date() - timedelta(days=1)):
        start = datetime.combine(day, at, tzinfo=zone)
        if start <= now < start + LATE_WINDOW:
            return start
    return None


async def summarize(seller: Seller, now: datetime, *, no_pickup_after: timedelta = timedelta(hours=24),
                    frozen_after: timedelta = timedelta(hours=24)) -> DigestSummary:
    zone = ZoneInfo(seller.timezone)
    today = datetime.combine(now.astimezone(zone).date(), time(0), tzinfo=zone)
    tomorrow, yesterday = today + timedelta(days=1), today - timedelta(days=1)
    summary = DigestSummary()
    unpacked = await Posting.filter(seller=seller, stage__in=UNPACKED_STAGES, status=AWAITING_PACKAGING,
                                    shipment_date__not_isnull=True).order_by("shipment_date")
    for posting in unpacked:
        if posting.shipment_date < now:
            summary.overdue.append(posting.posting_number)
        elif posting.shipment_date < tomorrow:
            summary.pack_today.append(posting.posting_number)
        elif posting.shipment_date < now + timedelta(days=1):
            summary.due_within_day.append(posting.posting_number)
    cancelled = await Event.filter(kind=EventKind.CANCELLED, posting__seller_id=seller.id,
                                   created_at__gte=now - timedelta(days=1)).prefetch_related("posting")
    summary.cancelled_overnight = sorted({event.posting.posting_number for event in cancelled})
    shipped = await Posting.filter(seller=seller, packed_at__gte=yesterday, packed_at__lt=today).order_by("packed_at")
    summary.shipped_yesterday = [posting.posting_number for posting in shipped]
    watched = await Waybill.filter(seller=seller, state=WaybillState.SUBSCRIBED, posting_id__isnull=False) \
        .prefetch_related("posting").order_by("id")
    for waybill in watched:
        shown = f"{waybill.number} ({waybill.posting.posting_number})"
        if waybill.trace_state is not None and waybill.trace_state in TROUBLED_STATES:
            summary.troubled.append(shown)
        elif waybill.last_scan_at is None:
            if waybill.role == WaybillRole.OUTBOUND and waybill.since and waybill.since <= now - no_pickup_after:
                summary.not_picked_up.append(shown)
        elif waybill.last_scan_at <= now - frozen_after:
            summary.frozen.append(shown)
    return summary


def render(tr: Translator, summary: DigestSummary, commands: dict[str, str]) -> View:
    sections = [
        (tr.ngettext("📦 {n} order to pack today", "📦 {n} orders to pack today", len(summary.pack_today)),
         summary.pack_today),
        (tr.ngettext("⏳ {n} more due within 24 hours", "⏳ {n} more due within 24 hours", len(summary.due_within_day)),
         summary.due_within_day),
        (tr.ngettext("🚨 {n} order overdue", "🚨 {n} orders overdue", len(summary.overdue)), summary.overdue),
        (tr.ngettext("❌ {n} order cancelled overnight", "❌ {n} orders cancelled overnight",
                     len(summary.cancelled_overnight)), summary.cancelled_overnight),
        (tr.ngettext("🚚 {n} order shipped yesterday", "🚚 {n} orders shipped yesterday",
                     len(summary.shipped_yesterday)), summary.shipped_yesterday),
    ]
    first_mile = [
        (tr.ngettext("📭 {n} parcel not picked up by the courier", "📭 {n} parcels not picked up by the courier",
                     len(summary.not_picked_up)), summary.not_picked_up),
        (tr.ngettext("🧊 {n} parcel with a frozen trace", "🧊 {n} parcels with a frozen trace", len(summary.frozen)),
         summary.frozen),
        (tr.ngettext("⚠️ {n} parcel in trouble at the courier", "⚠️ {n} parcels in trouble at the courier",
                     len(summary.troubled)), summary.troubled),
    ]
    sections += [(title, numbers) for title, numbers in first_mile if numbers]  # only when there is something
    lines = [tr.gettext("☀️ Good morning! Today's desk:")]
    for title, numbers in sections:
        lines.append(title.format(n=len(numbers)))
        lines += [f"   • {number}" for number in numbers[:LISTED]]
        if len(numbers) > LISTED:
            lines.append("   " + tr.gettext("… and {n} more").format(n=len(numbers) - LISTED))
    lines.append(tr.gettext("{orders} shows every open order.").format(**commands))
    return View(text="\n".join(lines))


class MorningDigest:
    def __init__(self, *, board: NoticeBoard, clock: Callable[[], datetime],
                 no_pickup_after: timedelta = timedelta(hours=24), frozen_after: timedelta = timedelta(hours=24)):
        self._board = board
        self._clock = clock
        self._no_pickup_after = no_pickup_after
        self._frozen_after = frozen_after

    async def run_due(self) -> int:
        now = self._clock()
        sent = 0
        for seller in await Seller.all():
            try:
                sent += await self._send(seller, now)
            except Exception:  # one seller's broken settings must not cost the others their digest
                log.exception("digest of seller %s failed", seller.id)
        return sent

    async def _send(self, seller: Seller, now: datetime) -> int:
        start = digest_start(seller, now)
        if start is None:
            return 0
        key = start.date().isoformat()
        members = await self._board.awaiting(seller, NoticeKind.DIGEST, key)
        if not members:
            return 0
        summary = await summarize(seller, now, no_pickup_after=self._no_pickup_after, frozen_after=self._frozen_after)
        return await self._board.to_members(members, seller, NoticeKind.DIGEST, key,
                                            lambda tr, commands: render(tr, summary, commands))
