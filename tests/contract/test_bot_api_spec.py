"""Requests to the Bot API against Telegram's published method list (issue 19 item 4, request side).

Every request our bot sends to the `fake_tg` fixture in any test is checked when that test ends (see
conftest); these tests show the check itself catches what it must and lets pass what it should."""

from sandbox.telegram import FakeBotAPI
from tests.contract.botapi import BotApiFindings, spec

KEYBOARD = {"inline_keyboard": [[{"text": "Pack", "callback_data": "p:1"}, {"text": "Open", "url": "https://x"}]]}


def test_every_method_the_fake_serves_is_in_telegrams_list():
    names = {name.lower() for name in spec()["methods"]}
    assert set(FakeBotAPI()._methods) <= names
    assert spec()["x-source"]["version"].startswith("Bot API")


def test_a_well_formed_request_passes_and_an_unknown_parameter_is_only_reported():
    findings = BotApiFindings()
    findings.request("sendMessage", {"chat_id": 42, "text": "hi", "parse_mode": "HTML", "reply_markup": KEYBOARD})
    findings.request("sendmessage", {"chat_id": "@desk", "text": "hi", "reply_markup": {"force_reply": True}})
    findings.request("setMyCommands", {"commands": [{"command": "orders", "description": "Orders"}],
                                       "scope": {"type": "chat", "chat_id": 42}, "language_code": "ru"})
    findings.request("sendDocument", {"chat_id": 42, "caption": "label"}, files={"document": b"%PDF"})
    assert findings.violations == [] and findings.extras == {}
    findings.request("sendMessage", {"chat_id": 42, "text": "hi", "surprise": 1})
    assert findings.violations == [] and findings.extra_fields() == ["sendMessage: surprise"]


def test_missing_required_fields_and_wrong_types_fail():
    findings = BotApiFindings()
    findings.request("sendMessage", {"text": "hi"})
    findings.request("sendMessage", {"chat_id": [42], "text": "hi"})
    findings.request("editMessageReplyMarkup", {"chat_id": 42, "message_id": 7, "reply_markup": {
        "inline_keyboard": [{"text": "not a row"}]}})
    findings.request("answerCallbackQuery", {"callback_query_id": "1", "show_alert": "yes"})
    findings.request("sendDocument", {"chat_id": 42})
    assert findings.violations == [
        "sendMessage.chat_id: required, missing",
        "sendMessage.chat_id: not Integer or String <- [42]",
        'editMessageReplyMarkup.reply_markup.inline_keyboard[0]: not Array of InlineKeyboardButton <- {"text": "not a row"}',
        'answerCallbackQuery.show_alert: not Boolean <- "yes"',
        "sendDocument.document: required, missing",
    ]


def test_the_fakes_answers_are_judged_by_the_methods_return_types():
    findings = BotApiFindings()
    chat = {"id": 42, "type": "private", "first_name": "A"}
    findings.response("sendMessage", {"message_id": 1, "date": 1764800000, "chat": chat, "text": "hi"})
    findings.response("editMessageText", True)  # an inline message's edit answers True
    findings.response("getMe", {"id": 1, "is_bot": True, "first_name": "Ozon Desk", "username": "ozon_desk_bot"})
    assert findings.answer_violations == [] and findings.checked_answers == 3
    findings.response("sendMessage", {"message_id": "1", "chat": chat})
    findings.response("getMe", {"id": 1})
    assert findings.answer_violations == [
        'sendMessage -> Message.message_id: not Integer <- "1"',
        "sendMessage -> Message.date: required, missing",
        "getMe -> User.is_bot: required, missing",
        "getMe -> User.first_name: required, missing",
    ]
