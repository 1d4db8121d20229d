"""The demo channel: the same views as Telegram, printed as text with numbered options."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from services.commands import CONSOLE, Command, Verb, parse_command
from services.conversation import Conversation
from services.storage.models import Member
from services.views import Answer, View

CHANNEL = "console"


class ConsoleChannel:
    """Prints every view; a number typed at the prompt presses that option."""

    channel = CHANNEL

    def __init__(self, conversation: Conversation, member: Member, write: Callable[[str], None] | None = None):
        self.conversation = conversation
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
        self.member = await Member.get(id=self.member.id)  # its language may have changed since
        caller = await self.conversation.caller(CONSOLE, self.member.external_id, chat_id=self.member.chat_id,
                                                  name=self.member.name, member=self.member)
        if line.isdigit() and 1 <= int(line) <= len(self._options):
            await self._show_answer(await self.conversation.press(caller, self._options[int(line) - 1]))
            return
        await self._show_answer(await self.conversation.text(caller, line))
        if parse_command(line) == Command(Verb.HELP):
            self._write(caller.tr.gettext("Here, type the number of an option to press it."))

    async def _show_answer(self, answer: Answer) -> None:
        if answer.toast:
            self._write(f"» {answer.toast}")
        if answer.edit is not None:
            await self.send(self.member, answer.edit)
        for view in answer.replies:
            if view.buttons or view.attachment:
                await self.send(self.member, view)
            else:
                self._write(view.text)

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
