"""One label PDF for many (/labels, 面单) end to end: Telegram (PTB's real stack against the fake Bot API)
and the Ozon sandbox over real HTTP. Postings packed through the chat's own Packed button go into one Ozon
label task; the one PDF that comes back names every printed posting, the posting Ozon refused is listed
with Ozon's reason, each print is recorded with who printed it, and printing again says it is a reprint."""

from __future__ import annotations

import io

import pytest
from pydantic import SecretStr
from pypdf import PdfReader

from sandbox.telegram import DEFAULT_TOKEN
from services.storage.models import LabelPrint, Member, Posting
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.service import running_bot

OWNER = 1001
CREATE = "/v3/posting/fbs/package-label/create"


@pytest.fixture
def tg_settings(make_settings, sandbox, fake_tg):
    return make_settings(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{fake_tg.base_url}/bot",
                         telegram_file_url=f"{fake_tg.base_url}/file/bot", ozon_api_url=sandbox.base_url)


async def _pack(fake_tg, number: str) -> None:
    card = await fake_tg.wait_for_message(OWNER, f"New order {number}", timeout=20)
    fake_tg.press(OWNER, "SF Express", message_id=card.message_id)
    await fake_tg.wait_for(lambda: "✅ Packed" in str(fake_tg.buttons(OWNER, card.message_id)), timeout=20)
    fake_tg.press(OWNER, "Packed", message_id=card.message_id)
    await fake_tg.wait_for_message(OWNER, f"Waybill number for {number}", timeout=20)


async def _labels(fake_tg, word: str, expect: str):
    """The text answer holding `expect` and the label PDFs sent after `word` (new messages only)."""
    before = {m.message_id for m in fake_tg.messages(OWNER)}

    def new():
        return [m for m in fake_tg.messages(OWNER) if m.message_id not in before]

    fake_tg.push_message(OWNER, word, language_code="en")
    text = await fake_tg.wait_for(lambda: next((m.text for m in new() if expect in (m.text or "")), None),
                                  timeout=30, what=expect)
    if "Labels of" in text:
        # each Packed also sends its own label-<number>.pdf: wait for the batch's labels-….pdf
        await fake_tg.wait_for(lambda: any(m.document and m.document.filename.startswith("labels-") for m in new()),
                               timeout=30, what="the labels PDF")
    return text, [m.document for m in new() if m.document and m.document.filename.startswith("labels-")]


async def test_one_pdf_for_every_packed_posting_the_refused_listed_and_a_reprint_said(tg_settings, sandbox,
                                                                                     fake_tg):
    postings = sandbox.generate_orders(CLIENT_ID, 5, flows=["non_integrated"])
    numbers = [p["posting_number"] for p in postings]
    packed, waiting = numbers[:4], numbers[4]
    refused = packed[2]
    sandbox.refuse_label(refused, "The posting's label cannot be printed: cargo places not set")
    async with running_bot(tg_settings):
        fake_tg.push_message(OWNER, "/lang en", language_code="en")
        await fake_tg.wait_for_message(OWNER, "Language set: English")
        fake_tg.push_message(OWNER, f"/connect {CLIENT_ID} {API_KEY}", language_code="en")
        await fake_tg.wait_for_message(OWNER, f"Connected Ozon seller {CLIENT_ID}", timeout=10)
        for number in packed:
            await _pack(fake_tg, number)
        await fake_tg.wait_for(lambda: all(sandbox.posting(CLIENT_ID, n)["status"] == "awaiting_deliver"
                                           for n in packed), timeout=20, what="Ozon packed them")
        calls = len(sandbox.calls_to(CREATE))

        text, documents = await _labels(fake_tg, "/labels", "Labels of 3 postings in one PDF")
        # each Packed also asked for its own label (Shipping, after label_delay): the batch is the one task of many
        batch = [c for c in sandbox.calls_to(CREATE)[calls:] if len(c.body["posting_numbers"]) > 1]
        assert len(batch) == 1 and sorted(batch[0].body["posting_numbers"]) == sorted(packed)  # one task
        assert f"{refused}: The posting's label cannot be printed: cargo places not set" in text
        assert "reprint" not in text and waiting not in text
        assert len(documents) == 1
        pdf = PdfReader(io.BytesIO(documents[0].data))
        pages = [page.extract_text() for page in pdf.pages]
        assert len(pages) == 3
        for number in packed:
            assert sum(number in page for page in pages) == (0 if number == refused else 1)
        owner = await Member.get(external_id=str(OWNER))
        prints = await LabelPrint.all().prefetch_related("posting")
        assert sorted(p.posting.posting_number for p in prints) == sorted(set(packed) - {refused})
        assert {(p.member_id, p.reprint) for p in prints} == {(owner.id, False)}

        # nothing new: said so; the refused one is still due (Ozon could not print it)
        sandbox.refuse_label(refused, "still not printable")
        text, documents = await _labels(fake_tg, "面单", "Ozon could not print 1 label")
        assert f"{refused}: still not printable" in text and documents == []

        text, documents = await _labels(fake_tg, "/labels all", "Labels of 3 postings in one PDF")
        assert "This is a reprint" in text and len(documents) == 1
        assert await LabelPrint.filter(reprint=True).count() == 3
        assert await Posting.filter(posting_number=waiting, label_prints__id__isnull=False).count() == 0
