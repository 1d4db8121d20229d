"""One entry for every button press, whatever the channel: the signed reference is checked first, then
the press goes to the service that owns its verb (settings, or the shipping workflow)."""

from __future__ import annotations

from services.actions import ActionCodec
from services.cancellations import VERB as CANCEL_VERB
from services.cancellations import Cancellations
from services.members import Roster
from services.preferences import Preferences
from services.shipping import Shipping
from services.stock import VERB as STOCK_VERB
from services.stock import StockDesk
from services.storage.models import Member
from services.views import Answer


class ButtonRouter:
    def __init__(self, *, codec: ActionCodec, shipping: Shipping, preferences: Preferences, roster: Roster,
                 cancellations: Cancellations, stock: StockDesk):
        self._codec = codec
        self._shipping = shipping
        self._preferences = preferences
        self._roster = roster
        self._cancellations = cancellations
        self._stock = stock

    async def submit_reason(self, member: Member, text: str) -> Answer | None:
        """A typed answer to a decision button (the reason for refusing a buyer's cancellation)."""
        return await self._cancellations.submit_reason(member, text)

    async def press(self, member: Member | None, data: str | None, *, locale: str | None = None) -> Answer:
        """`locale` is the presser's language when they are on no desk, so even a refusal is understood."""
        action = self._codec.decode(data)
        if action is not None and action.name == "settings" and member is not None:
            return await self._preferences.press(member, action)
        if action is not None and action.verb == STOCK_VERB:
            return await self._stock.press(member, action)
        if action is not None and action.verb == CANCEL_VERB:
            return await self._cancellations.press(member, action)
        if action is not None and action.name == "member":
            return await self._roster.press(member, action)
        return await self._shipping.press(member, action, locale=locale)  # refuses forged data, foreign postings
