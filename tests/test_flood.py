"""Telegram's flood limits, enforced by the fake Bot API (sandbox/telegram/limits.py), against `ozonbot run`
paced as in production (one message a second per private chat): a burst of new orders to one owner arrives
in full, each alert once, without the 429s that would pause the whole bot; another desk's alert that comes
in meanwhile is not held behind that backlog. Real time: the limit is a real second (about 10 s of test)."""

from __future__ import annotations

import time

from pydantic import SecretStr

from sandbox.telegram import DEFAULT_TOKEN
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.service import running_bot

OWNER, OTHER_OWNER = 1001, 2001
OTHER_CLIENT, OTHER_KEY = "515151", "other-seller-key-987654"
BURST = 12


async def _connect(tg, uid: int, client_id: str, key: str) -> None:
    tg.push_message(uid, "/lang en", language_code="en")
    await tg.wait_for_message(uid, "Language set")
    tg.push_message(uid, f"/connect {client_id} {key}", language_code="en")
    await tg.wait_for_message(uid, "Connected", timeout=10)


def _alerts(tg, uid: int, numbers: list[str]) -> dict[str, int]:
    texts = [m.text or "" for m in tg.messages(uid)]
    return {n: sum(f"New order {n}" in t for t in texts) for n in numbers}


async def test_a_burst_to_one_chat_arrives_whole_without_429_and_other_desks_do_not_wait(make_settings, sandbox,
                                                                                        fake_tg):
    sandbox.add_seller(OTHER_CLIENT, OTHER_KEY)
    settings = make_settings(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{fake_tg.base_url}/bot",
                             telegram_file_url=f"{fake_tg.base_url}/file/bot", ozon_api_url=sandbox.base_url,
                             poll_interval=1, telegram_chat_rate=1.0)
    async with running_bot(settings):
        await _connect(fake_tg, OWNER, CLIENT_ID, API_KEY)
        await _connect(fake_tg, OTHER_OWNER, OTHER_CLIENT, OTHER_KEY)
        gate = fake_tg.enforce_flood_limits()
        burst = [p["posting_number"] for p in sandbox.generate_orders(CLIENT_ID, BURST, flows=["aggregator"])]
        await fake_tg.wait_for(lambda: sum(_alerts(fake_tg, OWNER, burst).values()) >= 4, timeout=15)
        started = time.monotonic()
        (other,) = [p["posting_number"] for p in sandbox.generate_orders(OTHER_CLIENT, 1, flows=["aggregator"])]
        await fake_tg.wait_for(lambda: _alerts(fake_tg, OTHER_OWNER, [other])[other], timeout=10)
        other_took = time.monotonic() - started
        await fake_tg.wait_for(lambda: all(_alerts(fake_tg, OWNER, burst).values()), timeout=60,
                               what="every alert of the burst")
    assert set(_alerts(fake_tg, OWNER, burst).values()) == {1}, "each alert once"
    refused = [c for c in fake_tg.calls if c.status == 429]
    assert gate.refused == len(refused) == 0, f"{len(refused)} sends answered 429 of {gate.passed}"
    assert other_took < 4.0, f"the other desk waited {other_took:.1f} s behind a backlog that was not its own"
