"""The running process (bot.service.run_service): each part's close is pushed on one exit stack right after
it starts, so a stop closes everything, and a start-up that fails half-way closes what had started."""

from __future__ import annotations

import asyncio
import socket

import pytest
from pydantic import SecretStr
from tortoise.exceptions import ConfigurationError

from bot.service import run_service
from sandbox.telegram import DEFAULT_TOKEN
from services.storage.models import Seller
from tests.harness.service import accepts_connections, running_bot


def _settings(make_settings, sandbox, fake_tg):
    return make_settings(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{fake_tg.base_url}/bot",
                         telegram_file_url=f"{fake_tg.base_url}/file/bot", ozon_api_url=sandbox.base_url)


async def _database_closed() -> bool:
    """Asked from the task that ran the service (tortoise's context is per task)."""
    try:
        await Seller.all().count()
    except ConfigurationError:
        return True
    return False


async def test_a_stop_closes_every_part(make_settings, sandbox, fake_tg):
    settings = _settings(make_settings, sandbox, fake_tg)
    before = set(asyncio.all_tasks())
    async with running_bot(settings):
        assert await accepts_connections(settings.http_host, settings.http_port)
        await fake_tg.wait_for(lambda: fake_tg.calls_of("getUpdates"), timeout=10)
    polls = len(fake_tg.calls_of("getUpdates"))
    assert not await accepts_connections(settings.http_host, settings.http_port)
    assert set(asyncio.all_tasks()) - before == set()  # scheduler, polling, background work: all gone
    await asyncio.sleep(1)
    assert len(fake_tg.calls_of("getUpdates")) == polls  # Telegram is no longer polled


async def test_a_start_that_fails_half_way_closes_what_had_started(make_settings, sandbox, fake_tg):
    settings = _settings(make_settings, sandbox, fake_tg)
    before = set(asyncio.all_tasks())
    with socket.socket() as busy:  # the web server cannot listen: the database and scheduler were up by then
        busy.bind((settings.http_host, settings.http_port))
        busy.listen()
        with pytest.raises(OSError):
            await run_service(settings, stop=asyncio.Event())
    assert set(asyncio.all_tasks()) - before == set()
    assert await _database_closed()
    assert not fake_tg.calls_of("getUpdates")  # Telegram starts only once the port listens
    async with running_bot(settings):  # nothing left half-open stands in the way of the next start
        assert await accepts_connections(settings.http_host, settings.http_port)
