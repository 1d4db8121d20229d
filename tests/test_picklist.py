"""Today's pick list end to end: Telegram (PTB's real stack against the fake Bot API) and the Ozon sandbox,
over real HTTP. A morning of 30 orders across 8 SKUs: every SKU's total is the sum of what its postings
need, the most urgent SKU comes first, and the A4 PDF names every SKU and posting in Chinese, Cyrillic and
Latin text. Where the warehouse does not answer Ozon's pick-list method the bot builds the same list."""

from __future__ import annotations

import asyncio
import io
import re
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
from pydantic import SecretStr
from pypdf import PdfReader

from sandbox.ozon.catalogue import CATALOGUE
from sandbox.telegram import DEFAULT_TOKEN
from services.storage.models import Posting
from services.storage.states import Stage
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.service import running_bot

OWNER = 1001
SKUS = CATALOGUE[:8]
PICK_LIST = "/v1/assembly/fbs/product/list"


@pytest.fixture
def tg_settings(make_settings, sandbox, fake_tg):
    return make_settings(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{fake_tg.base_url}/bot",
                         telegram_file_url=f"{fake_tg.base_url}/file/bot", ozon_api_url=sandbox.base_url)


def _morning(sandbox) -> dict[str, tuple[int, list[tuple[str, int]]]]:
    """30 postings over 8 SKUs, one or two lines each, due from 2 h to 31 h: {number: (hours, [(offer, qty)])}."""
    made = {}
    for i in range(30):
        lines = [SKUS[i % 8]] + ([SKUS[(i * 3 + 1) % 8]] if i % 3 == 0 and (i * 3 + 1) % 8 != i % 8 else [])
        hours = 2 + (i * 7) % 30
        products = [{"sku": p.sku, "quantity": 1 + (i + k) % 3} for k, p in enumerate(lines)]
        posting = sandbox.add_posting(CLIENT_ID, {"tpl_integration_type": "non_integrated",
                                                  "shipment_date": (sandbox.now() + timedelta(hours=hours)).strftime(
                                                      "%Y-%m-%dT%H:%M:%SZ"), "products": products})
        made[posting["posting_number"]] = (hours, [(p.offer_id, x["quantity"]) for p, x in zip(lines, products,
                                                                                              strict=True)])
    return made


def _expected(made) -> tuple[dict[str, int], list[str]]:
    """The total per offer_id, and the offer_ids in the order of their most urgent posting."""
    totals: Counter[str] = Counter()
    first_due: dict[str, int] = {}
    for hours, lines in made.values():
        for offer, qty in lines:
            totals[offer] += qty
            first_due[offer] = min(first_due.get(offer, hours), hours)
    return dict(totals), sorted(first_due, key=lambda offer: (first_due[offer], offer))


async def _connect(fake_tg) -> None:
    fake_tg.push_message(OWNER, "/lang en", language_code="en")
    await fake_tg.wait_for_message(OWNER, "Language set: English")
    fake_tg.push_message(OWNER, f"/connect {CLIENT_ID} {API_KEY}", language_code="en")
    await fake_tg.wait_for_message(OWNER, f"Connected Ozon seller {CLIENT_ID}", timeout=10)


async def _pick_list(fake_tg, word: str):
    before = len(fake_tg.calls_of("sendDocument"))
    fake_tg.push_message(OWNER, word, language_code="en")
    await fake_tg.wait_for(lambda: len(fake_tg.calls_of("sendDocument")) > before, timeout=20,
                           what="the pick-list PDF")
    message = next(m for m in reversed(fake_tg.messages(OWNER)) if m.document is not None)
    text = next(m.text for m in reversed(fake_tg.messages(OWNER)) if (m.text or "").startswith("📋 Pick list"))
    return text, message.document


def _totals(text: str) -> tuple[dict[str, int], list[str]]:
    found = re.findall(r"^\d+\. (\S+) × (\d+)$", text, re.M)
    return {offer: int(qty) for offer, qty in found}, [offer for offer, _ in found]


@pytest.mark.parametrize("ozon_answers", [True, False], ids=["ozon-list", "built-from-postings"])
async def test_a_morning_of_30_orders_gives_a_pick_list_that_adds_up(ozon_answers, tg_settings, sandbox, fake_tg):
    made = _morning(sandbox)
    sandbox.support_pick_list(CLIENT_ID, ozon_answers)
    async with running_bot(tg_settings):
        await _connect(fake_tg)
        for _ in range(600):  # the first poll takes in all 30
            if await Posting.all().count() == 30:
                break
            await asyncio.sleep(0.1)
        # one posting packed already is no longer on the list
        packed = await Posting.filter(stage=Stage.NEW).order_by("shipment_date").first()
        await Posting.filter(id=packed.id).update(stage=Stage.PACKED)
        if ozon_answers:  # Ozon's list still has it until Ozon packs it: pack it there too
            sandbox.set_status(CLIENT_ID, packed.posting_number, "awaiting_deliver")
        del made[packed.posting_number]
        totals, urgent = _expected(made)
        calls = len(sandbox.calls_to(PICK_LIST, ok_only=False))
        text, document = await _pick_list(fake_tg, "/picklist")

        assert len(sandbox.calls_to(PICK_LIST, ok_only=False)) == calls + 1
        assert len(sandbox.calls_to(PICK_LIST)) == (calls + 1 if ozon_answers else 0)
        assert text.startswith("📋 Pick list: 29 postings to pack")
        shown, order = _totals(text)
        assert shown == totals
        assert order == urgent
        assert packed.posting_number not in text
        needs: dict[str, int] = defaultdict(int)
        for number, qty in re.findall(r"• (\S+) × (\d+)", text):
            needs[number] += int(qty)
        assert needs == {number: sum(qty for _, qty in lines) for number, (_, lines) in made.items()}

        assert document.filename.startswith("picklist-") and document.data.startswith(b"%PDF")
        pdf = PdfReader(io.BytesIO(document.data))
        assert pdf.pages[0].mediabox.width == pytest.approx(595.28, abs=1)  # A4 portrait
        printed = "".join(page.extract_text() for page in pdf.pages)
        for product in SKUS:
            if product.offer_id in totals:
                assert product.offer_id in printed and product.name.split(",")[0] in printed
        assert all(number in printed for number in needs)

        fake_tg.push_message(OWNER, "/lang zh", language_code="en")
        await fake_tg.wait_for_message(OWNER, "语言", timeout=10)
        before = len(fake_tg.calls_of("sendDocument"))
        fake_tg.push_message(OWNER, "拣货", language_code="zh")
        await fake_tg.wait_for(lambda: len(fake_tg.calls_of("sendDocument")) > before, timeout=20, what="拣货")
        zh = PdfReader(io.BytesIO(next(m for m in reversed(fake_tg.messages(OWNER)) if m.document).document.data))
        assert "拣货单" in zh.pages[0].extract_text()
