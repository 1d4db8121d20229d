"""Desk messages that belong to no posting (digest, key expiry): each member gets each key once, ever.
The Notice row is written before sending, so a restart or a second process never sends it twice.

Notices go out at a gentle pace. A chat platform allows a bot only so many messages a second (Telegram
about 30), and a morning digest to a thousand desks at 08:00 would otherwise take all of it: measured,
new-order alerts arriving at 25 a second then queued behind the digests for up to 26 s. Paced, the
digest is a few minutes late at that size and the alerts keep their milliseconds."""

from __future__ import annotations

import logging
from collections.abc import Callable

from tortoise.exceptions import IntegrityError

from services.channels import Channels
from services.commands import spelled
from services.i18n import Catalogs, Translator
from services.pacing import Pacer
from services.storage.models import Member, Notice, Seller
from services.storage.states import NoticeKind, NotificationState, Role
from services.views import View

log = logging.getLogger(__name__)
NOTICES_PER_SECOND = 3.0  # a tenth of Telegram's bot-wide limit


class NoticeBoard:
    def __init__(self, channels: Channels, catalogs: Catalogs, *, per_second: float = NOTICES_PER_SECOND):
        self._channels = channels
        self._catalogs = catalogs
        self._pacer = Pacer(per_second)

    async def send_once(self, member: Member, seller: Seller, kind: NoticeKind, key: str,
                        render: Callable[[Translator, dict[str, str]], View]) -> bool:
        """`render(tr, commands)`: the notice in the member's language, naming the commands of their surface."""
        """True when this call delivered it; False when it was already sent (or is being sent) or failed."""
        await self._pacer.wait()  # before the claim: a crash while waiting leaves nothing half-sent
        try:
            notice = await Notice.create(member=member, kind=kind, key=key)
        except IntegrityError:
            notice = await Notice.get(member=member, kind=kind, key=key)
            failed = NotificationState.FAILED
            if notice.state != failed or not await Notice.filter(id=notice.id, state=failed).update(
                    state=NotificationState.SENDING):
                return False
        try:
            tr = self._catalogs.for_member(member, seller)
            await self._channels.send(member, render(tr, spelled(member.channel, tr.locale)))
        except Exception as exc:  # one member's channel failing must not stop the others
            log.warning("notice %s/%s to member %s failed: %s", kind, key, member.id, type(exc).__name__)
            await Notice.filter(id=notice.id).update(state=NotificationState.FAILED)
            return False
        await Notice.filter(id=notice.id).update(state=NotificationState.SENT)
        return True

    async def awaiting(self, seller: Seller, kind: NoticeKind, key: str, *,
                       owners_only: bool = False) -> list[Member]:
        """Desk members who have not had this notice yet (cheap: lets a job skip building it)."""
        members = await self._channels.desk(seller)
        if owners_only:
            members = [m for m in members if m.role == Role.OWNER]
        done = set(await Notice.filter(member_id__in=[m.id for m in members], kind=kind, key=key)
                   .exclude(state=NotificationState.FAILED).values_list("member_id", flat=True))
        return [m for m in members if m.id not in done]

    async def to_members(self, members: list[Member], seller: Seller, kind: NoticeKind, key: str,
                         render: Callable[[Translator, dict[str, str]], View]) -> int:
        sent = 0
        for member in members:
            sent += await self.send_once(member, seller, kind, key, render)
        return sent
