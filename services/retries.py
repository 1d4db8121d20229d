"""Unfinished work, resumed after a restart and retried with backoff: ship, tracking and late labels.
An intent that keeps failing is reported to the desk once, with Ozon's reason."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from services.i18n import N_
from services.notify import Notifier
from services.shipping import Shipping
from services.storage.models import Intent, Member, Posting, Seller
from services.views import Answer, View

log = logging.getLogger(__name__)

REPORT_AFTER_ATTEMPTS = 3
LABEL_GIVE_UP_AFTER = 10  # then the card's "Get label" button is the way
WHAT_FAILED = {
    "ship": N_("pack {number} in Ozon"),
    "tracking": N_("send the tracking number of {number} to Ozon"),
    "label": N_("get the Ozon label of {number}"),
}


class IntentRunner:
    def __init__(self, *, shipping: Shipping, notifier: Notifier, clock: Callable[[], datetime]):
        self._shipping = shipping
        self._notifier = notifier
        self._clock = clock

    async def resume(self) -> int:
        """After a restart: every intent that was started and not completed, due or not."""
        resumed = 0
        for intent in await Intent.filter(state="pending").order_by("id"):
            resumed += await self._run(intent)
        for posting in await Posting.filter(label_state="pending", stage__in=("packed", "handed_over")):
            self._shipping.schedule_label(posting.id, posting.packed_by_id, 0)
        return resumed

    async def retry_due(self) -> int:
        retried = 0
        for intent in await Intent.filter(state="pending", next_attempt_at__lte=self._clock()).order_by("id"):
            retried += await self._run(intent)
        return retried

    async def _run(self, intent: Intent) -> int:
        try:
            answer = await self._attempt(intent)
        except Exception:  # one broken intent must not stop the others
            log.exception("intent %s (%s) failed", intent.id, intent.kind)
            return 0
        member = await Member.get_or_none(id=intent.member_id) if intent.member_id else None
        if member is not None and isinstance(answer, Answer):
            for view in answer.replies:
                await self._notifier.send(member, view)
        await self._report_if_stuck(intent.id)
        return 1

    async def _attempt(self, intent: Intent) -> Answer | None:
        if intent.kind == "ship":
            return await self._shipping.run_ship(intent)
        if intent.kind == "tracking":
            return await self._shipping.run_tracking(intent)
        if intent.kind == "label":
            await self._retry_label(intent)
        return None

    async def _retry_label(self, intent: Intent) -> None:
        attempts = intent.attempts + 1
        if await self._shipping.deliver_label(intent.posting_id, intent.member_id):
            return  # deliver_label completes the intent
        fields = {"attempts": attempts, "last_error": "LABEL_NOT_READY",
                  "next_attempt_at": self._clock() + timedelta(seconds=min(900, 30 * 2 ** attempts))}
        if attempts >= LABEL_GIVE_UP_AFTER:
            fields["state"] = "failed"
        await Intent.filter(id=intent.id).update(**fields)

    async def _report_if_stuck(self, intent_id: int) -> None:
        intent = await Intent.get(id=intent_id)
        if intent.state == "done" or intent.attempts < REPORT_AFTER_ATTEMPTS or intent.reported:
            return
        if not await Intent.filter(id=intent.id, reported=False).update(reported=True):
            return  # another process reported it
        posting = await Posting.get(id=intent.posting_id)
        seller = await Seller.get(id=posting.seller_id)
        what = WHAT_FAILED.get(intent.kind)
        if what is None:
            return
        for member in await self._notifier.desk(seller):
            tr = self._notifier.translator(member, seller)
            text = tr.gettext("⚠️ I tried {attempts} times to {what} and Ozon keeps failing ({reason}). "
                              "I keep trying; check the order in the Ozon cabinet if it does not clear.").format(
                attempts=intent.attempts, what=tr.gettext(what).format(number=posting.posting_number),
                reason=_reason(intent.last_error))
            await self._notifier.send(member, View(text=text))


def _reason(error: str | None) -> str:
    return (error or "—").splitlines()[0][:120]
