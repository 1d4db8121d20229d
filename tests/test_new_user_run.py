"""Issue 4 as a new user runs it: `ozonbot run` as its own process with OZONBOT_REMINDER_LEADS=90s,30s,
OZONBOT_POLL_INTERVAL=2 and OZONBOT_QUIET_HOURS=off, the sandbox and the fake Bot API as the outside world.
A posting due in about 100 s gets exactly one reminder per lead and one overdue on Telegram, a packed
one gets none, and killing the process with SIGKILL and starting it again repeats nothing. Real time."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta

import pytest

from sandbox.telegram import DEFAULT_TOKEN
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.processes import BotProcess

OWNER = 1001
DUE_IN = 100  # seconds: the 90 s lead falls due after ~10 s, the 30 s lead after ~70 s


def _bot_env(tmp_path, db_url: str, sandbox, fake_tg) -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {
        "OZONBOT_DATA_DIR": str(tmp_path / "data"),
        "OZONBOT_DATABASE_URL": db_url,
        "OZONBOT_SECRET_KEY": Fernet.generate_key().decode(),
        "OZONBOT_OZON_API_URL": sandbox.base_url,
        "OZONBOT_TELEGRAM_TOKEN": DEFAULT_TOKEN,
        "OZONBOT_TELEGRAM_API_URL": f"{fake_tg.base_url}/bot",
        "OZONBOT_TELEGRAM_FILE_URL": f"{fake_tg.base_url}/file/bot",
        "OZONBOT_REMINDER_LEADS": "90s,30s",
        "OZONBOT_POLL_INTERVAL": "2",
        "OZONBOT_QUIET_HOURS": "off",
        "OZONBOT_LABEL_DELAY": "1",
    }


def _texts(fake_tg, prefix: str, number: str) -> list[str]:
    return [m.text for m in fake_tg.messages(OWNER) if (m.text or "").startswith(prefix) and number in m.text]


async def _until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


@pytest.mark.slow
async def test_reminders_once_per_lead_across_sigkill_as_a_new_user_runs_it(tmp_path, db_url, sandbox, fake_tg):
    started = time.monotonic()
    waiting, packed = sandbox.generate_orders(CLIENT_ID, 2, flows=["non_integrated"], due_in=timedelta(seconds=DUE_IN))
    bot = BotProcess("bot", _bot_env(tmp_path, db_url, sandbox, fake_tg), tmp_path)
    bot.start()
    await bot.wait_ready()
    try:
        fake_tg.push_message(OWNER, "/lang en", language_code="en")
        await fake_tg.wait_for_message(OWNER, "Language set: English", timeout=10)
        fake_tg.push_message(OWNER, f"/connect {CLIENT_ID} {API_KEY}", language_code="en")
        await fake_tg.wait_for_message(OWNER, f"Connected Ozon seller {CLIENT_ID}", timeout=10)
        card = await fake_tg.wait_for_message(OWNER, f"New order {packed['posting_number']}", timeout=10)
        fake_tg.press(OWNER, "SF Express", message_id=card.message_id)
        await fake_tg.wait_for(lambda: "✅ Packed" in str(fake_tg.buttons(OWNER, card.message_id)), timeout=10)
        fake_tg.press(OWNER, "✅ Packed", message_id=card.message_id)
        await fake_tg.wait_for_message(OWNER, f"Waybill number for {packed['posting_number']}", timeout=15)

        first = await fake_tg.wait_for_message(OWNER, f"⏰ {waiting['posting_number']} is not packed yet", timeout=30)
        assert "Late fee from" in first.text
        bot.kill()  # SIGKILL mid-life, right after the first reminder
        bot.start()
        await bot.wait_ready()
        await _until(started + DUE_IN - 38)  # the 30 s lead is due at DUE_IN - 30
        assert len(_texts(fake_tg, "⏰", waiting["posting_number"])) == 1, "the 90 s lead once, not again"
        await fake_tg.wait_for(lambda: len(_texts(fake_tg, "⏰", waiting["posting_number"])) == 2, timeout=15)
        await fake_tg.wait_for(lambda: _texts(fake_tg, "🚨", waiting["posting_number"]), timeout=40)
        bot.kill()
        bot.start()
        await bot.wait_ready()
        await asyncio.sleep(6)  # three polls and several reminder ticks
    finally:
        await bot.stop()
    reminders = _texts(fake_tg, "⏰", waiting["posting_number"])
    print(f"\nreminders for the unpacked posting: {len(reminders)} leads, "
          f"{len(_texts(fake_tg, '🚨', waiting['posting_number']))} overdue; packed posting: "
          f"{len(_texts(fake_tg, '⏰', packed['posting_number']))}", file=sys.stderr)
    assert len(reminders) == 2 and len(_texts(fake_tg, "🚨", waiting["posting_number"])) == 1
    assert _texts(fake_tg, "⏰", packed["posting_number"]) == [] == _texts(fake_tg, "🚨", packed["posting_number"])
    assert len([m for m in fake_tg.messages(OWNER) if f"New order {waiting['posting_number']}" in (m.text or "")]) == 1
