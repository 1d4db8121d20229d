"""Ozon keys expire (about three months): the owner is warned 14, 3 and 1 days ahead, each once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from services.i18n import Translator
from services.notices import NoticeBoard
from services.storage.models import Seller
from services.storage.states import KeyState, NoticeKind
from services.views import View

log = logging.getLogger(__name__)
WARN_DAYS = (14, 3, 1)


def warning_due(expires_at: datetime, now: datetime) -> int | None:
    """The nearest threshold already reached (a bot that was down sends only the latest), or None."""
    if expires_at <= now:
        return None  # expired: the poll meets the refusal and the owner hears that instead
    reached = [days for days in WARN_DAYS if expires_at - timedelta(days=days) <= now]
    return min(reached) if reached else None


def render(tr: Translator, seller: Seller, now: datetime, commands: dict[str, str]) -> View:
    left = seller.key_expires_at - now
    days = max(1, round(left / timedelta(days=1)))
    text = tr.ngettext(
        "🔑 The Ozon API key of seller {client_id} expires in {n} day ({when}). Create a new key in the Ozon "
        "cabinet (Settings → Seller API) and connect it with {connect}, or new orders will stop.",
        "🔑 The Ozon API key of seller {client_id} expires in {n} days ({when}). Create a new key in the Ozon "
        "cabinet (Settings → Seller API) and connect it with {connect}, or new orders will stop.",
        days)
    return View(text=text.format(client_id=seller.client_id, n=days, when=tr.local_time(seller.key_expires_at),
                                 connect=commands["connect"]))


class KeyExpiry:
    def __init__(self, *, board: NoticeBoard, clock: Callable[[], datetime]):
        self._board = board
        self._clock = clock

    async def run_due(self) -> int:
        now = self._clock()
        sent = 0
        horizon = now + timedelta(days=max(WARN_DAYS))
        for seller in await Seller.filter(key_state=KeyState.OK, key_expires_at__not_isnull=True,
                                          key_expires_at__lte=horizon):
            days = warning_due(seller.key_expires_at, now)
            if days is None:
                continue
            # the expiry date is in the key, so a newly connected key gets its own warnings
            key = f"{days}d:{seller.key_expires_at.date().isoformat()}"
            try:
                owners = await self._board.awaiting(seller, NoticeKind.KEY_EXPIRY, key, owners_only=True)
                sent += await self._board.to_members(owners, seller, NoticeKind.KEY_EXPIRY, key,
                                                     lambda tr, commands, seller=seller: render(tr, seller, now, commands))
            except Exception:
                log.exception("key-expiry warning for seller %s failed", seller.id)
        return sent
