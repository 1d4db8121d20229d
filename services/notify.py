"""Fan-out of views to a seller's desk: each event reaches each member once, every card copy stays current."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError

from services.cards import CardRenderer
from services.durations import parse_quiet_hours
from services.i18n import Catalogs, Translator
from services.storage.models import AlertMessage, Event, Member, Notification, Posting, Seller
from services.views import Button, View

log = logging.getLogger(__name__)


class ChannelSender(Protocol):
    channel: str

    async def send(self, member: Member, view: View) -> str | None: ...

    async def edit(self, member: Member, message_ref: str, view: View) -> None: ...


def in_quiet_hours(quiet: str, zone: str, now: datetime) -> bool:
    window = parse_quiet_hours(quiet or "off")
    if window is None:
        return False
    start, end = window
    local = now.astimezone(ZoneInfo(zone)).time()
    return start <= local < end if start < end else (local >= start or local < end)


class Notifier:
    def __init__(self, *, catalogs: Catalogs, cards: CardRenderer, clock: Callable[[], datetime]):
        self.catalogs = catalogs
        self.cards = cards
        self._clock = clock
        self._senders: dict[str, ChannelSender] = {}
        self._lock = asyncio.Lock()

    def register(self, sender: ChannelSender) -> None:
        self._senders[sender.channel] = sender

    def translator(self, member: Member, seller: Seller) -> Translator:
        return self.catalogs.translator(member.locale, member.timezone or seller.timezone)

    async def desk(self, seller: Seller) -> list[Member]:
        members = await Member.filter(seller=seller, chat_id__not_isnull=True).order_by("id")
        return [m for m in members if m.channel in self._senders]

    async def render_card(self, posting: Posting, member: Member, seller: Seller) -> View:
        packed_by = await Member.get_or_none(id=posting.packed_by_id) if posting.packed_by_id else None
        acted_by = await Member.get_or_none(id=posting.acted_by_id) if posting.acted_by_id else None
        return self.cards.card(self.translator(member, seller), posting, packed_by=packed_by, acted_by=acted_by)

    async def send(self, member: Member, view: View) -> str | None:
        sender = self._senders.get(member.channel)
        if sender is None or member.chat_id is None:
            return None
        return await sender.send(member, view)

    async def dispatch_pending(self) -> int:
        """Delivers every event not yet dispatched, oldest first. Safe to call from anywhere, any time."""
        done = 0
        async with self._lock:
            while True:
                batch = await Event.filter(dispatched_at__isnull=True).order_by("id").limit(50) \
                    .prefetch_related("posting__seller")
                if not batch:
                    return done
                for event in batch:
                    await self._dispatch(event)
                    event.dispatched_at = self._clock()
                    await event.save(update_fields=["dispatched_at"])
                    done += 1

    async def _dispatch(self, event: Event) -> None:
        posting: Posting = event.posting
        seller: Seller = posting.seller
        if event.kind == "new":
            silent = in_quiet_hours(seller.quiet_hours, seller.timezone, self._clock())
            for member in await self.desk(seller):
                await self._deliver_card(event, posting, seller, member, silent)
        elif event.kind == "remind":
            if self._reminder_still_due(event, posting):
                for member in await self.desk(seller):
                    await self._deliver_once(event, member, self._reminder(event, posting, member, seller))
        elif event.kind in ("status", "deadline", "cancelled", "announce"):
            await self.refresh(posting)
            if event.kind in ("cancelled", "announce"):
                for member in await self.desk(seller):
                    text = self._announcement(event, posting, self.translator(member, seller))
                    await self._deliver_once(event, member, View(text=text))

    @staticmethod
    def _announcement(event: Event, posting: Posting, tr: Translator) -> str:
        if event.kind == "cancelled":
            text = tr.gettext("❌ Order {number} was cancelled. Stop packing it.")
        elif event.key == "delivered":
            text = tr.gettext("🎉 Order {number} was delivered to the buyer.")
        else:
            text = tr.gettext("🚚 Order {number} is now in delivery.")
        return text.format(number=posting.posting_number)

    @staticmethod
    def _reminder_still_due(event: Event, posting: Posting) -> bool:
        if event.key == "tracking":
            return posting.stage == "packed" and not posting.tracking_number
        return posting.stage in ("new", "courier") and posting.status == "awaiting_packaging"

    def _reminder(self, event: Event, posting: Posting, member: Member, seller: Seller) -> View:
        tr = self.translator(member, seller)
        now = self._clock()
        if event.key == "tracking":
            text = tr.gettext("✍️ {number} was packed {ago} ago and Ozon still has no tracking number for it. "
                              "Enter the waybill number so Ozon can follow the parcel.").format(
                number=posting.posting_number, ago=tr.duration(now - posting.packed_at))
            button = Button(tr.gettext("✍️ Enter waybill number"), self.cards.action("w", posting))
            return View(text=text, buttons=((button,),))
        if event.key == "overdue":
            text = tr.gettext("🚨 {number} is past its ship-by time ({deadline}). Ozon charges for late "
                              "shipment: pack and hand it over now.")
        else:
            text = tr.gettext("⏰ {number} is not packed yet: ship by {deadline} ({left}).")
        text = text.format(number=posting.posting_number, deadline=tr.local_time(posting.shipment_date),
                           left=tr.time_left(posting.shipment_date, now))
        tariff = self.cards.next_tariff(tr, posting)
        if tariff:
            text += "\n" + tariff  # what being late will cost, when Ozon tells us
        button = Button(tr.gettext("Open the order card"), self.cards.action("o", posting))
        return View(text=text, buttons=((button,),))

    async def _claim(self, event: Event, member: Member) -> Notification | None:
        try:
            return await Notification.create(event=event, member=member, state="sending")
        except IntegrityError:
            existing = await Notification.get(event=event, member=member)
            if existing.state == "failed":
                existing.state = "sending"
                await existing.save(update_fields=["state"])
                return existing
            return None  # already delivered (or in flight elsewhere): never twice

    async def _deliver_card(self, event: Event, posting: Posting, seller: Seller, member: Member,
                            silent: bool) -> None:
        note = await self._claim(event, member)
        if note is None:
            return
        view = await self.render_card(posting, member, seller)
        if silent:
            view = View(text=view.text, buttons=view.buttons, silent=True)
        ref = await self._attempt(note, member, view)
        if ref:
            await AlertMessage.update_or_create(defaults={"message_ref": ref}, posting=posting, member=member)

    async def _deliver_once(self, event: Event, member: Member, view: View) -> None:
        note = await self._claim(event, member)
        if note is not None:
            await self._attempt(note, member, view)

    async def _attempt(self, note: Notification, member: Member, view: View) -> str | None:
        note.attempts += 1
        try:
            ref = await self.send(member, view)
        except Exception as exc:  # a channel failure must not stop the desk's other members
            log.warning("delivery to member %s failed: %s", member.id, type(exc).__name__)
            note.state, note.error = "failed", str(exc)[:500]
            await note.save(update_fields=["state", "error", "attempts"])
            return None
        note.state = "sent"
        await note.save(update_fields=["state", "attempts"])
        return ref

    async def refresh(self, posting: Posting) -> None:
        """Edits every member's copy of the posting's card to its current state."""
        seller = await Seller.get(id=posting.seller_id)
        for alert in await AlertMessage.filter(posting=posting).prefetch_related("member"):
            member: Member = alert.member
            sender = self._senders.get(member.channel)
            if sender is None:
                continue
            view = await self.render_card(posting, member, seller)
            try:
                await sender.edit(member, alert.message_ref, view)
            except Exception as exc:
                log.info("edit of card %s for member %s failed: %s", posting.id, member.id, exc)

    async def retry_failed(self) -> int:
        """Failed deliveries (channel down) are tried again by the scheduler."""
        failed = await Notification.filter(state="failed", attempts__lt=5).prefetch_related(
            "event__posting__seller", "member")
        for note in failed:
            event = note.event
            posting = event.posting
            if event.kind == "new":
                await self._deliver_card(event, posting, posting.seller, note.member, silent=False)
        return len(failed)
