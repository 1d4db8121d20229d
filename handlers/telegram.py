"""Telegram channel: translates updates into desk/shipping calls and views into messages and keyboards."""

from __future__ import annotations

import hmac
import json
import logging
from contextlib import suppress
from dataclasses import replace
from functools import partial

from aiohttp import web
from telegram import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    Update,
)
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError, TimedOut
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from handlers.bodies import read_body
from handlers.ports import ChatPort
from handlers.telegram_transport import AiohttpRequest
from services.commands import TELEGRAM, Surface, Verb, menu
from services.conversation import Caller
from services.desk import is_person
from services.i18n import Translator, pick_locale
from services.pacing import SlidingWindow
from services.storage.models import Member
from services.views import Answer, View

log = logging.getLogger(__name__)
CHANNEL = "telegram"
MAX_UPDATE = 256 * 1024  # a real update is a few kilobytes
# Telegram's shared senders: anonymous group admins (GroupAnonymousBot), channels posting into a group
# (Channel_Bot), automatic forwards from a linked channel (Telegram); none of them is a person
CHAT_BURST = 3  # messages one private chat may get at once before the one-a-second pace applies
SERVICE_SENDERS = frozenset({1087968824, 136817688, 777000})


class TelegramChannel:
    channel = CHANNEL

    def __init__(self, port: ChatPort):
        self.conversation = port.conversation
        self._limiter = port.limiter
        self._catalogs = port.catalogs
        self._chat_window = SlidingWindow(CHAT_BURST, CHAT_BURST / port.config.chat_rate)
        self._config = config = port.config
        # derived from the secret key, so every process behind a load balancer checks the same token
        self._webhook_secret = port.box.sign("telegram-webhook-secret", 32)
        port.redactor.add(self._webhook_secret)
        # PTB logs whole updates at DEBUG before any handler sees them: a /connect carries a key
        port.redactor.add_pattern(r"(/connect(?:@\w+)?\s+\S+\s+)[^\s'\"\\]+")
        builder = (ApplicationBuilder().token(config.token)
                   .base_url(config.api_url).base_file_url(config.file_url)
                   .request(AiohttpRequest()).get_updates_request(AiohttpRequest(pool_size=2))
                   .rate_limiter(AIORateLimiter(max_retries=5))
                   .concurrent_updates(64).job_queue(None))
        if config.webhook_url:
            builder = builder.updater(None)
        self.app: Application = builder.build()
        self._register()

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self, web_app: web.Application | None = None) -> None:
        await self.app.initialize()
        await self.app.start()
        await self._set_menus()
        if self._config.webhook_url:
            await self.app.bot.set_webhook(url=self._config.webhook_url, secret_token=self._webhook_secret,
                                           allowed_updates=["message", "callback_query"])
        else:
            await self.app.updater.start_polling(poll_interval=0.0, timeout=10,
                                                 allowed_updates=["message", "callback_query"])

    async def _set_menus(self) -> None:
        """The command menu of each kind of chat, in each language (Telegram picks by the client's language;
        the list without a language, for everyone else, is Chinese)."""
        for locale, code in (("zh_CN", None), ("zh_CN", "zh"), ("ru", "ru"), ("en", "en")):
            tr = self._catalogs.translator(locale)
            for kind, scope in (("private", BotCommandScopeAllPrivateChats()), ("group", BotCommandScopeAllGroupChats())):
                commands = [BotCommand(name, text) for name, text in menu(kind, tr)]
                with suppress(TelegramError):
                    await self.app.bot.set_my_commands(commands, scope=scope, language_code=code)

    async def _owner_menu(self, caller: Caller) -> None:
        """An owner's own chat lists what only owners do (invite, members), in the owner's language."""
        if not caller.private or caller.chat_id is None:
            return
        commands = [BotCommand(name, text) for name, text in menu("owner", caller.tr)]
        with suppress(TelegramError):
            await self.app.bot.set_my_commands(commands, scope=BotCommandScopeChat(int(caller.chat_id)))

    async def stop(self) -> None:
        if self.app.updater and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    def webhook_routes(self) -> list[web.RouteDef]:
        return [web.post("/telegram/webhook", self._webhook)]

    async def _webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode(), self._webhook_secret.encode()):
            return web.Response(status=403)
        raw = await read_body(request, MAX_UPDATE)
        if raw is None:
            return web.Response(status=413)
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or not isinstance(body.get("update_id"), int):
                raise ValueError("not an update")
            update = Update.de_json(body, self.app.bot)
        except Exception:
            return web.Response(status=400)
        await self.app.update_queue.put(update)
        return web.Response()

    # ---- sending (ChannelSender) ---------------------------------------------------------------
    @staticmethod
    def uncertain(exc: Exception) -> bool:
        """A timeout or a dropped connection: Telegram may have delivered the message (L5)."""
        return isinstance(exc, TimedOut) or (isinstance(exc, NetworkError) and "ServerDisconnected" in str(exc))

    @staticmethod
    def refusal(exc: Exception) -> str | None:
        """Telegram's "never" (403: blocked or removed; 400: chat gone, bad request): the outbox stops
        retrying. Anything else (5xx, timeouts, 429, no connection) is tried again."""
        if isinstance(exc, Forbidden | BadRequest):
            return f"{type(exc).__name__}: {exc.message}"[:200]
        return None

    async def send(self, member: Member, view: View) -> str | None:
        """The outbox's send: a private chat at its limit defers this one (DeliveryDeferred), so the outbox
        goes on with every other chat instead of waiting, and Telegram never pauses the bot with a 429."""
        return await self.send_to_chat(member.chat_id, view, wait=False)

    async def _paced(self, chat_id, *, wait: bool = True) -> None:
        """Telegram's one message a second per private chat (a burst of CHAT_BURST passes); groups are paced
        by PTB's AIORateLimiter (20 a minute) and the whole bot by it too (30 a second)."""
        if str(chat_id).isdigit():
            await self._chat_window.acquire(str(chat_id), wait=wait)

    async def send_to_chat(self, chat_id, view: View, *, wait: bool = True) -> str | None:
        await self._paced(chat_id, wait=wait)
        bot = self.app.bot
        if view.attachment is not None:
            message = await bot.send_document(chat_id, InputFile(view.attachment.data,
                                                                 filename=view.attachment.filename),
                                              caption=view.text[:1024], disable_notification=view.silent)
        else:
            message = await bot.send_message(chat_id, view.text[:4096], reply_markup=_markup(view),
                                             disable_notification=view.silent)
        return f"{message.chat_id}:{message.message_id}"

    async def edit(self, member: Member, message_ref: str, view: View) -> None:
        chat_id, _, message_id = message_ref.partition(":")
        await self._paced(chat_id)
        try:
            await self.app.bot.edit_message_text(view.text[:4096], chat_id=int(chat_id), message_id=int(message_id),
                                                 reply_markup=_markup(view))
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                raise

    # ---- wiring --------------------------------------------------------------------------------
    def _register(self) -> None:
        add = self.app.add_handler
        add(TypeHandler(Update, self.on_any_update), group=-1)  # before every other handler
        for verb in Verb:
            if verb is not Verb.CONNECT:
                add(CommandHandler(verb.value, partial(self.on_command, verb)))
        add(CommandHandler(Verb.CONNECT.value, self.on_connect))
        add(CallbackQueryHandler(self.on_press))
        add(MessageHandler(filters.PHOTO | filters.Document.IMAGE, self.on_photo))
        add(MessageHandler(filters.TEXT & ~filters.COMMAND, self.on_text))
        self.app.add_error_handler(self.on_error)

    async def on_any_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Only people, never a shared sender (H1); then the inbound rate limit per person and per chat: a
        flood is dropped, with one polite word."""
        user, chat = update.effective_user, update.effective_chat
        message = update.effective_message
        if update.callback_query is None and message is not None and not is_person(
                str(user.id) if user else None, is_bot=bool(user and user.is_bot), as_chat=message.sender_chat is not None):
            if (message.text or "").startswith("/"):
                tr = self._catalogs.translator(pick_locale(None, user.language_code if user else None))
                with suppress(TelegramError):
                    await self._reply_text(update, tr.gettext(
                        "Send this as yourself: I cannot tell who an anonymous admin or a channel is, and a desk "
                        "only answers people. Turn off “Remain anonymous” (or post as yourself) and send it again."))
            raise ApplicationHandlerStop
        verdict = self._limiter.check(str(user.id) if user else None, str(chat.id) if chat else None)
        if verdict.allowed:
            return
        log.info("rate limit: dropped an update from user %s in chat %s", user.id if user else None,
                 chat.id if chat else None)
        text = None
        if verdict.tell:
            tr = await self._tr(update, None)
            text = tr.gettext("Too many messages at once. Please wait a few seconds, then try again.")
        with suppress(TelegramError):
            if update.callback_query is not None:  # every press is answered, or the button spins on
                await update.callback_query.answer(text, show_alert=text is not None)
            elif text is not None and chat is not None:
                await self._reply_text(update, text)
        raise ApplicationHandlerStop

    async def _caller(self, update: Update, *, surface: Surface = TELEGRAM) -> Caller:
        """Who pressed or wrote: a person, or a shared sender (an anonymous admin, a channel) who is nobody."""
        user, chat, message = update.effective_user, update.effective_chat, update.effective_message
        person = user is not None and user.id not in SERVICE_SENDERS and not (
            update.callback_query is None and message is not None and message.sender_chat is not None)
        return await self.conversation.caller(
            surface, str(user.id) if user else "", chat_id=str(chat.id) if chat else None,
            name=user.full_name if user else "", private=chat is None or chat.type == ChatType.PRIVATE,
            language_hint=user.language_code if user else None, person=person)

    async def _tr(self, update: Update, member: Member | None) -> Translator:
        return (await self._caller(update)).tr

    async def _reply(self, update: Update, view: View) -> None:
        await self.send_to_chat(update.effective_chat.id, view)

    async def _reply_text(self, update: Update, text: str) -> None:
        await self._reply(update, View(text=text))

    # ---- commands, buttons, text, photos: the conversation decides, this renders ----------------
    async def on_command(self, verb: Verb, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        caller = await self._caller(update)
        await self._answer(update, await self.conversation.command(caller, verb, " ".join(context.args or ())))

    async def on_connect(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        surface = TELEGRAM
        try:
            await update.effective_message.delete()  # it carries the key: never leave it in the chat
        except TelegramError:
            if context.args and update.effective_chat.type != ChatType.PRIVATE:
                # the key stays readable to the whole group (M2): the core refuses it and says to revoke it
                surface = replace(TELEGRAM, deletes_messages=False)
        caller = await self._caller(update, surface=surface)
        answer = await self.conversation.command(caller, Verb.CONNECT, " ".join(context.args or ()))
        await self._answer(update, answer)
        if not answer.alert and len(context.args or ()) == 2:
            await self._owner_menu(await self._caller(update))

    async def on_press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        answer = await self.conversation.press(await self._caller(update), query.data)
        await self._answer(update, answer, query=query)

    async def _answer(self, update: Update, answer: Answer, query=None) -> None:
        if query is not None:
            with suppress(TelegramError):
                await query.answer(answer.toast[:200] or None, show_alert=answer.alert)
        elif answer.toast:
            await self._reply_text(update, answer.toast)
        if answer.edit is not None and query is not None and query.message is not None:
            await self._paced(query.message.chat_id)
            with suppress(TelegramError):  # "message is not modified" and the like change nothing
                await query.message.edit_text(answer.edit.text, reply_markup=_markup(answer.edit))
        elif answer.edit is not None:
            await self._reply(update, answer.edit)
        for view in answer.replies:
            await self._reply(update, view)

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        caller = await self._caller(update)
        await self._answer(update, await self.conversation.text(caller, update.effective_message.text or ""))

    async def on_photo(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        caller = await self._caller(update)
        if not caller.on_desk:
            return  # a stranger's picture is not downloaded at all
        message: Message = update.effective_message
        source = message.photo[-1] if message.photo else message.document
        file = await source.get_file()
        answer = await self.conversation.photo(caller, bytes(await file.download_as_bytearray()))
        await self._answer(update, answer)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram handler failed: %s", type(context.error).__name__, exc_info=context.error)
        if isinstance(update, Update) and update.effective_chat and not isinstance(context.error, Forbidden):
            tr = await self._tr(update, None)
            with suppress(TelegramError):
                await self._reply_text(update, tr.gettext("Something went wrong on our side. Nothing was lost; "
                                                          "please try again in a minute."))


def _markup(view: View):
    if view.buttons:
        return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, callback_data=b.action) for b in row]
                                     for row in view.buttons])
    if view.ask_reply:
        return ForceReply(selective=True)
    return None
