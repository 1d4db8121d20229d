"""Fan-out of views to a seller's desk: each event reaches each member once, every card copy stays current."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from services.cards import CardRenderer
from services.durations import parse_quiet_hours
from services.i18n import Catalogs, Translator
from services.lease import SQLITE_OWNER, Lease
from services.storage.models import AlertMessage, Event, Member, Notification, Posting, Seller
from services.views import Button, View

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
# events per read; new orders that arrive meanwhile are looked for again after each batch, so the other
# kinds come in small batches
NEW_BATCH, OTHER_BATCH = 50, 10


class ChannelSender(Protocol):
    channel: str

    async def send(self, member: Member, view: View) -> str | None: ...

    async def edit(self, member: Member, message_ref: str, view: View) -> None: ...


def in_quiet_hours(quiet: str, zone: str, now: datetime) -> bool:
    """Unusable settings (a row written before validation) count as no quiet hours: an alert or reminder
    is never held, and never blocked, because of them."""
    try:
        window = parse_quiet_hours(quiet or "off")
        local = now.astimezone(ZoneInfo(zone)).time()
    except (ValueError, KeyError):
        log.warning("unusable quiet hours %r / zone %r ignored", quiet, zone)
        return False
    if window is None:
        return False
    start, end = window
    return start <= local < end if start < end else (local >= start or local < end)


class DeliveryDeferred(Exception):
    """A channel's own send limit is reached: try again later, without counting it as a failed attempt,
    and without making every other delivery wait behind it."""


class KeyedTurns:
    """One asyncio lock per key, kept only while someone holds or awaits it, so the map stays small."""

    def __init__(self) -> None:
        self._locks: dict[object, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def turn(self, key: object) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Notifier:
    def __init__(self, *, catalogs: Catalogs, cards: CardRenderer, clock: Callable[[], datetime],
                 lease: Lease | None = None):
        self.catalogs = catalogs
        self.cards = cards
        self._clock = clock
        self.lease = lease or Lease(owner=SQLITE_OWNER, ttl=60, clock=clock)
        self._senders: dict[str, ChannelSender] = {}
        self._lock = asyncio.Lock()
        self._card_turns = KeyedTurns()

    def register(self, sender: ChannelSender) -> None:
        self._senders[sender.channel] = sender

    def translator(self, member: Member, seller: Seller) -> Translator:
        return self.catalogs.translator(member.locale, member.timezone or seller.timezone)

    async def desk(self, seller: Seller) -> list[Member]:
        members = await Member.filter(seller=seller, chat_id__not_isnull=True).order_by("id")
        return [m for m in members if m.channel in self._senders]

    async def render_card(self, posting: Posting, member: Member, seller: Seller,
                          people: dict[int, Member] | None = None) -> View:
        """`people`: the posting's packer and last actor, when the caller already read them (one read serves
        every copy of a card)."""
        if people is None:
            people = await self._people(posting)
        return self.cards.card(self.translator(member, seller), posting, packed_by=people.get(posting.packed_by_id),
                               acted_by=people.get(posting.acted_by_id))

    @staticmethod
    async def _people(posting: Posting, known: dict[int, Member] | None = None) -> dict[int, Member]:
        """`known`: members already read (the card's recipients); usually the packer is one of them."""
        people = {i: known[i] for i in (posting.packed_by_id, posting.acted_by_id) if i and known and i in known}
        missing = {i for i in (posting.packed_by_id, posting.acted_by_id) if i and i not in people}
        if missing:
            people.update({m.id: m for m in await Member.filter(id__in=missing)})
        return people

    async def send(self, member: Member, view: View) -> str | None:
        sender = self._senders.get(member.channel)
        if sender is None or member.chat_id is None:
            return None
        return await sender.send(member, view)

    async def dispatch_pending(self) -> int:
        """Delivers every event not yet dispatched, oldest first. Safe to call from anywhere, any time."""
        done = 0
        broken: list[int] = []  # events that raised: left for the next call, never blocking the others
        async with self._lock:
            while True:
                batch = await self._next_batch(broken)
                if not batch:
                    return done
                for event in batch:
                    try:
                        await self._dispatch(event)
                    except Exception:
                        log.exception("event %s (%s) could not be dispatched; will retry", event.id, event.kind)
                        broken.append(event.id)
                        continue
                    event.dispatched_at = self._clock()
                    await event.save(update_fields=["dispatched_at"])
                    done += 1

    @staticmethod
    async def _next_batch(broken: list[int]) -> list[Event]:
        """New orders first, then the rest, each oldest first: a burst of reminders or status changes
        (a morning's deadlines, a resync) must not hold back the alert for an order that just came in."""
        for kinds, limit in (({"kind": "new"}, NEW_BATCH), ({"kind__not": "new"}, OTHER_BATCH)):
            batch = await Event.filter(dispatched_at__isnull=True, **kinds).exclude(id__in=broken).order_by("id") \
                .limit(limit).prefetch_related("posting__seller")
            if batch:
                return batch
        return []

    async def _dispatch(self, event: Event) -> None:
        posting: Posting = event.posting
        seller: Seller = posting.seller
        if event.kind in ("status", "deadline", "cancelled", "announce"):
            await self.refresh(posting.id)
        if event.kind not in ("new", "remind", "cancelled", "announce"):
            return
        if event.kind == "remind" and not self._reminder_still_due(event, posting):
            return  # packed (or tracked) meanwhile: the reminder has nothing left to say
        silent = event.kind == "new" and in_quiet_hours(seller.quiet_hours, seller.timezone, self._clock())
        for member in await self.desk(seller):
            note = await self._claim(event, member)
            if note is not None:
                await self._deliver(note, event, posting, seller, member, silent=silent)

    def _view_for(self, event: Event, posting: Posting, member: Member, seller: Seller) -> View | None:
        """The one-off message of a non-card event; None when it no longer applies."""
        if event.kind == "remind":
            return self._reminder(event, posting, member, seller) if self._reminder_still_due(event, posting) else None
        if event.kind in ("cancelled", "announce"):
            return View(text=self._announcement(event, posting, self.translator(member, seller)))
        return None

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
        """The notification row, claimed by this process; None if it was delivered or is in flight."""
        try:
            return await Notification.create(event=event, member=member, state="sending",
                                             claimed_by=self.lease.owner, claim_until=self.lease.expiry())
        except IntegrityError:
            existing = await Notification.get(event=event, member=member)
            if existing.state == "failed" and await self.lease.claim_notification(existing.id, from_state="failed"):
                return await Notification.get(id=existing.id)
            return None  # already delivered (or in flight elsewhere): never twice

    async def _deliver(self, note: Notification, event: Event, posting: Posting, seller: Seller, member: Member,
                       *, silent: bool = False, marker: str = "") -> None:
        if event.kind == "new":
            view = await self.render_card(posting, member, seller)
        else:
            view = self._view_for(event, posting, member, seller)
            if view is None:
                await Notification.filter(id=note.id).update(state="skipped", claimed_by=None)
                return
        if marker or silent:
            view = View(text=marker + view.text, buttons=view.buttons, silent=silent)
        ref = await self._attempt(note, member, view)
        if ref is None:
            return  # failed: retry_failed tries again
        if ref and event.kind == "new":  # recorded first: recovery after a crash reads it as "delivered"
            await AlertMessage.update_or_create(defaults={"message_ref": ref}, posting=posting, member=member)
        await Notification.filter(id=note.id).update(state="sent", claimed_by=None, resent=bool(marker))

    async def _attempt(self, note: Notification, member: Member, view: View) -> str | None:
        note.attempts += 1
        try:
            ref = await self.send(member, view)
        except DeliveryDeferred:
            await Notification.filter(id=note.id).update(state="failed", error="deferred: channel send limit",
                                                         claimed_by=None)
            return None
        except Exception as exc:  # a channel failure must not stop the desk's other members
            log.warning("delivery to member %s failed: %s", member.id, type(exc).__name__)
            await Notification.filter(id=note.id).update(state="failed", error=str(exc)[:500], attempts=note.attempts,
                                                         claimed_by=None)
            return None
        await Notification.filter(id=note.id).update(attempts=note.attempts)
        return ref or ""

    async def retry_failed(self) -> int:
        """Failed deliveries (channel down) are tried again by the scheduler, every kind of event."""
        failed = await Notification.filter(state="failed", attempts__lt=MAX_ATTEMPTS).prefetch_related(
            "event__posting__seller", "member")
        retried = 0
        for note in failed:
            if not await self.lease.claim_notification(note.id, from_state="failed"):
                continue  # another process took it
            event, posting = note.event, note.event.posting
            await self._deliver(note, event, posting, posting.seller, note.member)
            retried += 1
        return retried

    async def recover_interrupted(self) -> int:
        """Notifications left `sending` by a process that died mid-send (its claim ran out).

        Whether the message reached the chat is unknowable, so the policy is: a card whose message was
        recorded (AlertMessage) was delivered and is only marked sent; anything else is sent again,
        once, with a marker that says it may be a copy. A possible, labelled duplicate beats a lost alert.
        """
        stale = await Notification.filter(Q(claim_until__isnull=True) | Q(claim_until__lt=self._clock()),
                                           state="sending").prefetch_related("event__posting__seller", "member")
        recovered = 0
        for note in stale:
            if not await self.lease.claim_notification(note.id, from_state="sending"):
                continue
            event, posting, member = note.event, note.event.posting, note.member
            if event.kind == "new" and await AlertMessage.exists(posting=posting, member=member):
                await Notification.filter(id=note.id).update(state="sent", claimed_by=None)
                continue
            tr = self.translator(member, posting.seller)
            marker = tr.gettext("↻ Sent again after a restart; if you already have this message, ignore one copy.")
            await self._deliver(note, event, posting, posting.seller, member, marker=marker + "\n")
            recovered += 1
        return recovered

    async def refresh(self, posting_id: int) -> None:
        """Edits every member's copy of the posting's card to its current state.

        Refreshes of one posting take turns, and each reads the posting once its turn comes: two edits
        racing each other could otherwise land in the wrong order and leave a card showing an older state."""
        async with self._card_turns.turn(posting_id):
            await self._refresh_now(posting_id)

    async def _refresh_now(self, posting_id: int) -> None:
        alerts = await AlertMessage.filter(posting_id=posting_id).select_related("member")
        if not alerts:
            return
        posting = await Posting.get(id=posting_id).select_related("seller")
        people = await self._people(posting, known={a.member.id: a.member for a in alerts})
        for alert in alerts:
            member: Member = alert.member
            sender = self._senders.get(member.channel)
            if sender is None:
                continue
            view = await self.render_card(posting, member, posting.seller, people)
            try:
                await sender.edit(member, alert.message_ref, view)
            except Exception as exc:
                log.info("edit of card %s for member %s failed: %s", posting.id, member.id, exc)
