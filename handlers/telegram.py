"""Telegram channel: translates updates into desk/shipping calls and views into messages and keyboards."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from contextlib import suppress

from aiohttp import web
from telegram import (
    BotCommand,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    Update,
)
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden, TelegramError
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

from bot.app import Services
from handlers.bodies import read_body
from handlers.telegram_transport import AiohttpRequest
from services.desk import ConnectError, is_person
from services.i18n import Translator, normalize_locale, pick_locale
from services.storage.models import Member, Seller
from services.views import Answer, View

log = logging.getLogger(__name__)
CHANNEL = "telegram"
MAX_UPDATE = 256 * 1024  # a real update is a few kilobytes
COMMANDS = ("start", "help", "connect", "orders", "status", "lang", "settings", "invite", "join")


class TelegramChannel:
    channel = CHANNEL

    def __init__(self, services: Services):
        self.s = services
        settings = services.settings
        token = settings.telegram_token.get_secret_value() if settings.telegram_token else ""
        # derived from the secret key, so every process behind a load balancer checks the same token
        self._webhook_secret = services.box.sign("telegram-webhook-secret", 32)
        services.redactor.add(self._webhook_secret)
        # PTB logs whole updates at DEBUG before any handler sees them: a /connect carries a key
        services.redactor.add_pattern(r"(/connect(?:@\w+)?\s+\S+\s+)[^\s'\"\\]+")
        self._background: set[asyncio.Task] = set()
        builder = (ApplicationBuilder().token(token)
                   .base_url(settings.telegram_api_url).base_file_url(settings.telegram_file_url)
                   .request(AiohttpRequest()).get_updates_request(AiohttpRequest(pool_size=2))
                   .rate_limiter(AIORateLimiter(max_retries=5))
                   .concurrent_updates(64).job_queue(None))
        if settings.telegram_webhook_url:
            builder = builder.updater(None)
        self.app: Application = builder.build()
        self._register()

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self, web_app: web.Application | None = None) -> None:
        await self.app.initialize()
        await self.app.start()
        settings = self.s.settings
        with suppress(TelegramError):
            await self.app.bot.set_my_commands([BotCommand(c, c) for c in COMMANDS])
        if settings.telegram_webhook_url:
            await self.app.bot.set_webhook(url=settings.telegram_webhook_url, secret_token=self._webhook_secret,
                                           allowed_updates=["message", "callback_query"])
        else:
            await self.app.updater.start_polling(poll_interval=0.0, timeout=10,
                                                 allowed_updates=["message", "callback_query"])

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
    def refusal(exc: Exception) -> str | None:
        """Telegram's "never" (403: blocked or removed; 400: chat gone, bad request): the outbox stops
        retrying. Anything else (5xx, timeouts, 429, no connection) is tried again."""
        if isinstance(exc, Forbidden | BadRequest):
            return f"{type(exc).__name__}: {exc.message}"[:200]
        return None

    async def send(self, member: Member, view: View) -> str | None:
        return await self.send_to_chat(member.chat_id, view)

    async def send_to_chat(self, chat_id, view: View) -> str | None:
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
        add(CommandHandler("start", self.on_start))
        add(CommandHandler("help", self.on_help))
        add(CommandHandler("connect", self.on_connect))
        add(CommandHandler("invite", self.on_invite))
        add(CommandHandler("join", self.on_join))
        add(CommandHandler("lang", self.on_lang))
        add(CommandHandler("orders", self.on_orders))
        add(CommandHandler("status", self.on_status))
        add(CommandHandler("settings", self.on_settings))
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
                tr = self.s.catalogs.translator(pick_locale(None, user.language_code if user else None))
                with suppress(TelegramError):
                    await self._reply_text(update, tr.gettext(
                        "Send this as yourself: I cannot tell who an anonymous admin or a channel is, and a desk "
                        "only answers people. Turn off “Remain anonymous” (or post as yourself) and send it again."))
            raise ApplicationHandlerStop
        verdict = self.s.limiter.check(str(user.id) if user else None, str(chat.id) if chat else None)
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

    async def _member(self, update: Update) -> Member | None:
        user = update.effective_user
        return await self.s.desk.member(CHANNEL, str(user.id)) if user else None

    async def _tr(self, update: Update, member: Member | None) -> Translator:
        if member is not None:
            seller = await Seller.get(id=member.seller_id)
            return self.s.catalogs.for_member(member, seller)
        user = update.effective_user
        stored = await self.s.desk.stored_locale(CHANNEL, str(user.id)) if user else None
        return self.s.catalogs.translator(pick_locale(stored, user.language_code if user else None),
                                          self.s.settings.timezone)

    async def _reply(self, update: Update, view: View) -> None:
        await self.send_to_chat(update.effective_chat.id, view)

    async def _reply_text(self, update: Update, text: str) -> None:
        await self._reply(update, View(text=text))

    # ---- commands ------------------------------------------------------------------------------
    async def on_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        member = await self._member(update)
        tr = await self._tr(update, member)
        if member is None:
            text = tr.gettext("👋 I run your Ozon shipping desk: new orders, couriers, packing, labels and "
                              "tracking.\n\nOwner: /connect <client_id> <api_key>\nPacker: /join <code> "
                              "(ask the owner for /invite)")
        else:
            text = tr.gettext("👋 Welcome back. /orders shows what is open, /help lists every command.")
        await self._reply_text(update, text)

    async def on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        tr = await self._tr(update, await self._member(update))
        await self._reply_text(update, tr.gettext(
            "/orders: open orders, most urgent first\n/status <number>: status of a posting, order or tracking "
            "number (or just paste the number)\n/connect <client_id> <api_key>: connect your Ozon account\n"
            "/invite: a one-time code for a packer (owner)\n/join <code>: join a desk\n/lang zh|ru|en: language\n"
            "/settings: your settings"))

    async def on_connect(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        deleted = False
        with suppress(TelegramError):
            await message.delete()  # it carries the key: never leave it in the chat
            deleted = True
        existing = await self._member(update)
        tr = await self._tr(update, existing)
        _ = tr.gettext
        if len(context.args) != 2:
            await self._reply_text(update, _("Usage: /connect <client_id> <api_key> (Ozon cabinet → Settings → "
                                             "Seller API). I delete the message with the key at once."))
            return
        if existing is not None and existing.role != "owner":
            await self._reply_text(update, _("Only the desk owner can connect an Ozon account."))
            return
        self.s.redactor.add(context.args[1])
        user, chat = update.effective_user, update.effective_chat
        private = chat.type == ChatType.PRIVATE
        try:
            connected = await self.s.desk.connect_seller(context.args[0], context.args[1], by=(CHANNEL, str(user.id)),
                                                         exposed=not private and not deleted)
        except ConnectError as exc:
            await self._reply_text(update, _connect_error(tr, exc))
            return
        owner = await self.s.desk.join_as(
            connected.seller, channel=CHANNEL, external_id=str(user.id), chat_id=str(chat.id) if private else None,
            name=user.full_name, locale=tr.locale, role="owner")
        if not private:
            await self.s.desk.join_as(connected.seller, channel=CHANNEL, external_id=f"chat:{chat.id}",
                                      chat_id=str(chat.id), name=chat.title or "", locale=tr.locale, role="group")
        tr = self.s.catalogs.for_member(owner, connected.seller)
        warehouses = ", ".join(w.name or str(w.warehouse_id) for w in connected.warehouses) or "—"
        await self._reply_text(update, tr.gettext(
            "✅ Connected Ozon seller {client_id}.\nWarehouses: {warehouses}\nKey valid until: {expiry}\n"
            "New orders will appear here. /invite adds a packer.").format(
            client_id=connected.seller.client_id, warehouses=warehouses,
            expiry=tr.local_time(connected.roles.expires_at)))
        task = asyncio.create_task(self._first_poll(connected.seller))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _first_poll(self, seller: Seller) -> None:
        try:
            await self.s.sync.poll(seller)
        except Exception as exc:
            log.warning("first poll of seller %s failed: %s", seller.id, type(exc).__name__)

    async def on_invite(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        member = await self._member(update)
        tr = await self._tr(update, member)
        invite = await self.s.desk.create_invite(member) if member else None
        if invite is None:
            await self._reply_text(update, tr.gettext("Only the desk owner can invite packers."))
            return
        text = tr.gettext("One-time code for a packer: {code}\nThey send /join {code} to this bot within 48 hours."
                          ).format(code=invite.code)
        if self.s.settings.official_account:  # the same code binds a WeChat follower by QR code
            text += "\n" + tr.gettext("WeChat: scan the QR code at {url}").format(
                url=f"{self.s.settings.base_url}/wechat/qr/{invite.code}")
        await self._reply_text(update, text)

    async def on_join(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        tr = await self._tr(update, await self._member(update))
        user, chat = update.effective_user, update.effective_chat
        member = None
        if context.args:
            member = await self.s.desk.redeem_invite(
                context.args[0], channel=CHANNEL, external_id=str(user.id),
                chat_id=str(chat.id) if chat.type == ChatType.PRIVATE else None,
                name=user.full_name, locale=tr.locale)
        if member is None:
            await self._reply_text(update, tr.gettext("That code is not valid (wrong, used or expired). "
                                                      "Ask the owner for a new /invite."))
            return
        tr = await self._tr(update, member)
        await self._reply_text(update, tr.gettext("✅ You are on the desk. New orders will appear here."))

    async def on_lang(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        member = await self._member(update)
        locale = normalize_locale(context.args[0]) if context.args else None
        tr = await self._tr(update, member)
        if locale is None:
            await self._reply_text(update, tr.gettext("Usage: /lang zh | ru | en"))
            return
        await self.s.desk.set_locale(CHANNEL, str(update.effective_user.id), locale)
        if member is not None:
            member.locale = locale
        tr = await self._tr(update, member)
        await self._reply_text(update, tr.gettext("Language set: English"))

    async def on_orders(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        member = await self._desk_member(update)
        if member is not None:
            await self._reply(update, await self.s.desk.orders_view(member))

    async def on_status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        member = await self._desk_member(update)
        if member is None:
            return
        if not context.args:
            tr = await self._tr(update, member)
            await self._reply_text(update, tr.gettext("Usage: /status <posting, order or tracking number>"))
            return
        await self._reply(update, await self.s.desk.status_view(member, context.args[0]))

    async def on_settings(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        member = await self._desk_member(update)
        if member is None:
            return
        if context.args:
            name, *value = context.args
            await self._answer(update, await self.s.preferences.set_typed(member, name, " ".join(value)))
            return
        await self._reply(update, await self.s.preferences.view(member))

    async def _desk_member(self, update: Update) -> Member | None:
        member = await self._member(update)
        if member is None or member.role not in ("owner", "packer"):
            tr = await self._tr(update, None)
            await self._reply_text(update, tr.gettext("You are not on a desk yet. Owner: /connect; packer: /join."))
            return None
        return member

    # ---- buttons, text, photos -----------------------------------------------------------------
    async def on_press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        member = await self._member(update)
        locale = None if member else (await self._tr(update, None)).locale
        answer = await self.s.buttons.press(member, query.data, locale=locale)
        await self._answer(update, answer, query=query)

    async def _answer(self, update: Update, answer: Answer, query=None) -> None:
        if query is not None:
            with suppress(TelegramError):
                await query.answer(answer.toast[:200] or None, show_alert=answer.alert)
        elif answer.toast:
            await self._reply_text(update, answer.toast)
        if answer.edit is not None and query is not None and query.message is not None:
            with suppress(TelegramError):  # "message is not modified" and the like change nothing
                await query.message.edit_text(answer.edit.text, reply_markup=_markup(answer.edit))
        elif answer.edit is not None:
            await self._reply(update, answer.edit)
        for view in answer.replies:
            await self._reply(update, view)

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        member = await self._member(update)
        if member is None or member.role not in ("owner", "packer"):
            if update.effective_chat.type == ChatType.PRIVATE:
                tr = await self._tr(update, None)
                await self._reply_text(update, tr.gettext("You are not on a desk yet. Owner: /connect; packer: /join."))
            return
        text = update.effective_message.text or ""
        answer = await self.s.shipping.submit_waybill(member, text)
        if answer is not None:
            await self._answer(update, answer)
        elif update.effective_chat.type == ChatType.PRIVATE or _looks_like_number(text):
            await self._reply(update, await self.s.desk.status_view(member, text))

    async def on_photo(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        member = await self._member(update)
        if member is None or member.role not in ("owner", "packer"):
            return
        message: Message = update.effective_message
        source = message.photo[-1] if message.photo else message.document
        file = await source.get_file()
        data = bytes(await file.download_as_bytearray())
        answer = await self.s.shipping.submit_photo(member, data)
        if answer is not None:
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


def _looks_like_number(text: str) -> bool:
    stripped = text.strip()
    return 6 <= len(stripped) <= 64 and " " not in stripped and any(ch.isdigit() for ch in stripped)


def _connect_error(tr: Translator, exc: ConnectError) -> str:
    _ = tr.gettext
    if exc.reason == "bad_client_id":
        return _("The Client-Id is a number, e.g. /connect 123456 <api_key>.")
    if exc.reason == "unavailable":
        return _("Ozon is not answering right now, so the key could not be checked. Nothing was stored; try "
                 "again in a few minutes.")
    if exc.reason == "exposed":
        return _("I could not delete your message with the API key, so everyone in this group can read it. "
                 "Nothing was stored: revoke that key in the Ozon cabinet (Settings → Seller API), then send "
                 "/connect with a new key to me in a private chat (or make me an admin who may delete messages).")
    if exc.reason == "taken":
        return _("This Ozon seller already has a desk, and you are not its owner. Nothing changed; its owners "
                 "were told. Ask an owner for an invite.")
    if exc.reason == "missing_methods":
        return _("This API key may not do what the bot needs ({methods}). Nothing was stored. Create a key with "
                 "the “Posting FBS” or “Admin” role in the Ozon cabinet (Settings → Seller API) and send /connect "
                 "again.").format(methods=exc.detail)
    if exc.detail == "deactivated":
        return _("Ozon says this API key is deactivated. Create a new one in the Ozon cabinet (Settings → Seller "
                 "API) and send /connect again. Nothing was stored.")
    return _("Ozon refused this Client-Id and API key ({reason}). Check both in the Ozon cabinet (Settings → "
             "Seller API) and send /connect again. Nothing was stored.").format(reason=exc.detail or exc.reason)
