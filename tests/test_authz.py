"""Authorisation matrix: owner, packer, a stranger and another desk's owner × every command and button, in a
private chat and in a group, through `ozonbot run` and the fake Bot API. Button data is the real signed data
the bot makes (so a refusal is authorisation, not a bad signature); forged data and another seller's number
typed by hand are refused too. Each cell checks the answer and the effect in the database and at Ozon."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from sandbox.telegram import DEFAULT_TOKEN
from services.actions import ActionCodec
from services.security import SecretBox
from services.storage.models import Invite, Member, PendingInput, Posting, Seller
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.service import running_bot

OWNER, PACKER, STRANGER, OUTSIDER = 1001, 1002, 6666, 2001
ROLES = {"owner": OWNER, "packer": PACKER, "stranger": STRANGER, "outsider": OUTSIDER}
DESK = {"owner", "packer"}
GROUP = -100777
OTHER_CLIENT, OTHER_KEY = "515151", "other-seller-key-987654"
REFUSED = "not for you"
# verb -> (stage the posting is put in, what happens when the press is allowed)
BUTTONS = {"c": "new", "x": "courier", "p": "courier", "w": "packed", "y": "packed", "l": "packed", "o": "new"}
# a group chat is limited to 20 messages a minute (PTB's rate limiter waits): fewer cells there
GROUP_BUTTONS = ("c", "x", "p", "o")
# command -> roles allowed to act with it (the others get a refusal and cause nothing)
COMMANDS = {"start": set(ROLES), "help": set(ROLES), "lang": set(ROLES), "orders": DESK, "status": DESK,
            "settings": DESK, "invite": {"owner"}}


@pytest.fixture
async def desk(make_settings, sandbox, fake_tg):
    sandbox.add_seller(OTHER_CLIENT, OTHER_KEY)
    settings = make_settings(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{fake_tg.base_url}/bot",
                             telegram_file_url=f"{fake_tg.base_url}/file/bot", ozon_api_url=sandbox.base_url,
                             poll_interval=1)
    async with running_bot(settings):
        tg = fake_tg
        for uid in ROLES.values():
            tg.push_message(uid, "/lang en", language_code="en")
            await tg.wait_for_message(uid, "Language set")
        tg.push_message(OWNER, f"/connect {CLIENT_ID} {API_KEY}", language_code="en")
        await tg.wait_for_message(OWNER, "Connected", timeout=10)
        tg.push_message(OUTSIDER, f"/connect {OTHER_CLIENT} {OTHER_KEY}", language_code="en")
        await tg.wait_for_message(OUTSIDER, "Connected", timeout=10)
        tg.push_message(OWNER, "/invite", language_code="en")
        code = (await tg.wait_for_message(OWNER, "One-time code")).text.split(": ")[1].split()[0]
        tg.push_message(PACKER, f"/join {code}", language_code="en")
        await tg.wait_for_message(PACKER, "You are on the desk")
        yield settings


async def _add_group(tg) -> None:
    """The owner connects the desk in a group too: alerts go there, and members act from there."""
    tg.push_message(OWNER, f"/connect {CLIENT_ID} {API_KEY}", chat_id=GROUP, chat_type="group")
    await tg.wait_for_message(GROUP, "Connected", timeout=10)


UNPROMPTED = ("🆕", "☀️")  # a new-order alert, the morning digest


async def _answer(tg, chat_id: int, command: str) -> str:
    """The bot's first message in the chat after the command that the bot did not send on its own: a new-order
    alert or the morning digest (due whenever the suite runs in the morning, Shanghai time) may land just
    before or after the answer."""
    last = max([m.message_id for m in tg.messages(chat_id)], default=0)

    def answer():
        return next((m for m in tg.messages(chat_id)
                     if m.message_id > last and not (m.text or "").startswith(UNPROMPTED)), None)

    message = await tg.wait_for(answer, timeout=25, what=f"an answer to {command} in chat {chat_id}")
    return message.text or ""


@pytest.mark.parametrize("chat", ["private", "group"])
async def test_commands_matrix(desk, sandbox, fake_tg, chat):
    if chat == "group":
        await _add_group(fake_tg)
    (mine,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["aggregator"])
    (theirs,) = sandbox.generate_orders(OTHER_CLIENT, 1, flows=["aggregator"])
    await fake_tg.wait_for(lambda: Posting.filter(posting_number=mine["posting_number"]).exists(), timeout=10)
    wrong = []
    for role, uid in ROLES.items():
        for command, allowed_roles in COMMANDS.items():
            if chat == "group" and command in ("start", "help", "lang"):
                continue  # allowed to all, and a group may only get 20 messages a minute
            text = {"status": f"/status {mine['posting_number']}", "lang": "/lang en"}.get(command, f"/{command}")
            where = {"chat_id": GROUP, "chat_type": "group"} if chat == "group" else {}
            invites = await Invite.filter(seller__client_id=CLIENT_ID).count()  # the outsider may invite to B
            fake_tg.push_message(uid, text, language_code="en", **where)
            reply = await _answer(fake_tg, GROUP if chat == "group" else uid, command)
            invited = await Invite.filter(seller__client_id=CLIENT_ID).count() > invites
            acted = invited if command == "invite" else _acted(command, reply, mine["posting_number"])
            if acted != (role in allowed_roles):
                wrong.append((role, chat, command, reply[:80]))
    # another seller's posting typed by hand, or asked with /status: nothing about it is told
    for text in (theirs["posting_number"], f"/status {theirs['posting_number']}"):
        fake_tg.push_message(OWNER, text, language_code="en")
        reply = await _answer(fake_tg, OWNER, text)
        if "No order" not in reply or "Status:" in reply:
            wrong.append(("owner", "private", text, reply[:80]))
    assert not wrong, "cells that disagree with the matrix:\n" + "\n".join(map(str, wrong))


def _acted(command: str, reply: str, number: str) -> bool:
    """Did the command do its job (as opposed to refusing)? Judged by what only a desk member may see."""
    if command == "orders":
        return number in reply
    if command == "status":
        return "Status:" in reply and number in reply
    if command == "settings":
        return f"Settings of seller {CLIENT_ID}" in reply
    return bool(reply) and REFUSED not in reply


@pytest.mark.parametrize("chat", ["private", "group"])
async def test_buttons_matrix(desk, sandbox, fake_tg, chat):
    codec = ActionCodec(SecretBox(desk.secret_key.get_secret_value()))
    verbs = BUTTONS if chat == "private" else GROUP_BUTTONS
    if chat == "group":
        await _add_group(fake_tg)
    cells = [(role, verb) for role in ROLES for verb in verbs]
    made = sandbox.generate_orders(CLIENT_ID, len(cells), flows=["aggregator"])
    numbers = [p["posting_number"] for p in made]
    await fake_tg.wait_for(lambda: _count(numbers), timeout=15)
    owner = await Member.get(external_id=str(OWNER))
    wrong = []
    for (role, verb), number in zip(cells, numbers, strict=True):
        posting = await _stage(sandbox, number, BUTTONS[verb])
        uid = ROLES[role]
        presser = await Member.get_or_none(external_id=str(uid), seller_id=posting.seller_id)
        if verb == "y":  # a waybill awaiting confirmation: the presser's own, or the owner's for outsiders
            await PendingInput.update_or_create(defaults={"posting": posting, "kind": "confirm",
                                                          "value": "SF1234567890123"}, member=presser or owner)
        query = _press(fake_tg, chat, uid, codec.encode(verb, posting.id, "sf" if verb == "c" else ""))
        answer = await fake_tg.wait_for(lambda q=query: fake_tg.callback_answer(q), timeout=30,
                                        what=f"the answer to {role} pressing {verb} in a {chat} chat")
        refused = REFUSED in str(answer.get("text")) and answer.get("show_alert") in (True, "true")
        allowed = role in DESK
        effect = await _settled_effect(sandbox, fake_tg, verb, posting, uid, chat, expected=allowed)
        if refused == allowed or effect != allowed:
            wrong.append((role, chat, verb, answer.get("text"), f"effect={effect}"))
    forged = codec.encode("p", posting.id)[:-3] + "AAA"
    answer_id = _press(fake_tg, chat, OWNER, forged)
    answer = await fake_tg.wait_for(lambda: fake_tg.callback_answer(answer_id), timeout=10)
    assert REFUSED in answer["text"], answer
    assert not wrong, "cells that disagree with the matrix:\n" + "\n".join(map(str, wrong))


async def _count(numbers: list[str]) -> bool:
    return await Posting.filter(posting_number__in=numbers).count() == len(numbers)


async def _stage(sandbox, number: str, stage: str) -> Posting:
    fields = {"new": {}, "courier": {"stage": "courier", "courier": "sf"},
              "packed": {"stage": "packed", "courier": "sf", "label_state": "failed"}}[stage]
    if stage == "packed":
        sandbox.set_status(CLIENT_ID, number, "awaiting_deliver")
        fields["status"] = "awaiting_deliver"
    if fields:
        await Posting.filter(posting_number=number).update(**fields)
    return await Posting.get(posting_number=number)


def _press(tg, chat: str, uid: int, data: str) -> str:
    if chat == "group":
        return tg.push_callback(uid, tg.messages(GROUP)[-1].message_id, data, chat_id=GROUP, chat_type="group")
    return tg.push_callback(uid, tg.messages(uid)[-1].message_id, data)


async def _settled_effect(sandbox, tg, verb: str, before: Posting, uid: int, chat: str, expected: bool) -> bool:
    """The effect once it has had time to show: the card an open press sends, and the alert it counts on, are
    paced behind other messages (a group takes 20 a minute), so they may land after the press is answered. An
    allowed press gets up to 20 s; a refused one a short settle, so that a late effect is still caught."""
    if not expected:
        await asyncio.sleep(1)
        return await _effect(sandbox, tg, verb, before, uid, chat)
    deadline = asyncio.get_running_loop().time() + 20
    while not (effect := await _effect(sandbox, tg, verb, before, uid, chat)):
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    return effect


async def _effect(sandbox, tg, verb: str, before: Posting, uid: int, chat: str) -> bool:
    """Whether the press changed anything: the database, Ozon, or a message only a member may get."""
    now = await Posting.get(id=before.id)
    number = before.posting_number
    if verb == "c":
        return now.stage == "courier"
    if verb == "x":
        return now.stage == "new"
    if verb == "p":
        return any(c.body.get("posting_number") == number for c in sandbox.calls_to("/v4/posting/fbs/ship"))
    if verb == "w":
        return await PendingInput.filter(posting_id=before.id, kind="waybill").exists()
    if verb == "y":
        return now.waybill is not None
    if verb == "l":
        return any(number in str(c.params.get("caption")) for c in tg.calls_of("sendDocument", ok=True))
    cards = sum(1 for c in tg.calls_of("sendMessage", ok=True)
                if f"New order {number}" in str(c.params.get("text")) and str(c.params.get("chat_id")) == str(uid))
    return cards >= (2 if uid in (OWNER, PACKER) else 1)  # members had the alert already; open sends another


# ---- taking someone off the desk: the packer is told, and every button and awaited input they held is refused
async def test_owner_removes_a_packer_whose_buttons_stop_at_once(desk, sandbox, fake_tg):
    tg = fake_tg
    (order,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    number = order["posting_number"]
    await tg.wait_for_message(PACKER, f"New order {number}", timeout=15)
    packer = await Member.get(external_id=str(PACKER))
    await PendingInput.create(member=packer, posting=await Posting.get(posting_number=number), kind="waybill")

    tg.push_message(PACKER, "/members", language_code="en")
    listing = await tg.wait_for_message(PACKER, "Desk of seller")
    assert "Remove" not in str(listing.reply_markup)  # a packer sees the desk, and removes nobody

    tg.push_message(OWNER, "/members", language_code="en")
    listing = await tg.wait_for_message(OWNER, "Desk of seller")
    assert "owner" in listing.text and "packer" in listing.text
    query = tg.press(OWNER, "Remove", message_id=listing.message_id)
    await tg.wait_for(lambda: tg.callback_answer(query), timeout=10)
    assert (await Member.get(id=packer.id)).role == "packer"  # asked first, removed only on Yes
    await tg.wait_for(lambda: any("Yes, remove" in label for label, _ in tg.buttons(OWNER, listing.message_id)),
                      timeout=10, what="the confirmation, edited into the list")  # the edit follows the answer
    query = tg.press(OWNER, "Yes, remove")
    answer = await tg.wait_for(lambda: tg.callback_answer(query), timeout=10)
    assert "no longer on the desk" in answer["text"]
    await tg.wait_for_message(PACKER, "You were removed from the desk", timeout=10)
    removed = await Member.get(id=packer.id)
    assert removed.role == "removed" and removed.chat_id is None
    assert not await PendingInput.filter(member_id=packer.id).exists()

    query = tg.press(PACKER, "SF Express")  # the card they still have
    answer = await tg.wait_for(lambda: tg.callback_answer(query), timeout=10)
    assert REFUSED in answer["text"]
    assert (await Posting.get(posting_number=number)).stage == "new"
    tg.push_message(PACKER, "/orders", language_code="en")
    assert number not in (await tg.wait_for_message(PACKER, "not on a desk")).text


ANONYMOUS_ADMIN, CHANNEL_BOT = 1087968824, 136817688  # Telegram's shared senders


async def test_anonymous_admins_and_channels_are_nobody(desk, sandbox, fake_tg):
    """H1: an anonymous admin's /connect in one group must not make every anonymous admin of every group an
    owner. Shared senders can neither connect, join, invite nor read a desk; they are told to write as
    themselves."""
    tg = fake_tg
    victim_group, attacker_group = -100901, -100902
    tg.push_message(ANONYMOUS_ADMIN, f"/connect {CLIENT_ID} {API_KEY}", chat_id=victim_group, chat_type="supergroup",
                    language_code="en", first_name="Group")
    answer = await tg.wait_for_message(victim_group, "Send this as yourself", timeout=10)
    assert "Remain anonymous" in answer.text
    for command in ("/invite", "/orders", "/settings", f"/join {'A' * 8}"):
        tg.push_message(ANONYMOUS_ADMIN, command, chat_id=attacker_group, chat_type="supergroup", language_code="en")
        await tg.wait_for_message(attacker_group, "Send this as yourself", timeout=10)
    tg.push_message(CHANNEL_BOT, "/invite", chat_id=attacker_group, chat_type="supergroup", language_code="en")
    await tg.wait_for_message(attacker_group, "Send this as yourself", timeout=10)
    await asyncio.sleep(0.5)
    assert not await Member.filter(external_id__in=(str(ANONYMOUS_ADMIN), str(CHANNEL_BOT))).exists()
    assert not [m for m in tg.messages(attacker_group) if "One-time code" in (m.text or "")]
    assert await Invite.all().count() == 1  # the owner's own, from the fixture


def test_a_shared_sender_or_a_message_on_behalf_of_a_chat_is_no_person():
    from services.desk import is_person

    assert is_person("1001")
    assert not is_person("1087968824") and not is_person("136817688") and not is_person("777000")
    assert not is_person("1001", as_chat=True)  # sender_chat set: a channel or an anonymous admin
    assert not is_person("5005", is_bot=True) and not is_person(None)


async def test_connect_cannot_take_a_desk_over_and_the_owners_hear_of_it(desk, sandbox, fake_tg):
    """M1: a valid key for a Client-Id that already has a desk does not make a stranger its owner, nor
    replace its key; the owners are told. The owner's own renewal goes through."""
    tg = fake_tg
    last = max([m.message_id for m in tg.messages(OWNER)], default=0)
    tg.push_message(STRANGER, f"/connect {CLIENT_ID} {API_KEY}", language_code="en")
    await tg.wait_for_message(STRANGER, "already has a desk, and you are not its owner", timeout=10)
    await tg.wait_for_message(OWNER, "tried to connect Ozon seller", after=last, timeout=10)
    assert not await Member.filter(external_id=str(STRANGER)).exists()
    last = max(m.message_id for m in tg.messages(OWNER))
    tg.push_message(OWNER, f"/connect {CLIENT_ID} {API_KEY}", language_code="en")
    await tg.wait_for_message(OWNER, "Connected Ozon seller", after=last, timeout=10)


async def test_a_key_without_the_roles_the_bot_needs_is_refused(desk, sandbox, fake_tg):
    sandbox.add_seller("717171", "read-only-key-0123456789", roles=["Admin read only"])
    fake_tg.push_message(STRANGER, "/connect 717171 read-only-key-0123456789", language_code="en")
    answer = await fake_tg.wait_for_message(STRANGER, "may not do what the bot needs", timeout=10)
    assert "/v4/posting/fbs/ship" in answer.text
    assert not await Seller.filter(client_id="717171").exists()


async def test_a_key_the_bot_could_not_delete_from_a_group_is_refused(desk, sandbox, fake_tg):
    """M2: a plain member of a group cannot delete others' messages; the key would stay readable there."""
    group = -100555
    fake_tg.fail_next("deleteMessage", status=400, description="Bad Request: message can't be deleted")
    fake_tg.push_message(OWNER, f"/connect {CLIENT_ID} {API_KEY}", chat_id=group, chat_type="group",
                         language_code="en")
    answer = await fake_tg.wait_for_message(group, "could not delete your message with the API key", timeout=10)
    assert "revoke that key" in answer.text
    assert not await Member.filter(external_id=f"chat:{group}").exists()
