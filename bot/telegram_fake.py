"""A fake Telegram Bot API server: real HTTP on loopback, strict like the real one (tests and `ozonbot bench`).

python-telegram-bot's whole stack (httpx, serialisation, polling, rate limiter, file download)
runs against it::

    fake = FakeBotAPI()
    await fake.start()
    app = fake.builder().build()      # or ApplicationBuilder().token(fake.token)
                                      #     .base_url(fake.bot_base_url).base_file_url(fake.file_base_url)
    fake.push_message(42, "/start")
    msg = await fake.wait_for_message(42, contains="Welcome")
    fake.press(42, "SF Express")      # taps an inline button of the last bot message
    ...
    await fake.stop()

Wire format (reference/telegram.md §3.1): requests are form-urlencoded, multipart or JSON, every
value a string (non-strings JSON-encoded); answers are ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": ..., "parameters": {...}}`` with the matching
HTTP status. Strictness mirrors Telegram: callback_data limited to 64 UTF-8 bytes, "message is
not modified", text length, HTML / MarkdownV2 entity parsing, unknown messages, files and
callback queries, getUpdates conflicts. Editing a message's text without ``reply_markup``
removes its inline keyboard, as on Telegram.

Messages: users and the bot share one increasing ``message_id`` sequence per chat.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web

__all__ = [
    "BOT_USERNAME",
    "DEFAULT_TOKEN",
    "BotMessage",
    "Call",
    "FakeBotAPI",
    "TelegramAPIError",
    "UploadedFile",
]

DEFAULT_TOKEN = "123456:TEST-TOKEN"
BOT_USERNAME = "ozon_desk_bot"
BOT_FIRST_NAME = "Ozon Desk"

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_BUTTONS = 100
MAX_DOWNLOAD = 20 * 1024 * 1024
MAX_UPLOAD = 50 * 1024 * 1024

# Parameters that are always plain strings; every other form value is JSON-decoded when it can be
# (PTB json.dumps every non-string value: chat_id=42, disable_notification=false, reply_markup={...}).
_STRING_PARAMS = frozenset(
    {
        "text", "caption", "parse_mode", "callback_query_id", "url", "secret_token", "file_id",
        "inline_message_id", "action", "emoji", "ip_address", "certificate", "document", "photo",
        "thumbnail", "language_code", "name", "title", "description", "short_description",
        "query", "sticker", "audio", "video", "voice", "animation", "video_note",
        "business_connection_id", "message_effect_id", "filename",
    }
)  # fmt: skip

_ERROR_TEXT = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
_CHAT_ACTIONS = frozenset(
    {
        "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
        "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
    }
)  # fmt: skip
_INLINE_BUTTON_ACTIONS = (
    "callback_data", "url", "web_app", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
    "callback_game", "pay",
)  # fmt: skip
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _status_text(status: int, retry_after: int | float | None = None) -> str:
    if status == 429:
        return f"Too Many Requests: retry after {retry_after}"
    return _ERROR_TEXT.get(status, f"Error {status}")


# --------------------------------------------------------------------------- public records


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request (or a stored file re-sent by file_id / URL)."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes
    file_id: str | None = None  # set when the bot sent an existing file_id or URL instead of bytes


@dataclass(frozen=True)
class Call:
    """One Bot API request, recorded when answered; ``at`` is ``time.monotonic()`` at arrival.

    Long polls abandoned by their client (an updater being stopped) are not recorded."""

    method: str
    params: dict[str, Any]
    files: dict[str, UploadedFile]
    at: float
    status: int = 200
    result: Any = None  # the "result" on success, the error description otherwise

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class BotMessage:
    """A message the bot sent, as the user currently sees it (edits applied).

    ``text`` is the rendered text (HTML/Markdown markup removed); ``raw_text`` is what the bot
    sent. ``reply_markup`` is the decoded markup dict (None when there is no keyboard).
    """

    message_id: int
    text: str | None
    reply_markup: dict[str, Any] | None
    document: UploadedFile | None
    chat_id: int = 0
    caption: str | None = None
    photo: UploadedFile | None = None
    raw_text: str | None = None
    parse_mode: str | None = None
    entities: tuple[dict[str, Any], ...] = ()
    edit_count: int = 0
    date: int = 0
    reply_to_message_id: int | None = None

    @property
    def buttons(self) -> list[tuple[str, str | None]]:
        return _flatten_buttons(self.reply_markup)

    @property
    def shown_text(self) -> str:
        """Text or caption, whichever the message has ("" if neither)."""
        return self.text if self.text is not None else (self.caption or "")


class TelegramAPIError(Exception):
    """Raised inside the fake to produce an error answer."""

    def __init__(self, status: int, description: str | None = None, parameters: dict | None = None):
        self.status = status
        self.description = description or _status_text(status)
        self.parameters = parameters
        super().__init__(f"{status} {self.description}")

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad(description: str) -> TelegramAPIError:
    return TelegramAPIError(400, f"Bad Request: {description}")


def _flatten_buttons(markup: dict[str, Any] | None) -> list[tuple[str, str | None]]:
    if not markup:
        return []
    rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
    out: list[tuple[str, str | None]] = []
    for row in rows:
        for button in row:
            if isinstance(button, str):  # reply keyboards may use plain strings
                out.append((button, None))
            else:
                out.append((button.get("text", ""), button.get("callback_data")))
    return out


# --------------------------------------------------------------------------- internal state


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None

    def as_file(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "file_path": self.file_path,
        }


@dataclass
class _Msg:
    message_id: int
    chat_id: int
    from_bot: bool
    payload: dict[str, Any]  # Telegram Message JSON as currently known
    raw_text: str | None = None
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None
    document: UploadedFile | None = None
    photo: UploadedFile | None = None
    deleted: bool = False
    edit_count: int = 0


@dataclass
class _Chat:
    id: int
    payload: dict[str, Any]
    next_message_id: int = 1
    messages: dict[int, _Msg] = field(default_factory=dict)
    blocked: bool = False

    def new_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


@dataclass
class _Fault:
    status: int
    retry_after: int | float | None
    description: str | None
    delay: float = 0.0


# --------------------------------------------------------------------------- text parsing


class _HTMLEntities(HTMLParser):
    """Telegram's HTML subset → (plain text, entities); raises on what Telegram rejects."""

    _SIMPLE = {
        "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
        "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
        "tg-spoiler": "spoiler", "code": "code", "pre": "pre",
    }  # fmt: skip

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        self.parts: list[str] = []
        self.length = 0
        self.stack: list[tuple[str, int, dict[str, Any] | None]] = []
        self.entities: list[dict[str, Any]] = []
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", source)]

    def _byte_offset(self) -> int:
        line, col = self.getpos()
        index = self._line_starts[line - 1] + col
        return len(self.source[:index].encode("utf-8"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        entity: dict[str, Any] | None
        if tag in self._SIMPLE:
            entity = {"type": self._SIMPLE[tag]}
            if tag == "code" and self.stack and self.stack[-1][0] == "pre":
                language = (attributes.get("class") or "").removeprefix("language-")
                if language and self.stack[-1][2] is not None:
                    self.stack[-1][2]["language"] = language
                entity = None  # <pre><code class=...> is one pre entity
        elif tag == "span" and attributes.get("class") == "tg-spoiler":
            entity = {"type": "spoiler"}
        elif tag == "a":
            href = attributes.get("href") or ""
            match = re.match(r"tg://user\?id=(\d+)$", href)
            if match:
                entity = {"type": "text_mention", "user": {"id": int(match.group(1)), "is_bot": False}}
            else:
                entity = {"type": "text_link", "url": href} if href else None
        elif tag == "blockquote":
            entity = {"type": "expandable_blockquote" if "expandable" in attributes else "blockquote"}
        elif tag == "tg-emoji" and attributes.get("emoji-id"):
            entity = {"type": "custom_emoji", "custom_emoji_id": attributes["emoji-id"]}
        else:
            raise _bad(
                f'can\'t parse entities: Unsupported start tag "{tag}" at byte offset {self._byte_offset()}'
            )
        self.stack.append((tag, self.length, entity))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack:
            raise _bad(f"can't parse entities: Unexpected end tag at byte offset {self._byte_offset()}")
        open_tag, start, entity = self.stack[-1]
        if open_tag != tag:
            raise _bad(
                f"can't parse entities: Unmatched end tag at byte offset {self._byte_offset()}, "
                f'expected "</{open_tag}>", found "</{tag}>"'
            )
        self.stack.pop()
        if entity is not None and self.length > start:
            self.entities.append({**entity, "offset": start, "length": self.length - start})

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self.length += _utf16_len(data)

    def parse(self) -> tuple[str, list[dict[str, Any]]]:
        self.feed(self.source)
        self.close()
        if self.stack:
            raise _bad(
                f"can't parse entities: Can't find end tag corresponding to start tag \"{self.stack[-1][0]}\""
            )
        return "".join(self.parts), sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))


_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")


def _parse_markdown_v2(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram MarkdownV2 → (plain text, entities); raises on unescaped reserved characters."""
    out: list[str] = []
    length = 0
    stack: list[tuple[str, int, int]] = []  # (marker, utf16 start, byte offset)
    entities: list[dict[str, Any]] = []
    names = {"*": "bold", "_": "italic", "__": "underline", "~": "strikethrough", "||": "spoiler"}

    def byte_at(index: int) -> int:
        return len(source[:index].encode("utf-8"))

    def emit(text: str) -> None:
        nonlocal length
        out.append(text)
        length += _utf16_len(text)

    def read_until(index: int, closer: str, what: str, start: int, *, raw: bool = False) -> tuple[str, int]:
        chunk: list[str] = []
        while index < len(source):
            if source[index] == "\\" and index + 1 < len(source):
                chunk.append(source[index : index + 2] if raw else source[index + 1])
                index += 2
                continue
            if source.startswith(closer, index):
                return "".join(chunk), index + len(closer)
            chunk.append(source[index])
            index += 1
        raise _bad(f"can't parse entities: Can't find end of {what} entity at byte offset {byte_at(start)}")

    i = 0
    while i < len(source):
        ch = source[i]
        if ch == "\\":
            if i + 1 >= len(source):
                raise _bad(
                    "can't parse entities: Character '\\' is reserved and must be escaped with the preceding '\\'"
                )
            emit(source[i + 1])
            i += 2
        elif source.startswith("```", i):
            content, end = read_until(i + 3, "```", "Pre", i)
            language, _, body = content.partition("\n") if "\n" in content else ("", "", content)
            start = length
            emit(body)
            entity: dict[str, Any] = {"type": "pre", "offset": start, "length": length - start}
            if language.strip():
                entity["language"] = language.strip()
            entities.append(entity)
            i = end
        elif ch == "`":
            content, end = read_until(i + 1, "`", "Code", i)
            start = length
            emit(content)
            entities.append({"type": "code", "offset": start, "length": length - start})
            i = end
        elif ch in "*~_" or source.startswith("||", i):
            marker = "__" if source.startswith("__", i) else "||" if source.startswith("||", i) else ch
            if stack and stack[-1][0] == marker:
                _, start, _ = stack.pop()
                if length > start:
                    entities.append({"type": names[marker], "offset": start, "length": length - start})
            elif any(m == marker for m, _, _ in stack):
                raise _bad(
                    f"can't parse entities: Can't find end of {names[stack[-1][0]].title()} entity "
                    f"at byte offset {stack[-1][2]}"
                )
            else:
                stack.append((marker, length, byte_at(i)))
            i += len(marker)
        elif ch == "[" or source.startswith("![", i):
            opener = 2 if ch == "!" else 1
            label, end = read_until(i + opener, "]", "TextUrl", i, raw=True)  # parsed below
            if not source.startswith("(", end):
                raise _bad(
                    f"can't parse entities: Can't find end of TextUrl entity at byte offset {byte_at(i)}"
                )
            url, end = read_until(end + 1, ")", "TextUrl", i)
            label_text, label_entities = _parse_markdown_v2(label)
            start = length
            for nested in label_entities:
                entities.append({**nested, "offset": nested["offset"] + start})
            emit(label_text)
            kind = (
                {"type": "custom_emoji", "custom_emoji_id": url.rpartition("=")[2]}
                if opener == 2
                else {"type": "text_link", "url": url}
            )
            entities.append({**kind, "offset": start, "length": length - start})
            i = end
        elif ch == ">" and (i == 0 or source[i - 1] == "\n"):
            i += 1  # blockquote line marker
        elif ch in _MDV2_RESERVED:
            raise _bad(
                f"can't parse entities: Character '{ch}' is reserved and must be escaped with the preceding '\\'"
            )
        else:
            emit(ch)
            i += 1
    if stack:
        marker, _, offset = stack[-1]
        raise _bad(
            f"can't parse entities: Can't find end of {names[marker].title()} entity at byte offset {offset}"
        )
    return "".join(out), sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def _parse_markdown_legacy(source: str) -> tuple[str, list[dict[str, Any]]]:
    out: list[str] = []
    entities: list[dict[str, Any]] = []
    i = 0
    names = {"*": "bold", "_": "italic", "`": "code"}
    while i < len(source):
        ch = source[i]
        if ch == "\\" and i + 1 < len(source) and source[i + 1] in "*_`[":
            out.append(source[i + 1])
            i += 2
        elif ch in names or source.startswith("```", i):
            marker = "```" if source.startswith("```", i) else ch
            end = source.find(marker, i + len(marker))
            if end < 0:
                offset = len(source[:i].encode("utf-8"))
                raise _bad(
                    f"can't parse entities: Can't find end of the entity starting at byte offset {offset}"
                )
            content = source[i + len(marker) : end]
            start = _utf16_len("".join(out))
            out.append(content)
            kind = "pre" if marker == "```" else names[marker]
            entities.append({"type": kind, "offset": start, "length": _utf16_len(content)})
            i = end + len(marker)
        else:
            out.append(ch)
            i += 1
    return "".join(out), entities


def _render(text: Any, parse_mode: str | None, entities: Any) -> tuple[str, list[dict[str, Any]]]:
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if isinstance(entities, list):
        return text, entities
    mode = (parse_mode or "").lower()
    if mode == "html":
        return _HTMLEntities(text).parse()
    if mode == "markdownv2":
        return _parse_markdown_v2(text)
    if mode == "markdown":
        return _parse_markdown_legacy(text)
    if mode:
        raise _bad(f"unsupported parse_mode {parse_mode!r}")
    return text, []


# --------------------------------------------------------------------------- the server


class FakeBotAPI:
    """In-memory Telegram Bot API behind a real aiohttp server on 127.0.0.1.

    Test-facing state: ``calls`` (every request), ``messages()/last_message()/buttons()`` (the
    chat as the user sees it), ``webhook_url``/``webhook_secret``, ``commands`` (setMyCommands by
    ``(scope type, language_code)``), ``callback_answers`` (answerCallbackQuery by query id).
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        strict_chats: bool = False,
        max_poll_wait: float = 0.5,
        webhook_retry_delay: float = 0.2,
    ) -> None:
        self.token = token
        self.strict_chats = strict_chats  # True: sending to a never-seen chat fails like Telegram
        self.max_poll_wait = max_poll_wait
        self.webhook_retry_delay = webhook_retry_delay
        self.bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 123456
        self.base_url = ""
        self.calls: list[Call] = []
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self.webhook_deliveries: list[tuple[int, int | str]] = []  # (update_id, status or error)
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.allowed_updates: list[str] | None = None
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._chats: dict[int, _Chat] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._next_file = 1
        self._callbacks: dict[str, dict[str, Any]] = {}
        self._next_callback = 1
        self._faults: dict[str, list[_Fault]] = {}
        self._fault_rate: (
            tuple[float, tuple[int, ...], random.Random, int | float, frozenset[str] | None] | None
        ) = None
        self._event = asyncio.Event()
        self._poll_generation = 0
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._webhook_error: tuple[int, str] | None = None
        self._started_at = time.monotonic()
        self._methods: dict[str, Callable[[dict[str, Any], dict[str, UploadedFile]], Any]] = {
            name.lower(): getattr(self, f"_m_{name}")
            for name in (
                "getMe logOut close getUpdates setWebhook deleteWebhook getWebhookInfo sendMessage "
                "editMessageText editMessageReplyMarkup editMessageCaption deleteMessage deleteMessages "
                "answerCallbackQuery sendDocument sendPhoto getFile setMyCommands getMyCommands "
                "deleteMyCommands sendChatAction getChat setMyDescription setMyShortDescription setMyName "
                "setChatMenuButton"
            ).split()
        }

    # ------------------------------------------------------------------ lifecycle

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        return app

    async def start(self) -> str:
        """Serve on 127.0.0.1 (random port); returns the base URL ``http://127.0.0.1:PORT``."""
        self._closing = False
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        if self.webhook_url and self._updates:
            self._ensure_webhook_delivery()
        return self.base_url

    async def stop(self) -> None:
        self._closing = True
        self._wake()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            try:
                await self._webhook_task
            except (asyncio.CancelledError, Exception):
                pass
            self._webhook_task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def bot_base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)``."""
        return f"{self.base_url}/bot"

    @property
    def file_base_url(self) -> str:
        """For ``ApplicationBuilder().base_file_url(...)``."""
        return f"{self.base_url}/file/bot"

    def builder(self):  # -> telegram.ext.ApplicationBuilder (imported lazily)
        """A PTB ``ApplicationBuilder`` with token, base_url and base_file_url pointing here."""
        from telegram.ext import ApplicationBuilder

        return (
            ApplicationBuilder()
            .token(self.token)
            .base_url(self.bot_base_url)
            .base_file_url(self.file_base_url)
        )

    @property
    def bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": BOT_FIRST_NAME, "username": BOT_USERNAME}

    # ------------------------------------------------------------------ fault switches

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int | float = 1,
        times: int = 1,
        *,
        description: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` ("*" = any but getUpdates) with an error."""
        queue = self._faults.setdefault(method.lower(), [])
        queue.extend(
            _Fault(status, retry_after if status == 429 else None, description) for _ in range(times)
        )

    def delay_next(self, method: str, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` calls of ``method`` for ``seconds`` before handling them (timeouts)."""
        queue = self._faults.setdefault(method.lower(), [])
        queue.extend(_Fault(0, None, None, delay=seconds) for _ in range(times))

    def fail_rate(
        self,
        rate: float,
        statuses: Iterable[int] = (429, 502),
        seed: int = 1,
        *,
        retry_after: int | float = 1,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Fail each call (of ``methods``; default all but getUpdates) with probability ``rate``,
        with a status drawn from ``statuses`` by a seeded RNG. ``rate=0`` switches it off."""
        if rate <= 0:
            self._fault_rate = None
            return
        only = frozenset(m.lower() for m in methods) if methods is not None else None
        self._fault_rate = (rate, tuple(statuses), random.Random(seed), retry_after, only)

    def clear_faults(self) -> None:
        self._faults.clear()
        self._fault_rate = None

    def block(self, chat_id: int, blocked: bool = True) -> None:
        """The user blocks the bot: sends to this chat answer 403 "Forbidden: bot was blocked by the user"."""
        self._chat(chat_id).blocked = blocked

    def _take_fault(self, method: str) -> _Fault | None:
        key = method.lower()
        for name in (key, "*"):
            if name == "*" and key == "getupdates":
                continue
            queue = self._faults.get(name)
            if queue:
                return queue.pop(0)
        if self._fault_rate is not None:
            rate, statuses, rng, retry_after, only = self._fault_rate
            applies = key in only if only is not None else key != "getupdates"
            if applies and rng.random() < rate:
                status = rng.choice(statuses)
                return _Fault(status, retry_after if status == 429 else None, None)
        return None

    # ------------------------------------------------------------------ simulated users

    def _user(self, user_id: int, first_name: str | None = None, language_code: str | None = None) -> dict:
        user = self._users.get(user_id)
        if user is None:
            user = {
                "id": user_id,
                "is_bot": False,
                "first_name": first_name or "Seller",
                "username": f"user{user_id}",
            }
            self._users[user_id] = user
        if first_name:
            user["first_name"] = first_name
        if language_code:
            user["language_code"] = language_code
        return dict(user)

    def _chat(self, chat_id: int, chat_type: str = "private", user: dict | None = None) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_type == "private":
                payload = {
                    "id": chat_id,
                    "type": "private",
                    "first_name": (user or {}).get("first_name", "Seller"),
                }
                if user and user.get("username"):
                    payload["username"] = user["username"]
            else:
                payload = {"id": chat_id, "type": chat_type, "title": f"Test {chat_type} {chat_id}"}
            chat = _Chat(chat_id, payload)
            self._chats[chat_id] = chat
        return chat

    def _new_update(self, **body: Any) -> dict[str, Any]:
        update = {"update_id": self._next_update_id, **body}
        self._next_update_id += 1
        return update

    def _enqueue(self, update: dict[str, Any]) -> None:
        self._updates.append(update)
        self._wake()
        if self.webhook_url:
            self._ensure_webhook_delivery()

    def _store_file(
        self,
        data: bytes,
        path_prefix: str,
        ext: str,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> _StoredFile:
        n = self._next_file
        self._next_file += 1
        stored = _StoredFile(
            file_id=f"FAKE{path_prefix.upper()}{n:06d}AAQ",
            file_unique_id=f"AQAD{n:04d}",
            file_path=f"{path_prefix}/fake_{n}.{ext}",  # never exists locally (see telegram.md §2.9)
            data=data,
            filename=filename,
            content_type=content_type,
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def _photo_sizes(self, data: bytes) -> list[dict[str, Any]]:
        stored = self._store_file(data, "photos", "jpg", content_type="image/jpeg")
        width, height, thumb = 1280, 960, None
        try:
            from PIL import Image

            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                small = image.convert("RGB")
                small.thumbnail((90, 90))
                buf = io.BytesIO()
                small.save(buf, "JPEG", quality=70)
                thumb = buf.getvalue()
        except Exception:  # not an image (or no Pillow): one size only
            pass
        sizes = []
        if thumb is not None and max(width, height) > 90:
            small_file = self._store_file(thumb, "photos", "jpg", content_type="image/jpeg")
            scale = 90 / max(width, height)
            sizes.append(
                {
                    **small_file.as_file(),
                    "width": max(1, round(width * scale)),
                    "height": max(1, round(height * scale)),
                }
            )
            sizes[-1].pop("file_path")
        full = stored.as_file()
        full.pop("file_path")
        sizes.append({**full, "width": width, "height": height})
        return sizes

    def _user_message(
        self,
        user_id: int,
        chat_id: int | None,
        chat_type: str,
        first_name: str | None,
        language_code: str | None,
        reply_to_message_id: int | None,
        **content: Any,
    ) -> tuple[dict[str, Any], int]:
        if chat_id is None:
            if chat_type != "private":
                raise ValueError("chat_id is required for group chats")
            chat_id = user_id
        user = self._user(user_id, first_name, language_code)
        chat = self._chat(chat_id, chat_type, user)
        message_id = chat.new_message_id()
        payload: dict[str, Any] = {
            "message_id": message_id,
            "from": user,
            "chat": dict(chat.payload),
            "date": int(time.time()),
            **content,
        }
        if reply_to_message_id is not None:
            replied = chat.messages.get(reply_to_message_id)
            if replied is None:
                raise LookupError(f"no message {reply_to_message_id} in chat {chat_id}")
            payload["reply_to_message"] = {
                k: v for k, v in replied.payload.items() if k != "reply_to_message"
            }
        chat.messages[message_id] = _Msg(message_id, chat_id, False, payload, raw_text=content.get("text"))
        return payload, message_id

    def push_message(
        self,
        user_id: int,
        text: str | None = None,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        language_code: str | None = "zh-hans",
        first_name: str | None = None,
        reply_to_message_id: int | None = None,
        photo: bytes | None = None,
    ) -> int:
        """A user sends a message (text, or a photo with ``text`` as caption). Returns its message_id.

        ``/command`` texts carry a ``bot_command`` entity. A photo is stored and served by getFile
        and the file URL (path ``photos/fake_<n>.jpg``); the update lists a thumbnail and the full size.
        """
        content: dict[str, Any] = {}
        key = "caption" if photo is not None else "text"
        if text is not None:
            content[key] = text
            if text.startswith("/"):
                command = text.split()[0] if text.split() else text
                entities_key = "caption_entities" if photo is not None else "entities"
                content[entities_key] = [{"type": "bot_command", "offset": 0, "length": _utf16_len(command)}]
        if photo is not None:
            content["photo"] = self._photo_sizes(photo)
        elif text is None:
            raise ValueError("push_message needs text or photo")
        payload, message_id = self._user_message(
            user_id, chat_id, chat_type, first_name, language_code, reply_to_message_id, **content
        )
        self._enqueue(self._new_update(message=payload))
        return message_id

    def push_document(
        self,
        user_id: int,
        data: bytes,
        filename: str,
        mime_type: str | None = None,
        *,
        caption: str | None = None,
        chat_id: int | None = None,
        chat_type: str = "private",
        language_code: str | None = "zh-hans",
    ) -> int:
        """A user sends a file (e.g. an uncompressed waybill photo). Returns its message_id."""
        ext = filename.rsplit(".", 1)[-1] if "." in filename else "bin"
        stored = self._store_file(data, "documents", ext, filename, mime_type)
        document = stored.as_file()
        document.pop("file_path")
        document["file_name"] = filename
        if mime_type:
            document["mime_type"] = mime_type
        content: dict[str, Any] = {"document": document}
        if caption is not None:
            content["caption"] = caption
        payload, message_id = self._user_message(
            user_id, chat_id, chat_type, None, language_code, None, **content
        )
        self._enqueue(self._new_update(message=payload))
        return message_id

    def push_callback(
        self,
        user_id: int,
        message_id: int,
        data: str,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
    ) -> str:
        """A user taps an inline button with ``data`` under bot message ``message_id``; returns the
        callback query id. ``data`` is not checked against the keyboard (forged taps are possible)."""
        if chat_id is None:
            if chat_type != "private":
                raise ValueError("chat_id is required for group chats")
            chat_id = user_id
        chat = self._chats.get(chat_id)
        msg = chat.messages.get(message_id) if chat else None
        if msg is None or msg.deleted or not msg.from_bot:
            raise LookupError(f"no bot message {message_id} in chat {chat_id}")
        query_id = str(4_000_000_000_000_000 + self._next_callback)
        self._next_callback += 1
        self._callbacks[query_id] = {"user_id": user_id, "answered": False}
        query = {
            "id": query_id,
            "from": self._user(user_id),
            "message": json.loads(json.dumps(msg.payload)),
            "chat_instance": str(abs(hash((chat_id, self.bot_id))) % 10**18),
            "data": data,
        }
        self._enqueue(self._new_update(callback_query=query))
        return query_id

    def press(
        self, chat_id: int, button_text: str, *, message_id: int | None = None, user_id: int | None = None
    ) -> str:
        """Tap the button whose text equals (else contains) ``button_text`` on a bot message
        (default: the last one that has such a button). Returns the callback query id."""
        chat = self._chats.get(chat_id)
        if chat is None:
            raise LookupError(f"no chat {chat_id}")
        if user_id is None:
            if chat.payload["type"] != "private":
                raise ValueError("user_id is required in group chats")
            user_id = chat_id
        candidates = sorted(
            (
                m
                for m in chat.messages.values()
                if m.from_bot and not m.deleted and (message_id is None or m.message_id == message_id)
            ),
            key=lambda m: m.message_id,
            reverse=True,
        )
        for exact in (True, False):
            for msg in candidates:
                for text, data in _flatten_buttons(msg.reply_markup):
                    if data is not None and (text == button_text if exact else button_text in text):
                        return self.push_callback(
                            user_id, msg.message_id, data, chat_id=chat_id, chat_type=chat.payload["type"]
                        )
        seen = [(m.message_id, _flatten_buttons(m.reply_markup)) for m in candidates]
        raise LookupError(f"no button {button_text!r} in chat {chat_id}; buttons: {seen}")

    # ------------------------------------------------------------------ reading the chat

    def _bot_message(self, msg: _Msg) -> BotMessage:
        reply_to = msg.payload.get("reply_to_message", {}).get("message_id")
        return BotMessage(
            message_id=msg.message_id,
            text=msg.payload.get("text"),
            reply_markup=json.loads(json.dumps(msg.reply_markup)) if msg.reply_markup else None,
            document=msg.document,
            chat_id=msg.chat_id,
            caption=msg.payload.get("caption"),
            photo=msg.photo,
            raw_text=msg.raw_text,
            parse_mode=msg.parse_mode,
            entities=tuple(msg.payload.get("entities") or msg.payload.get("caption_entities") or ()),
            edit_count=msg.edit_count,
            date=msg.payload.get("date", 0),
            reply_to_message_id=reply_to,
        )

    def messages(self, chat_id: int) -> list[BotMessage]:
        """The bot's messages in a chat, oldest first, as currently shown (edits applied, deleted ones gone)."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return []
        return [
            self._bot_message(m)
            for m in sorted(chat.messages.values(), key=lambda m: m.message_id)
            if m.from_bot and not m.deleted
        ]

    def last_message(self, chat_id: int) -> BotMessage | None:
        shown = self.messages(chat_id)
        return shown[-1] if shown else None

    def message(self, chat_id: int, message_id: int) -> BotMessage | None:
        chat = self._chats.get(chat_id)
        msg = chat.messages.get(message_id) if chat else None
        return self._bot_message(msg) if msg and msg.from_bot and not msg.deleted else None

    def buttons(self, chat_id: int, message_id: int | None = None) -> list[tuple[str, str | None]]:
        """``(text, callback_data)`` of a bot message's keyboard, row by row (default: last message)."""
        msg = self.last_message(chat_id) if message_id is None else self.message(chat_id, message_id)
        return msg.buttons if msg else []

    def user_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """Payloads of the users' messages still present in the chat (deleted ones gone)."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return []
        return [
            m.payload
            for m in sorted(chat.messages.values(), key=lambda m: m.message_id)
            if not m.from_bot and not m.deleted
        ]

    def is_deleted(self, chat_id: int, message_id: int) -> bool:
        chat = self._chats.get(chat_id)
        msg = chat.messages.get(message_id) if chat else None
        return bool(msg and msg.deleted)

    def calls_of(self, method: str, *, ok: bool | None = None) -> list[Call]:
        """Recorded calls of a method (case-insensitive); ``ok=True`` keeps only successful ones."""
        key = method.lower()
        return [c for c in self.calls if c.method.lower() == key and (ok is None or c.ok == ok)]

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed (by a later getUpdates offset, or by a 2xx webhook answer)."""
        return list(self._updates)

    def callback_answer(self, query_id: str) -> dict[str, Any] | None:
        return self.callback_answers.get(query_id)

    def dump(self, last: int = 30) -> str:
        """Readable log of recent calls (getUpdates only when it failed) and the chats."""
        lines = []
        recent = [c for c in self.calls if c.method.lower() != "getupdates" or not c.ok][-last:]
        for c in recent:
            shown = {k: (v if len(repr(v)) < 160 else repr(v)[:157] + "...") for k, v in c.params.items()}
            files = {k: f"{f.filename} ({len(f.data)} B, {f.content_type})" for k, f in c.files.items()}
            err = "" if c.ok else f" -> {c.result}"
            lines.append(
                f"  +{c.at - self._started_at:7.3f}s {c.method} [{c.status}] {shown}{' ' + str(files) if files else ''}{err}"
            )
        lines.append(f"  pending updates: {[u['update_id'] for u in self._updates]}")
        for chat_id in self._chats:
            for m in self.messages(chat_id)[-5:]:
                lines.append(
                    f"  chat {chat_id} msg {m.message_id}: {m.shown_text[:120]!r} buttons={m.buttons}"
                )
        return "\n".join(lines)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0, *, what: str = "") -> Any:
        """Poll ``predicate()`` (sync or async) every 10 ms until truthy; return its value.

        LookupError/AttributeError/TypeError raised by the predicate count as "not yet". On timeout
        raises AssertionError with a dump of recent calls.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_error: BaseException | None = None
        while True:
            try:
                value = predicate()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return value
            except (LookupError, AttributeError, TypeError) as exc:
                last_error = exc
            if loop.time() >= deadline:
                detail = f" (last error: {last_error!r})" if last_error else ""
                label = what or getattr(predicate, "__name__", "predicate")
                raise AssertionError(f"timed out after {timeout}s waiting for {label}{detail}\n{self.dump()}")
            await asyncio.sleep(0.01)

    async def wait_for_call(
        self,
        method: str,
        *,
        count: int = 1,
        where: Callable[[Call], bool] | None = None,
        ok: bool | None = True,
        timeout: float = 5.0,
    ) -> Call:
        """Wait until ``count`` matching calls of ``method`` are recorded; return the last of them."""

        def found() -> Call | None:
            matching = [c for c in self.calls_of(method, ok=ok) if where is None or where(c)]
            return matching[count - 1] if len(matching) >= count else None

        return await self.wait_for(found, timeout, what=f"{count}x {method}")

    async def wait_for_message(
        self, chat_id: int, contains: str | None = None, *, timeout: float = 5.0, after: int = 0
    ) -> BotMessage:
        """Wait for a bot message in the chat (with id > ``after``) whose text/caption contains ``contains``."""

        def found() -> BotMessage | None:
            for msg in reversed(self.messages(chat_id)):
                if msg.message_id > after and (contains is None or contains in msg.shown_text):
                    return msg
            return None

        return await self.wait_for(found, timeout, what=f"message in chat {chat_id} containing {contains!r}")

    # ------------------------------------------------------------------ webhook mode

    def build_message_update(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        language_code: str | None = "zh-hans",
    ) -> dict:
        """An Update dict for a user message (stored in the chat, not queued): for post_update_to."""
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            content["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(text.split()[0])}
            ]
        payload, _ = self._user_message(user_id, chat_id, chat_type, None, language_code, None, **content)
        return self._new_update(message=payload)

    async def post_update_to(
        self, url: str, update: dict[str, Any], secret_token: str | None = None, *, timeout: float = 5.0
    ) -> int:
        """POST one update as JSON to a webhook URL like Telegram does; returns the HTTP status."""
        if "update_id" not in update:
            update = self._new_update(**update)
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret_token} if secret_token else {}
        async with ClientSession(timeout=ClientTimeout(total=timeout)) as session:
            async with session.post(url, json=update, headers=headers) as response:
                await response.read()
                return response.status

    def _ensure_webhook_delivery(self) -> None:
        if self._webhook_task is not None and not self._webhook_task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # started later by start()/setWebhook
        self._webhook_task = loop.create_task(self._deliver_webhook())

    async def _deliver_webhook(self) -> None:
        async with ClientSession(timeout=ClientTimeout(total=10)) as session:
            while self.webhook_url and self._updates and not self._closing:
                update = self._updates[0]
                headers = (
                    {"X-Telegram-Bot-Api-Secret-Token": self.webhook_secret} if self.webhook_secret else {}
                )
                try:
                    async with session.post(self.webhook_url, json=update, headers=headers) as response:
                        await response.read()
                        status: int | str = response.status
                except (TimeoutError, ClientError, OSError) as exc:
                    status = type(exc).__name__
                self.webhook_deliveries.append((update["update_id"], status))
                if isinstance(status, int) and 200 <= status < 300:
                    if self._updates and self._updates[0] is update:
                        self._updates.pop(0)
                else:
                    self._webhook_error = (int(time.time()), f"Wrong response from the webhook: {status}")
                    await asyncio.sleep(self.webhook_retry_delay)

    # ------------------------------------------------------------------ HTTP plumbing

    def _wake(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    @staticmethod
    def _decode_value(key: str, value: str) -> Any:
        if key in _STRING_PARAMS:
            return value

        def reject(constant: str) -> Any:
            raise ValueError(constant)

        try:
            return json.loads(value, parse_constant=reject)
        except ValueError:
            return value

    async def _parse_request(self, request: web.Request) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
        params: dict[str, Any] = {k: self._decode_value(k, v) for k, v in request.query.items()}
        files: dict[str, UploadedFile] = {}
        if request.method != "POST" or not request.body_exists:
            return params, files
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError as exc:
                raise _bad("can't parse JSON encoded request body") from exc
            if not isinstance(body, dict):
                raise _bad("request body must be a JSON object")
            params.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = UploadedFile(key, value.filename, value.content_type, value.file.read())
                else:
                    params[key] = self._decode_value(key, value)
        return params, files

    async def _handle_api(self, request: web.Request) -> web.Response:
        at = time.monotonic()
        method = request.match_info["method"]
        params: dict[str, Any] = {}
        files: dict[str, UploadedFile] = {}
        try:
            if request.match_info["token"] != self.token:
                raise TelegramAPIError(401)
            params, files = await self._parse_request(request)
            fault = self._take_fault(method)
            if fault is not None and fault.delay:
                await asyncio.sleep(fault.delay)
                fault = None
            if fault is not None:
                parameters = {"retry_after": fault.retry_after} if fault.status == 429 else None
                raise TelegramAPIError(
                    fault.status,
                    fault.description or _status_text(fault.status, fault.retry_after),
                    parameters,
                )
            handler = self._methods.get(method.lower())
            if handler is None:
                raise TelegramAPIError(404)
            result = handler(params, files)
            if inspect.isawaitable(result):
                result = await result
        except TelegramAPIError as err:
            self._record(request, Call(method, params, files, at, err.status, err.description))
            return web.json_response(err.body(), status=err.status)
        self._record(request, Call(method, params, files, at, 200, result))
        return web.json_response({"ok": True, "result": result})

    def _record(self, request: web.Request, call: Call) -> None:
        # A long poll whose client went away (PTB cancelled it on stop) is not worth recording;
        # every other call is, even if its client timed out meanwhile (its effect happened).
        gone = request.transport is None or request.transport.is_closing()
        if not (gone and call.method.lower() == "getupdates"):
            self.calls.append(call)

    async def _handle_file(self, request: web.Request) -> web.Response:
        stored = self._files_by_path.get(request.match_info["path"])
        if request.match_info["token"] != self.token or stored is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return web.Response(body=stored.data, content_type=stored.content_type or "application/octet-stream")

    # ------------------------------------------------------------------ helpers for methods

    def _chat_for_send(self, params: dict[str, Any]) -> _Chat:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad("chat_id is empty")
        if isinstance(chat_id, str):
            matches = [c for c in self._chats.values() if c.payload.get("username") == chat_id.lstrip("@")]
            if not matches:
                raise _bad("chat not found")
            chat = matches[0]
        elif not isinstance(chat_id, int) or isinstance(chat_id, bool) or chat_id == 0:
            raise _bad("chat not found")
        else:
            chat = self._chats.get(chat_id)
            if chat is None:
                if self.strict_chats:
                    if chat_id > 0:
                        raise TelegramAPIError(403, "Forbidden: bot can't initiate conversation with a user")
                    raise _bad("chat not found")
                chat = self._chat(
                    chat_id, "private" if chat_id > 0 else "supergroup", self._users.get(chat_id)
                )
        if chat.blocked:
            raise TelegramAPIError(403)
        return chat

    def _existing(self, params: dict[str, Any], action: str) -> tuple[_Chat, _Msg]:
        if params.get("inline_message_id"):
            raise _bad(f"message to {action} not found")
        chat = self._chat_for_send(params)
        message_id = params.get("message_id")
        msg = chat.messages.get(message_id) if isinstance(message_id, int) else None
        if msg is None or msg.deleted:
            raise _bad(f"message to {action} not found")
        return chat, msg

    @staticmethod
    def _check_markup(markup: Any) -> dict[str, Any] | None:
        if markup is None or markup == "":
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise _bad('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
            if sum(len(r) for r in rows) > MAX_BUTTONS:
                raise _bad("reply markup is too long")
            for row in rows:
                for button in row:
                    if not isinstance(button, dict) or not button.get("text"):
                        raise _bad(
                            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                        )
                    if "callback_data" in button:
                        data = button["callback_data"]
                        size = len(data.encode("utf-8")) if isinstance(data, str) else 0
                        if not 1 <= size <= MAX_CALLBACK_DATA:
                            raise _bad("BUTTON_DATA_INVALID")
                    elif not any(k in button for k in _INLINE_BUTTON_ACTIONS):
                        raise _bad(
                            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                        )
                    url = button.get("url")
                    if url is not None and not re.match(r"^(https?|tg)://\S+$", str(url)):
                        raise _bad(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")
            if not any(rows):
                return None  # an empty inline keyboard is no keyboard
        return markup

    def _reply_to(self, chat: _Chat, params: dict[str, Any]) -> dict[str, Any] | None:
        reply = params.get("reply_parameters")
        if isinstance(reply, dict):
            message_id, allow = reply.get("message_id"), reply.get("allow_sending_without_reply")
        else:
            message_id, allow = params.get("reply_to_message_id"), params.get("allow_sending_without_reply")
        if message_id is None:
            return None
        replied = chat.messages.get(message_id)
        if replied is None or replied.deleted:
            if allow:
                return None
            raise _bad("message to be replied not found")
        return {k: v for k, v in replied.payload.items() if k != "reply_to_message"}

    def _upload(self, params: dict[str, Any], files: dict[str, UploadedFile], key: str) -> UploadedFile:
        value = params.get(key)
        upload = files.get(key)
        if isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value.removeprefix("attach://"))
        if upload is not None:
            if not upload.data:
                raise _bad("file must be non-empty")
            return upload
        if isinstance(value, str) and value:
            if value.startswith(("http://", "https://")):
                return UploadedFile(key, value.rsplit("/", 1)[-1] or None, None, b"", file_id=value)
            stored = self._files.get(value)
            if stored is None:
                raise _bad("wrong file identifier/HTTP URL specified")
            return UploadedFile(key, stored.filename, stored.content_type, stored.data, file_id=value)
        raise _bad(f"there is no {key} in the request")

    def _caption(self, params: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
        if params.get("caption") in (None, ""):
            return None, []
        caption, entities = _render(
            params["caption"], params.get("parse_mode"), params.get("caption_entities")
        )
        if _utf16_len(caption) > MAX_CAPTION:
            raise _bad("message caption is too long")
        return caption, entities

    def _store_bot_message(
        self,
        chat: _Chat,
        params: dict[str, Any],
        content: dict[str, Any],
        markup: dict[str, Any] | None,
        **extra: Any,
    ) -> dict[str, Any]:
        reply_to = self._reply_to(chat, params)
        message_id = chat.new_message_id()
        payload: dict[str, Any] = {
            "message_id": message_id,
            "from": self.bot_user,
            "chat": dict(chat.payload),
            "date": int(time.time()),
            **content,
        }
        if reply_to is not None:
            payload["reply_to_message"] = reply_to
        if markup and "inline_keyboard" in markup:
            payload["reply_markup"] = markup
        chat.messages[message_id] = _Msg(message_id, chat.id, True, payload, reply_markup=markup, **extra)
        return payload

    # ------------------------------------------------------------------ Bot API methods

    def _m_getMe(self, params, files):
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _m_logOut(self, params, files):
        return True

    _m_close = _m_logOut

    async def _m_getUpdates(self, params, files):
        if self.webhook_url:
            raise TelegramAPIError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake()  # an older long poll still waiting is terminated with 409, as on Telegram
        offset = params.get("offset")
        if isinstance(offset, int) and offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif isinstance(offset, int) and offset < 0:
            self._updates = self._updates[offset:]
        if params.get("allowed_updates") is not None:
            self.allowed_updates = list(params["allowed_updates"]) or None
        limit = params.get("limit") if isinstance(params.get("limit"), int) else 100
        limit = min(max(limit, 1), 100)
        timeout = params.get("timeout") if isinstance(params.get("timeout"), int | float) else 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(timeout, 0), self.max_poll_wait)
        while True:
            event = self._event
            ready = [u for u in self._updates if self._allowed(u)][:limit]
            if ready:
                return ready
            if generation != self._poll_generation:
                raise TelegramAPIError(409)
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                return []
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass

    def _allowed(self, update: dict[str, Any]) -> bool:
        if not self.allowed_updates:
            return True
        return any(kind in update for kind in self.allowed_updates)

    def _m_setWebhook(self, params, files):
        url = params.get("url") or ""
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_RE.match(str(secret)):
            raise _bad("secret token contains unallowed characters")
        if url and not re.match(r"^https?://\S+$", url):
            raise _bad("bad webhook: Failed to resolve host: Name or service not known")
        if params.get("drop_pending_updates"):
            self._updates.clear()
        if params.get("allowed_updates") is not None:
            self.allowed_updates = list(params["allowed_updates"]) or None
        self.webhook_url = url or None
        self.webhook_secret = secret if url else None
        self._webhook_error = None
        self._wake()
        if self.webhook_url and self._updates:
            self._ensure_webhook_delivery()
        return True

    def _m_deleteWebhook(self, params, files):
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook_url = None
        self.webhook_secret = None
        return True

    def _m_getWebhookInfo(self, params, files):
        info: dict[str, Any] = {
            "url": self.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook_url:
            info["max_connections"] = 40
            if self.allowed_updates:
                info["allowed_updates"] = self.allowed_updates
            if self._webhook_error:
                info["last_error_date"], info["last_error_message"] = self._webhook_error
        return info

    def _m_sendMessage(self, params, files):
        chat = self._chat_for_send(params)
        text, entities = _render(params.get("text"), params.get("parse_mode"), params.get("entities"))
        if not text.strip():
            raise _bad("message text is empty")
        if _utf16_len(text) > MAX_TEXT:
            raise _bad("message is too long")
        markup = self._check_markup(params.get("reply_markup"))
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        return self._store_bot_message(
            chat, params, content, markup, raw_text=params.get("text"), parse_mode=params.get("parse_mode")
        )

    def _m_editMessageText(self, params, files):
        chat, msg = self._existing(params, "edit")
        if not msg.from_bot:
            raise _bad("message can't be edited")
        if "text" not in msg.payload:
            raise _bad("there is no text in the message to edit")
        text, entities = _render(params.get("text"), params.get("parse_mode"), params.get("entities"))
        if not text.strip():
            raise _bad("message text is empty")
        if _utf16_len(text) > MAX_TEXT:
            raise _bad("message is too long")
        markup = self._check_markup(params.get("reply_markup"))  # omitted → keyboard removed
        if (text, entities or None, markup) == (
            msg.payload["text"],
            msg.payload.get("entities"),
            msg.reply_markup,
        ):
            raise _bad(_NOT_MODIFIED.removeprefix("Bad Request: "))
        msg.payload["text"] = text
        self._set(msg.payload, "entities", entities or None)
        self._apply_edit(msg, markup)
        msg.raw_text, msg.parse_mode = params.get("text"), params.get("parse_mode")
        return msg.payload

    def _m_editMessageCaption(self, params, files):
        chat, msg = self._existing(params, "edit")
        if not msg.from_bot:
            raise _bad("message can't be edited")
        if "text" in msg.payload:
            raise _bad("there is no caption in the message to edit")
        caption, entities = self._caption(params)
        markup = self._check_markup(params.get("reply_markup"))
        if (caption, entities or None, markup) == (
            msg.payload.get("caption"),
            msg.payload.get("caption_entities"),
            msg.reply_markup,
        ):
            raise _bad(_NOT_MODIFIED.removeprefix("Bad Request: "))
        self._set(msg.payload, "caption", caption)
        self._set(msg.payload, "caption_entities", entities or None)
        self._apply_edit(msg, markup)
        return msg.payload

    def _m_editMessageReplyMarkup(self, params, files):
        chat, msg = self._existing(params, "edit")
        if not msg.from_bot:
            raise _bad("message can't be edited")
        markup = self._check_markup(params.get("reply_markup"))
        if markup == msg.reply_markup:
            raise _bad(_NOT_MODIFIED.removeprefix("Bad Request: "))
        self._apply_edit(msg, markup)
        return msg.payload

    @staticmethod
    def _set(payload: dict[str, Any], key: str, value: Any) -> None:
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value

    @staticmethod
    def _apply_edit(msg: _Msg, markup: dict[str, Any] | None) -> None:
        msg.reply_markup = markup
        if markup and "inline_keyboard" in markup:
            msg.payload["reply_markup"] = markup
        else:
            msg.payload.pop("reply_markup", None)
        msg.payload["edit_date"] = int(time.time())
        msg.edit_count += 1

    def _m_deleteMessage(self, params, files):
        _, msg = self._existing(params, "delete")
        msg.deleted = True
        return True

    def _m_deleteMessages(self, params, files):
        chat = self._chat_for_send(params)
        ids = params.get("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise _bad("message_ids must be a list of 1-100 identifiers")
        for message_id in ids:
            msg = chat.messages.get(message_id)
            if msg is not None:
                msg.deleted = True
        return True

    def _m_answerCallbackQuery(self, params, files):
        query_id = str(params.get("callback_query_id", ""))
        query = self._callbacks.get(query_id)
        if query is None or query["answered"]:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        text = params.get("text")
        if text is not None and len(str(text)) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        query["answered"] = True
        self.callback_answers[query_id] = {
            "text": text,
            "show_alert": bool(params.get("show_alert")),
            "url": params.get("url"),
        }
        return True

    def _m_sendDocument(self, params, files):
        chat = self._chat_for_send(params)
        upload = self._upload(params, files, "document")
        if len(upload.data) > MAX_UPLOAD:
            raise TelegramAPIError(413, "Request Entity Too Large")
        caption, entities = self._caption(params)
        markup = self._check_markup(params.get("reply_markup"))
        filename = upload.filename or "document"
        ext = filename.rsplit(".", 1)[-1] if "." in filename else "bin"
        stored = self._store_file(upload.data, "documents", ext, filename, upload.content_type)
        document = {k: v for k, v in stored.as_file().items() if k != "file_path"}
        document["file_name"] = filename
        if upload.content_type:
            document["mime_type"] = upload.content_type
        content: dict[str, Any] = {"document": document}
        if caption is not None:
            content["caption"] = caption
            if entities:
                content["caption_entities"] = entities
        return self._store_bot_message(
            chat, params, content, markup, document=upload, parse_mode=params.get("parse_mode")
        )

    def _m_sendPhoto(self, params, files):
        chat = self._chat_for_send(params)
        upload = self._upload(params, files, "photo")
        if upload.data and upload.file_id is None:
            try:
                from PIL import Image

                with Image.open(io.BytesIO(upload.data)) as image:
                    image.verify()
            except ImportError:
                pass
            except Exception as exc:
                raise _bad("IMAGE_PROCESS_FAILED") from exc
        caption, entities = self._caption(params)
        markup = self._check_markup(params.get("reply_markup"))
        content: dict[str, Any] = {"photo": self._photo_sizes(upload.data)}
        if caption is not None:
            content["caption"] = caption
            if entities:
                content["caption_entities"] = entities
        return self._store_bot_message(
            chat, params, content, markup, photo=upload, parse_mode=params.get("parse_mode")
        )

    def _m_getFile(self, params, files):
        stored = self._files.get(str(params.get("file_id", "")))
        if stored is None:
            raise _bad("invalid file_id")
        if len(stored.data) > MAX_DOWNLOAD:
            raise _bad("file is too big")
        return stored.as_file()

    @staticmethod
    def _commands_key(params: dict[str, Any]) -> tuple[str, str]:
        """("default" | scope type | JSON of a scope with ids, language_code or "")."""
        scope = params.get("scope")
        if not isinstance(scope, dict) or scope.get("type", "default") == "default":
            scope_key = "default"
        elif set(scope) == {"type"}:
            scope_key = scope["type"]
        else:
            scope_key = json.dumps(scope, sort_keys=True)
        return scope_key, str(params.get("language_code") or "")

    def _m_setMyCommands(self, params, files):
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad("commands must be a list of at most 100 BotCommand")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_RE.match(str(command.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[self._commands_key(params)] = commands
        return True

    def _m_getMyCommands(self, params, files):
        return self.commands.get(self._commands_key(params), [])

    def _m_deleteMyCommands(self, params, files):
        self.commands.pop(self._commands_key(params), None)
        return True

    def _m_sendChatAction(self, params, files):
        self._chat_for_send(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    def _m_getChat(self, params, files):
        return {**self._chat_for_send(params).payload, "accent_color_id": 0, "max_reaction_count": 11}

    def _m_setMyDescription(self, params, files):
        return True

    _m_setMyShortDescription = _m_setMyDescription
    _m_setMyName = _m_setMyDescription
    _m_setChatMenuButton = _m_setMyDescription
