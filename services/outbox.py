"""The outbox: each event reaches each member of its desk once. A Notification row is claimed before the
send, so a restart or a second process never sends it twice; a send cut short is recovered, labelled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from services import metrics, reminders
from services.cancellations import CANCEL_EVENTS, Cancellations
from services.cards import CardCopies
from services.channels import Channels, DeliveryDeferred, DeliveryRefused, DeliveryUncertain
from services.durations import in_quiet_hours
from services.i18n import Catalogs
from services.lease import Lease
from services.storage.models import AlertMessage, Event, Member, Notice, Notification, Posting, Seller
from services.storage.states import UNPACKED_STAGES, EventKind, NoticeKind, NotificationState, Role
from services.views import View

log = logging.getLogger(__name__)
# what an event does: edit every copy of the posting's card, and/or message the desk (card, reminder, notice)
REFRESH_CARD = frozenset({EventKind.STATUS, EventKind.DEADLINE, EventKind.CANCELLED, EventKind.ANNOUNCE,
                          EventKind.CANCEL_ASKED, EventKind.CANCEL_DECIDED})
TELL_DESK = frozenset({EventKind.NEW, EventKind.REMIND, EventKind.CANCELLED, EventKind.ANNOUNCE, EventKind.TRACE,
                       EventKind.CANCEL_ASKED, EventKind.CANCEL_REMIND})
# a failed send is tried again after RETRY_FIRST, doubling up to RETRY_CAP, for as long as the alert still
# matters and at most RETRY_FOR after it first failed; delivered later than LATE_AFTER, it says so
RETRY_FIRST = timedelta(seconds=15)
RETRY_CAP = timedelta(minutes=5)
RETRY_FOR = timedelta(hours=24)
LATE_AFTER = timedelta(minutes=1)
UNCERTAIN = "uncertain:"  # notification.error of a failure after which the message may have arrived
# events per read; new orders that arrive meanwhile are looked for again after each batch, so the other
# kinds come in small batches
NEW_BATCH, OTHER_BATCH = 50, 10


class Outbox:
    def __init__(self, *, channels: Channels, cards: CardCopies, catalogs: Catalogs, lease: Lease,
                 clock: Callable[[], datetime], retry_first: timedelta = RETRY_FIRST,
                 retry_cap: timedelta = RETRY_CAP, retry_for: timedelta = RETRY_FOR,
                 cancellations: Cancellations | None = None):
        self._channels = channels
        self._cards = cards
        self._catalogs = catalogs
        self._lease = lease
        self._clock = clock
        self._lock = asyncio.Lock()
        self._cancellations = cancellations  # renders and edits the cards of buyers' cancellation requests
        self.retry_first = retry_first
        self._retry_cap = max(retry_cap, retry_first)
        self._retry_for = retry_for
        # late: held up for longer than a minute, or than the longest backoff when that is shorter (tests)
        self._late_after = min(LATE_AFTER, self._retry_cap)

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
        for kinds, limit in (({"kind": EventKind.NEW}, NEW_BATCH), ({"kind__not": EventKind.NEW}, OTHER_BATCH)):
            batch = await Event.filter(dispatched_at__isnull=True, **kinds).exclude(id__in=broken).order_by("id") \
                .limit(limit).prefetch_related("posting__seller")
            if batch:
                return batch
        return []

    async def _dispatch(self, event: Event) -> None:
        posting: Posting = event.posting
        seller: Seller = posting.seller
        if event.kind in REFRESH_CARD:
            await self._cards.refresh(posting.id)
        if event.kind == EventKind.CANCEL_DECIDED and self._cancellations is not None:
            await self._cancellations.refresh(event)
        if event.kind not in TELL_DESK:
            return
        if event.kind == EventKind.REMIND and not reminders.still_due(event, posting):
            return  # packed (or tracked) meanwhile: the reminder has nothing left to say
        silent = event.kind == EventKind.NEW and in_quiet_hours(seller.quiet_hours, seller.timezone, self._clock())
        for member in await self._channels.desk(seller):
            note = await self._claim(event, member)
            if note is not None:
                await self._deliver(note, event, posting, seller, member, silent=silent)

    async def _claim(self, event: Event, member: Member) -> Notification | None:
        """The notification row, claimed by this process; None if it was delivered or is in flight."""
        try:
            return await Notification.create(event=event, member=member, state=NotificationState.SENDING,
                                             claimed_by=self._lease.owner, claim_until=self._lease.expiry())
        except IntegrityError:
            existing = await Notification.get(event=event, member=member)
            failed = NotificationState.FAILED
            if existing.state == failed and await self._lease.claim_notification(existing.id, from_state=failed):
                return await Notification.get(id=existing.id)
            return None  # already delivered (or in flight elsewhere): never twice

    async def _deliver(self, note: Notification, event: Event, posting: Posting, seller: Seller, member: Member,
                       *, silent: bool = False, marker: str = "") -> None:
        if event.kind == EventKind.NEW:
            view = await self._cards.render(posting, member, seller)
        elif event.kind in CANCEL_EVENTS:
            view = await self._cancellations.view(event, posting, member, seller) if self._cancellations else None
            if view is None:
                await Notification.filter(id=note.id).update(state=NotificationState.SKIPPED, claimed_by=None)
                return
        else:
            view = reminders.render(event, posting, self._catalogs.for_member(member, seller),
                                    self._cards.renderer, self._clock())
            if view is None:
                await Notification.filter(id=note.id).update(state=NotificationState.SKIPPED, claimed_by=None)
                return
        late = self._late_marker(note, member, seller)
        if not marker and (note.error or "").startswith(UNCERTAIN):  # L5: the last try may have arrived
            marker = self._catalogs.for_member(member, seller).gettext(
                "↻ Sent again: the chat did not confirm the first try; if you already have this message, ignore "
                "one copy.") + "\n"
        if marker or late or silent:
            view = View(text=late + marker + view.text, buttons=view.buttons, attachment=view.attachment,
                        silent=silent)
        ref = await self._attempt(note, member, view)
        if ref is None:
            return  # failed: retry_failed tries again
        if ref and event.kind == EventKind.NEW:  # recorded first: recovery after a crash reads it as "delivered"
            await AlertMessage.update_or_create(defaults={"message_ref": ref}, posting=posting, member=member)
        if ref and event.kind == EventKind.CANCEL_ASKED and self._cancellations is not None:
            await self._cancellations.record(event, member, ref)
        await Notification.filter(id=note.id).update(state=NotificationState.SENT, claimed_by=None,
                                                     resent=bool(marker))

    def _late_marker(self, note: Notification, member: Member, seller: Seller) -> str:
        """A delivery held up by failures says since when, so nobody reads an old alert as fresh."""
        if note.failed_since is None or self._clock() - note.failed_since < self._late_after:
            return ""
        tr = self._catalogs.for_member(member, seller)
        return tr.gettext("⏳ Late: the chat could not be reached from {since} until now.").format(
            since=tr.local_time(note.failed_since)) + "\n"

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failure in a row: doubling from retry_first, capped."""
        return min(self._retry_cap, self.retry_first * 2 ** min(max(attempts - 1, 0), 20))

    async def _attempt(self, note: Notification, member: Member, view: View) -> str | None:
        note.attempts += 1
        now = self._clock()
        since = note.failed_since or now
        try:
            ref = await self._channels.send(member, view)
        except DeliveryDeferred:  # the channel's own limit: not a failed attempt, tried again soon
            metrics.SEND_BUDGET_WAITS.labels(member.channel).inc()
            await Notification.filter(id=note.id).update(state=NotificationState.FAILED, error="deferred: channel send limit",
                                                         attempts=note.attempts - 1, claimed_by=None,
                                                         next_attempt_at=now, failed_since=since)
            return None
        except DeliveryRefused as refused:  # the platform's "never": trying again cannot help
            log.warning("delivery to member %s refused: %s", member.id, refused.reason)
            await Notification.filter(id=note.id).update(state=NotificationState.REFUSED, error=refused.reason[:500],
                                                         attempts=note.attempts, claimed_by=None)
            await self._tell_owners(member, refused.reason)
            return None
        except Exception as exc:  # transport trouble: tried again with backoff; never stops the other members
            log.warning("delivery to member %s failed (attempt %s): %s", member.id, note.attempts,
                        type(exc).__name__)
            metrics.ALERTS_FAILED.labels(member.channel).inc()
            # only the kind is stored (L4: a message may carry a URL, and a URL the bot token)
            error = f"{UNCERTAIN} {exc}" if isinstance(exc, DeliveryUncertain) else type(exc).__name__
            await Notification.filter(id=note.id).update(
                state=NotificationState.FAILED, error=error, attempts=note.attempts, claimed_by=None,
                failed_since=since, next_attempt_at=now + self.backoff(note.attempts))
            return None
        await Notification.filter(id=note.id).update(attempts=note.attempts)
        metrics.delivered(member.channel)
        return ref or ""

    async def _tell_owners(self, member: Member, reason: str) -> None:
        """Once per refused member, the desk's owners hear of it on a surface that still works."""
        seller = await Seller.get(id=member.seller_id)
        for owner in await self._channels.desk(seller):
            if owner.role != Role.OWNER or owner.id == member.id or \
                    (owner.channel, owner.chat_id) == (member.channel, member.chat_id):
                continue
            try:
                notice = await Notice.create(member=owner, kind=NoticeKind.ALERTS_REFUSED, key=str(member.id), state=NotificationState.SENDING)
            except IntegrityError:
                continue  # told already
            tr = self._catalogs.for_member(owner, seller)
            text = tr.gettext("⚠️ Alerts no longer reach {name} on {channel}: {reason}. Until that is fixed, they "
                              "get no new orders.").format(name=member.name or member.external_id,
                                                           channel=member.channel, reason=reason)
            try:
                await self._channels.send(owner, View(text=text))
            except Exception as exc:
                log.warning("owner %s could not be told of member %s: %s", owner.id, member.id, type(exc).__name__)
                await Notice.filter(id=notice.id).delete()  # told on the next refusal instead
                continue
            await Notice.filter(id=notice.id).update(state=NotificationState.SENT)

    async def _still_matters(self, note: Notification, event: Event, posting: Posting) -> bool:
        """A new-order card matters while the posting asks something of the desk; a reminder while it is
        due and not superseded by a later one; every kind for at most retry_for after the first failure."""
        if note.failed_since is not None and self._clock() - note.failed_since > self._retry_for:
            return False
        if event.kind == EventKind.NEW:
            return posting.stage in UNPACKED_STAGES
        if event.kind == EventKind.REMIND:
            return not await Event.filter(posting_id=posting.id, kind=EventKind.REMIND, id__gt=event.id).exists()
        return True

    async def retry_failed(self, *, restart: bool = False) -> int:
        """Failed deliveries (channel down) are tried again by the scheduler once their backoff is over,
        every kind of event, for as long as the alert matters: an outage of hours delivers it late, once.
        A restart tries them all at once (the outage may be what the operator just fixed)."""
        due = Q() if restart else Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=self._clock())
        failed = await Notification.filter(due, state=NotificationState.FAILED).order_by("id").prefetch_related(
            "event__posting__seller", "member")
        retried = 0
        for note in failed:
            event, posting = note.event, note.event.posting
            if not await self._still_matters(note, event, posting):
                await Notification.filter(id=note.id, state=NotificationState.FAILED).update(
                    state=NotificationState.EXPIRED if event.kind == EventKind.NEW and posting.stage in UNPACKED_STAGES
                    else NotificationState.SKIPPED)
                continue
            if not await self._lease.claim_notification(note.id, from_state=NotificationState.FAILED):
                continue  # another process took it
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
                                           state=NotificationState.SENDING) \
            .prefetch_related("event__posting__seller", "member")
        recovered = 0
        for note in stale:
            if not await self._lease.claim_notification(note.id, from_state=NotificationState.SENDING):
                continue
            event, posting, member = note.event, note.event.posting, note.member
            if event.kind == EventKind.NEW and await AlertMessage.exists(posting=posting, member=member):
                await Notification.filter(id=note.id).update(state=NotificationState.SENT, claimed_by=None)
                continue
            tr = self._catalogs.for_member(member, posting.seller)
            marker = tr.gettext("↻ Sent again after a restart; if you already have this message, ignore one copy.")
            await self._deliver(note, event, posting, posting.seller, member, marker=marker + "\n")
            recovered += 1
        return recovered
