"""Desk messages that belong to no posting (digest, key expiry): each member gets each key once, ever.
The Notice row is written before sending, so a restart or a second process never sends it twice."""

from __future__ import annotations

import logging
from collections.abc import Callable

from tortoise.exceptions import IntegrityError

from services.i18n import Translator
from services.notify import Notifier
from services.storage.models import Member, Notice, Seller
from services.views import View

log = logging.getLogger(__name__)


class NoticeBoard:
    def __init__(self, notifier: Notifier):
        self._notifier = notifier

    async def send_once(self, member: Member, seller: Seller, kind: str, key: str,
                        render: Callable[[Translator], View]) -> bool:
        """True when this call delivered it; False when it was already sent (or is being sent) or failed."""
        try:
            notice = await Notice.create(member=member, kind=kind, key=key)
        except IntegrityError:
            notice = await Notice.get(member=member, kind=kind, key=key)
            if notice.state != "failed" or not await Notice.filter(id=notice.id, state="failed").update(
                    state="sending"):
                return False
        try:
            await self._notifier.send(member, render(self._notifier.translator(member, seller)))
        except Exception as exc:  # one member's channel failing must not stop the others
            log.warning("notice %s/%s to member %s failed: %s", kind, key, member.id, type(exc).__name__)
            await Notice.filter(id=notice.id).update(state="failed")
            return False
        await Notice.filter(id=notice.id).update(state="sent")
        return True

    async def awaiting(self, seller: Seller, kind: str, key: str, *, owners_only: bool = False) -> list[Member]:
        """Desk members who have not had this notice yet (cheap: lets a job skip building it)."""
        members = await self._notifier.desk(seller)
        if owners_only:
            members = [m for m in members if m.role == "owner"]
        done = set(await Notice.filter(member_id__in=[m.id for m in members], kind=kind, key=key)
                   .exclude(state="failed").values_list("member_id", flat=True))
        return [m for m in members if m.id not in done]

    async def to_members(self, members: list[Member], seller: Seller, kind: str, key: str,
                         render: Callable[[Translator], View]) -> int:
        sent = 0
        for member in members:
            sent += await self.send_once(member, seller, kind, key, render)
        return sent
