"""The whole desk through `ozonbot run` wiring: PTB's real stack against our fake Bot API, the sandbox
as Ozon, all over real HTTP on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from sandbox.ozon import Faults
from sandbox.telegram import DEFAULT_TOKEN
from services.storage.models import Intent, Posting
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.service import running_bot

OWNER, PACKER, STRANGER = 1001, 1002, 6666
WAYBILL = "SF1402938475612"
PHOTO = Path(__file__).parent / "fixtures" / "waybill_sf.jpg"


@pytest.fixture
def tg_settings(make_settings, sandbox, fake_tg):
    return make_settings(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{fake_tg.base_url}/bot",
                         telegram_file_url=f"{fake_tg.base_url}/file/bot", ozon_api_url=sandbox.base_url)


async def _connect_owner(fake_tg) -> None:
    fake_tg.push_message(OWNER, "/start", language_code="en")
    await fake_tg.wait_for_message(OWNER, "/connect")
    fake_tg.push_message(OWNER, "/lang en", language_code="en")
    await fake_tg.wait_for_message(OWNER, "Language set: English")
    connect_id = fake_tg.push_message(OWNER, f"/connect {CLIENT_ID} {API_KEY}", language_code="en")
    await fake_tg.wait_for_message(OWNER, f"Connected Ozon seller {CLIENT_ID}", timeout=10)
    assert fake_tg.is_deleted(OWNER, connect_id), "the message carrying the key must be deleted"


async def _choose_courier(fake_tg, number: str, courier: str = "SF Express"):
    """Press a courier on the owner's card of `number`; returns the card once it offers Packed."""
    card = await fake_tg.wait_for_message(OWNER, f"New order {number}", timeout=10)
    fake_tg.press(OWNER, courier, message_id=card.message_id)
    await fake_tg.wait_for(lambda: "✅ Packed" in str(fake_tg.buttons(OWNER, card.message_id)))
    return card


def _ship_calls(sandbox, number: str) -> list:
    return [c for c in sandbox.calls_to("/v4/posting/fbs/ship") if c.body.get("posting_number") == number]


def _calls_for(sandbox, path: str, number: str) -> list:
    return [c for c in sandbox.calls_to(path) if number in str(c.body)]


async def test_non_integrated_and_aggregator_end_to_end(tg_settings, sandbox, fake_tg):
    own, partner = sandbox.generate_orders(CLIENT_ID, 2, flows=["non_integrated", "aggregator"])
    async with running_bot(tg_settings):
        await _connect_owner(fake_tg)
        for posting in (own, partner):
            card = await fake_tg.wait_for_message(OWNER, f"New order {posting['posting_number']}", timeout=10)
            assert "SF Express" in [text for text, _ in card.buttons]
            assert posting["products"][0]["offer_id"] in card.text
            assert "left" in card.text  # the deadline with the time left

        # seller delivers: courier → Packed → typed waybill → tracking set + delivering
        number = own["posting_number"]
        card = await fake_tg.wait_for_message(OWNER, f"New order {number}")
        fake_tg.press(OWNER, "SF Express", message_id=card.message_id)
        await fake_tg.wait_for(lambda: "✅ Packed" in str(fake_tg.buttons(OWNER, card.message_id)))
        fake_tg.press(OWNER, "Packed", message_id=card.message_id)
        await fake_tg.wait_for_message(OWNER, f"Waybill number for {number}", timeout=10)
        fake_tg.push_message(OWNER, WAYBILL, language_code="en")
        await fake_tg.wait_for_message(OWNER, f"Tracking number {WAYBILL} sent to Ozon", timeout=10)
        await fake_tg.wait_for_call("sendDocument", timeout=10)

        ship = _ship_calls(sandbox, number)
        assert len(ship) == 1
        sent = {(p["product_id"], p["quantity"]) for p in ship[0].body["packages"][0]["products"]}
        assert sent == {(p["sku"], p["quantity"]) for p in own["products"]}
        assert len(_calls_for(sandbox, "/v2/fbs/posting/tracking-number/set", number)) == 1
        assert len(_calls_for(sandbox, "/v2/fbs/posting/delivering", number)) == 1
        assert sandbox.posting(CLIENT_ID, number)["status"] == "delivering"
        assert sandbox.posting(CLIENT_ID, number)["tracking_number"] == WAYBILL

        # partner flow: the waybill stays ours, Ozon gets no tracking call
        number = partner["posting_number"]
        card = await fake_tg.wait_for_message(OWNER, f"New order {number}")
        fake_tg.press(OWNER, "ZTO Express", message_id=card.message_id)
        await fake_tg.wait_for(lambda: "✅ Packed" in str(fake_tg.buttons(OWNER, card.message_id)))
        fake_tg.press(OWNER, "Packed", message_id=card.message_id)
        await fake_tg.wait_for_message(OWNER, f"Waybill number for {number}", timeout=10)
        fake_tg.push_message(OWNER, "73100000000001", language_code="en")
        await fake_tg.wait_for_message(OWNER, "first-mile record", timeout=10)
        assert len(_ship_calls(sandbox, number)) == 1
        assert _calls_for(sandbox, "/v2/fbs/posting/tracking-number/set", number) == []
        assert _calls_for(sandbox, "/v2/fbs/posting/delivering", number) == []

        fake_tg.push_message(OWNER, f"/status {own['posting_number']}", language_code="en")
        status = await fake_tg.wait_for_message(OWNER, "Ozon tracking:")
        assert "in delivery" in status.text and WAYBILL in status.text
        assert await Intent.filter(state="pending").count() == 0


async def test_packer_joins_photo_tracking_and_everyone_sees_the_update(tg_settings, sandbox, fake_tg):
    (posting,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    number = posting["posting_number"]
    async with running_bot(tg_settings):
        await _connect_owner(fake_tg)
        # the alert exists before the packer joins: they open it from /orders
        await fake_tg.wait_for_message(OWNER, f"New order {number}", timeout=10)
        fake_tg.push_message(OWNER, "/invite", language_code="en")
        invite = await fake_tg.wait_for_message(OWNER, "One-time code")
        code = invite.text.split("One-time code for a packer: ")[1].split()[0]
        fake_tg.push_message(PACKER, f"/join {code}", language_code="ru", first_name="Packer")
        await fake_tg.wait_for_message(PACKER, "✅", timeout=10)
        fake_tg.push_message(STRANGER, f"/join {code}", language_code="en")  # used codes do not work twice
        await fake_tg.wait_for_message(STRANGER, "not valid")

        fake_tg.push_message(PACKER, "/orders", language_code="ru")
        listing = await fake_tg.wait_for_message(PACKER, number)
        fake_tg.press(PACKER, number, message_id=listing.message_id)
        card = await fake_tg.wait_for_message(PACKER, number, after=listing.message_id)
        fake_tg.press(PACKER, "SF Express", message_id=card.message_id)
        owner_card = await fake_tg.wait_for_message(OWNER, f"New order {number}")
        await fake_tg.wait_for(lambda: "SF Express" in (fake_tg.message(OWNER, owner_card.message_id).text or ""))
        await fake_tg.wait_for(lambda: any("✅" in text for text, _ in fake_tg.buttons(PACKER, card.message_id)))
        packed_label = next(text for text, _ in fake_tg.buttons(PACKER, card.message_id) if "✅" in text)
        fake_tg.press(PACKER, packed_label, message_id=card.message_id)
        await fake_tg.wait_for(lambda: "Packer" in (fake_tg.message(OWNER, owner_card.message_id).text or ""),
                               timeout=10)
        prompt = await fake_tg.wait_for_message(PACKER, number, after=card.message_id, timeout=10)
        assert prompt.reply_markup and prompt.reply_markup.get("force_reply")
        fake_tg.push_message(PACKER, None, photo=PHOTO.read_bytes(), language_code="ru")
        await fake_tg.wait_for(lambda: sandbox.posting(CLIENT_ID, number)["tracking_number"] == WAYBILL, timeout=15)
        assert len(_ship_calls(sandbox, number)) == 1


async def test_double_tap_ships_once_and_forged_or_foreign_presses_do_nothing(tg_settings, sandbox, fake_tg):
    (posting,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["aggregator"])
    number = posting["posting_number"]
    async with running_bot(tg_settings):
        await _connect_owner(fake_tg)
        card = await _choose_courier(fake_tg, number)
        packed_data = dict(fake_tg.buttons(OWNER, card.message_id))["✅ Packed"]

        forged = packed_data[:-3] + ("AAA" if not packed_data.endswith("AAA") else "BBB")
        q_forged = fake_tg.push_callback(OWNER, card.message_id, forged)
        # a stranger replays the real button data from a modified client, under a bot message of their own
        fake_tg.push_message(STRANGER, "/start", language_code="en")
        own_message = await fake_tg.wait_for_message(STRANGER, "/connect")
        q_foreign = fake_tg.push_callback(STRANGER, own_message.message_id, packed_data)
        await fake_tg.wait_for(lambda: fake_tg.callback_answer(q_forged) and fake_tg.callback_answer(q_foreign))
        for query in (q_forged, q_foreign):
            assert fake_tg.callback_answer(query).get("show_alert") in (True, "true")
        assert _ship_calls(sandbox, number) == []

        q1 = fake_tg.push_callback(OWNER, card.message_id, packed_data)
        q2 = fake_tg.push_callback(OWNER, card.message_id, packed_data)
        await fake_tg.wait_for(lambda: fake_tg.callback_answer(q1) and fake_tg.callback_answer(q2), timeout=10)
        await fake_tg.wait_for_message(OWNER, f"Waybill number for {number}", timeout=10)
        assert len(_ship_calls(sandbox, number)) == 1


def _card_edits(fake_tg, message_id: int) -> list[str]:
    return [str(c.params.get("text")) for c in fake_tg.calls_of("editMessageText", ok=True)
            if c.params.get("message_id") == message_id]


async def test_card_says_packing_only_while_ozon_is_slow(tg_settings, sandbox, fake_tg):
    """A quick ship edits the card once, straight to packed; a slow one shows "packing" first, and the
    card still ends on packed (its edits take turns, so the late "packing" edit cannot land last)."""
    quick, slow = sandbox.generate_orders(CLIENT_ID, 2, flows=["non_integrated"])
    async with running_bot(tg_settings):
        await _connect_owner(fake_tg)
        for posting, latency in ((quick, 0.0), (slow, 1.5)):
            number = posting["posting_number"]
            card = await _choose_courier(fake_tg, number)
            before = len(_card_edits(fake_tg, card.message_id))
            sandbox.faults = Faults(latency=latency, paths={"/v4/posting/fbs/ship"})
            fake_tg.press(OWNER, "Packed", message_id=card.message_id)
            await fake_tg.wait_for_message(OWNER, f"Waybill number for {number}", timeout=10)
            edits = _card_edits(fake_tg, card.message_id)[before:]
            shown = ["packing" if "Packing in Ozon" in text else "packed" if "packed, awaiting hand-over" in text
                     else text for text in edits]
            assert shown == (["packed"] if latency == 0 else ["packing", "packed"])
        sandbox.faults = Faults()


async def test_restart_in_the_middle_of_the_flow(tg_settings, sandbox, fake_tg):
    (posting,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    number = posting["posting_number"]
    async with running_bot(tg_settings):
        await _connect_owner(fake_tg)
        card = await _choose_courier(fake_tg, number)
        fake_tg.press(OWNER, "Packed", message_id=card.message_id)
        await fake_tg.wait_for_message(OWNER, f"Waybill number for {number}", timeout=10)
    async with running_bot(tg_settings):  # a new process on the same database
        fake_tg.push_message(OWNER, WAYBILL, language_code="en")
        await fake_tg.wait_for_message(OWNER, f"Tracking number {WAYBILL} sent to Ozon", timeout=10)
        row = await Posting.get(posting_number=number)
        assert row.stage == "handed_over"
        alerts = [c for c in fake_tg.calls_of("sendMessage") if f"New order {number}" in str(c.params.get("text"))]
        assert len(alerts) == 1, "a restart must not alert again"
    assert len(_ship_calls(sandbox, number)) == 1
    assert len(_calls_for(sandbox, "/v2/fbs/posting/tracking-number/set", number)) == 1


async def test_webhook_mode_checks_the_secret_token(make_settings, sandbox, fake_tg):
    port_settings = make_settings()
    url = f"http://127.0.0.1:{port_settings.http_port}/telegram/webhook"
    settings = make_settings(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{fake_tg.base_url}/bot",
                             telegram_file_url=f"{fake_tg.base_url}/file/bot", ozon_api_url=sandbox.base_url,
                             telegram_webhook_url=url, http_port=port_settings.http_port)
    async with running_bot(settings):
        assert fake_tg.webhook_url == url and fake_tg.webhook_secret
        fake_tg.push_message(OWNER, "/start", language_code="en")  # delivered by POST with the secret header
        await fake_tg.wait_for_message(OWNER, "/connect", timeout=10)
        forged = fake_tg.build_message_update(OWNER, "/start")
        assert await fake_tg.post_update_to(url, forged, secret_token="wrong") == 403
        assert await fake_tg.post_update_to(url, forged, secret_token=None) == 403
        assert not fake_tg.calls_of("getUpdates")


async def test_command_menus_per_chat_kind_language_and_owner(tg_settings, fake_tg):
    """Telegram shows each kind of chat its own commands, described in the client's language; an owner's chat
    lists invite and members as well once the key is connected."""
    async with running_bot(tg_settings):
        await fake_tg.wait_for(lambda: len(fake_tg.commands) >= 8, timeout=10, what="the command menus")
        private = {c["command"]: c["description"] for c in fake_tg.commands[("all_private_chats", "ru")]}
        assert set(private) == {"orders", "picklist", "labels", "status", "stock", "settings", "join", "connect",
                                "lang", "help"}
        assert private["orders"] == "открытые заказы, самые срочные первыми"
        groups = fake_tg.commands[("all_group_chats", "")]  # no language: Chinese, the default
        assert [c["command"] for c in groups] == ["orders", "picklist", "labels", "status", "stock", "help"]
        assert "订单" in groups[0]["description"]
        await _connect_owner(fake_tg)
        owner_key = await fake_tg.wait_for(lambda: next((key for key in fake_tg.commands if str(OWNER) in key[0]),
                                                        None), timeout=10, what="the owner's own menu")
        assert {"invite", "members"} <= {c["command"] for c in fake_tg.commands[owner_key]}
        assert fake_tg.commands[owner_key][0]["description"] == "open orders, most urgent first"
