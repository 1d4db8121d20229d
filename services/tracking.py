"""The waybill and tracking half of the shipping workflow: the typed or photographed waybill number, then,
for seller-delivered rFBS, the tracking number and the move to delivering at Ozon. Part of `Shipping`
(a mixin, so the workflow stays one object); each Ozon step is an intent, claimed and resumable."""

from __future__ import annotations

import asyncio
import logging

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from services.actions import Action
from services.cards import courier_name
from services.couriers import check_number, pick_waybill_number, read_barcodes
from services.ozon.errors import OzonError, OzonUnavailable
from services.ozon.models import Posting as OzonPosting
from services.storage.models import Event, Intent, Member, PendingInput, Posting
from services.storage.states import AFTER_PACKING, EventKind, IntentKind, IntentState, PendingKind, Stage
from services.views import Answer, Button, View

log = logging.getLogger(__name__)
SELLER_TRACKED_FLOWS = frozenset({"non_integrated"})


class TrackingSteps:
    async def _waybill_prompt(self, member: Member, posting: Posting) -> View:
        await self._await_input(member, posting_id=posting.id, kind=PendingKind.WAYBILL, value=None)
        tr = self._tr(member)
        return View(text=tr.gettext("✍️ Waybill number for {number} ({courier}): type it, or send a photo of the "
                                    "waybill.").format(number=posting.posting_number,
                                                       courier=courier_name(tr, posting.courier)),
                    ask_reply=True)

    async def _await_input(self, member: Member, **values) -> None:
        """The member's one awaited input, replaced. Usually one UPDATE (a member who was asked before),
        instead of the read-then-write of update_or_create."""
        values["created_at"] = self._clock()  # a bulk update does not stamp auto_now fields
        if await PendingInput.filter(member=member).update(**values):
            return
        try:
            await PendingInput.create(member=member, **values)
        except IntegrityError:  # a second copy of this prompt created it meanwhile
            await PendingInput.filter(member=member).update(**values)

    async def _ask_waybill(self, member: Member, posting: Posting, action: Action) -> Answer:
        if posting.stage not in AFTER_PACKING:
            return await self._stale(member, posting)
        return Answer(replies=[await self._waybill_prompt(member, posting)])

    async def _confirm_waybill(self, member: Member, posting: Posting, action: Action) -> Answer:
        pending = await PendingInput.get_or_none(member=member, posting_id=posting.id, kind=PendingKind.CONFIRM)
        if pending is None or not pending.value:
            return Answer(toast=self._tr(member).gettext("Nothing to confirm any more."))
        return await self._record_waybill(member, posting, pending.value)

    async def pending_for(self, member: Member) -> PendingInput | None:
        return await PendingInput.get_or_none(member=member)

    async def _awaited(self, member: Member) -> tuple[PendingInput, Posting] | None:
        """What the member was asked for, if the posting is still theirs; a stale question is dropped."""
        pending = await self.pending_for(member)
        if pending is None:
            return None
        posting = await self.authorize(member, pending.posting_id)
        if posting is None:
            await pending.delete()
            return None
        return pending, posting

    async def expect_waybill(self, member: Member | None, posting_id: int) -> Answer | None:
        """A page that names its posting: make that posting the awaited one, so the number typed or
        photographed there goes to it whatever the chat was asked last. None when it may be given now,
        otherwise the refusal or the current state."""
        posting = await self.authorize(member, posting_id)
        if posting is None:
            return await self.press(member, None)  # the refusal, in the member's words
        if posting.stage not in AFTER_PACKING:
            return await self._stale(member, posting)
        pending = await self.pending_for(member)
        if pending is None or pending.posting_id != posting.id:
            await self._waybill_prompt(member, posting)
        return None

    async def submit_waybill(self, member: Member, raw: str) -> Answer | None:
        """A typed number while the bot waits for one; None when nothing is awaited."""
        awaited = await self._awaited(member)
        if awaited is None:
            return None
        pending, posting = awaited
        tr = self._tr(member)
        check = check_number(posting.courier or "other", raw)
        if not check.valid_chars:
            return Answer(replies=[View(text=tr.gettext(
                "“{text}” is not a waybill number (letters and digits, 6 to 40 of them). Send it again.").format(
                text=raw.strip()[:40]), ask_reply=True)])
        if not check.matches_courier:
            pending.kind, pending.value = PendingKind.CONFIRM, check.number
            await pending.save()
            view = View(
                text=tr.gettext("{number} does not look like a {courier} number. Use it anyway?").format(
                    number=check.number, courier=courier_name(tr, posting.courier)),
                buttons=((Button(tr.gettext("Yes, use it"), self._cards.renderer.action("y", posting)),),
                         (Button(tr.gettext("No, type it again"), self._cards.renderer.action("w", posting)),)))
            return Answer(replies=[view])
        return await self._record_waybill(member, posting, check.number)

    async def _record_waybill(self, member: Member, posting: Posting, number: str) -> Answer:
        tr = self._tr(member)
        _ = tr.gettext
        tracked = posting.flow in SELLER_TRACKED_FLOWS
        async with in_transaction() as conn:
            # taking the awaited input is the lock: of two copies of one message, exactly one goes on
            if not await PendingInput.filter(member=member).using_db(conn).delete():
                return Answer(toast=_("Nothing to confirm any more."))
            await Posting.filter(id=posting.id).using_db(conn).update(
                waybill=number, acted_by_id=member.id, **({} if tracked else {"stage": Stage.HANDED_OVER}))
            intent = await self._tracking_intent(conn, posting, number, member) if tracked else None
        await self._watch_waybill(posting, number)
        if not tracked:
            await self._refresh(posting.id)
            return Answer(toast=_("Saved."), replies=[View(text=_(
                "🚚 {courier} {number} saved as the first-mile record of {posting}. Ozon's partner owns the "
                "tracking of this order, so nothing was sent to Ozon.").format(
                courier=courier_name(tr, posting.courier), number=number, posting=posting.posting_number))])
        if intent is None:
            return Answer(toast=_("Tracking number {number} is already with Ozon.").format(number=number))
        return await self.run_tracking(intent)

    async def _watch_waybill(self, posting: Posting, number: str) -> None:
        """The first mile is watched (Kuaidi100) when the seller has an account; its trouble is never the
        packer's: the waybill is recorded whatever happens there."""
        if self._watch is None:
            return
        try:
            await self._watch(posting, number)
        except Exception:
            log.exception("first-mile watch of posting %s failed", posting.id)

    async def _tracking_intent(self, conn, posting: Posting, number: str, member: Member) -> Intent | None:
        existing = await Intent.get_or_none(posting_id=posting.id, kind=IntentKind.TRACKING, key=number,
                                            using_db=conn)
        if existing is not None and (existing.state == IntentState.DONE or existing.claimed_by):
            return None  # sent already, or being sent right now
        return await self._own_intent(conn, posting.id, IntentKind.TRACKING, number, member)

    async def run_tracking(self, intent: Intent) -> Answer:
        """An error of our own releases the intent to the retry job with backoff, the number kept (M6)."""
        with self._lease.running(intent.id):
            try:
                return await self._run_tracking(intent)
            except Exception as exc:
                log.exception("tracking intent %s failed unexpectedly", intent.id)
                await self._intent_error(intent, exc, retry=True)
                member = await Member.get_or_none(id=intent.member_id) if intent.member_id else None
                return Answer(toast=self._tr(member).gettext(
                    "Something went wrong on our side while sending the tracking number ({error}). It is saved; "
                    "I will try again in a minute.").format(error=type(exc).__name__), alert=True)

    async def _run_tracking(self, intent: Intent) -> Answer:
        """non_integrated: set the tracking number, then move to delivering, each gated and confirmed. A resumed
        intent asks Ozon first, so a number that reached Ozon before a crash is not sent again."""
        posting = await Posting.get(id=intent.posting_id).select_related("seller")
        member = await Member.get_or_none(id=intent.member_id) if intent.member_id else None
        _ = self._tr(member).gettext
        number = intent.key
        client = self._gateway.for_seller(posting.seller)
        resumed = intent.attempts > 0
        intent.attempts += 1
        await intent.save(update_fields=["attempts"])
        try:
            remote = OzonPosting.from_api(posting.snapshot or {"posting_number": posting.posting_number})
            if resumed or "set_track_number" not in remote.available_actions:
                remote = await client.get_posting(posting.posting_number)
            if remote.tracking_number != number:
                refusal = await self._set_tracking(client, intent, posting, remote, number)
                if refusal is not None:
                    return refusal
            await Posting.filter(id=posting.id).update(tracking_number=number, stage=Stage.HANDED_OVER)
            moved = await self._move_to_delivering(client, posting, member)
            await Intent.filter(id=intent.id).update(state=IntentState.DONE, last_error=None, claimed_by=None)
        except OzonUnavailable as exc:
            await self._intent_error(intent, exc, retry=True)
            return Answer(toast=_("Ozon is not answering. The number is saved and I will send it when Ozon is back."),
                          alert=True)
        except OzonError as exc:
            await self._intent_error(intent, exc, retry=False)
            return Answer(toast=_("Ozon refused the tracking number {number}: {reason}. Check it and send it "
                                  "again.").format(number=number, reason=exc.token), alert=True)
        await self._refresh(posting.id)
        text = _("🚚 Tracking number {number} sent to Ozon for {posting}.").format(
            number=number, posting=posting.posting_number)
        if moved:  # the desk hears it once, like a move seen by the poll
            await Event.get_or_create(posting_id=posting.id, kind=EventKind.ANNOUNCE, key="delivering")
            await self._outbox.dispatch_pending()
        return Answer(toast=_("Sent to Ozon ✅"), replies=[View(text=text)])

    async def _set_tracking(self, client, intent: Intent, posting: Posting, remote: OzonPosting,
                            number: str) -> Answer | None:
        """Sends the number; an Answer when Ozon refuses it (the intent is then failed)."""
        _ = self._tr(await Member.get_or_none(id=intent.member_id) if intent.member_id else None).gettext
        if "set_track_number" not in remote.available_actions:
            await self._intent_error(intent, RuntimeError("set_track_number not available"), retry=False)
            return Answer(toast=_("Ozon does not accept a tracking number for this order now (status: {status})."
                                  ).format(status=remote.status), alert=True)
        results = await client.set_tracking_numbers([(posting.posting_number, number)])
        refused = [r.error for r in results if not r.result]
        if refused or not results:
            await self._intent_error(intent, RuntimeError(",".join(refused) or "no result"), retry=False)
            return Answer(toast=_("Ozon refused the tracking number {number}: {reason}. Check it and send it "
                                  "again.").format(number=number, reason=", ".join(refused) or "—"), alert=True)
        return None

    async def _move_to_delivering(self, client, posting: Posting, member: Member | None) -> bool:
        """Recorded as its own intent; always read fresh from Ozon, so a repeat never moves twice."""
        intent, created = await Intent.get_or_create(posting_id=posting.id, kind=IntentKind.DELIVERING, key="",
                                                     defaults={"member_id": member.id if member else None,
                                                               "claimed_by": self._lease.owner,
                                                               "next_attempt_at": self._lease.expiry()})
        if intent.state == IntentState.DONE:
            return True
        # a first attempt may trust what Ozon said at packing, when that already offers the move; a repeat
        # (or a posting whose snapshot does not offer it) reads Ozon first, so nothing moves twice
        known = OzonPosting.from_api(posting.snapshot or {}) if created else None
        return await self._deliver_move(client, posting, intent, known=known)

    async def run_delivering(self, intent: Intent) -> Answer:
        with self._lease.running(intent.id):
            posting = await Posting.get(id=intent.posting_id).select_related("seller")
            await self._deliver_move(self._gateway.for_seller(posting.seller), posting, intent)
            return Answer()

    async def _deliver_move(self, client, posting: Posting, intent: Intent, *, known: OzonPosting | None = None,
                            ) -> bool:
        fresh = known if known is not None and _can_deliver(known) else await client.get_posting(posting.posting_number)
        if _can_deliver(fresh):
            results = await client.move_to_delivering([posting.posting_number])
            if not results or not all(r.result for r in results):
                await self._intent_error(intent, RuntimeError(",".join(r.error for r in results) or "no result"),
                                         retry=False)
                return False
            fresh = await client.get_posting(posting.posting_number)
        await Posting.filter(id=posting.id).update(status=fresh.status or posting.status)
        await Intent.filter(id=intent.id).update(state=IntentState.DONE, last_error=None, claimed_by=None)
        return fresh.status == "delivering"

    async def submit_photo(self, member: Member, image: bytes) -> Answer | None:
        awaited = await self._awaited(member)
        if awaited is None:
            return None
        _, posting = awaited
        texts = await asyncio.to_thread(read_barcodes, image)
        number = pick_waybill_number(texts, posting.courier or "other")
        if number is None:
            return Answer(replies=[View(text=self._tr(member).gettext(
                "I could not read a barcode on that photo. Send a sharper photo, or type the number."),
                ask_reply=True)])
        return await self.submit_waybill(member, number)


def _can_deliver(remote: OzonPosting) -> bool:
    return remote.status == "awaiting_deliver" and "non_int_delivering" in remote.available_actions
