"""FBS stock from the chat over real HTTP: the sandbox as Ozon (its own 30 s window per pair), `ozonbot run`
with Telegram through PTB and the fake Bot API, and the service on an injected clock for the queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from bot.app import build_services
from sandbox.ozon import OzonSandbox
from sandbox.telegram import DEFAULT_TOKEN
from services.storage.models import StockItem
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.service import running_bot
from tests.test_telegram_e2e import OWNER, _connect_owner

SET = "/v2/products/stocks"
TEAPOT, TEAPOT_SKU, GAIWAN = "UR-TEAPOT-500", 5462125811, "UR-GAIWAN-150"


@pytest.fixture
def tg_settings(make_settings, sandbox, fake_tg):
    return make_settings(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{fake_tg.base_url}/bot",
                         telegram_file_url=f"{fake_tg.base_url}/file/bot", ozon_api_url=sandbox.base_url)


def _sets(sandbox, offer_id: str) -> list[dict]:
    return [item for c in sandbox.calls_to(SET) if c.status == 200 for item in c.body["stocks"]
            if item["offer_id"] == offer_id]


async def test_stock_shown_and_set_from_telegram_reaches_ozon_once(tg_settings, sandbox, fake_tg):
    warehouse = sandbox._seller(CLIENT_ID).warehouses[0]["warehouse_id"]
    async with running_bot(tg_settings):
        await _connect_owner(fake_tg)
        fake_tg.push_message(OWNER, f"/stock {TEAPOT}", language_code="en")
        view = await fake_tg.wait_for_message(OWNER, f"Stock of {TEAPOT}", timeout=10)
        assert "free 25, reserved 0, present 25" in view.text
        assert [t for t, _ in view.buttons] == ["-1 → 24", "+1 → 26", "+10 → 35"]

        # three taps in ten seconds: one call to Ozon, the card confirms Ozon's answer
        for _ in range(3):
            fake_tg.press(OWNER, "+1 → 26", message_id=view.message_id)
        await fake_tg.wait_for(lambda: "free 26" in fake_tg.message(OWNER, view.message_id).text, timeout=10)
        await fake_tg.wait_for_call("answerCallbackQuery", count=3)
        assert [s["stock"] for s in _sets(sandbox, TEAPOT)] == [26]
        assert sandbox.stock_of(CLIENT_ID, TEAPOT_SKU, warehouse)["free_stock"] == 26
        toasts = [c.params.get("text", "") for c in fake_tg.calls_of("answerCallbackQuery")]
        assert any("Ozon set the free stock of UR-TEAPOT-500" in t for t in toasts)

        # a change inside Ozon's window is queued, not refused; typed by SKU with a number
        fake_tg.push_message(OWNER, f"/stock {TEAPOT_SKU} 30", language_code="en")
        await fake_tg.wait_for_message(OWNER, "Queued: Ozon takes one change per item every 30 s", timeout=10)
        fake_tg.push_message(OWNER, f"库存 {GAIWAN} 4", language_code="en")  # the Chinese word, any language
        await fake_tg.wait_for_message(OWNER, "Ozon set the free stock of UR-GAIWAN-150", timeout=10)
        assert [s["stock"] for s in _sets(sandbox, GAIWAN)] == [4]
        assert [s["stock"] for s in _sets(sandbox, TEAPOT)] == [26]  # the queued 30 waits for the window


async def test_changes_inside_the_window_are_merged_and_sent_when_ozon_allows(make_settings):
    now = [datetime(2026, 12, 4, 10, 0, tzinfo=UTC)]
    ozon = OzonSandbox(seed=3, clock=lambda: now[0])
    ozon.add_seller(CLIENT_ID, API_KEY)
    await ozon.start()
    services = build_services(make_settings(ozon_api_url=ozon.base_url), clock=lambda: now[0])
    await services.start(schedule=False)
    try:
        connected = await services.desk.connect_seller(CLIENT_ID, API_KEY)
        owner = await services.desk.join_as(connected.seller, channel="console", external_id="o", chat_id=None,
                                            name="Owner", locale="en", role="owner")
        shown = await services.stock.command(owner, TEAPOT, buttons=True, usage="usage")
        assert "free 25" in shown.replies[0].text
        item = await StockItem.get(offer_id=TEAPOT)
        assert "Ozon set" in await services.stock.set(owner, item, 20)
        now[0] += timedelta(seconds=5)
        assert "Queued" in await services.stock.set(owner, item, 18)
        now[0] += timedelta(seconds=5)
        assert "Queued" in await services.stock.set(owner, item, 15)  # replaces 18
        assert "already on its way" in await services.stock.set(owner, item, 15)
        assert await services.stock.run_due() == 0  # the window is not over
        now[0] += timedelta(seconds=21)
        assert await services.stock.run_due() == 1
        assert [item["stock"] for c in ozon.calls_to(SET) for item in c.body["stocks"]] == [20, 15]
        assert all(c.status == 200 for c in ozon.calls_to(SET))
        assert ozon.stock_of(CLIENT_ID, TEAPOT_SKU, connected.warehouses[0].warehouse_id)["free_stock"] == 15
        stored = await StockItem.get(id=item.id)
        assert (stored.state, stored.free) == ("idle", 15)
        # a refusal says why, per item
        refused = await services.stock.command(owner, "UR-NO-SUCH 3", buttons=True, usage="usage")
        assert "No FBS stock found" in refused.replies[0].text
    finally:
        await services.stop()
        await ozon.stop()
