"""The fake Bot API's world: users, chats, messages and files, and the readers tests assert on.

`World` is one of the mixins `FakeBotAPI` is made of (see server.py)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TOKEN = "123456:TEST-TOKEN"
BOT_USERNAME = "ozon_desk_bot"
BOT_FIRST_NAME = "Ozon Desk"

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_BUTTONS = 100
MAX_DOWNLOAD = 20 * 1024 * 1024
MAX_UPLOAD = 50 * 1024 * 1024


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




class World:
    """Users, chats, messages and files (state lives on `FakeBotAPI`)."""

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
