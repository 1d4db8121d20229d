"""The Bot API methods (`_m_*`) with Telegram's limits and errors (reference/telegram.md §3)."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from typing import Any

from .errors import TelegramAPIError, _bad
from .formatting import _render, _utf16_len
from .world import (
    MAX_BUTTONS,
    MAX_CALLBACK_DATA,
    MAX_CAPTION,
    MAX_DOWNLOAD,
    MAX_TEXT,
    MAX_UPLOAD,
    UploadedFile,
    _Chat,
    _Msg,
)

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



class Api:
    """The `_m_*` methods (state lives on `FakeBotAPI`)."""

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
