"""Buyers' rFBS cancellation requests: polled from Ozon (there is no push), told to the desk once as a card with
the buyer's reason and the time left before Ozon approves it by itself, decided by the owner through an intent
(approve, or reject with a reason), reminded before the auto-approval, and the outcome shown on every copy of
the request's card and of the posting's card."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from services.actions import Action, ActionCodec
from services.channels import Channels
from services.i18n import N_, Catalogs, Translator
from services.lease import Lease
from services.orders import OrderSync
from services.ozon.errors import OzonError
from services.ozon.models import CancellationRequest
from services.ozon.models import CancellationState as Ozon
from services.sellers import OzonGateway
from services.storage.models import (
    CancelCard,
    CancelRequest,
    Event,
    Intent,
    Member,
    PendingInput,
    Posting,
    Seller,
)
from services.storage.states import (
    FINAL_STATUSES,
    CancelState,
    EventKind,
    IntentKind,
    IntentState,
    PendingKind,
    Role,
)
from services.views import Answer, Button, View

log = logging.getLogger(__name__)

VERB = "k"  # the ActionCodec letter of a decision button: arg a (approve), r (reject: ask why), r1/r2 (a reason)
CANCEL_EVENTS = frozenset({EventKind.CANCEL_ASKED, EventKind.CANCEL_REMIND, EventKind.CANCEL_DECIDED})
# the reasons offered on the buttons, sent to Ozon in Russian (Ozon reads them); a typed reason goes as typed
REASONS = {
    "r1": (N_("Already handed to the carrier"), "Заказ уже передан в службу доставки"),
    "r2": (N_("The buyer agreed to keep the order"), "Покупатель согласился получить заказ"),
}
OUTCOME_WORDS = {
    CancelState.APPROVED: N_("✅ Cancellation approved by {who}: Ozon cancels the order and refunds the buyer."),
    CancelState.REJECTED: N_("🚫 Cancellation rejected by {who} ({comment}): the order stays, ship it."),
    CancelState.AUTO_APPROVED: N_("⌛ Nobody answered in time: Ozon approved the cancellation. Do not ship it."),
}


class Cancellations:
    def __init__(self, *, gateway: OzonGateway, sync: OrderSync, channels: Channels, catalogs: Catalogs,
                 codec: ActionCodec, lease: Lease, clock: Callable[[], datetime],
                 on_events: Callable[[], Awaitable[object]], poll_every: timedelta, remind_before: timedelta):
        self._gateway = gateway
        self._sync = sync
        self._channels = channels
        self._catalogs = catalogs
        self._codec = codec
        self._lease = lease
        self._clock = clock
        self._on_events = on_events
        self._poll_every = poll_every
        self._remind_before = remind_before
        self._polled: dict[int, datetime] = {}  # seller id -> last read (a restart reads at once)

    # ---- reading Ozon --------------------------------------------------------------------------
    async def poll(self, seller: Seller, *, force: bool = False) -> int:
        """With the orders, at most every `poll_every`: new ON_APPROVAL requests, and the outcome of the open
        ones Ozon no longer lists (decided in the cabinet, or auto-approved). Returns the events created."""
        now = self._clock()
        last = self._polled.get(seller.id)
        if not force and last is not None and now - last < self._poll_every:
            return 0
        self._polled[seller.id] = now
        client = self._gateway.for_seller(seller)
        asked = await client.cancellation_requests(state=Ozon.ON_APPROVAL)
        created = 0
        for request in asked:
            created += await self._take(seller, client, request)
        listed = {r.cancellation_id for r in asked}
        gone = await CancelRequest.filter(seller=seller, state=CancelState.OPEN) \
            .exclude(cancellation_id__in=listed).prefetch_related("posting")
        if gone:
            numbers = sorted({row.posting.posting_number for row in gone})
            outcomes = {r.cancellation_id: r for r in
                        await client.cancellation_requests(state=Ozon.ALL, posting_numbers=numbers)}
            for row in gone:
                remote = outcomes.get(row.cancellation_id)
                if remote is None or remote.state == Ozon.ON_APPROVAL:
                    continue
                if await Intent.filter(posting_id=row.posting_id, kind=IntentKind.CANCEL_DECISION,
                                       key=str(row.cancellation_id), state=IntentState.PENDING).exists():
                    continue  # our own decision is in flight: it settles the request itself
                state = CancelState.REJECTED if remote.state == Ozon.REJECTED else CancelState.AUTO_APPROVED
                created += await self._settle(row, state, None, remote.approve_comment)
        if created:
            await self._on_events()
        return created

    async def _take(self, seller: Seller, client, remote: CancellationRequest) -> int:
        posting = await Posting.get_or_none(seller=seller, posting_number=remote.posting_number)
        if posting is None:  # a request for a posting the desk has not seen yet: read it first
            try:
                await self._sync.ingest(seller, [await client.get_posting(remote.posting_number)])
            except OzonError as exc:
                log.info("cancellation %s: posting %s unreadable (%s)", remote.cancellation_id,
                         remote.posting_number, exc)
                return 0
            posting = await Posting.get_or_none(seller=seller, posting_number=remote.posting_number)
            if posting is None:
                return 0
        defaults = {"posting": posting, "reason": remote.reason[:255], "message": remote.cancellation_reason_message,
                    "auto_approve_at": remote.auto_approve_date}
        try:
            _, created = await CancelRequest.get_or_create(seller=seller, cancellation_id=remote.cancellation_id,
                                                           defaults=defaults)
        except IntegrityError:
            return 0  # another process took it in first
        if not created:
            return 0
        _, made = await Event.get_or_create(posting=posting, kind=EventKind.CANCEL_ASKED,
                                            key=str(remote.cancellation_id))
        return int(made)

    async def _settle(self, row: CancelRequest, state: CancelState, member: Member | None, comment: str) -> int:
        """The request's outcome, once: every copy of both cards hears of it through one event."""
        if not await CancelRequest.filter(id=row.id, state=CancelState.OPEN).update(
                state=state, decided_by_id=member.id if member else None, comment=comment or ""):
            return 0
        await PendingInput.filter(posting_id=row.posting_id, kind=PendingKind.CANCEL_REASON).delete()
        _, made = await Event.get_or_create(posting_id=row.posting_id, kind=EventKind.CANCEL_DECIDED,
                                            key=str(row.cancellation_id), defaults={"payload": {"state": state}})
        return int(made)

    # ---- the reminder before Ozon approves by itself -------------------------------------------
    async def run_due(self) -> int:
        horizon = self._clock() + self._remind_before
        created = 0
        for row in await CancelRequest.filter(state=CancelState.OPEN, auto_approve_at__lte=horizon):
            _, made = await Event.get_or_create(posting_id=row.posting_id, kind=EventKind.CANCEL_REMIND,
                                                key=str(row.cancellation_id))
            created += made
        if created:
            await self._on_events()
        return created

    # ---- what the desk sees --------------------------------------------------------------------
    @staticmethod
    async def of_posting(posting_id: int) -> CancelRequest | None:
        """The posting's latest request (open, or its outcome), for its card."""
        return await CancelRequest.filter(posting_id=posting_id).prefetch_related("decided_by").order_by("-id").first()

    def decision_buttons(self, tr: Translator, posting: Posting, request: CancelRequest | None,
                         member: Member) -> tuple[tuple[Button, ...], ...]:
        return decision_buttons(tr, self._codec, posting, request, member)

    async def view(self, event: Event, posting: Posting, member: Member, seller: Seller) -> View | None:
        """The message of a cancellation event for one member; None when it no longer applies."""
        request = await CancelRequest.filter(seller_id=seller.id, cancellation_id=int(event.key)) \
            .prefetch_related("decided_by").first()
        if request is None:
            return None
        tr = self._catalogs.for_member(member, seller)
        if event.kind == EventKind.CANCEL_REMIND:
            if request.state != CancelState.OPEN:
                return None
            text = tr.gettext("⏰ Nobody answered the buyer's cancellation of {number} yet: Ozon approves it "
                              "by itself in {left}.").format(number=posting.posting_number,
                                                             left=self._left(tr, request))
            return View(text=text, buttons=self.decision_buttons(tr, posting, request, member))
        if event.kind == EventKind.CANCEL_ASKED:
            return self.card(tr, posting, request, member)
        return None  # the outcome edits the cards; it is not a message of its own

    def card(self, tr: Translator, posting: Posting, request: CancelRequest, member: Member) -> View:
        # the first line is a WeCom card's title (36 characters): short, with the number
        lines = [tr.gettext("🛑 Cancel request {number}").format(number=posting.posting_number),
                 tr.gettext("The buyer asked to cancel this order."),
                 tr.gettext("Reason: {reason}").format(reason=_reason(request))]
        if request.state == CancelState.OPEN:
            lines.append(tr.gettext("Auto-approved in {left} ({time}) if nobody answers.").format(
                left=self._left(tr, request), time=tr.local_time(request.auto_approve_at)))
            if member.role != Role.OWNER:
                lines.append(tr.gettext("Do not pack it until the owner decides."))
        else:
            lines.append(outcome(tr, request))
        # every copy carries a button, so every surface keeps it editable (a WeCom text message is not) and
        # the Official Account links it to the action page, which shows the posting's card with the decision
        buttons = self.decision_buttons(tr, posting, request, member) or \
            ((Button(tr.gettext("Open the order card"), self._codec.encode("o", posting.id)),),)
        return View(text="\n".join(lines), buttons=buttons)

    def _left(self, tr: Translator, request: CancelRequest) -> str:
        return time_left(tr, request, self._clock())

    async def record(self, event: Event, member: Member, ref: str) -> None:
        """The chat message of a request card, so its outcome can edit it."""
        request = await CancelRequest.get_or_none(posting_id=event.posting_id, cancellation_id=int(event.key))
        if request is not None and ref:
            await CancelCard.update_or_create(defaults={"message_ref": ref}, request=request, member=member)

    async def refresh(self, event: Event) -> None:
        """Edits every copy of the request's card to its current state."""
        request = await CancelRequest.filter(posting_id=event.posting_id, cancellation_id=int(event.key)) \
            .prefetch_related("decided_by").first()
        if request is None:
            return
        posting = await Posting.get(id=request.posting_id).select_related("seller")
        for copy in await CancelCard.filter(request=request).select_related("member"):
            member = copy.member
            if not self._channels.has(member.channel):
                continue
            view = self.card(self._catalogs.for_member(member, posting.seller), posting, request, member)
            try:
                await self._channels.edit(member, copy.message_ref, view)
            except Exception as exc:
                log.info("edit of cancellation card %s for member %s failed: %s", request.id, member.id, exc)

    # ---- the owner decides ---------------------------------------------------------------------
    async def press(self, member: Member | None, action: Action) -> Answer:
        tr = self._catalogs.translator(member.locale if member else None, member.timezone if member else None)
        posting = await Posting.get_or_none(id=action.posting_id, seller_id=member.seller_id) if member else None
        if posting is None or member.role not in (Role.OWNER, Role.PACKER):
            return Answer(toast=tr.gettext("This button is not for you: the order belongs to another desk."),
                          alert=True)
        if member.role != Role.OWNER:
            return Answer(toast=tr.gettext("Only the desk owner decides on a cancellation."), alert=True)
        request = await CancelRequest.filter(posting=posting, state=CancelState.OPEN).order_by("-id").first()
        if request is None:
            return await self._decided(tr, posting)
        if action.arg == "a":
            return await self._decide(member, posting, request, "approve", "")
        if action.arg in REASONS:
            return await self._decide(member, posting, request, "reject", REASONS[action.arg][1])
        if action.arg == "r":
            await PendingInput.update_or_create(defaults={"posting": posting, "kind": PendingKind.CANCEL_REASON,
                                                          "value": None}, member=member)
            buttons = tuple((Button(tr.gettext(label), self._codec.encode(VERB, posting.id, code)),)
                            for code, (label, _) in REASONS.items())
            return Answer(replies=[View(text=tr.gettext(
                "Why do you refuse the cancellation of {number}? Choose a reason or type your own (Ozon shows it "
                "to the buyer).").format(number=posting.posting_number), buttons=buttons, ask_reply=True)])
        return Answer(toast=tr.gettext("This button is no longer used."))

    async def submit_reason(self, member: Member, text: str) -> Answer | None:
        """A typed reason for a rejection the owner started; None when no reason is awaited."""
        pending = await PendingInput.get_or_none(member=member, kind=PendingKind.CANCEL_REASON)
        if pending is None:
            return None
        await PendingInput.filter(member=member, kind=PendingKind.CANCEL_REASON).delete()
        posting = await Posting.get(id=pending.posting_id)
        request = await CancelRequest.filter(posting=posting, state=CancelState.OPEN).order_by("-id").first()
        tr = self._catalogs.for_member(member, await Seller.get(id=member.seller_id))
        if request is None:
            return await self._decided(tr, posting)
        answer = await self._decide(member, posting, request, "reject", text.strip()[:500])
        return Answer(replies=[View(text=answer.toast)] + answer.replies) if answer.toast else answer

    async def _decided(self, tr: Translator, posting: Posting) -> Answer:
        latest = await CancelRequest.filter(posting=posting).prefetch_related("decided_by").order_by("-id").first()
        if latest is None:
            return Answer(toast=tr.gettext("This card was out of date and has been refreshed."))
        return Answer(toast=outcome(tr, latest), alert=True)

    async def _decide(self, member: Member, posting: Posting, request: CancelRequest, decision: str,
                      comment: str) -> Answer:
        """The decision is an intent, one per request: a second tap, a second owner or a second process finds it
        and sends nothing."""
        tr = self._catalogs.for_member(member, await Seller.get(id=member.seller_id))
        claim = {"state": IntentState.PENDING, "claimed_by": self._lease.owner, "next_attempt_at": self._lease.expiry(),
                 "member_id": member.id, "payload": {"decision": decision, "comment": comment}}
        try:
            async with in_transaction() as conn:
                intent, created = await Intent.get_or_create(posting_id=posting.id, kind=IntentKind.CANCEL_DECISION,
                                                             key=str(request.cancellation_id), defaults=claim,
                                                             using_db=conn)
        except IntegrityError:
            created = False
        if not created:
            return Answer(toast=tr.gettext("This cancellation is already being decided."), alert=True)
        return await self.run_decision(intent, member)

    async def run_intent(self, intent: Intent, *, ignore_backoff: bool = False) -> Answer | None:
        """A decision left unfinished (a restart, Ozon unreachable), if no live process runs it."""
        if not await self._lease.claim_intent(intent.id, ignore_backoff=ignore_backoff):
            return None
        return await self.run_decision(await Intent.get(id=intent.id))

    async def run_decision(self, intent: Intent, member: Member | None = None) -> Answer:
        """Sends the decision once. A run after one that may have reached Ozon (a restart, a timeout) reads the
        request at Ozon first, and sends nothing when it is no longer ON_APPROVAL."""
        with self._lease.running(intent.id):
            posting = await Posting.get(id=intent.posting_id).select_related("seller")
            seller = posting.seller
            if member is None and intent.member_id:
                member = await Member.get_or_none(id=intent.member_id)
            tr = self._catalogs.for_member(member, seller) if member else self._catalogs.translator(None)
            request = await CancelRequest.get(seller=seller, cancellation_id=int(intent.key))
            decision, comment = intent.payload.get("decision"), intent.payload.get("comment") or ""
            resumed = intent.attempts > 0
            await Intent.filter(id=intent.id).update(attempts=intent.attempts + 1)
            client = self._gateway.for_seller(seller)
            try:
                if resumed and await self._already_decided(client, posting, request):
                    await self._done(intent)
                    return Answer(toast=await self._outcome_text(tr, request.id))
                if decision == "approve":
                    await client.approve_cancellation(request.cancellation_id)
                else:
                    await client.reject_cancellation(request.cancellation_id, comment)
            except OzonError as exc:
                return await self._refused(intent, exc, tr, client, posting, request)
            state = CancelState.APPROVED if decision == "approve" else CancelState.REJECTED
            await self._settle(request, state, member, comment)
            await self._done(intent)
            if state == CancelState.APPROVED:  # Ozon cancels the posting: its card says so at once
                try:
                    await self._sync.ingest(seller, [await client.get_posting(posting.posting_number)])
                except OzonError as exc:
                    log.info("re-read of %s after approval failed: %s", posting.posting_number, exc)
            await self._on_events()
            return Answer(toast=await self._outcome_text(tr, request.id))

    async def _refused(self, intent: Intent, exc: OzonError, tr: Translator, client, posting: Posting,
                       request: CancelRequest) -> Answer:
        if exc.retryable:  # unknown whether Ozon took it: the next run reads the request first
            await self._error(intent, exc, retry=True)
            return Answer(toast=tr.gettext("Ozon is not answering. I keep trying and tell you when it is done."),
                          alert=True)
        await self._error(intent, exc, retry=False)
        try:
            if await self._already_decided(client, posting, request):  # decided meanwhile (cabinet, clock)
                return Answer(toast=await self._outcome_text(tr, request.id), alert=True)
        except OzonError:
            pass
        await Intent.filter(id=intent.id).delete()  # the request is still open: the owner may decide again
        return Answer(toast=tr.gettext("Ozon refused the decision ({token}).").format(token=exc.token), alert=True)

    async def _already_decided(self, client, posting: Posting, request: CancelRequest) -> bool:
        """Ozon's own answer on the request: settled here when it is no longer ON_APPROVAL."""
        found = [r for r in await client.cancellation_requests(state=Ozon.ALL, posting_numbers=[posting.posting_number])
                 if r.cancellation_id == request.cancellation_id]
        if not found or found[0].state == Ozon.ON_APPROVAL:
            return False
        intent = await Intent.get_or_none(posting_id=posting.id, kind=IntentKind.CANCEL_DECISION,
                                          key=str(request.cancellation_id))
        member = await Member.get_or_none(id=intent.member_id) if intent and intent.member_id else None
        ours = intent is not None and (intent.payload.get("decision") == "approve") == (found[0].state == Ozon.APPROVED)
        if found[0].state == Ozon.REJECTED:
            state = CancelState.REJECTED
        else:
            state = CancelState.APPROVED if ours else CancelState.AUTO_APPROVED
        await self._settle(request, state, member if ours else None, found[0].approve_comment)
        await self._on_events()
        return True

    async def _outcome_text(self, tr: Translator, request_id: int) -> str:
        request = await CancelRequest.get(id=request_id).prefetch_related("decided_by")
        return outcome(tr, request)

    @staticmethod
    async def _done(intent: Intent) -> None:
        await Intent.filter(id=intent.id).update(state=IntentState.DONE, last_error=None, claimed_by=None)

    async def _error(self, intent: Intent, exc: Exception, *, retry: bool) -> None:
        await Intent.filter(id=intent.id).update(
            last_error=str(exc)[:500], state=IntentState.PENDING if retry else IntentState.FAILED, claimed_by=None,
            next_attempt_at=self._clock() + timedelta(seconds=min(300, 5 * 2 ** intent.attempts)))


# ---- what the posting's own card says (services.cards renders it beside the posting) ---------------------
def posting_lines(tr: Translator, request: CancelRequest | None, now: datetime) -> list[str]:
    if request is None:
        return []
    if request.state == CancelState.OPEN:
        return ["", tr.gettext("⚠️ The buyer asked to cancel ({reason}); auto-approved in {left}. Do not pack "
                               "until the owner decides.").format(reason=_reason(request),
                                                                  left=time_left(tr, request, now))]
    return ["", outcome(tr, request)]


def decision_buttons(tr: Translator, codec: ActionCodec, posting: Posting, request: CancelRequest | None,
                     member: Member | None) -> tuple[tuple[Button, ...], ...]:
    """Approve / reject, for the owner only, while the request is open."""
    if request is None or request.state != CancelState.OPEN or member is None or member.role != Role.OWNER:
        return ()
    return ((Button(tr.gettext("✅ Approve cancellation"), codec.encode(VERB, posting.id, "a")),
             Button(tr.gettext("🚫 Reject"), codec.encode(VERB, posting.id, "r"))),)


def time_left(tr: Translator, request: CancelRequest, now: datetime) -> str:
    if request.auto_approve_at is None:
        return "—"
    return tr.duration(max(request.auto_approve_at - now, timedelta(0)))


def outcome(tr: Translator, request: CancelRequest) -> str:
    decider = getattr(request, "decided_by", None) if request.decided_by_id else None
    who = getattr(decider, "name", None) or "—"
    return tr.gettext(OUTCOME_WORDS[CancelState(request.state)]).format(who=who, comment=request.comment or "—")


def _reason(request: CancelRequest) -> str:
    reason = request.reason or "—"
    return f"{reason}: {request.message}" if request.message else reason


def open_request_blocks(posting: Posting, request: CancelRequest | None) -> bool:
    """Packed asks for confirmation while the buyer's request is open."""
    return request is not None and request.state == CancelState.OPEN and posting.status not in FINAL_STATUSES
