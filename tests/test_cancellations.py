"""Buyers' cancellation requests end to end: the sandbox as Ozon, `ozonbot run` with its real channels over
loopback HTTP (Telegram through PTB and the fake Bot API; the WeCom app through its callback and API)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from bot.app import build_services
from sandbox.ozon import Faults
from sandbox.telegram import DEFAULT_TOKEN
from sandbox.wechat.crypto import new_aes_key, new_token
from sandbox.wechat.wecom import FakeWecom
from services.storage.models import CancelRequest, Event, Intent, Notification
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.service import running_bot
from tests.test_telegram_e2e import _connect_owner
from tests.test_wechat_work import AGENT, CORP, SECRET, button_of, card_for, connect_wecom
from tests.test_wechat_work import OWNER as LI
from tests.test_wechat_work import PACKER as ZHANG

OWNER, PACKER = 1001, 1002
LIST, APPROVE, REJECT = ("/v2/conditional-cancellation/list", "/v2/conditional-cancellation/approve",
                         "/v2/conditional-cancellation/reject")


@pytest.fixture
def tg_settings(make_settings, sandbox, fake_tg):
    return make_settings(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{fake_tg.base_url}/bot",
                         telegram_file_url=f"{fake_tg.base_url}/file/bot", ozon_api_url=sandbox.base_url,
                         poll_interval=0.5, cancel_poll_interval=0.5, cancel_remind_before=3600, ozon_timeout=1.0)


def _applied(sandbox, path: str, cancellation_id: int) -> list:
    return [c for c in sandbox.calls_to(path) if c.status == 200 and c.body.get("cancellation_id") == cancellation_id]


async def _join_packer(fake_tg) -> None:
    fake_tg.push_message(OWNER, "/invite", language_code="en")
    invite = await fake_tg.wait_for_message(OWNER, "One-time code")
    code = invite.text.split("One-time code for a packer: ")[1].split()[0]
    fake_tg.push_message(PACKER, "/lang en", language_code="en", first_name="Packer")
    await fake_tg.wait_for_message(PACKER, "Language set")
    fake_tg.push_message(PACKER, f"/join {code}", language_code="en", first_name="Packer")
    await fake_tg.wait_for_message(PACKER, "You are on the desk", timeout=10)


async def test_a_request_reaches_the_desk_once_and_each_decision_reaches_ozon_once_on_telegram(
        tg_settings, sandbox, fake_tg):
    kept, dropped, late = sandbox.generate_orders(CLIENT_ID, 3, flows=["non_integrated"])
    async with running_bot(tg_settings):
        await _connect_owner(fake_tg)
        await _join_packer(fake_tg)
        for posting in (kept, dropped):
            await fake_tg.wait_for_message(OWNER, f"New order {posting['posting_number']}", timeout=10)
        card = await fake_tg.wait_for_message(OWNER, f"New order {kept['posting_number']}")
        fake_tg.press(OWNER, "SF Express", message_id=card.message_id)
        await fake_tg.wait_for(lambda: "✅ Packed" in str(fake_tg.buttons(OWNER, card.message_id)))

        asked = sandbox.request_cancellation(CLIENT_ID, kept["posting_number"], reason="Передумал покупать",
                                             message="found it cheaper", auto_approve_in=timedelta(hours=5))
        request = await fake_tg.wait_for_message(OWNER, "The buyer asked to cancel this order", timeout=10)
        assert kept["posting_number"] in request.text and "found it cheaper" in request.text
        assert "Auto-approved in 4 h" in request.text or "Auto-approved in 5 h" in request.text
        assert [text for text, _ in request.buttons] == ["✅ Approve cancellation", "🚫 Reject"]
        packer_copy = await fake_tg.wait_for_message(PACKER, "The buyer asked to cancel this order", timeout=10)
        assert [t for t, _ in packer_copy.buttons] == ["Open the order card"]
        assert "until the owner decides" in packer_copy.text

        # the posting's own card says so at once, and its Packed asks first
        await fake_tg.wait_for(lambda: "buyer asked to cancel" in fake_tg.message(OWNER, card.message_id).text)
        fake_tg.press(OWNER, "Packed", message_id=card.message_id)
        confirm = await fake_tg.wait_for_message(OWNER, "Pack it anyway?", timeout=10)
        assert [text for text, _ in confirm.buttons] == ["Pack anyway"]
        assert sandbox.calls_to("/v4/posting/fbs/ship") == []

        # reject with a typed reason; the second tap finds the decision taken
        fake_tg.press(OWNER, "Reject", message_id=request.message_id)
        why = await fake_tg.wait_for_message(OWNER, "Why do you refuse the cancellation", timeout=10)
        fake_tg.push_message(OWNER, "Already packed and on its way", language_code="en")
        await fake_tg.wait_for_message(OWNER, "Cancellation rejected by", timeout=10, after=why.message_id)
        answered = len(fake_tg.calls_of("answerCallbackQuery"))
        fake_tg.press(OWNER, "Already handed to the carrier", message_id=why.message_id)  # a late second tap
        late_tap = await fake_tg.wait_for_call("answerCallbackQuery", count=answered + 1)
        assert "Cancellation rejected by" in late_tap.params.get("text", "")
        rejected = _applied(sandbox, REJECT, asked["cancellation_id"])
        assert len(rejected) == 1 and rejected[0].body["comment"] == "Already packed and on its way"
        await fake_tg.wait_for(lambda: "Cancellation rejected by" in fake_tg.message(OWNER, request.message_id).text)
        await fake_tg.wait_for(lambda: "Cancellation rejected by" in fake_tg.message(PACKER,
                                                                                    packer_copy.message_id).text)
        await fake_tg.wait_for(lambda: [t for t, _ in fake_tg.message(OWNER, request.message_id).buttons] ==
                               ["Open the order card"])
        await fake_tg.wait_for(lambda: "Cancellation rejected" in fake_tg.message(OWNER, card.message_id).text)
        assert "✅ Packed" in [text for text, _ in fake_tg.buttons(OWNER, card.message_id)]

        # approve: a double tap sends one approval, and Ozon's cancellation reaches the posting's card
        second = sandbox.request_cancellation(CLIENT_ID, dropped["posting_number"],
                                              auto_approve_in=timedelta(hours=30))
        other = await fake_tg.wait_for_message(OWNER, f"Cancel request {dropped['posting_number']}",
                                               timeout=10)
        fake_tg.press(OWNER, "Approve cancellation", message_id=other.message_id)
        fake_tg.press(OWNER, "Approve cancellation", message_id=other.message_id)
        await fake_tg.wait_for(lambda: "Cancellation approved by" in fake_tg.message(OWNER, other.message_id).text,
                               timeout=10)
        await fake_tg.wait_for(lambda: sandbox.posting(CLIENT_ID, dropped["posting_number"])["status"] == "cancelled")
        assert len(_applied(sandbox, APPROVE, second["cancellation_id"])) == 1
        assert len(sandbox.calls_to(APPROVE)) == 1

        # a request nobody answers: reminded once before Ozon approves it, then the outcome on the cards
        third = sandbox.request_cancellation(CLIENT_ID, late["posting_number"], auto_approve_in=timedelta(minutes=50))
        remind = await fake_tg.wait_for_message(OWNER, f"Nobody answered the buyer's cancellation of "
                                                       f"{late['posting_number']}", timeout=10)
        assert "✅ Approve cancellation" in [text for text, _ in remind.buttons]
        sandbox._cancel_requests[third["cancellation_id"]].auto_approve_at = sandbox.now()  # Ozon's clock runs out
        asked_late = [m for m in fake_tg.messages(OWNER) if m.text.startswith("🛑 Cancel request") and late["posting_number"] in m.text]
        await fake_tg.wait_for(lambda: "Ozon approved the cancellation" in
                               fake_tg.message(OWNER, asked_late[0].message_id).text, timeout=10)

        # each request told once per member, each reminder once
        for kind, count in (("cancel_asked", 3), ("cancel_remind", 1)):
            events = await Event.filter(kind=kind)
            assert len(events) == count
            for event in events:
                assert await Notification.filter(event=event, state="sent").count() == 2  # owner, packer
        assert len(sandbox.calls_to(REJECT)) == 1
        assert {r.state for r in await CancelRequest.all()} == {"rejected", "approved", "auto_approved"}


async def test_a_decision_cut_short_by_a_restart_is_not_sent_again(make_settings, sandbox):
    """The process dies while Ozon holds the approval it already applied; the next process reads Ozon first."""
    settings = make_settings(ozon_api_url=sandbox.base_url, ozon_timeout=20)
    first = build_services(settings)
    await first.start(schedule=False)
    connected = await first.desk.connect_seller(CLIENT_ID, API_KEY)
    owner = await first.desk.join_as(connected.seller, channel="console", external_id="owner", chat_id="owner",
                                     name="Owner", locale="en", role="owner")
    posting, = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    await first.sync.poll(connected.seller)
    asked = sandbox.request_cancellation(CLIENT_ID, posting["posting_number"])
    await first.cancellations.poll(connected.seller)
    row = await CancelRequest.get()
    sandbox.faults = Faults(rate_timeout=1.0, timeout_after_processing=True, timeout_seconds=5, paths={APPROVE})
    press = asyncio.create_task(first.buttons.press(owner, first.codec.encode("k", row.posting_id, "a")))
    for _ in range(500):
        if _applied(sandbox, APPROVE, asked["cancellation_id"]):
            break
        await asyncio.sleep(0.01)
    press.cancel()  # the process dies here: Ozon did it, we never heard
    await asyncio.gather(press, return_exceptions=True)
    intent = await Intent.get(kind="cancel_decision")
    assert intent.state == "pending" and (await CancelRequest.get()).state == "open"
    await first.stop()
    sandbox.faults = Faults()

    second = build_services(settings)
    await second.start(schedule=False)
    try:
        await second.resume()
        assert len(sandbox.calls_to(APPROVE)) == 1  # read, not sent again
        assert (await Intent.get(id=intent.id)).state == "done"
        settled = await CancelRequest.get()
        assert settled.state == "approved" and settled.decided_by_id == owner.id
        press_again = await second.buttons.press(owner, second.codec.encode("k", row.posting_id, "a"))
        assert "approved" in press_again.toast and len(sandbox.calls_to(APPROVE)) == 1
    finally:
        await second.stop()


async def test_the_reminder_comes_at_its_time_with_an_injected_clock(make_settings, sandbox):
    """The reminder waits until auto_approve_date minus the lead, and comes once."""
    now = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    clock = [now]
    services = build_services(make_settings(ozon_api_url=sandbox.base_url, cancel_remind_before=3600),
                              clock=lambda: clock[0])
    await services.start(schedule=False)
    try:
        seller = await services.desk.connect_seller(CLIENT_ID, API_KEY)
        posting, = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
        await services.sync.poll(seller.seller)
        sandbox.request_cancellation(CLIENT_ID, posting["posting_number"], auto_approve_in=timedelta(hours=5))
        assert await services.cancellations.poll(seller.seller) == 1
        assert await services.cancellations.poll(seller.seller) == 0  # paced
        assert await services.cancellations.poll(seller.seller, force=True) == 0  # and told once
        row = await CancelRequest.get()
        clock[0] = row.auto_approve_at - timedelta(hours=1, minutes=1)
        assert await services.cancellations.run_due() == 0
        clock[0] = row.auto_approve_at - timedelta(minutes=59)
        assert await services.cancellations.run_due() == 1
        assert await services.cancellations.run_due() == 0
        assert await Event.filter(kind="cancel_remind").count() == 1
    finally:
        await services.stop()


# ---- the WeCom app: the same card as a template card, the same decisions through its clicks -----------------

@pytest.fixture
async def fake_wecom():
    fake = FakeWecom()
    fake.add_app(CORP, SECRET, AGENT, [LI, ZHANG])
    await fake.start()
    yield fake
    await fake.stop()


def _cancel_card(fake, user: str, number: str) -> dict | None:
    return next((c for c in reversed(fake.cards_to(user)) if "取消申请" in c["main_title"]["title"]
                 and number in c["main_title"]["title"]), None)


async def test_the_wecom_app_decides_a_request_once(make_settings, sandbox, fake_wecom):
    settings = make_settings(ozon_api_url=sandbox.base_url, wecom_api_url=fake_wecom.base_url, poll_interval=0.5,
                             cancel_poll_interval=0.5)
    wecom = await connect_wecom(settings, new_token(), new_aes_key())
    kept, dropped = sandbox.generate_orders(CLIENT_ID, 2, flows=["non_integrated"])

    async def tap(user: str, task_id: str, key: str) -> None:
        status, _ = await wecom.post(wecom.click(user, task_id, key, fake_wecom.issue_response_code()))
        assert status == 200

    async with running_bot(settings):
        for posting in (kept, dropped):
            await fake_wecom.wait_for(lambda p=posting: card_for(fake_wecom, LI, p["posting_number"]))
        asked = sandbox.request_cancellation(CLIENT_ID, kept["posting_number"], reason="Передумал покупать")
        card = await fake_wecom.wait_for(lambda: _cancel_card(fake_wecom, LI, kept["posting_number"]), timeout=10)
        assert "Передумал покупать" in card["sub_title_text"] and "自动同意" in card["sub_title_text"]
        assert [b["text"] for b in card["button_list"]] == ["✅ 同意取消", "🚫 拒绝"]
        packer_card = await fake_wecom.wait_for(lambda: _cancel_card(fake_wecom, ZHANG, kept["posting_number"]))
        assert "同意取消" not in str(packer_card.get("button_list"))
        # the packer may not decide, even with the owner's button in hand
        await tap(ZHANG, packer_card["task_id"], button_of(card, "拒绝"))
        await fake_wecom.wait_for_text(ZHANG, "只有店主可以处理取消申请")
        assert sandbox.calls_to(REJECT) == []

        # reject: the reason is chosen on the next card; a second click on it sends nothing more
        await tap(LI, card["task_id"], button_of(card, "拒绝"))
        why = await fake_wecom.wait_for(lambda: next((c for c in reversed(fake_wecom.cards_to(LI))
                                                      if "为什么拒绝" in c["main_title"]["title"]), None))
        reason_key = button_of(why, "已交给承运商")
        await tap(LI, why["task_id"], reason_key)
        await fake_wecom.wait_for(lambda: _applied(sandbox, REJECT, asked["cancellation_id"]), timeout=10)
        await tap(LI, why["task_id"], reason_key)
        await fake_wecom.wait_for_text(LI, "已拒绝取消")  # the late click is told the outcome
        assert len(sandbox.calls_to(REJECT)) == 1
        assert sandbox.calls_to(REJECT)[0].body["comment"] == "Заказ уже передан в службу доставки"
        # every copy of the request card shows the outcome (the packer's one too)
        await fake_wecom.wait_for(lambda: any(u["userids"] == [ZHANG] and "已拒绝取消" in str(u["template_card"])
                                              for u in fake_wecom.updates), timeout=10)

        # approve with a double click: one call
        second = sandbox.request_cancellation(CLIENT_ID, dropped["posting_number"])
        other = await fake_wecom.wait_for(lambda: _cancel_card(fake_wecom, LI, dropped["posting_number"]),
                                          timeout=10)
        approve = button_of(other, "同意取消")
        await asyncio.gather(tap(LI, other["task_id"], approve), tap(LI, other["task_id"], approve))
        await fake_wecom.wait_for(lambda: sandbox.posting(CLIENT_ID, dropped["posting_number"])["status"]
                                  == "cancelled", timeout=10)
        assert len(_applied(sandbox, APPROVE, second["cancellation_id"])) == 1
        assert len(sandbox.calls_to(APPROVE)) == 1
