"""Invite codes cannot be guessed (H2): 80 bits, a few tries per source, one live code per owner and role,
single use, expiry; and the binding-QR route is rate-limited per client address."""

from __future__ import annotations

import re

import aiohttp
import pytest

from bot.app import build_services
from services.desk import JOIN_ATTEMPTS
from services.storage.models import Invite, Member
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.service import running_bot
from tests.test_wechat_official import fake_oa, oa_keys, oa_settings, safe  # noqa: F401 (fixtures)


@pytest.fixture
async def services(make_settings, sandbox):
    svc = build_services(make_settings(ozon_api_url=sandbox.base_url))
    await svc.start(schedule=False)
    yield svc
    await svc.stop()


async def _owner(services) -> Member:
    connected = await services.desk.connect_seller(CLIENT_ID, API_KEY)
    return await services.desk.join_as(connected.seller, channel="console", external_id="o", chat_id="o",
                                       name="Owner", locale="en", role="owner")


async def _join(services, code: str, who: str) -> Member | None:
    return await services.desk.redeem_invite(code, channel="console", external_id=who, chat_id=who, name=who,
                                             locale="en")


async def test_a_code_carries_80_bits_and_is_typed_forgivingly(services):
    owner = await _owner(services)
    codes = {(await services.desk.create_invite(owner)).code for _ in range(20)}
    assert len(codes) == 20 and all(re.fullmatch(r"[A-Z2-7]{16}", code) for code in codes)  # 16 × 5 bits
    latest = (await services.desk.create_invite(owner)).code
    typed = "-".join(latest[i:i + 4] for i in range(0, 16, 4)).lower()
    assert (await _join(services, typed, "p1")).role == "packer"
    assert await _join(services, latest, "p2") is None  # single use


async def test_a_new_invite_revokes_the_owners_earlier_codes(services):
    owner = await _owner(services)
    first = await services.desk.create_invite(owner)
    second = await services.desk.create_invite(owner)
    assert await _join(services, first.code, "p1") is None
    assert await _join(services, second.code, "p2") is not None
    assert await Invite.filter(used_at__isnull=True, expires_at__gt=services.clock()).count() == 0


async def test_a_source_gets_a_few_tries_then_nothing_even_with_the_right_code(services):
    owner = await _owner(services)
    invite = await services.desk.create_invite(owner)
    for i in range(JOIN_ATTEMPTS):
        assert await _join(services, f"GUESS{i:011d}", "guesser") is None
    assert await _join(services, invite.code, "guesser") is None  # the window is spent
    assert await _join(services, invite.code, "someone-else") is not None


async def test_the_binding_qr_route_is_rate_limited_per_address(oa_settings, fake_oa):  # noqa: F811
    async with running_bot(oa_settings), aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{oa_settings.http_port}/wechat/qr/"
        statuses = []
        for i in range(12):
            async with session.get(url + f"{i:016d}", allow_redirects=False) as response:
                statuses.append(response.status)
    assert statuses[:10] == [404] * 10 and statuses[10:] == [429, 429]


async def test_a_long_name_joins_and_a_failed_join_does_not_burn_the_code(services, monkeypatch):
    """L11: Telegram names reach 129 characters, Member.name holds 128: /join burned the code and failed."""
    owner = await _owner(services)
    invite = await services.desk.create_invite(owner)
    long_name = "Ж" * 64 + " " + "Щ" * 64
    member = await services.desk.redeem_invite(invite.code, channel="console", external_id="long", chat_id="long",
                                               name=long_name, locale="en")
    assert member is not None and member.name == long_name[:128]
    second = await services.desk.create_invite(owner)

    async def broken_join(*args, **kwargs):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(services.desk, "join_as", broken_join)
    with pytest.raises(RuntimeError):
        await _join(services, second.code, "p2")
    monkeypatch.undo()
    assert (await _join(services, second.code, "p2")) is not None  # the code was given back
