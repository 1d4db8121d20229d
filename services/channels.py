"""The chat surfaces a desk is reached on: each channel registers one sender, and everything that speaks to
a member (alerts, replies, notices) goes through this registry."""

from __future__ import annotations

from typing import Protocol

from services.storage.models import Member, Seller
from services.views import View


class ChannelSender(Protocol):
    channel: str

    async def send(self, member: Member, view: View) -> str | None: ...

    async def edit(self, member: Member, message_ref: str, view: View) -> None: ...

    # optional: `def refusal(self, exc: Exception) -> str | None`, the platform's permanent "no" (blocked by
    # the user, chat gone, bad request) as a short reason; anything else it raises counts as transport
    # trouble (5xx, timeout, connection refused, 429) and is tried again. Optional too:
    # `def uncertain(self, exc: Exception) -> bool`, a failure after which the message may have arrived


class DeliveryDeferred(Exception):
    """A channel's own send limit is reached: try again later, without counting it as a failed attempt,
    and without making every other delivery wait behind it."""


class DeliveryRefused(Exception):
    """The platform refused a send for good: trying again cannot help. `reason` is safe to store and show."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class DeliveryUncertain(Exception):
    """The send may have reached the chat (it timed out, or the connection dropped after the request was
    written): tried again, but marked as a possible copy."""


class Channels:
    def __init__(self) -> None:
        self._senders: dict[str, ChannelSender] = {}

    def register(self, sender: ChannelSender) -> None:
        self._senders[sender.channel] = sender

    def has(self, channel: str) -> bool:
        return channel in self._senders

    async def desk(self, seller: Seller) -> list[Member]:
        """The seller's members that can be reached: with a chat, on a registered channel."""
        members = await Member.filter(seller=seller, chat_id__not_isnull=True).order_by("id")
        return [m for m in members if m.channel in self._senders]

    async def send(self, member: Member, view: View) -> str | None:
        sender = self._senders.get(member.channel)
        if sender is None or member.chat_id is None:
            return None
        try:
            return await sender.send(member, view)
        except DeliveryDeferred:
            raise
        except Exception as exc:
            refusal = getattr(sender, "refusal", None)
            reason = refusal(exc) if refusal else None
            if reason:
                raise DeliveryRefused(reason) from exc
            uncertain = getattr(sender, "uncertain", None)
            if uncertain and uncertain(exc):
                raise DeliveryUncertain(type(exc).__name__) from exc
            raise

    async def edit(self, member: Member, message_ref: str, view: View) -> bool:
        """False when the member's channel is not registered (nothing was tried)."""
        sender = self._senders.get(member.channel)
        if sender is None:
            return False
        await sender.edit(member, message_ref, view)
        return True
