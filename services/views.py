"""Channel-neutral views: what a handler renders as a Telegram keyboard, a WeCom card or console options."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Button:
    label: str
    action: str  # an opaque, signed reference made by ActionCodec


@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes
    mime: str = "application/pdf"


@dataclass(frozen=True)
class View:
    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    attachment: Attachment | None = None
    ask_reply: bool = False  # the channel should invite a typed reply (Telegram ForceReply)
    silent: bool = False  # deliver without sound (quiet hours)

    @property
    def flat_buttons(self) -> list[Button]:
        return [button for row in self.buttons for button in row]


@dataclass(frozen=True)
class Answer:
    """The result of a button press or command for the member who acted."""

    toast: str = ""  # short notice (Telegram answerCallbackQuery text)
    replies: list[View] = field(default_factory=list)  # new messages to the actor's chat
    alert: bool = False  # show the toast as a modal alert (refusals)
    edit: View | None = None  # replaces the message whose button was pressed (menus that change in place)

    def views(self) -> list[View]:
        """Everything in the answer as messages, for a surface that can neither pop a toast nor edit."""
        return ([View(text=self.toast)] if self.toast else []) + ([self.edit] if self.edit else []) + \
            list(self.replies)
