"""Inbound verification and limits: forged, oversized, malformed and hostile input gets a clear refusal and
changes nothing; a flood is slowed with one polite word; Ozon pushes may be narrowed to Ozon's networks."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from pydantic import SecretStr

from sandbox.telegram import DEFAULT_TOKEN
from services.ratelimit import InboundLimiter
from services.storage.models import Event, Invite, Member, Posting, Seller
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.service import running_bot

HOSTILE = ["'; DROP TABLE posting; --", "1' OR '1'='1", "\u202e1234567\u200b", "１２３４５６７", "%s%n%x{0}",
           "🙂" * 300, "<script>alert(1)</script>", "A" * 4000, "\\x00\\u0000null"]
MEGABYTE = b"{" + b'"a":"' + b"x" * (1024 * 1024) + b'"}'


async def _rows() -> tuple[int, ...]:
    return (await Seller.all().count(), await Member.all().count(), await Posting.all().count(),
            await Event.all().count(), await Invite.all().count())


def test_limiter_allows_bursts_then_refuses_once_per_flood_and_refills():
    now = [0.0]
    limiter = InboundLimiter(per_member=3, per_chat=5, period=60, clock=lambda: now[0])
    verdicts = [limiter.check("u1", "g") for _ in range(5)]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    assert [v.tell for v in verdicts[3:]] == [True, False]  # one polite word per flood
    assert limiter.check("u2", "g").allowed and limiter.check("u2", "g").allowed  # the chat has 5 in all
    assert not limiter.check("u3", "g").allowed  # now the group chat is full
    now[0] += 20  # a third of the period gives back a third of the burst
    assert limiter.check("u1", "private").allowed
    assert InboundLimiter(per_member=0, per_chat=0).check("u", "c").allowed  # 0 switches limits off


async def test_a_flood_from_one_person_is_slowed_politely_and_others_are_served(make_settings, sandbox, fake_tg):
    settings = make_settings(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{fake_tg.base_url}/bot",
                             telegram_file_url=f"{fake_tg.base_url}/file/bot", ozon_api_url=sandbox.base_url,
                             inbound_per_member=5)
    async with running_bot(settings):
        for _ in range(12):
            fake_tg.push_message(4242, "/help", language_code="en")
        fake_tg.push_message(4343, "/help", language_code="en")
        await fake_tg.wait_for_message(4343, "/orders", timeout=10)
        await fake_tg.wait_for_message(4242, "Too many messages", timeout=10)

        def answered() -> int:
            return sum("/orders" in m.text for m in fake_tg.messages(4242))

        # updates are handled concurrently: the last allowed /help may be answered after the refusal
        await fake_tg.wait_for(lambda: answered() >= 5 and not fake_tg.pending_updates, timeout=10)
        await asyncio.sleep(0.5)  # long enough for any reply to a dropped update to show up; none may
        texts = [m.text for m in fake_tg.messages(4242)]
        assert answered() == 5
        assert sum("Too many messages" in t for t in texts) == 1

        # presses over the limit are dropped too, but each is answered: a button never spins on
        fake_tg.push_message(4545, "/start", language_code="en")
        own = await fake_tg.wait_for_message(4545, "/connect", timeout=10)
        queries = [fake_tg.push_callback(4545, own.message_id, f"junk{i}") for i in range(8)]
        await fake_tg.wait_for(lambda: all(fake_tg.callback_answer(q) for q in queries), timeout=10)
        answers = [fake_tg.callback_answer(q).get("text") or "" for q in queries]
        assert sum("Too many messages" in a for a in answers) == 1
        assert sum(a == "" for a in answers) == 8 - 4 - 1  # 4 handled (refused as forged), 1 told, the rest quiet


async def test_webhook_refuses_forged_oversized_and_malformed_bodies_and_survives_hostile_text(
        make_settings, sandbox, fake_tg):
    port_settings = make_settings()
    url = f"http://127.0.0.1:{port_settings.http_port}/telegram/webhook"
    settings = make_settings(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{fake_tg.base_url}/bot",
                             telegram_file_url=f"{fake_tg.base_url}/file/bot", ozon_api_url=sandbox.base_url,
                             telegram_webhook_url=url, http_port=port_settings.http_port)
    async with running_bot(settings):
        fake_tg.push_message(1001, f"/connect {CLIENT_ID} {API_KEY}", language_code="en")
        await fake_tg.wait_for_message(1001, "Connected", timeout=10)
        before = await _rows()
        secret = {"X-Telegram-Bot-Api-Secret-Token": fake_tg.webhook_secret, "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as http:
            for body, headers, status in ((b"{}", {"X-Telegram-Bot-Api-Secret-Token": "forged"}, 403),
                                          (MEGABYTE, secret, 413), (b"\xff\xfe{not json", secret, 400),
                                          (b"[1, 2, 3]", secret, 400)):
                async with http.post(url, data=body, headers=headers) as resp:
                    assert resp.status == status, (body[:20], resp.status)
        for text in HOSTILE + [f"/status {h}" for h in HOSTILE[:4]] + ["/join '; DELETE FROM invite; --"]:
            last = max([m.message_id for m in fake_tg.messages(1001)], default=0)
            fake_tg.push_message(1001, text, language_code="en")
            reply = await fake_tg.wait_for_message(1001, after=last, timeout=10)
            assert "Something went wrong" not in reply.text
        assert await _rows() == before


@pytest.mark.parametrize("allow, expect", [("", 200), ("10.0.0.0/8, 192.168.0.0/16", 403), ("127.0.0.1/32", 200)])
async def test_push_allow_list(make_settings, sandbox, allow, expect):
    settings = make_settings(ozon_api_url=sandbox.base_url, ozon_push_allow=allow)
    async with running_bot(settings):
        seller = await _connect(settings)
        url = f"http://127.0.0.1:{settings.http_port}/ozon/push/{seller.push_token}"
        async with aiohttp.ClientSession() as http, http.post(url, json={"message_type": "TYPE_PING"}) as resp:
            assert resp.status == expect


async def test_push_refuses_hostile_payloads_and_changes_nothing(make_settings, sandbox):
    settings = make_settings(ozon_api_url=sandbox.base_url)
    async with running_bot(settings):
        seller = await _connect(settings)
        url = f"http://127.0.0.1:{settings.http_port}/ozon/push/{seller.push_token}"
        before = await _rows()
        async with aiohttp.ClientSession() as http:
            for body, status in ((MEGABYTE, 413), (b"\x00\x01garbage", 400), (b'"a string"', 400),
                                 (b'{"message_type": 5}', 400)):
                async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                    assert resp.status == status
                    assert "error" in await resp.json()
            for number in HOSTILE:
                push = {"message_type": "TYPE_NEW_POSTING", "posting_number": number, "products": []}
                async with http.post(url, json=push) as resp:
                    assert resp.status == 400
            # well-formed but unknown to Ozon: acknowledged, then not believed
            push = {"message_type": "TYPE_NEW_POSTING", "posting_number": "99999999-0001-1", "products": []}
            async with http.post(url, json=push) as resp:
                assert resp.status == 200
            for token in ("x", "' OR 1=1 --", "a" * 500, seller.push_token[:-1] + "!"):
                async with http.post(url.replace(seller.push_token, token), json=push) as resp:
                    assert resp.status in (404, 405)
        await sandbox.flush_pushes(1)
        import asyncio

        await asyncio.sleep(0.5)
        assert await _rows() == before


async def _connect(settings) -> Seller:
    from bot.app import build_services

    services = build_services(settings)
    await services.gateway.start()
    try:
        return (await services.desk.connect_seller(CLIENT_ID, API_KEY)).seller
    finally:
        await services.gateway.close()


@pytest.mark.parametrize("proxies, forwarded, expect", [
    ("127.0.0.1/32", "203.0.113.7", 200),  # behind our proxy: the sender it saw is Ozon's
    ("127.0.0.1/32", "203.0.113.7, 198.51.100.1", 403),  # the nearest untrusted hop decides
    ("127.0.0.1/32", "", 403),  # the proxy itself is no sender
    ("", "203.0.113.7", 403),  # a header from a peer that is no trusted proxy is ignored
])
async def test_push_allow_list_behind_a_trusted_proxy(make_settings, sandbox, proxies, forwarded, expect):
    """L6: behind the README's HTTPS proxy the TCP peer is 127.0.0.1: the allow-list refused every push, or
    (with the proxy's address added) allowed everything."""
    settings = make_settings(ozon_api_url=sandbox.base_url, ozon_push_allow="203.0.113.0/24",
                             trusted_proxies=proxies)
    async with running_bot(settings):
        seller = await _connect(settings)
        url = f"http://127.0.0.1:{settings.http_port}/ozon/push/{seller.push_token}"
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        async with aiohttp.ClientSession() as http, http.post(url, json={"message_type": "TYPE_PING"},
                                                              headers=headers) as resp:
            assert resp.status == expect
