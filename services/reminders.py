"""Deadline reminders: once per posting and lead while it is unpacked, then one 'overdue'. The Event
row's unique key is the once-ever guarantee, so a restart re-derives them without repeating any."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tortoise.exceptions import IntegrityError

from services import firstmile
from services.cards import CardRenderer
from services.durations import in_quiet_hours, parse_leads
from services.i18n import Translator
from services.storage.models import Event, Posting, Seller
from services.storage.states import AWAITING_PACKAGING, CHOOSING_STAGES, EventKind, Stage
from services.views import Button, View

if TYPE_CHECKING:
    from services.outbox import Outbox

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


def still_due(event: Event, posting: Posting) -> bool:
    """A reminder still has something to say: the posting was not packed (or tracked) meanwhile."""
    if event.key == TRACKING:
        return posting.stage == Stage.PACKED and not posting.tracking_number
    return posting.stage in CHOOSING_STAGES and posting.status == AWAITING_PACKAGING


def render(event: Event, posting: Posting, tr: Translator, cards: CardRenderer, now: datetime) -> View | None:
    """The one-off message of a reminder or an announcement (cancelled, in delivery, delivered); None when
    it no longer applies."""
    if event.kind == EventKind.REMIND:
        return _reminder(event, posting, tr, cards, now) if still_due(event, posting) else None
    if event.kind in (EventKind.CANCELLED, EventKind.ANNOUNCE):
        return View(text=_announcement(event, posting, tr))
    if event.kind == EventKind.TRACE:
        view = firstmile.render(event, posting, tr, now)
        if view is not None:  # with the card's buttons, so the desk can act on the posting from the alert
            card = cards.card(tr, posting)
            return View(text=view.text + "\n\n" + card.text, buttons=card.buttons)
        return None
    return None


def _announcement(event: Event, posting: Posting, tr: Translator) -> str:
    if event.kind == EventKind.CANCELLED:
        text = tr.gettext("❌ Order {number} was cancelled. Stop packing it.")
    elif event.key == "delivered":
        text = tr.gettext("🎉 Order {number} was delivered to the buyer.")
    else:
        text = tr.gettext("🚚 Order {number} is now in delivery.")
    return text.format(number=posting.posting_number)


def _reminder(event: Event, posting: Posting, tr: Translator, cards: CardRenderer, now: datetime) -> View:
    if event.key == TRACKING:
        text = tr.gettext("✍️ {number} was packed {ago} ago and Ozon still has no tracking number for it. "
                          "Enter the waybill number so Ozon can follow the parcel.").format(
            number=posting.posting_number, ago=tr.duration(now - posting.packed_at))
        button = Button(tr.gettext("✍️ Enter waybill number"), cards.action("w", posting))
        return View(text=text, buttons=((button,),))
    if event.key == OVERDUE:
        text = tr.gettext("🚨 {number} is past its ship-by time ({deadline}). Ozon charges for late "
                          "shipment: pack and hand it over now.")
    else:
        text = tr.gettext("⏰ {number} is not packed yet: ship by {deadline} ({left}).")
    text = text.format(number=posting.posting_number, deadline=tr.local_time(posting.shipment_date),
                       left=tr.time_left(posting.shipment_date, now))
    tariff = cards.next_tariff(tr, posting)
    if tariff:
        text += "\n" + tariff  # what being late will cost, when Ozon tells us
    button = Button(tr.gettext("Open the order card"), cards.action("o", posting))
    return View(text=text, buttons=((button,),))


class Reminders:
    def __init__(self, *, outbox: Outbox, clock: Callable[[], datetime], leads: list[timedelta],
                 tracking_after: timedelta = timedelta(hours=2)):
        self._outbox = outbox
        self._clock = clock
        self._leads = leads
        self._tracking_after = tracking_after

    async def run_due(self) -> int:
        created = await self._deadlines() + await self._missing_tracking()
        if created:
            await self._outbox.dispatch_pending()
        return created

    async def _deadlines(self) -> int:
        now = self._clock()
        horizon = now + await self._longest_lead()
        created = 0
        candidates = await Posting.filter(stage__in=CHOOSING_STAGES, status=AWAITING_PACKAGING,
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
        candidates = await Posting.filter(stage=Stage.PACKED, flow="non_integrated", tracking_number="",
                                          packed_at__lte=now - self._tracking_after).prefetch_related("seller")
        for posting in candidates:
            seller = posting.seller
            if in_quiet_hours(seller.quiet_hours, seller.timezone, now):
                continue
            created += await _remind_once(posting, TRACKING)
        return created


async def _remind_once(posting: Posting, key: str) -> int:
    try:
        _, was_created = await Event.get_or_create(posting=posting, kind=EventKind.REMIND, key=key)
    except IntegrityError:
        return 0
    return int(was_created)

