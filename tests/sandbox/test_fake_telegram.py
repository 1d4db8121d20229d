"""The fake Bot API server, proven with python-telegram-bot's real stack over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from sandbox.telegram import DEFAULT_TOKEN, FakeBotAPI
from services.couriers import pick_waybill_number, read_barcodes

WAYBILL = Path(__file__).parents[1] / "fixtures" / "waybill_sf.jpg"
USER = 42
PDF = b"%PDF-1.4\n% fake label\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
async def fake():
    server = FakeBotAPI()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def build_app(fake: FakeBotAPI, **kwargs) -> Application:
    builder = (
        ApplicationBuilder()
        .token(fake.token)
        .base_url(f"{fake.base_url}/bot")
        .base_file_url(f"{fake.base_url}/file/bot")
    )
    for name, value in kwargs.items():
        builder = getattr(builder, name)(value)
    return builder.build()


def courier_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("SF Express 顺丰", callback_data="v1:c:sf"),
                InlineKeyboardButton("ZTO Express 中通", callback_data="v1:c:zto"),
            ]
        ]
    )


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    user = update.effective_user
    await update.message.reply_text(
        f"你好 {user.first_name} ({user.language_code}): pick a courier", reply_markup=courier_keyboard()
    )


async def on_courier(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    code = context.matches[0].group(1)
    await query.answer(f"chosen {code}")
    await query.edit_message_text(f"Courier: <b>{code}</b>", parse_mode=ParseMode.HTML)


async def on_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    photo = update.message.photo[-1]
    file = await photo.get_file()
    data = await file.download_as_bytearray()
    number = pick_waybill_number(await asyncio.to_thread(read_barcodes, bytes(data)), "sf")
    await update.message.reply_text(f"bytes={len(data)} number={number} caption={update.message.caption}")
    await update.message.reply_document(document=PDF, filename="label-12345678-0001-1.pdf", caption="label")


async def start_polling(app: Application) -> None:
    await app.initialize()
    await app.start()
    await app.updater.start_polling(poll_interval=0, timeout=1)


async def stop_polling(app: Application) -> None:
    await app.updater.stop()
    await app.stop()
    await app.shutdown()


# --------------------------------------------------------------------------- PTB end to end


async def test_polling_command_callback_photo_and_document(fake: FakeBotAPI):
    app = build_app(fake)
    app.add_handler(CommandHandler("start", on_start))
    app.add_handler(CallbackQueryHandler(on_courier, pattern=r"^v1:c:(\w+)$"))
    app.add_handler(MessageHandler(filters.PHOTO, on_photo))
    await start_polling(app)
    try:
        await fake.wait_for_call("getUpdates")  # calls are recorded when answered
        assert [c.method for c in fake.calls[:3]] == ["getMe", "deleteWebhook", "getUpdates"]

        # /start → echo with an inline keyboard
        fake.push_message(USER, "/start", first_name="Aygul")
        greeting = await fake.wait_for_message(USER, "你好")
        assert greeting.text == "你好 Aygul (zh-hans): pick a courier"
        assert fake.buttons(USER, greeting.message_id) == [
            ("SF Express 顺丰", "v1:c:sf"),
            ("ZTO Express 中通", "v1:c:zto"),
        ]
        sent = fake.calls_of("sendMessage")[0]
        assert sent.params["chat_id"] == USER  # form value JSON-decoded to int
        assert sent.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "v1:c:sf"

        # tap → answerCallbackQuery + edit (no reply_markup: keyboard removed, as on Telegram)
        query_id = fake.press(USER, "SF Express")
        await fake.wait_for(lambda: fake.message(USER, greeting.message_id).text == "Courier: sf")
        edited = fake.message(USER, greeting.message_id)
        assert edited.raw_text == "Courier: <b>sf</b>" and edited.parse_mode == "HTML"
        assert edited.entities == ({"type": "bold", "offset": 9, "length": 2},)
        assert edited.reply_markup is None and edited.edit_count == 1
        assert fake.callback_answer(query_id) == {"text": "chosen sf", "show_alert": False, "url": None}
        assert len(fake.messages(USER)) == 1

        # photo of a waybill → getFile + download through the file URL → barcode → document upload
        photo = WAYBILL.read_bytes()
        fake.push_message(USER, "waybill", photo=photo)
        reply = await fake.wait_for_message(USER, "bytes=")
        assert reply.text == f"bytes={len(photo)} number=SF1402938475612 caption=waybill"
        get_file = fake.calls_of("getFile", ok=True)[-1]
        assert get_file.result["file_path"].startswith("photos/fake_")
        doc = (await fake.wait_for_message(USER, "label")).document
        assert doc.filename == "label-12345678-0001-1.pdf"
        assert doc.content_type == "application/pdf"
        assert doc.data == PDF
        upload = fake.calls_of("sendDocument")[0]
        assert upload.params == {"chat_id": USER, "caption": "label"}
        assert set(upload.files) == {"document"}
        assert [m.message_id for m in fake.messages(USER)] == [2, 4, 5]  # shared per-chat id sequence
    finally:
        await stop_polling(app)
    assert fake.pending_updates == []  # the final getUpdates confirmed everything
    assert all(c.ok for c in fake.calls), [c for c in fake.calls if not c.ok]


async def test_rate_limiter_delays_instead_of_dropping(fake: FakeBotAPI, monkeypatch):
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    app = build_app(fake, rate_limiter=AIORateLimiter(max_retries=2))
    await app.initialize()
    try:
        fake.fail_next("sendMessage", status=429, retry_after=1)
        started = time.monotonic()
        message = await app.bot.send_message(USER, "deadline in 4 h")
        elapsed = time.monotonic() - started
    finally:
        await app.shutdown()
    attempts = fake.calls_of("sendMessage")
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[0].result == "Too Many Requests: retry after 1"
    assert attempts[1].at - attempts[0].at >= 1.0
    assert 1.0 <= elapsed < 3.0
    assert message.message_id == 1
    assert [m.text for m in fake.messages(USER)] == ["deadline in 4 h"]


async def test_without_rate_limiter_429_surfaces_as_retry_after(fake: FakeBotAPI, monkeypatch):
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    async with Bot(fake.token, base_url=fake.bot_base_url, base_file_url=fake.file_base_url) as bot:
        fake.fail_next("sendMessage", status=429, retry_after=7)
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(USER, "x")
        assert caught.value.retry_after == timedelta(seconds=7)
        fake.fail_next("sendMessage", status=502)
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(USER, "x")
        fake.fail_next("*", status=403, times=2)
        with pytest.raises(Forbidden):
            await bot.send_chat_action(USER, "typing")
        with pytest.raises(Forbidden):
            await bot.send_message(USER, "x")
        assert (await bot.send_message(USER, "finally")).text == "finally"
    assert [m.text for m in fake.messages(USER)] == ["finally"]


# --------------------------------------------------------------------------- strictness


@pytest.fixture
async def bot(fake: FakeBotAPI):
    async with Bot(fake.token, base_url=fake.bot_base_url, base_file_url=fake.file_base_url) as b:
        yield b


async def test_callback_data_limit_is_64_utf8_bytes(fake: FakeBotAPI, bot: Bot):
    ok = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="确" * 21 + "x")]])  # 64 bytes
    await bot.send_message(USER, "fits", reply_markup=ok)
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("no", callback_data="确" * 22)]])  # 66 bytes
    with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
        await bot.send_message(USER, "too long", reply_markup=too_long)
    assert fake.calls_of("sendMessage")[-1].result == "Bad Request: BUTTON_DATA_INVALID"
    assert [m.text for m in fake.messages(USER)] == ["fits"]


async def test_edit_rules(fake: FakeBotAPI, bot: Bot):
    msg = await bot.send_message(USER, "Packed?", reply_markup=courier_keyboard())
    with pytest.raises(BadRequest, match="not modified"):
        await bot.edit_message_text("Packed?", USER, msg.message_id, reply_markup=courier_keyboard())
    assert fake.calls_of("editMessageText")[-1].result.startswith("Bad Request: message is not modified: ")
    # same text, keyboard omitted → modified (keyboard removed)
    await bot.edit_message_text("Packed?", USER, msg.message_id)
    assert fake.buttons(USER, msg.message_id) == []
    with pytest.raises(BadRequest, match="not modified"):
        await bot.edit_message_reply_markup(USER, msg.message_id, reply_markup=None)
    await bot.edit_message_reply_markup(USER, msg.message_id, reply_markup=courier_keyboard())
    assert fake.buttons(USER)[0] == ("SF Express 顺丰", "v1:c:sf")
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("nope", USER, 999)
    assert fake.calls_of("editMessageText")[-1].result == "Bad Request: message to edit not found"
    # deletion
    assert await bot.delete_message(USER, msg.message_id)
    assert fake.messages(USER) == [] and fake.is_deleted(USER, msg.message_id)
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(USER, msg.message_id)
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("late", USER, msg.message_id)
    # a document has no text to edit
    doc = await bot.send_document(USER, PDF, filename="label.pdf", caption="label")
    with pytest.raises(BadRequest, match="(?i)no text in the message"):
        await bot.edit_message_text("x", USER, doc.message_id)
    await bot.edit_message_caption(USER, doc.message_id, caption="label v2")
    assert fake.last_message(USER).caption == "label v2"


async def test_text_length_and_entities(fake: FakeBotAPI, bot: Bot):
    await bot.send_message(USER, "x" * 4096)
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(USER, "x" * 4097)
    with pytest.raises(BadRequest, match="(?i)text is empty"):
        await bot.send_message(USER, "   ")
    # HTML: tags rendered away, entities built; unsupported or unbalanced tags rejected
    await bot.send_message(
        USER, "<b>SF</b> &lt;waybill&gt; <a href='https://ozon.ru'>ozon</a>", parse_mode="HTML"
    )
    shown = fake.last_message(USER)
    assert shown.text == "SF <waybill> ozon"
    assert [e["type"] for e in shown.entities] == ["bold", "text_link"]
    with pytest.raises(BadRequest, match='(?i)can\'t parse entities: unsupported start tag "br"'):
        await bot.send_message(USER, "line<br>line", parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(USER, "<b>open", parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(USER, "<b><i>x</b></i>", parse_mode="HTML")
    # MarkdownV2: reserved characters must be escaped
    with pytest.raises(BadRequest, match="(?i)" + re.escape("Character '-' is reserved")):
        await bot.send_message(USER, "*Posting* 123-1.", parse_mode="MarkdownV2")
    await bot.send_message(
        USER, r"*Posting* 123\-1\. `a\`b` [ozon\.ru *x*](https://ozon.ru/a\)b)", parse_mode="MarkdownV2"
    )
    shown = fake.last_message(USER)
    assert shown.text == "Posting 123-1. a`b ozon.ru x"
    assert [e["type"] for e in shown.entities] == ["bold", "code", "text_link", "bold"]
    assert shown.entities[2] == {"type": "text_link", "url": "https://ozon.ru/a)b", "offset": 19, "length": 9}
    # UTF-16 offsets, as Telegram counts them
    await bot.send_message(USER, "📦 <b>包裹</b>", parse_mode="HTML")
    assert fake.last_message(USER).entities == ({"type": "bold", "offset": 3, "length": 2},)


async def test_files_commands_webhook_info_and_errors(fake: FakeBotAPI, bot: Bot):
    with pytest.raises(BadRequest, match="(?i)invalid file_id"):
        await bot.get_file("nope")
    with pytest.raises(BadRequest, match="(?i)wrong file identifier"):
        await bot.send_document(USER, "unknown-file-id")
    doc = await bot.send_document(USER, PDF, filename="label.pdf")
    again = await bot.send_document(USER, doc.document.file_id)  # re-send by file_id
    assert fake.last_message(USER).document.data == PDF and again.document.file_name == "label.pdf"
    file = await bot.get_file(doc.document.file_id)
    assert bytes(await file.download_as_bytearray()) == PDF
    with pytest.raises(BadRequest, match="(?i)image_process_failed"):
        await bot.send_photo(USER, b"not a picture")
    photo = await bot.send_photo(USER, WAYBILL.read_bytes(), caption="waybill")
    assert photo.photo[-1].width > photo.photo[0].width
    assert fake.last_message(USER).photo.data == WAYBILL.read_bytes()

    await bot.set_my_commands([("start", "开始"), ("orders", "订单")], language_code="zh")
    assert [c["command"] for c in fake.commands[("default", "zh")]] == ["start", "orders"]
    assert [c.command for c in await bot.get_my_commands(language_code="zh")] == ["start", "orders"]
    with pytest.raises(BadRequest, match="(?i)bot_command_invalid"):
        await bot.set_my_commands([("Bad-Command", "x")])
    assert await bot.send_chat_action(USER, "upload_document")
    info = await bot.get_webhook_info()
    assert info.url == "" and info.pending_update_count == 0

    fake.block(USER)
    with pytest.raises(Forbidden, match="(?i)blocked"):
        await bot.send_message(USER, "hello?")
    with pytest.raises(InvalidToken):
        async with Bot("999:WRONG", base_url=fake.bot_base_url):
            pass
    assert fake.calls[-1].status == 401


async def test_callback_queries_are_answered_once(fake: FakeBotAPI, bot: Bot):
    msg = await bot.send_message(USER, "pick", reply_markup=courier_keyboard())
    query_id = fake.push_callback(USER, msg.message_id, "v1:c:zto")
    update = fake.pending_updates[-1]["callback_query"]
    assert update["message"]["reply_markup"]["inline_keyboard"][0][1]["callback_data"] == "v1:c:zto"
    assert update["data"] == "v1:c:zto" and update["from"]["id"] == USER
    assert await bot.answer_callback_query(query_id)
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query(query_id)
    with pytest.raises(LookupError):
        fake.push_callback(USER, 999, "v1:c:sf")
    with pytest.raises(LookupError, match="no button"):
        fake.press(USER, "DHL")


async def test_strict_chats_option():
    async with FakeBotAPI(strict_chats=True) as fake:
        async with Bot(fake.token, base_url=fake.bot_base_url) as bot:
            with pytest.raises(Forbidden, match="(?i)can't initiate"):
                await bot.send_message(777, "hi")
            fake.push_message(777, "/start")
            assert (await bot.send_message(777, "hi")).chat.id == 777


# --------------------------------------------------------------------------- raw wire format


async def test_wire_formats_and_envelopes(fake: FakeBotAPI):
    api = f"{fake.base_url}/bot{DEFAULT_TOKEN}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api}/getMe") as r:  # no body, no content type
            assert r.status == 200
            body = await r.json()
            assert body["ok"] is True and body["result"]["username"] == "ozon_desk_bot"
            assert body["result"]["is_bot"] is True
        form = {"chat_id": "42", "text": "123", "disable_notification": "false",
                "reply_markup": json.dumps({"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]})}  # fmt: skip
        async with http.post(f"{api}/sendMessage", data=form) as r:
            assert (await r.json())["result"]["text"] == "123"
        call = fake.calls[-1]
        assert call.params == {
            "chat_id": 42,
            "text": "123",  # a text stays a string even if it looks like JSON
            "disable_notification": False,
            "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]},
        }
        async with http.post(f"{api}/sendMessage", json={"chat_id": 42, "text": "json body"}) as r:
            assert (await r.json())["result"]["message_id"] == 2
        multipart = aiohttp.FormData()
        multipart.add_field("chat_id", "42")
        multipart.add_field("document", b"%PDF-1.4 x", filename="l.pdf", content_type="application/pdf")
        async with http.post(f"{api}/sendDocument", data=multipart) as r:
            assert r.status == 200
        uploaded = fake.calls[-1].files["document"]
        assert (uploaded.filename, uploaded.content_type, uploaded.data) == (
            "l.pdf",
            "application/pdf",
            b"%PDF-1.4 x",
        )
        async with http.post(f"{api}/noSuchMethod") as r:
            assert r.status == 404
            assert await r.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        async with http.post(f"{fake.base_url}/bot1:bad/getMe") as r:
            assert r.status == 401
            assert await r.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        fake.fail_next("getMe", status=429, retry_after=3)
        async with http.post(f"{api}/getMe") as r:
            assert r.status == 429
            assert await r.json() == {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 3",
                "parameters": {"retry_after": 3},
            }
        async with http.get(f"{fake.base_url}/file/bot{DEFAULT_TOKEN}/photos/none.jpg") as r:
            assert r.status == 404


async def test_fail_rate_is_seeded_and_switchable(fake: FakeBotAPI):
    api = f"{fake.base_url}/bot{DEFAULT_TOKEN}"

    async def run() -> list[int]:
        statuses = []
        async with aiohttp.ClientSession() as http:
            for i in range(30):
                async with http.post(f"{api}/sendMessage", data={"chat_id": "1", "text": f"m{i}"}) as r:
                    statuses.append(r.status)
                    if r.status == 502:
                        assert await r.json() == {
                            "ok": False,
                            "error_code": 502,
                            "description": "Bad Gateway",
                        }
        return statuses

    fake.fail_rate(0.4, seed=5)
    first = await run()
    fake.fail_rate(0.4, seed=5)
    second = await run()
    assert first == second
    assert {429, 502, 200} == set(first)
    fake.fail_rate(0)
    assert set(await run()) == {200}


async def test_get_updates_long_poll_offset_and_conflicts(fake: FakeBotAPI, bot: Bot):
    started = time.monotonic()
    assert await bot.get_updates(timeout=5) == ()  # held at most 0.5 s
    assert 0.4 <= time.monotonic() - started < 1.5

    async def push_later():
        await asyncio.sleep(0.1)
        fake.push_message(USER, "hello")

    started = time.monotonic()
    task = asyncio.create_task(push_later())
    updates = await bot.get_updates(timeout=5)
    await task
    assert time.monotonic() - started < 0.45  # woke as soon as the update was pushed
    assert [u.message.text for u in updates] == ["hello"]
    fake.push_message(USER, "/orders")
    updates = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    assert [u.message.text for u in updates] == ["/orders"]
    assert updates[0].message.entities[0].type == "bot_command"
    assert len(fake.pending_updates) == 1
    await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    assert fake.pending_updates == []

    # a second poller terminates the first one with 409
    # (PTB serialises its own getUpdates calls, so the first poller is a raw HTTP client)
    async with aiohttp.ClientSession() as http:
        first = asyncio.create_task(
            http.post(f"{fake.bot_base_url}{fake.token}/getUpdates", data={"timeout": "5"})
        )
        await asyncio.sleep(0.05)
        assert await bot.get_updates(timeout=0) == ()
        async with await first as response:
            assert response.status == 409
            assert (await response.json())["description"].startswith(
                "Conflict: terminated by other getUpdates"
            )
    # getUpdates is refused while a webhook is set
    await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="s3cr3t")
    with pytest.raises(Conflict, match="(?i)webhook is active"):
        await bot.get_updates(timeout=0)
    assert (fake.webhook_url, fake.webhook_secret) == ("http://127.0.0.1:9/hook", "s3cr3t")
    await bot.delete_webhook()
    assert fake.webhook_url is None


async def test_user_side_helpers(fake: FakeBotAPI, bot: Bot):
    first = fake.push_message(USER, "/connect 123 key")
    reply = fake.push_message(USER, "replying", reply_to_message_id=first)
    group = fake.push_message(7, "/status@ozon_desk_bot 1-1", chat_id=-100, chat_type="supergroup")
    assert (first, reply, group) == (1, 2, 1)
    updates = fake.pending_updates
    assert updates[1]["message"]["reply_to_message"]["text"] == "/connect 123 key"
    assert updates[2]["message"]["chat"]["type"] == "supergroup"
    assert updates[2]["message"]["entities"][0]["length"] == len("/status@ozon_desk_bot")
    doc_id = fake.push_document(USER, b"\x89PNG...", "waybill.png", "image/png")
    assert fake.pending_updates[-1]["message"]["document"]["mime_type"] == "image/png"
    assert await bot.delete_message(USER, first)  # the bot deletes the message carrying the key
    assert fake.is_deleted(USER, first)
    assert [m["message_id"] for m in fake.user_messages(USER)] == [reply, doc_id]
    await bot.send_message(-100, "group reply", reply_to_message_id=group)
    assert fake.last_message(-100).reply_to_message_id == group


async def test_wait_for_times_out_with_a_readable_dump(fake: FakeBotAPI, bot: Bot):
    await bot.send_message(USER, "something else")
    with pytest.raises(AssertionError) as caught:
        await fake.wait_for_message(USER, "never", timeout=0.1)
    text = str(caught.value)
    assert "timed out after 0.1s" in text and "sendMessage [200]" in text and "something else" in text
    assert await fake.wait_for(lambda: fake.last_message(USER).text) == "something else"


# --------------------------------------------------------------------------- webhook mode


async def test_webhook_mode_with_own_aiohttp_route(fake: FakeBotAPI):
    """Our aiohttp server receives Telegram's POSTs and feeds PTB's update_queue (updater=None)."""
    app = build_app(fake, updater=None)
    app.add_handler(CommandHandler("start", on_start))
    secret = "hook-secret_1"
    seen_secrets: list[str | None] = []

    async def telegram_webhook(request: web.Request) -> web.Response:
        seen_secrets.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        if request.headers.get("X-Telegram-Bot-Api-Secret-Token") != secret:
            return web.Response(status=403)
        await app.update_queue.put(Update.de_json(await request.json(), app.bot))
        return web.Response()

    web_app = web.Application()
    web_app.router.add_post("/telegram", telegram_webhook)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/telegram"
    await app.initialize()
    await app.start()
    try:
        await app.bot.set_webhook(url, secret_token=secret)
        fake.push_message(USER, "/start")  # delivered by the fake, like Telegram does
        await fake.wait_for_message(USER, "pick a courier")
        assert fake.pending_updates == []
        assert fake.webhook_deliveries == [(1, 200)]
        # helper for hand-made deliveries (and a wrong secret)
        assert await fake.post_update_to(url, fake.build_message_update(USER, "/start"), "wrong") == 403
        assert await fake.post_update_to(url, fake.build_message_update(USER, "/start"), secret) == 200
        await fake.wait_for(lambda: len(fake.messages(USER)) == 2)
        assert seen_secrets == [secret, "wrong", secret]
    finally:
        await app.stop()
        await app.shutdown()
        await runner.cleanup()


async def test_webhook_delivery_retries_until_accepted(fake: FakeBotAPI):
    answers = [500, 200]
    received: list[int] = []

    async def flaky(request: web.Request) -> web.Response:
        received.append((await request.json())["update_id"])
        return web.Response(status=answers.pop(0) if answers else 200)

    fake.webhook_retry_delay = 0.05
    web_app = web.Application()
    web_app.router.add_post("/hook", flaky)
    runner = web.AppRunner(web_app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with Bot(fake.token, base_url=fake.bot_base_url) as bot:
            await bot.set_webhook(f"http://127.0.0.1:{runner.addresses[0][1]}/hook")
            fake.push_message(USER, "one")
            fake.push_message(USER, "two")
            await fake.wait_for(lambda: not fake.pending_updates)
            assert received == [1, 1, 2]
            assert fake.webhook_deliveries == [(1, 500), (1, 200), (2, 200)]
            info = await bot.get_webhook_info()
            assert info.pending_update_count == 0 and "500" in info.last_error_message
    finally:
        await runner.cleanup()
