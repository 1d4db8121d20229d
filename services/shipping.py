"""The shipping workflow: courier → packed (Ozon ship) → label → waybill → tracking, by the posting's flow."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta

from tortoise.transactions import in_transaction

from services.actions import Action
from services.cancellations import Cancellations, open_request_blocks
from services.cards import CardCopies, courier_name
from services.channels import Channels
from services.commands import spelled
from services.i18n import Catalogs
from services.lease import Lease
from services.outbox import Outbox
from services.ozon.errors import OzonAuthError, OzonError, OzonUnavailable
from services.ozon.models import Posting as OzonPosting
from services.sellers import OzonGateway
from services.storage.models import AlertMessage, Intent, Member, Posting, Seller
from services.storage.states import (
    AFTER_PACKING,
    AWAITING_PACKAGING,
    AWAITING_REGISTRATION,
    CANCELLED_STATUSES,
    CHOOSING_STAGES,
    PEOPLE,
    UNPACKED_STATUSES,
    IntentKind,
    IntentState,
    LabelState,
    Stage,
)
from services.tracking import TrackingSteps
from services.views import Answer, Attachment, Button, View

log = logging.getLogger(__name__)

REQUIREMENT_TOKENS = frozenset({"EXEMPLAR_INFO_NOT_FILLED_COMPLETELY", "WEIGHT_IS_REQUIRED", "MANDATORY_MARK_REDUNDANT",
                                "EXEMPLAR_INFO_ALREADY_DEFINED", "HAS_INCORRECT_PRODUCT_QUANTITY",
                                "UNKNOWN_PRODUCT_DEFINED", "UNKNOW_PRODUCT"})
LABEL_POLLS = 10
LABEL_RETRY_FIRST = 30  # seconds after a late label before the retry job asks again
PROGRESS_EDIT_AFTER = 0.7  # seconds of waiting on Ozon's ship before the cards say "packing"


class Shipping(TrackingSteps):
    def __init__(self, *, gateway: OzonGateway, channels: Channels, cards: CardCopies, catalogs: Catalogs,
                 lease: Lease, outbox: Outbox, clock: Callable[[], datetime], label_delay: float,
                 poll_interval: float = 1.0, watch: Callable[[Posting, str], Awaitable[object]] | None = None):
        """`watch(posting, number)`: a recorded domestic waybill is handed to the first-mile watch."""
        self._gateway = gateway
        self._channels = channels
        self._cards = cards
        self._catalogs = catalogs
        self._lease = lease
        self._outbox = outbox
        self._clock = clock
        self._label_delay = label_delay
        self._poll_interval = poll_interval
        self._watch = watch
        self._tasks: set[asyncio.Task] = set()

    # ---- authorisation -------------------------------------------------------------------------
    async def authorize(self, member: Member | None, posting_id: int) -> Posting | None:
        """The posting, only if the member is a person on the desk of the seller who owns it."""
        if member is None or member.role not in PEOPLE:
            return None
        return await Posting.get_or_none(id=posting_id, seller_id=member.seller_id)

    async def press(self, member: Member | None, action: Action | None, *, locale: str | None = None) -> Answer:
        """`locale` is the presser's language when they are on no desk (so even a refusal is understood)."""
        tr = self._tr(member) if member else self._catalogs.translator(locale)
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
        updated = await Posting.filter(id=posting.id, stage__in=CHOOSING_STAGES,
                                       status=AWAITING_PACKAGING).update(
            courier=action.arg, stage=Stage.COURIER, acted_by_id=member.id)
        if not updated:
            return await self._stale(member, posting)
        await self._refresh(posting.id)
        return Answer(toast=tr.gettext("Courier: {courier}").format(courier=courier_name(tr, action.arg)))

    async def _change_courier(self, member: Member, posting: Posting, action: Action) -> Answer:
        if not await Posting.filter(id=posting.id, stage=Stage.COURIER).update(stage=Stage.NEW, courier=None):
            return await self._stale(member, posting)
        await self._refresh(posting.id)
        return Answer()

    async def _stale(self, member: Member, posting: Posting) -> Answer:
        """A press on an outdated card (someone else acted first): say who, show the current state."""
        tr = self._tr(member)
        await self._refresh(posting.id)
        fresh = await Posting.get(id=posting.id)
        if fresh.stage == Stage.CANCELLED:
            return Answer(toast=tr.gettext("This order was cancelled. Stop packing it."), alert=True)
        if fresh.stage == Stage.PACKING:
            return Answer(toast=tr.gettext("Packing is already in progress."))
        if fresh.stage in AFTER_PACKING:
            who = await Member.get_or_none(id=fresh.packed_by_id) if fresh.packed_by_id else None
            return Answer(toast=tr.gettext("Already packed by {who}.").format(who=who.name if who else "—"))
        return Answer(toast=tr.gettext("This card was out of date and has been refreshed."))

    # ---- packing -------------------------------------------------------------------------------
    async def _packed(self, member: Member, posting: Posting, action: Action) -> Answer:
        if action.arg != "sure" and open_request_blocks(posting, await Cancellations.of_posting(posting.id)):
            tr = self._tr(member)
            button = Button(tr.gettext("Pack anyway"), self._cards.renderer.action("p", posting, "sure"))
            return Answer(replies=[View(text=tr.gettext(
                "⚠️ The buyer asked to cancel {number} and nobody has decided yet. Pack it anyway?").format(
                number=posting.posting_number), buttons=((button,),))])
        # the conditional update is the lock: of two taps (or two packers) exactly one moves on. The intent is
        # written in the same transaction, so no crash leaves a posting "packing" with nothing to finish it.
        async with in_transaction() as conn:
            if not await Posting.filter(id=posting.id, stage=Stage.COURIER).using_db(conn).update(
                    stage=Stage.PACKING, acted_by_id=member.id):
                intent = None
            else:
                intent = await self._own_intent(conn, posting.id, IntentKind.SHIP, "", member)
        if intent is None:
            return await self._stale(member, posting)
        # the card shows "packing" only when Ozon is slow: on a quick answer the one edit shows "packed"
        progress = self._after(PROGRESS_EDIT_AFTER, self._refresh(posting.id))
        try:
            return await self.run_ship(intent, member)
        finally:
            progress.cancel()

    async def _own_intent(self, conn, posting_id: int, kind: IntentKind, key: str, member: Member) -> Intent:
        """The intent, created or re-opened, claimed by this process (the caller holds the posting's lock)."""
        claim = {"state": IntentState.PENDING, "claimed_by": self._lease.owner,
                 "next_attempt_at": self._lease.expiry(), "member_id": member.id}
        intent, created = await Intent.get_or_create(posting_id=posting_id, kind=kind, key=key, defaults=claim,
                                                     using_db=conn)
        if not created:
            await Intent.filter(id=intent.id).using_db(conn).update(**claim)
            await intent.refresh_from_db(using_db=conn)
        return intent

    async def run_intent(self, intent: Intent, *, ignore_backoff: bool = False) -> Answer | None:
        """Runs an intent found pending (a restart, a retry), if no live process is running it."""
        if not await self._lease.claim_intent(intent.id, ignore_backoff=ignore_backoff):
            return None
        intent = await Intent.get(id=intent.id)
        runner = {IntentKind.SHIP: self.run_ship, IntentKind.TRACKING: self.run_tracking,
                  IntentKind.DELIVERING: self.run_delivering}.get(intent.kind)
        if runner is None:
            await Intent.filter(id=intent.id).update(state=IntentState.FAILED, claimed_by=None,
                                                     last_error="unknown kind")
            return None
        return await runner(intent)

    async def run_ship(self, intent: Intent, member: Member | None = None) -> Answer:
        """`member`: the presser, when the press itself runs the intent (a resumed intent reads it). An error
        of our own (the database, a surprising payload) releases the intent and gives the buttons back (M6)."""
        with self._lease.running(intent.id):
            try:
                return await self._run_ship(intent, member)
            except Exception as exc:
                log.exception("ship intent %s failed unexpectedly", intent.id)
                await self._intent_error(intent, exc, retry=False)
                await Posting.filter(id=intent.posting_id, stage=Stage.PACKING).update(stage=Stage.COURIER)
                await self._refresh(intent.posting_id)
                tr = self._tr(member)
                return Answer(toast=tr.gettext(
                    "Something went wrong on our side while packing ({error}). Press Packed again: if Ozon did "
                    "pack it, the bot sees that and does not pack it twice.").format(error=type(exc).__name__),
                    alert=True)

    async def _run_ship(self, intent: Intent, member: Member | None) -> Answer:
        posting = await Posting.get(id=intent.posting_id).select_related("seller")
        if member is None or member.id != intent.member_id:
            member = await Member.get_or_none(id=intent.member_id) if intent.member_id else None
        tr = self._tr(member)
        _ = tr.gettext
        resumed = intent.attempts > 0
        intent.attempts += 1
        await intent.save(update_fields=["attempts"])
        client = self._gateway.for_seller(posting.seller)
        try:
            confirmed = await self._already_packed(client, posting) if resumed else None
            if confirmed is None:
                packages = await self._packages(client, posting)
                confirmed = await client.ship_and_confirm(posting.posting_number, packages,
                                                          poll_interval=self._poll_interval)
        except OzonUnavailable as exc:
            await self._intent_error(intent, exc, retry=True)
            return Answer(toast=_("Ozon is not answering. I will keep trying and tell you when it is packed."),
                          alert=True)
        except OzonAuthError as exc:
            await self._intent_error(intent, exc, retry=False)
            await Posting.filter(id=posting.id).update(stage=Stage.COURIER)
            await self._refresh(posting.id)
            return Answer(toast=_("Ozon refused the API key ({reason}). The owner should connect a new key with "
                                  "{connect}, then press Packed again.").format(
                reason=exc.token, connect=spelled(member.channel, tr.locale)["connect"]), alert=True)
        except OzonError as exc:
            await self._intent_error(intent, exc, retry=False)
            return await self._ship_refused(member, posting, exc)
        await self._mark_packed(posting, member, confirmed)
        await Intent.filter(id=intent.id).update(state=IntentState.DONE, last_error=None, claimed_by=None)
        self.schedule_label(posting.id, member.id if member else None, self._label_delay)
        return Answer(toast=_("Packed in Ozon ✅"), replies=[await self._waybill_prompt(member, posting)]
                      if member else [])

    async def _already_packed(self, client, posting: Posting) -> OzonPosting | None:
        """A resumed ship first asks Ozon: if the earlier attempt did pack it, nothing is sent again."""
        remote = await client.get_posting(posting.posting_number)
        if remote.status and remote.status not in UNPACKED_STATUSES | CANCELLED_STATUSES:
            log.info("ship of %s was done before the restart; not sent again", posting.posting_number)
            return remote
        return None

    async def _packages(self, client, posting: Posting) -> list[list[tuple[int, int]]]:
        remote = OzonPosting.from_api(posting.snapshot or {"posting_number": posting.posting_number})
        if not remote.products or any(p.sku is None for p in remote.products):
            remote = await client.get_posting(posting.posting_number)
        return [[(p.sku, p.quantity) for p in remote.products if p.sku is not None]]

    async def _ship_refused(self, member: Member | None, posting: Posting, exc: OzonError) -> Answer:
        _ = self._tr(member).gettext
        if exc.token == "POSTING_ALREADY_CANCELLED":
            await Posting.filter(id=posting.id).update(stage=Stage.CANCELLED, status="cancelled")
            await self._refresh(posting.id)
            return Answer(toast=_("Ozon says this order was cancelled. Stop packing it."), alert=True)
        await Posting.filter(id=posting.id).update(stage=Stage.COURIER)
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
        await Intent.filter(id=intent.id).update(
            last_error=str(exc)[:500], state=IntentState.PENDING if retry else IntentState.FAILED, claimed_by=None,
            next_attempt_at=self._clock() + timedelta(seconds=min(300, 5 * 2 ** intent.attempts)))

    async def _mark_packed(self, posting: Posting, member: Member | None, confirmed: OzonPosting) -> None:
        snapshot = dict(posting.snapshot or {})
        snapshot.update({k: v for k, v in confirmed.model_dump(mode="json", exclude_none=True).items()
                         if v not in ("", [], {})})
        await Posting.filter(id=posting.id).update(
            stage=Stage.PACKED, status=confirmed.status or posting.status, substatus=confirmed.substatus or "",
            packed_at=self._clock(), packed_by_id=member.id if member else posting.acted_by_id,
            tracking_number=confirmed.tracking_number or posting.tracking_number, snapshot=snapshot,
            label_state=LabelState.PENDING)
        await self._refresh(posting.id)

    # ---- labels --------------------------------------------------------------------------------
    def schedule_label(self, posting_id: int, member_id: int | None, delay: float) -> None:
        self._keep(asyncio.create_task(self._label_after(posting_id, member_id, delay)))

    def _keep(self, task: asyncio.Task) -> asyncio.Task:
        """Background work stays referenced (a bare task may be collected mid-run) and is cancelled by close()."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _after(self, delay: float, work: Coroutine) -> asyncio.Task:
        async def later() -> None:
            await asyncio.sleep(delay)
            await work

        def never_started(task: asyncio.Task) -> None:
            if task.cancelled():
                work.close()  # cancelled before its time: the coroutine never ran

        task = self._keep(asyncio.create_task(later()))
        task.add_done_callback(never_started)
        return task

    async def _label_after(self, posting_id: int, member_id: int | None, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            delivered = await self.deliver_label(posting_id, member_id)
        except Exception:  # a background duty must never die silently
            log.exception("label delivery for posting %s failed", posting_id)
            delivered = False
        if not delivered:  # Ozon is late with the label: the retry job takes it from here, with backoff
            await Intent.get_or_create(posting_id=posting_id, kind=IntentKind.LABEL, key="", defaults={
                "member_id": member_id, "next_attempt_at": self._clock() + timedelta(seconds=LABEL_RETRY_FIRST)})

    async def deliver_label(self, posting_id: int, member_id: int | None) -> bool:
        posting = await Posting.get(id=posting_id).select_related("seller")
        member = await self._label_recipient(posting, member_id)
        client = self._gateway.for_seller(posting.seller)
        try:
            pdf = await self._fetch_label(client, posting)
        except OzonError as exc:
            log.info("label for %s not available: %s", posting.posting_number, exc.token)
            pdf = None
        if pdf is None:
            await Posting.filter(id=posting_id).update(label_state=LabelState.FAILED)
            await self._refresh(posting_id)
            return False
        if member is not None:
            tr = self._tr(member)
            # the button names the posting: a channel that cannot carry files (the Official Account) sends
            # its link instead, and the card's page offers the label for download
            view = View(text=tr.gettext("🏷 Ozon label for {number}").format(number=posting.posting_number),
                        attachment=Attachment(f"label-{posting.posting_number}.pdf", pdf),
                        buttons=((Button(tr.gettext("Open the order card"), self._cards.renderer.action("o", posting)),),))
            try:
                await self._channels.send(member, view)
            except Exception as exc:  # the chat refused the file: not delivered, the retry job tries again
                log.warning("label for %s could not be sent to member %s: %s", posting.posting_number, member.id,
                            type(exc).__name__)
                await Posting.filter(id=posting_id).update(label_state=LabelState.FAILED)
                await self._refresh(posting_id)
                return False
        await Posting.filter(id=posting_id).update(label_state=LabelState.SENT)
        await Intent.filter(posting_id=posting_id, kind=IntentKind.LABEL, state=IntentState.PENDING).update(
            state=IntentState.DONE, last_error=None, claimed_by=None)
        await self._refresh(posting_id)
        return True

    async def label_pdf(self, member: Member | None, posting_id: int) -> bytes | None:
        """The label as a file for someone on the posting's desk (the action page's download), or None
        when it is not theirs, not packed yet, or Ozon has not prepared it."""
        posting = await self.authorize(member, posting_id)
        if posting is None or posting.stage not in AFTER_PACKING:
            return None
        posting = await Posting.get(id=posting.id).select_related("seller")
        try:
            return await self._fetch_label(self._gateway.for_seller(posting.seller), posting)
        except OzonError as exc:
            log.info("label for %s not available: %s", posting.posting_number, exc.token)
            return None

    async def _label_recipient(self, posting: Posting, member_id: int | None) -> Member | None:
        member = await Member.get_or_none(id=member_id) if member_id else None
        if member is None or member.chat_id is None:
            member = await Member.filter(seller_id=posting.seller_id, chat_id__not_isnull=True) \
                .order_by("id").first()
        return member

    async def _fetch_label(self, client, posting: Posting) -> bytes | None:
        if posting.status == AWAITING_REGISTRATION:
            fresh = await client.get_posting(posting.posting_number)
            await Posting.filter(id=posting.id).update(status=fresh.status,
                                                      tracking_number=fresh.tracking_number or "")
            if fresh.status == AWAITING_REGISTRATION:
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
        if posting.stage not in AFTER_PACKING:
            return await self._stale(member, posting)
        ok = await self.deliver_label(posting.id, member.id)
        return Answer(toast=tr.gettext("Label sent.") if ok else
                      tr.gettext("Ozon has not prepared the label yet. Try again in a minute."))

    # ---- open / restart ------------------------------------------------------------------------
    async def _open(self, member: Member, posting: Posting, action: Action) -> Answer:
        seller = await Seller.get(id=posting.seller_id)
        view = await self._cards.render(posting, member, seller)
        ref = await self._channels.send(member, view)
        if ref:
            await AlertMessage.update_or_create(defaults={"message_ref": ref}, posting=posting, member=member)
        return Answer()

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
        catalogs = self._catalogs
        return catalogs.translator(member.locale if member else None, member.timezone if member else None)

    async def _refresh(self, posting_id: int) -> None:
        await self._cards.refresh(posting_id)
