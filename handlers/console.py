"""The demo channel: the same views as Telegram, printed as text with numbered options."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from bot.app import Services
from services.i18n import normalize_locale
from services.storage.models import Member
from services.views import Answer, View

CHANNEL = "console"


class ConsoleChannel:
    """Prints every view; a number typed at the prompt presses that option."""

    channel = CHANNEL

    def __init__(self, services: Services, member: Member, write: Callable[[str], None] | None = None):
        self.s = services
        self.member = member
        self._write = write or (lambda text: print(text, flush=True))
        self._options: list[str] = []
        self._next_id = 0

    # ChannelSender
    async def send(self, member: Member, view: View) -> str | None:
        self._next_id += 1
        self._show(view, f"#{self._next_id}")
        return str(self._next_id)

    async def edit(self, member: Member, message_ref: str, view: View) -> None:
        self._show(view, f"#{message_ref} (updated)")

    def _show(self, view: View, title: str) -> None:
        lines = [f"── {title} " + "─" * 40, view.text]
        if view.attachment is not None:
            lines.append(f"[📎 {view.attachment.filename}, {len(view.attachment.data)} bytes]")
        for row in view.buttons:
            cells = []
            for button in row:
                self._options.append(button.action)
                cells.append(f"[{len(self._options)}] {button.label}")
            lines.append("  " + "   ".join(cells))
        if view.ask_reply:
            lines.append("  ↳ reply: type the text")
        self._write("\n".join(lines))

    async def handle_line(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        tr = self.s.catalogs.for_member(self.member, await self.member.seller)
        command, _, rest = line.partition(" ")
        if line.isdigit() and 1 <= int(line) <= len(self._options):
            await self._show_answer(await self.s.buttons.press(self.member, self._options[int(line) - 1]))
        elif command == "/orders":
            await self.send(self.member, await self.s.desk.orders_view(self.member))
        elif command == "/settings":
            name, _, value = rest.partition(" ")
            if name:
                await self._show_answer(await self.s.preferences.set_typed(self.member, name, value))
            else:
                await self.send(self.member, await self.s.preferences.view(self.member))
        elif command == "/status":
            await self.send(self.member, await self.s.desk.status_view(self.member, rest))
        elif command == "/lang":
            locale = normalize_locale(rest)
            if locale:
                await self.s.desk.set_locale(CHANNEL, self.member.external_id, locale)
                self.member.locale = locale
                tr = self.s.catalogs.for_member(self.member, await self.member.seller)
                self._write(tr.gettext("Language set: English"))
        elif command == "/help":
            self._write(tr.gettext("Demo: /orders, /status <number>, /settings, /lang zh|ru|en, a number presses that "
                                   "option, any other text answers the bot's question."))
        else:
            answer = await self.s.shipping.submit_waybill(self.member, line)
            if answer is None:
                await self.send(self.member, await self.s.desk.status_view(self.member, line))
                return
            await self._show_answer(answer)

    async def _show_answer(self, answer: Answer) -> None:
        if answer.toast:
            self._write(f"» {answer.toast}")
        if answer.edit is not None:
            await self.send(self.member, answer.edit)
        for view in answer.replies:
            await self.send(self.member, view)

    async def run(self, stream=None) -> None:
        """Reads lines until end of input (a pipe) or Ctrl-D (a terminal)."""
        stream = stream or sys.stdin
        loop = asyncio.get_running_loop()
        while True:
            if stream.isatty():
                self._write("> ")
            line = await loop.run_in_executor(None, stream.readline)
            if not line:
                return
            await self.handle_line(line)
