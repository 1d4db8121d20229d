"""Button references: short, opaque and signed, so forged or altered data is refused before any lookup."""

from __future__ import annotations

from dataclasses import dataclass

from services.security import SecretBox

VERBS = {
    "c": "choose_courier",
    "x": "change_courier",
    "p": "packed",
    "w": "ask_waybill",
    "y": "confirm_waybill",
    "l": "label",
    "o": "open",
    "s": "settings",
    "m": "member",
    "t": "stock",  # set the free stock of one product in one warehouse (services.stock)
    "k": "cancellation",  # approve or reject a buyer's cancellation request (services.cancellations)
}


@dataclass(frozen=True)
class Action:
    verb: str
    posting_id: int
    arg: str = ""

    @property
    def name(self) -> str:
        return VERBS[self.verb]


class ActionCodec:
    MAX_BYTES = 64  # Telegram's callback_data limit

    def __init__(self, box: SecretBox):
        self._box = box

    def encode(self, verb: str, posting_id: int, arg: str = "") -> str:
        if verb not in VERBS or "." in arg:
            raise ValueError(f"bad action {verb!r}/{arg!r}")
        body = f"{verb}.{posting_id}.{arg}"
        data = f"{body}.{self._box.sign(body)}"
        if len(data.encode()) > self.MAX_BYTES:
            raise ValueError("action reference too long")
        return data

    def decode(self, data: str | None) -> Action | None:
        """None for anything not made by us (forged, altered, truncated)."""
        if not data or len(data.encode()) > self.MAX_BYTES:
            return None
        parts = data.split(".")
        if len(parts) != 4:
            return None
        verb, posting_id, arg, signature = parts
        if verb not in VERBS or not posting_id.isdigit():
            return None
        if not self._box.verify(f"{verb}.{posting_id}.{arg}", signature):
            return None
        return Action(verb, int(posting_id), arg)
