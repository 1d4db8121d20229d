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

Messages: users and the bot share one increasing ``message_id`` sequence per chat."""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .api import Api
from .driver import Driver
from .errors import TelegramAPIError, _bad, _status_text
from .limits import FloodGate, FloodLimits
from .world import (
    BOT_FIRST_NAME,
    BOT_USERNAME,
    DEFAULT_TOKEN,
    MAX_UPLOAD,
    Call,
    UploadedFile,
    World,
    _Chat,
    _Fault,
    _StoredFile,
)

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



class FakeBotAPI(World, Driver, Api):
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
        flood_limits: FloodLimits | None = None,
    ) -> None:
        self.token = token
        # Telegram's flood limits (limits.py); None: off, so tests that do not measure them keep their speed
        self.flood = FloodGate(flood_limits) if flood_limits is not None else None
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
            if fault is None and self.flood is not None:
                retry_after = self.flood.check(method, params.get("chat_id"))
                if retry_after is not None:
                    fault = _Fault(429, retry_after, None)
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

    def enforce_flood_limits(self, limits: FloodLimits | None = None) -> FloodGate:
        """Switches Telegram's flood limits on (limits.py; the defaults are Telegram's rates and our chosen
        bursts) and returns the gate, which counts what passed and what it refused."""
        self.flood = FloodGate(limits or FloodLimits())
        return self.flood

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
