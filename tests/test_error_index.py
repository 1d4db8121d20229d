"""The error index on demand over real HTTP: the sandbox's charges, `/index` on Telegram and 指数 in the WeCom
app, checked against the data the sandbox holds."""

from __future__ import annotations

from datetime import timedelta

from pydantic import SecretStr

from sandbox.telegram import DEFAULT_TOKEN
from sandbox.wechat.crypto import new_aes_key, new_token
from tests.conftest import CLIENT_ID
from tests.harness.service import running_bot
from tests.test_cancellations import fake_wecom  # noqa: F401 (the fixture)
from tests.test_telegram_e2e import OWNER, _connect_owner
from tests.test_wechat_work import OWNER as LI
from tests.test_wechat_work import connect_wecom


async def test_index_on_telegram_shows_the_index_fines_and_postings(make_settings, sandbox, fake_tg):
    settings = make_settings(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{fake_tg.base_url}/bot",
                             telegram_file_url=f"{fake_tg.base_url}/file/bot", ozon_api_url=sandbox.base_url)
    late, dropped, old, quiet = (p["posting_number"] for p in sandbox.generate_orders(CLIENT_ID, 4))
    sandbox.add_charge(CLIENT_ID, late, "SELLER_DELAY", 12.5, "CNY")
    sandbox.add_charge(CLIENT_ID, dropped, "SELLER_CANCELLATION", 30.0, "CNY")
    sandbox.add_charge(CLIENT_ID, old, "SELLER_DELAY", 99.0, "CNY", at=sandbox.now() - timedelta(days=9))
    async with running_bot(settings):
        await _connect_owner(fake_tg)
        fake_tg.push_message(OWNER, "/index", language_code="en")
        answer = await fake_tg.wait_for_message(OWNER, "Error index", timeout=10)
    assert "Error index 75.00%" in answer.text  # as Ozon (the sandbox) states it: 3 of the 4 postings charged
    assert "Fines this week: 42.50 CNY" in answer.text  # the charge of nine days ago is not this week's
    assert "2 postings charged this week: 1 late, 1 cancelled by you" in answer.text
    assert f"{late}: late, 12.50 CNY" in answer.text and f"{dropped}: cancelled by the seller" in answer.text
    assert old not in answer.text and quiet not in answer.text


async def test_index_in_the_wecom_app(make_settings, sandbox, fake_wecom):  # noqa: F811
    settings = make_settings(ozon_api_url=sandbox.base_url, wecom_api_url=fake_wecom.base_url)
    wecom = await connect_wecom(settings, new_token(), new_aes_key())
    (late,) = (p["posting_number"] for p in sandbox.generate_orders(CLIENT_ID, 1))
    sandbox.add_charge(CLIENT_ID, late, "SELLER_DELAY", 8.0, "CNY")
    async with running_bot(settings):
        status, _ = await wecom.post(wecom.text(LI, "指数"))
        assert status == 200
        text = await fake_wecom.wait_for_text(LI, "错误指数", timeout=30)
    assert "8.00 CNY" in text and late in text
