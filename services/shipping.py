"""The shipping workflow: courier → packed (Ozon ship) → label → waybill → tracking, by the posting's flow."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from services.actions import Action
from services.cards import courier_name
from services.couriers import check_number, pick_waybill_number, read_barcodes
from services.notify import Notifier
from services.ozon.errors import OzonAuthError, OzonError, OzonUnavailable
from services.ozon.gateway import OzonGateway
from services.ozon.models import Posting as OzonPosting
from services.storage.models import AlertMessage, Intent, Member, PendingInput, Posting, Seller
from services.views import Answer, Attachment, Button, View

log = logging.getLogger(__name__)

REQUIREMENT_TOKENS = frozenset({"EXEMPLAR_INFO_NOT_FILLED_COMPLETELY", "WEIGHT_IS_REQUIRED", "MANDATORY_MARK_REDUNDANT",
                                "EXEMPLAR_INFO_ALREADY_DEFINED", "HAS_INCORRECT_PRODUCT_QUANTITY",
                                "UNKNOWN_PRODUCT_DEFINED", "UNKNOW_PRODUCT"})
SELLER_TRACKED_FLOWS = frozenset({"non_integrated"})
PERSON_ROLES = frozenset({"owner", "packer"})
LABEL_POLLS = 10


class Shipping:
    def __init__(self, *, gateway: OzonGateway, notifier: Notifier, clock: Callable[[], datetime],
                 label_delay: float, poll_interval: float = 1.0):
        self._gateway = gateway
        self._notifier = notifier
        self._clock = clock
        self._label_delay = label_delay
        self._poll_interval = poll_interval
        self._tasks: set[asyncio.Task] = set()

    # ---- authorisation -------------------------------------------------------------------------
    async def authorize(self, member: Member | None, posting_id: int) -> Posting | None:
        """The posting, only if the member is a person on the desk of the seller who owns it."""
        if member is None or member.role not in PERSON_ROLES:
            return None
        return await Posting.get_or_none(id=posting_id, seller_id=member.seller_id)

    async def press(self, member: Member | None, action: Action | None) -> Answer:
        tr = self._tr(member)
        posting = await self.authorize(member, action.posting_id) if action else None
        if posting is None:
            log.info("refused press %s by member %s", action, member.id if member else None)
            return Answer(toast=tr.gettext("This button is not for you: the order belongs to another desk."),
                          alert=True)
        handler = {
            "c": self._choose_courier, "x": self._change_courier, "p": self._packed, "w": self._ask_waybill,
            "y": self._confirm_waybill, "l": self._label_now, "o": self._open,
        }.get(action.verb)
        if handler is None:
            return Answer(toast=tr.gettext("This button is no longer used."))
        return await handler(member, posting, action)

    # ---- courier -------------------------------------------------------------------------------
    async def _choose_courier(self, member: Member, posting: Posting, action: Action) -> Answer:
        tr = self._tr(member)
        updated = await Posting.filter(id=posting.id, stage__in=("new", "courier"),
                                       status="awaiting_packaging").update(
            courier=action.arg, stage="courier", acted_by_id=member.id)
        if not updated:
            return await self._stale(member, posting)
        await self._refresh(posting.id)
        return Answer(toast=tr.gettext("Courier: {courier}").format(courier=courier_name(tr, action.arg)))

    async def _change_courier(self, member: Member, posting: Posting, action: Action) -> Answer:
        if not await Posting.filter(id=posting.id, stage="courier").update(stage="new", courier=None):
            return await self._stale(member, posting)
        await self._refresh(posting.id)
        return Answer()

    async def _stale(self, member: Member, posting: Posting) -> Answer:
        """A press on an outdated card (someone else acted first): say who, show the current state."""
        tr = self._tr(member)
        await self._refresh(posting.id)
        fresh = await Posting.get(id=posting.id)
        if fresh.stage == "cancelled":
            return Answer(toast=tr.gettext("This order was cancelled. Stop packing it."), alert=True)
        if fresh.stage == "packing":
            return Answer(toast=tr.gettext("Packing is already in progress."))
        if fresh.stage in ("packed", "handed_over"):
            who = await Member.get_or_none(id=fresh.packed_by_id) if fresh.packed_by_id else None
            return Answer(toast=tr.gettext("Already packed by {who}.").format(who=who.name if who else "—"))
        return Answer(toast=tr.gettext("This card was out of date and has been refreshed."))

    # ---- packing -------------------------------------------------------------------------------
    async def _packed(self, member: Member, posting: Posting, action: Action) -> Answer:
        # the conditional update is the lock: of two taps (or two packers) exactly one moves on
        if not await Posting.filter(id=posting.id, stage="courier").update(stage="packing", acted_by_id=member.id):
            return await self._stale(member, posting)
        await self._refresh(posting.id)
        intent, _ = await Intent.get_or_create(posting_id=posting.id, kind="ship", key="",
                                               defaults={"member_id": member.id})
        return await self.run_ship(intent)

    async def run_ship(self, intent: Intent) -> Answer:
        posting = await Posting.get(id=intent.posting_id).prefetch_related("seller")
        member = await Member.get_or_none(id=intent.member_id) if intent.member_id else None
        tr = self._tr(member)
        _ = tr.gettext
        intent.attempts += 1
        await intent.save(update_fields=["attempts"])
        client = self._gateway.for_seller(posting.seller)
        try:
            packages = await self._packages(client, posting)
            confirmed = await client.ship_and_confirm(posting.posting_number, packages,
                                                      poll_interval=self._poll_interval)
        except OzonUnavailable as exc:
            await self._intent_error(intent, exc, retry=True)
            return Answer(toast=_("Ozon is not answering. I will keep trying and tell you when it is packed."),
                          alert=True)
        except OzonAuthError as exc:
            await self._intent_error(intent, exc, retry=False)
            await Posting.filter(id=posting.id).update(stage="courier")
            await self._refresh(posting.id)
            return Answer(toast=_("Ozon refused the API key ({reason}). The owner should /connect a new key, "
                                  "then press Packed again.").format(reason=exc.token), alert=True)
        except OzonError as exc:
            await self._intent_error(intent, exc, retry=False)
            return await self._ship_refused(member, posting, exc)
        await self._mark_packed(posting, member, confirmed)
        await Intent.filter(id=intent.id).update(state="done", last_error=None)
        self.schedule_label(posting.id, member.id if member else None, self._label_delay)
        return Answer(toast=_("Packed in Ozon ✅"), replies=[await self._waybill_prompt(member, posting)]
                      if member else [])

    async def _packages(self, client, posting: Posting) -> list[list[tuple[int, int]]]:
        remote = OzonPosting.from_api(posting.snapshot or {"posting_number": posting.posting_number})
        if not remote.products or any(p.sku is None for p in remote.products):
            remote = await client.get_posting(posting.posting_number)
        return [[(p.sku, p.quantity) for p in remote.products if p.sku is not None]]

    async def _ship_refused(self, member: Member | None, posting: Posting, exc: OzonError) -> Answer:
        _ = self._tr(member).gettext
        if exc.token == "POSTING_ALREADY_CANCELLED":
            await Posting.filter(id=posting.id).update(stage="cancelled", status="cancelled")
            await self._refresh(posting.id)
            return Answer(toast=_("Ozon says this order was cancelled. Stop packing it."), alert=True)
        await Posting.filter(id=posting.id).update(stage="courier")
        await self._refresh(posting.id)
        if exc.token in REQUIREMENT_TOKENS:
            text = _("Ozon needs more data before packing ({token}): marking codes, customs (GTD), country or "
                     "weight. Fill it in the Ozon seller cabinet, then press Packed again.")
        elif exc.token == "SHIP_NOT_CONFIRMED":
            text = _("Ozon accepted the request but did not confirm packing. Check the order in the Ozon "
                     "cabinet, then press Packed again.")
        else:
            text = _("Ozon refused to pack the order ({token}). Check it in the Ozon cabinet.")
        return Answer(toast=text.format(token=exc.token), alert=True)

    async def _intent_error(self, intent: Intent, exc: Exception, *, retry: bool) -> None:
        intent.last_error = str(exc)[:500]
        intent.state = "pending" if retry else "failed"
        intent.next_attempt_at = self._clock() + timedelta(seconds=min(300, 5 * 2 ** intent.attempts))
        await intent.save(update_fields=["last_error", "state", "next_attempt_at"])

    async def _mark_packed(self, posting: Posting, member: Member | None, confirmed: OzonPosting) -> None:
        snapshot = dict(posting.snapshot or {})
        snapshot.update({k: v for k, v in confirmed.model_dump(mode="json", exclude_none=True).items()
                         if v not in ("", [], {})})
        await Posting.filter(id=posting.id).update(
            stage="packed", status=confirmed.status or posting.status, substatus=confirmed.substatus or "",
            packed_at=self._clock(), packed_by_id=member.id if member else posting.acted_by_id,
            tracking_number=confirmed.tracking_number or posting.tracking_number, snapshot=snapshot,
            label_state="pending")
        await self._refresh(posting.id)

    # ---- labels --------------------------------------------------------------------------------
    def schedule_label(self, posting_id: int, member_id: int | None, delay: float) -> None:
        task = asyncio.create_task(self._label_after(posting_id, member_id, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _label_after(self, posting_id: int, member_id: int | None, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await self.deliver_label(posting_id, member_id)
        except Exception:  # a background duty must never die silently
            log.exception("label delivery for posting %s failed", posting_id)

    async def deliver_label(self, posting_id: int, member_id: int | None) -> bool:
        posting = await Posting.get(id=posting_id).prefetch_related("seller")
        member = await self._label_recipient(posting, member_id)
        client = self._gateway.for_seller(posting.seller)
        try:
            pdf = await self._fetch_label(client, posting)
        except OzonError as exc:
            log.info("label for %s not available: %s", posting.posting_number, exc.token)
            pdf = None
        if pdf is None:
            await Posting.filter(id=posting_id).update(label_state="failed")
            await self._refresh(posting_id)
            return False
        if member is not None:
            tr = self._tr(member)
            view = View(text=tr.gettext("🏷 Ozon label for {number}").format(number=posting.posting_number),
                        attachment=Attachment(f"label-{posting.posting_number}.pdf", pdf))
            await self._notifier.send(member, view)
        await Posting.filter(id=posting_id).update(label_state="sent")
        await self._refresh(posting_id)
        return True

    async def _label_recipient(self, posting: Posting, member_id: int | None) -> Member | None:
        member = await Member.get_or_none(id=member_id) if member_id else None
        if member is None or member.chat_id is None:
            member = await Member.filter(seller_id=posting.seller_id, chat_id__not_isnull=True) \
                .order_by("id").first()
        return member

    async def _fetch_label(self, client, posting: Posting) -> bytes | None:
        if posting.status == "awaiting_registration":
            fresh = await client.get_posting(posting.posting_number)
            await Posting.filter(id=posting.id).update(status=fresh.status,
                                                      tracking_number=fresh.tracking_number or "")
            if fresh.status == "awaiting_registration":
                return None
        tasks = await client.create_label_task([posting.posting_number])
        if not tasks:
            return None
        await Posting.filter(id=posting.id).update(label_task_id=tasks[0].task_id)
        for _ in range(LABEL_POLLS):
            await asyncio.sleep(self._poll_interval)  # a task is never done the moment it is created
            status = await client.get_label(tasks[0].task_id)
            if status.code == "completed" and status.file_url:
                await Posting.filter(id=posting.id).update(label_url=status.file_url)
                return await client.download(status.file_url)
            if status.code == "error":
                return None
        return None

    async def _label_now(self, member: Member, posting: Posting, action: Action) -> Answer:
        tr = self._tr(member)
        if posting.stage not in ("packed", "handed_over"):
            return await self._stale(member, posting)
        ok = await self.deliver_label(posting.id, member.id)
        return Answer(toast=tr.gettext("Label sent.") if ok else
                      tr.gettext("Ozon has not prepared the label yet. Try again in a minute."))

    # ---- waybill and tracking ------------------------------------------------------------------
    async def _waybill_prompt(self, member: Member, posting: Posting) -> View:
        await PendingInput.update_or_create(defaults={"posting_id": posting.id, "kind": "waybill", "value": None},
                                            member=member)
        tr = self._tr(member)
        return View(text=tr.gettext("✍️ Waybill number for {number} ({courier}): type it, or send a photo of the "
                                    "waybill.").format(number=posting.posting_number,
                                                       courier=courier_name(tr, posting.courier)),
                    ask_reply=True)

    async def _ask_waybill(self, member: Member, posting: Posting, action: Action) -> Answer:
        if posting.stage not in ("packed", "handed_over"):
            return await self._stale(member, posting)
        return Answer(replies=[await self._waybill_prompt(member, posting)])

    async def _confirm_waybill(self, member: Member, posting: Posting, action: Action) -> Answer:
        pending = await PendingInput.get_or_none(member=member, posting_id=posting.id, kind="confirm")
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
            pending.kind, pending.value = "confirm", check.number
            await pending.save()
            view = View(
                text=tr.gettext("{number} does not look like a {courier} number. Use it anyway?").format(
                    number=check.number, courier=courier_name(tr, posting.courier)),
                buttons=((Button(tr.gettext("Yes, use it"), self._notifier.cards.action("y", posting)),),
                         (Button(tr.gettext("No, type it again"), self._notifier.cards.action("w", posting)),)))
            return Answer(replies=[view])
        return await self._record_waybill(member, posting, check.number)

    async def _record_waybill(self, member: Member, posting: Posting, number: str) -> Answer:
        tr = self._tr(member)
        _ = tr.gettext
        await PendingInput.filter(member=member).delete()
        await Posting.filter(id=posting.id).update(waybill=number, acted_by_id=member.id)
        if posting.flow not in SELLER_TRACKED_FLOWS:
            await Posting.filter(id=posting.id).update(stage="handed_over")
            await self._refresh(posting.id)
            return Answer(toast=_("Saved."), replies=[View(text=_(
                "🚚 {courier} {number} saved as the first-mile record of {posting}. Ozon's partner owns the "
                "tracking of this order, so nothing was sent to Ozon.").format(
                courier=courier_name(tr, posting.courier), number=number, posting=posting.posting_number))])
        intent, _created = await Intent.get_or_create(posting_id=posting.id, kind="tracking", key=number,
                                                      defaults={"member_id": member.id})
        return await self.run_tracking(intent)

    async def run_tracking(self, intent: Intent) -> Answer:
        """non_integrated: set the tracking number, then move to delivering, each gated and confirmed."""
        posting = await Posting.get(id=intent.posting_id).prefetch_related("seller")
        member = await Member.get_or_none(id=intent.member_id) if intent.member_id else None
        _ = self._tr(member).gettext
        number = intent.key
        client = self._gateway.for_seller(posting.seller)
        intent.attempts += 1
        await intent.save(update_fields=["attempts"])
        try:
            remote = OzonPosting.from_api(posting.snapshot or {"posting_number": posting.posting_number})
            if "set_track_number" not in remote.available_actions:
                remote = await client.get_posting(posting.posting_number)
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
            await Intent.filter(id=intent.id).update(state="done", last_error=None)
            await Posting.filter(id=posting.id).update(tracking_number=number, stage="handed_over")
            moved = await self._move_to_delivering(client, posting, remote, member)
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
        if moved:
            text += "\n" + _("The order is now in delivery.")
        return Answer(toast=_("Sent to Ozon ✅"), replies=[View(text=text)])

    async def _move_to_delivering(self, client, posting: Posting, remote: OzonPosting,
                                  member: Member | None) -> bool:
        if remote.status != "awaiting_deliver" or "non_int_delivering" not in remote.available_actions:
            return False
        intent, _ = await Intent.get_or_create(posting_id=posting.id, kind="delivering", key="",
                                               defaults={"member_id": member.id if member else None})
        if intent.state == "done":
            return True
        results = await client.move_to_delivering([posting.posting_number])
        if not results or not all(r.result for r in results):
            await self._intent_error(intent, RuntimeError(",".join(r.error for r in results) or "no result"),
                                     retry=False)
            return False
        fresh = await client.get_posting(posting.posting_number)
        await Posting.filter(id=posting.id).update(status=fresh.status or "delivering")
        await Intent.filter(id=intent.id).update(state="done", last_error=None)
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

    # ---- open / restart ------------------------------------------------------------------------
    async def _open(self, member: Member, posting: Posting, action: Action) -> Answer:
        seller = await Seller.get(id=posting.seller_id)
        view = await self._notifier.render_card(posting, member, seller)
        ref = await self._notifier.send(member, view)
        if ref:
            await AlertMessage.update_or_create(defaults={"message_ref": ref}, posting=posting, member=member)
        return Answer()

    async def resume(self) -> int:
        """After a restart: finish every intent that was started and not completed, fetch owed labels."""
        resumed = 0
        for intent in await Intent.filter(state="pending").order_by("id"):
            resumed += 1
            try:
                answer = await (self.run_ship(intent) if intent.kind == "ship" else
                                self.run_tracking(intent) if intent.kind == "tracking" else asyncio.sleep(0))
            except Exception:
                log.exception("resuming intent %s failed", intent.id)
                continue
            member = await Member.get_or_none(id=intent.member_id) if intent.member_id else None
            if member is not None and isinstance(answer, Answer):
                for view in answer.replies:
                    await self._notifier.send(member, view)
        for posting in await Posting.filter(label_state="pending", stage__in=("packed", "handed_over")):
            self.schedule_label(posting.id, posting.packed_by_id, 0)
        return resumed

    async def drain(self, timeout: float) -> None:
        """Waits for background label deliveries (the demo lets the last one arrive before exiting)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- helpers -------------------------------------------------------------------------------
    def _tr(self, member: Member | None):
        catalogs = self._notifier.catalogs
        return catalogs.translator(member.locale if member else None, member.timezone if member else None)

    async def _refresh(self, posting_id: int) -> None:
        await self._notifier.refresh(await Posting.get(id=posting_id))
