"""The WeCom app end to end through `ozonbot run` wiring: the sandbox as Ozon, our fake WeCom API, and
callbacks signed and encrypted by an independent implementation, all over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path

import pytest

from bot.cli import _parser
from bot.cli_seller import seller_command
from sandbox.wechat.callbacks import WecomCallbacks
from sandbox.wechat.crypto import CallbackSigner, new_aes_key, new_token
from sandbox.wechat.wecom import FakeWecom
from services.storage.models import InboundCallback, Member, Posting
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.service import running_bot

CORP, AGENT, SECRET = "ww1436e0e65a779aee", 1000002, "wecom-app-secret-0123456789abcdef"
OWNER, PACKER = "LiWei", "ZhangSan"
WAYBILL = "SF1402938475612"
PHOTO = Path(__file__).parent / "fixtures" / "waybill_sf.jpg"


@pytest.fixture
async def fake_wecom():
    fake = FakeWecom()
    fake.add_app(CORP, SECRET, AGENT, [OWNER, PACKER])
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def wecom_settings(make_settings, sandbox, fake_wecom):
    return make_settings(ozon_api_url=sandbox.base_url, wecom_api_url=fake_wecom.base_url, poll_interval=1)


async def cli(settings, *argv: str) -> tuple[int, str]:
    """`ozonbot seller …` in this process (the same code path as the command line), output captured."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = await seller_command(settings, _parser().parse_args(["seller", *argv]))
    return code, out.getvalue()


async def connect_wecom(settings, token: str, aes_key: str) -> WecomCallbacks:
    code, _ = await cli(settings, "add", "--client-id", CLIENT_ID, "--api-key", API_KEY)
    assert code == 0
    code, out = await cli(settings, "wecom", CLIENT_ID, "--corp-id", CORP, "--agent-id", str(AGENT),
                          "--secret", SECRET, "--token", token, "--aes-key", aes_key, "--owner", OWNER)
    assert code == 0, out
    url = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("callback URL: "))
    return WecomCallbacks(url, CallbackSigner(token, aes_key, CORP), AGENT)


def card_for(fake: FakeWecom, user: str, number: str) -> dict | None:
    return next((c for c in reversed(fake.cards_to(user)) if number in c["main_title"]["title"]), None)


def option_of(card: dict, label: str) -> str:
    return next(o["id"] for o in card["button_selection"]["option_list"] if o["text"] == label)


def button_of(card: dict, label: str) -> str:
    return next(b["key"] for b in card["button_list"] if label in b["text"])


async def click(fake: FakeWecom, wecom: WecomCallbacks, user: str, task_id: str, key: str,
                option: str | None = None) -> dict:
    """A click as WeCom delivers it; returns the card update that the click's response code paid for."""
    code = fake.issue_response_code()
    status, _ = await wecom.post(wecom.click(user, task_id, key, code, option=option))
    assert status == 200
    return await fake.wait_for(lambda: next((u for u in fake.updates if u["response_code"] == code), None))


def ship_calls(sandbox, number: str) -> list:
    return [c for c in sandbox.calls_to("/v4/posting/fbs/ship") if c.body.get("posting_number") == number]


async def test_new_order_card_click_courier_packed_and_tracking(wecom_settings, sandbox, fake_wecom):
    wecom = await connect_wecom(wecom_settings, new_token(), new_aes_key())
    (posting,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    number = posting["posting_number"]
    async with running_bot(wecom_settings):
        card = await fake_wecom.wait_for(lambda: card_for(fake_wecom, OWNER, number))
        assert card["card_type"] == "button_interaction"
        labels = [o["text"] for o in card["button_selection"]["option_list"]]
        assert labels[:3] == ["顺丰", "中通", "圆通"] and len(labels) == 10  # Chinese by default
        assert posting["products"][0]["offer_id"] in card["sub_title_text"]
        await fake_wecom.wait_for(lambda: card_for(fake_wecom, PACKER, number))  # the whole app is the desk

        update = await click(fake_wecom, wecom, OWNER, card["task_id"], "pick", option_of(card, "顺丰"))
        packed_card = update["template_card"]
        assert "顺丰" in packed_card["sub_title_text"]
        packed_key = button_of(packed_card, "已打包")
        # the packer's copy follows (paid with the code its own send returned)
        await fake_wecom.wait_for(lambda: any(
            u["userids"] == [PACKER] and "已打包" in str(u["template_card"]["button_list"]) for u in fake_wecom.updates))

        code = fake_wecom.issue_response_code()
        signed = wecom.sign(wecom.click(OWNER, card["task_id"], packed_key, code))
        assert (await wecom.post(signed))[0] == 200
        assert (await wecom.post(signed))[0] == 200  # WeChat's retry of the same callback
        await fake_wecom.wait_for_text(OWNER, f"{number}", timeout=15)
        await fake_wecom.wait_for(lambda: any(u["response_code"] == code for u in fake_wecom.updates))
        stale = await click(fake_wecom, wecom, PACKER, card_for(fake_wecom, PACKER, number)["task_id"],
                            packed_key)  # a second packer pressing a stale card: refreshed, no second ship
        assert "已打包" not in str(stale.get("template_card", {}).get("button_list"))
        assert len(ship_calls(sandbox, number)) == 1

        status, _ = await wecom.post(wecom.text(OWNER, WAYBILL))
        assert status == 200
        await fake_wecom.wait_for_text(OWNER, WAYBILL, timeout=15)
        await fake_wecom.wait_for(lambda: sandbox.posting(CLIENT_ID, number)["tracking_number"] == WAYBILL)
        await fake_wecom.wait_for(lambda: any(s.body.get("msgtype") == "file" for s in fake_wecom.sent), 15)
        assert (await Posting.get(posting_number=number)).stage == "handed_over"
    assert len(ship_calls(sandbox, number)) == 1
    assert len([c for c in sandbox.calls_to("/v2/fbs/posting/tracking-number/set") if number in str(c.body)]) == 1


async def test_retried_callback_is_processed_once_and_forgeries_change_nothing(wecom_settings, sandbox,
                                                                               fake_wecom):
    wecom = await connect_wecom(wecom_settings, new_token(), new_aes_key())
    (posting,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["aggregator"])
    number = posting["posting_number"]
    async with running_bot(wecom_settings):
        card = await fake_wecom.wait_for(lambda: card_for(fake_wecom, OWNER, number))
        await click(fake_wecom, wecom, OWNER, card["task_id"], "pick", option_of(card, "中通"))
        packed_key = button_of(card_for_update(fake_wecom, OWNER), "已打包")
        inner = wecom.click(OWNER, card["task_id"], packed_key, fake_wecom.issue_response_code())
        callbacks_before = await InboundCallback.all().count()

        forged = CallbackSigner(new_token(), wecom.signer.aes_key, CORP)  # right key, wrong token
        assert (await WecomCallbacks(wecom.url, forged, AGENT).post(inner))[0] == 403
        wrong_key = CallbackSigner(wecom.signer.token, new_aes_key(), CORP)  # signed right, encrypted wrong
        assert (await WecomCallbacks(wecom.url, wrong_key, AGENT).post(inner))[0] == 403
        other_corp = CallbackSigner(wecom.signer.token, wecom.signer.aes_key, "ww-another-corp")
        assert (await WecomCallbacks(wecom.url, other_corp, AGENT).post(inner))[0] == 403
        signed = wecom.sign(inner)
        tampered = type(signed)(dict(signed.query, nonce=signed.query["nonce"] + "1"), signed.body)
        assert (await wecom.post(tampered))[0] == 403
        stale = wecom.sign(inner, timestamp=str(int(signed.query["timestamp"]) - 3600))
        assert (await wecom.post(stale))[0] == 403
        assert (await wecom.get({"msg_signature": "0" * 40, "timestamp": signed.query["timestamp"],
                                 "nonce": "1", "echostr": "abc"}))[0] == 403
        unknown = WecomCallbacks(wecom.url.rsplit("/", 1)[0] + "/nope", wecom.signer, AGENT)
        assert (await unknown.post(inner))[0] == 404
        await asyncio.sleep(0.5)
        assert ship_calls(sandbox, number) == []
        assert await InboundCallback.all().count() == callbacks_before
        assert await Member.filter(channel="wecom").count() == 2

        for _ in range(3):  # WeChat retries a callback it thinks timed out: three deliveries, one effect
            assert await wecom.post(signed) == (200, "success")
        await fake_wecom.wait_for_text(OWNER, number, timeout=15)
        await asyncio.sleep(0.5)
        assert len(ship_calls(sandbox, number)) == 1
        assert await InboundCallback.all().count() == callbacks_before + 1

        status, echo = await wecom.get(wecom.signer.verify_url("5927782498214").query)
        assert (status, echo) == (200, "5927782498214")


def card_for_update(fake: FakeWecom, user: str) -> dict:
    return next(u["template_card"] for u in reversed(fake.updates) if u["userids"] == [user])


async def test_text_commands_language_and_photo(wecom_settings, sandbox, fake_wecom):
    wecom = await connect_wecom(wecom_settings, new_token(), new_aes_key())
    (posting,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    number = posting["posting_number"]
    async with running_bot(wecom_settings):
        card = await fake_wecom.wait_for(lambda: card_for(fake_wecom, OWNER, number))
        await wecom.post(wecom.text(PACKER, "帮助"))
        await fake_wecom.wait_for_text(PACKER, "订单")
        await wecom.post(wecom.text(PACKER, "订单"))
        listing = await fake_wecom.wait_for(lambda: next(
            (c for c in fake_wecom.cards_to(PACKER) if "1" in c["main_title"]["title"] and number in
             c.get("sub_title_text", "")), None))
        assert listing["button_list"][0]["text"] == number
        await wecom.post(wecom.text(PACKER, f"状态{number}"))  # no space needed in Chinese
        await fake_wecom.wait_for(lambda: any(number in c["main_title"]["title"] and "待打包" in
                                              c.get("sub_title_text", "") for c in fake_wecom.cards_to(PACKER)))
        await wecom.post(wecom.text(PACKER, "语言 en"))
        await fake_wecom.wait_for_text(PACKER, "Language set: English")
        await wecom.post(wecom.text(PACKER, f"status {number}"))
        await fake_wecom.wait_for(lambda: any("awaiting packaging" in c.get("sub_title_text", "")
                                              for c in fake_wecom.cards_to(PACKER)))
        await wecom.post(wecom.text(PACKER, "lang 中文"))
        await fake_wecom.wait_for_text(PACKER, "语言")

        await click(fake_wecom, wecom, OWNER, card["task_id"], "pick", option_of(card, "顺丰"))
        await click(fake_wecom, wecom, OWNER, card["task_id"], button_of(card_for_update(fake_wecom, OWNER), "已打包"))
        await fake_wecom.wait_for_text(OWNER, "快递单号", timeout=15)
        media_id = fake_wecom.add_media(PHOTO.read_bytes())
        await wecom.post(wecom.image(OWNER, media_id))
        await fake_wecom.wait_for(lambda: sandbox.posting(CLIENT_ID, number)["tracking_number"] == WAYBILL, 15)
        assert fake_wecom.calls_to("media/get")[0].params["media_id"] == media_id


async def test_the_apps_own_menu_lists_the_desk_and_answers_its_clicks(wecom_settings, sandbox, fake_wecom):
    """`ozonbot seller wecom` creates the app's menu (待打包 · 查询订单 · 更多); its clicks are the conversation's
    verbs, the same as the typed words."""
    wecom = await connect_wecom(wecom_settings, new_token(), new_aes_key())
    menu = fake_wecom.apps[CORP].menu
    assert [b["name"] for b in menu["button"]] == ["待打包", "查询订单", "更多"]
    assert [b["key"] for b in menu["button"][2]["sub_button"]] == ["SETTINGS", "MEMBERS", "CONNECT", "HELP"]
    (posting,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    number = posting["posting_number"]
    async with running_bot(wecom_settings):
        await fake_wecom.wait_for(lambda: card_for(fake_wecom, OWNER, number))
        assert (await wecom.post(wecom.menu_click(OWNER, "ORDERS")))[0] == 200
        await fake_wecom.wait_for(lambda: any(number in c.get("sub_title_text", "") and "1" in c["main_title"]["title"]
                                              for c in fake_wecom.cards_to(OWNER)))
        await wecom.post(wecom.menu_click(OWNER, "SETTINGS"))
        await fake_wecom.wait_for(lambda: any("⚙️" in c["main_title"]["title"] for c in fake_wecom.cards_to(OWNER)))
        await wecom.post(wecom.menu_click(PACKER, "QUERY"))
        await fake_wecom.wait_for_text(PACKER, "单号")
