"""The test side of the fake: simulated users (messages, documents, button presses), waits, faults and
webhook delivery. `Driver` is one of the mixins `FakeBotAPI` is made of (see server.py)."""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout

from .formatting import _utf16_len
from .world import BotMessage, Call, _Fault, _flatten_buttons, _Msg


class Driver:
    """Simulated users, waits and faults (state lives on `FakeBotAPI`)."""

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
