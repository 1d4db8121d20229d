"""Unfinished work, resumed after a restart and retried with backoff: ship, tracking and late labels.
An intent that keeps failing is reported to the desk once, with Ozon's reason."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from services.cancellations import Cancellations
from services.channels import Channels
from services.i18n import N_, Catalogs
from services.lease import Lease
from services.shipping import Shipping
from services.storage.models import Intent, Member, Posting, Seller
from services.storage.states import AFTER_PACKING, IntentKind, IntentState, LabelState
from services.views import Answer, View

log = logging.getLogger(__name__)

REPORT_AFTER_ATTEMPTS = 3
GIVE_UP_AFTER = 10  # a label or an intent that crashes this often waits for a person (the card's buttons)
WHAT_FAILED = {
    IntentKind.SHIP: N_("pack {number} in Ozon"),
    IntentKind.TRACKING: N_("send the tracking number of {number} to Ozon"),
    IntentKind.LABEL: N_("get the Ozon label of {number}"),
    IntentKind.CANCEL_DECISION: N_("send your decision on the buyer's cancellation of {number} to Ozon"),
}


class IntentRunner:
    def __init__(self, *, shipping: Shipping, channels: Channels, catalogs: Catalogs, lease: Lease,
                 clock: Callable[[], datetime], cancellations: Cancellations | None = None):
        self._shipping = shipping
        self._cancellations = cancellations
        self._channels = channels
        self._catalogs = catalogs
        self._clock = clock
        self._lease = lease

    async def resume(self) -> int:
        """After a restart: every intent the process before us left unfinished, whatever its backoff."""
        resumed = await self.retry_due(restart=True)
        for posting in await Posting.filter(label_state=LabelState.PENDING, stage__in=AFTER_PACKING):
            self._shipping.schedule_label(posting.id, posting.packed_by_id, 0)
        return resumed

    async def retry_due(self, *, restart: bool = False) -> int:
        """Runs the pending intents whose time has come and that no live process holds."""
        ran = 0
        for intent in await Intent.filter(state=IntentState.PENDING).order_by("id"):
            try:
                answer = await self._attempt(intent, restart)
            except Exception:  # one broken intent must not stop the others; it backs off and may give up
                log.exception("intent %s (%s) failed", intent.id, intent.kind)
                await self._backoff(intent.id)
                continue
            if answer is None:
                continue  # not due, or another process runs it
            ran += 1
            await self._tell(intent, answer)
            await self._report_if_stuck(intent.id)
        return ran

    async def _attempt(self, intent: Intent, restart: bool) -> Answer | None:
        if intent.kind == IntentKind.LABEL:
            if not await self._lease.claim_intent(intent.id, ignore_backoff=restart):
                return None
            with self._lease.running(intent.id):
                await self._retry_label(await Intent.get(id=intent.id))
            return Answer()
        if intent.kind == IntentKind.CANCEL_DECISION and self._cancellations is not None:
            return await self._cancellations.run_intent(intent, ignore_backoff=restart)
        return await self._shipping.run_intent(intent, ignore_backoff=restart)

    async def _backoff(self, intent_id: int) -> None:
        intent = await Intent.get(id=intent_id)
        attempts = intent.attempts + 1
        fields = {"attempts": attempts, "claimed_by": None,
                  "next_attempt_at": self._clock() + timedelta(seconds=min(900, 30 * 2 ** attempts))}
        if attempts >= GIVE_UP_AFTER:
            fields["state"] = IntentState.FAILED
        await Intent.filter(id=intent.id, state=IntentState.PENDING).update(**fields)
        await self._report_if_stuck(intent.id)

    async def _tell(self, intent: Intent, answer: Answer) -> None:
        """The one who asked hears how it went: best effort, the work is done and recorded."""
        member = await Member.get_or_none(id=intent.member_id) if intent.member_id else None
        for view in answer.replies if member is not None else []:
            try:
                await self._channels.send(member, view)
            except Exception as exc:
                log.warning("reply to member %s after intent %s failed: %s", member.id, intent.id,
                            type(exc).__name__)

    async def _retry_label(self, intent: Intent) -> None:
        attempts = intent.attempts + 1
        if await self._shipping.deliver_label(intent.posting_id, intent.member_id):
            return  # deliver_label completes the intent
        fields = {"attempts": attempts, "last_error": "LABEL_NOT_READY", "claimed_by": None,
                  "next_attempt_at": self._clock() + timedelta(seconds=min(900, 30 * 2 ** attempts))}
        if attempts >= GIVE_UP_AFTER:
            fields["state"] = IntentState.FAILED
        await Intent.filter(id=intent.id).update(**fields)

    async def _report_if_stuck(self, intent_id: int) -> None:
        intent = await Intent.get(id=intent_id)
        if intent.state == IntentState.DONE or intent.attempts < REPORT_AFTER_ATTEMPTS or intent.reported:
            return
        if not await Intent.filter(id=intent.id, reported=False).update(reported=True):
            return  # another process reported it
        posting = await Posting.get(id=intent.posting_id)
        seller = await Seller.get(id=posting.seller_id)
        what = WHAT_FAILED.get(intent.kind)
        if what is None:
            return
        for member in await self._channels.desk(seller):
            tr = self._catalogs.for_member(member, seller)
            text = tr.gettext("⚠️ I tried {attempts} times to {what} and Ozon keeps failing ({reason}). "
                              "I keep trying; check the order in the Ozon cabinet if it does not clear.").format(
                attempts=intent.attempts, what=tr.gettext(what).format(number=posting.posting_number),
                reason=_reason(intent.last_error))
            await self._channels.send(member, View(text=text))


def _reason(error: str | None) -> str:
    return (error or "—").splitlines()[0][:120]
