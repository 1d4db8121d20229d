"""The WeCom route with Tencent's known-answer callbacks, our outbound client against the fake WeCom API
(token cache, bounded retry on 40001/42001, busy back-off, per-member limit) and `ozonbot seller wecom`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.app import build_services
from handlers.wechat.api import WechatApiError, WechatHttp
from handlers.wechat.work import WecomChannel
from sandbox.wechat.crypto import new_aes_key, new_token
from sandbox.wechat.wecom import FakeWecom
from services.channels import DeliveryDeferred
from services.pacing import SlidingWindow
from services.storage import db
from services.storage.models import InboundCallback, Member, WecomApp
from services.views import View
from tests.conftest import API_KEY, CLIENT_ID

VECTORS = json.loads((Path(__file__).parent / "fixtures" / "wechat-crypto-vectors.json").read_text())["vectors"]
SECRET = "wecom-app-secret-0123456789abcdef"


@pytest.fixture
async def fake_wecom():
    fake = FakeWecom(member_limit=5)
    await fake.start()
    yield fake
    await fake.stop()


async def _services(make_settings, sandbox, fake_wecom, clock=None):
    kwargs = {"clock": clock} if clock else {}
    services = build_services(make_settings(ozon_api_url=sandbox.base_url, wecom_api_url=fake_wecom.base_url),
                              **kwargs)
    await services.start(schedule=False)
    return services


@pytest.mark.parametrize("pair", [("wecom_doc_90968_verify_url", "wecom_doc_90968_decrypt"),
                                  ("wecom_sample_py_verify_url", "wecom_sample_py_decrypt")])
async def test_known_answer_callbacks_through_the_route(make_settings, sandbox, fake_wecom, pair):
    verify, message = (next(v for v in VECTORS if v["id"] == name) for name in pair)
    clock = {"now": datetime.fromtimestamp(int(verify["timestamp"]), UTC)}
    services = await _services(make_settings, sandbox, fake_wecom, clock=lambda: clock["now"])
    try:
        seller = (await services.desk.connect_seller(CLIENT_ID, API_KEY)).seller
        app = await services.apps.configure_wecom(seller, corp_id=verify["receive_id"], agent_id="218",
                                                  secret=SECRET, token=verify["token"],
                                                  aes_key=verify["encoding_aes_key"])
        user = "mycreate" if "90968" in message["id"] else "ChenJiaShun"
        fake_wecom.add_app(verify["receive_id"], SECRET, 218, [user])
        channel = WecomChannel(services.wechat_port())
        services.channels.register(channel)
        web_app = web.Application()
        web_app.add_routes(channel.routes())
        async with TestServer(web_app) as server, aiohttp.ClientSession() as session:
            url = str(server.make_url(f"/wechat/work/{app.tenant}"))
            params = {k: verify[k] for k in ("msg_signature", "timestamp", "nonce")}
            async with session.get(url, params={**params, "echostr": verify["encrypt"]}) as response:
                assert (response.status, await response.text()) == (200, verify["expected_plaintext"])

            clock["now"] = datetime.fromtimestamp(int(message["timestamp"]), UTC)
            params = {k: message[k] for k in ("msg_signature", "timestamp", "nonce")}
            for _ in range(2):  # the second is WeChat's retry
                async with session.post(url, params=params, data=message["post_body"].encode()) as response:
                    assert response.status == 200
            await fake_wecom.wait_for(lambda: fake_wecom.texts_to(user))
            await asyncio.sleep(0.2)
            assert len(fake_wecom.texts_to(user)) == 1  # "no order hello" once, in Chinese
            assert await InboundCallback.all().count() == 1
            assert await Member.filter(external_id=f"{verify['receive_id']}:{user}").count() == 1

            clock["now"] = datetime.now(UTC)  # the same callback years later is a replay
            async with session.post(url, params=params, data=message["post_body"].encode()) as response:
                assert response.status == 403
        await channel.close()
    finally:
        await services.stop()


async def test_tokens_cached_refreshed_and_retried_a_bounded_number_of_times(make_settings, sandbox, fake_wecom):
    services = await _services(make_settings, sandbox, fake_wecom)
    try:
        seller = (await services.desk.connect_seller(CLIENT_ID, API_KEY)).seller
        app = await services.apps.configure_wecom(seller, corp_id="wwcorp01", agent_id="7", secret=SECRET,
                                                  token=new_token(), aes_key=new_aes_key())
        fake_wecom.add_app("wwcorp01", SECRET, 7, ["u1"])
        http = WechatHttp(busy_delay=0.01)
        channel = WecomChannel(services.wechat_port(), http)
        member = await channel.join(app, "u1")
        for _ in range(3):
            await channel.send(member, View(text="你好"))
        assert len(fake_wecom.calls_to("gettoken")) == 1  # cached per app

        fake_wecom.expire_tokens()  # 42001: one refetch, one retry
        await channel.send(member, View(text="still there"))
        assert len(fake_wecom.calls_to("gettoken")) == 2

        fake_wecom.fail_next("message/send", 40001, times=10)  # a token that never works: no endless loop
        with pytest.raises(WechatApiError) as failure:
            await channel.send(member, View(text="lost"))
        assert failure.value.errcode == 40001
        assert len(fake_wecom.calls_to("gettoken")) == 3
        assert len([c for c in fake_wecom.calls_to("message/send") if c.errcode == 40001]) == 2

        fake_wecom._faults.clear()
        fake_wecom.fail_next("message/send", 45009, times=2)  # busy: short waits, then it goes through
        await channel.send(member, View(text="after busy"))
        assert "after busy" in fake_wecom.texts_to("u1")
        fake_wecom.fail_next("message/send", 45009, times=5)
        with pytest.raises(WechatApiError):
            await channel.send(member, View(text="gave up"))

        wrong = await services.apps.configure_wecom(seller, corp_id="wwcorp01", agent_id="7", secret="x" * 20,
                                                    token=new_token(), aes_key=new_aes_key())
        with pytest.raises(WechatApiError) as refused:  # a wrong secret is reported, not retried forever
            await WecomChannel(services.wechat_port(), WechatHttp()).sync_members(wrong)
        assert refused.value.errcode == 40001
        await channel.close()
    finally:
        await services.stop()


async def test_per_member_limit_is_respected(make_settings, sandbox, fake_wecom):
    services = await _services(make_settings, sandbox, fake_wecom)
    try:
        seller = (await services.desk.connect_seller(CLIENT_ID, API_KEY)).seller
        app = await services.apps.configure_wecom(seller, corp_id="wwcorp02", agent_id="8", secret=SECRET,
                                                  token=new_token(), aes_key=new_aes_key())
        fake_wecom.add_app("wwcorp02", SECRET, 8, ["u1"])
        channel = WecomChannel(services.wechat_port(), WechatHttp())
        channel.limiter = SlidingWindow(5, 1.0)  # WeCom's 30 a minute, scaled down to 5 a second
        fake_wecom.member_period = 1.0
        member = await channel.join(app, "u1")
        started = time.monotonic()
        for i in range(12):  # replies to someone who acted wait for a slot
            await channel.send(member, View(text=f"message {i}"), wait=True)
        assert time.monotonic() - started >= 2.0  # 12 at 5 a second needs two waits
        assert len(fake_wecom.texts_to("u1")) == 12
        with pytest.raises(DeliveryDeferred):  # the outbox's sends never wait: they are retried later
            for i in range(6):
                await channel.send(member, View(text=f"alert {i}"))
        assert len(fake_wecom.texts_to("u1")) <= 17
        await channel.close()
    finally:
        await services.stop()


async def test_sliding_window_waits_for_a_free_slot():
    window = SlidingWindow(3, 0.3)
    started = time.monotonic()
    await asyncio.gather(*(window.acquire("k") for _ in range(7)))
    assert time.monotonic() - started >= 0.6
    await window.acquire("other")  # keys are independent
    assert time.monotonic() - started < 1.0


async def test_seller_wecom_command_as_a_process(make_settings, sandbox, fake_wecom):
    settings = make_settings(ozon_api_url=sandbox.base_url, wecom_api_url=fake_wecom.base_url,
                             public_url="https://desk.example.com")
    fake_wecom.add_app("wwcorp03", SECRET, 9, ["boss", "packer1"])
    env = {**os.environ, "OZONBOT_OZON_API_URL": settings.ozon_api_url, "OZONBOT_DATA_DIR": str(settings.data_dir),
           "OZONBOT_DATABASE_URL": settings.db_url, "OZONBOT_SECRET_KEY": settings.secret_key.get_secret_value(),
           "OZONBOT_WECOM_API_URL": fake_wecom.base_url, "OZONBOT_PUBLIC_URL": "https://desk.example.com"}

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bot.cli", "seller", *argv], env=env, capture_output=True,
                              text=True, timeout=60)

    assert (await asyncio.to_thread(run, "add", "--client-id", CLIENT_ID, "--api-key", API_KEY)).returncode == 0
    token, aes_key = new_token(), new_aes_key()
    base = ["wecom", CLIENT_ID, "--corp-id", "wwcorp03", "--agent-id", "9", "--secret", SECRET, "--token", token]
    bad = await asyncio.to_thread(run, *base, "--aes-key", "too-short")
    assert bad.returncode == 1 and "43 characters" in bad.stderr and "Nothing was stored" in bad.stderr
    good = await asyncio.to_thread(run, *base, "--aes-key", aes_key, "--owner", "boss")
    assert good.returncode == 0, good.stderr
    await db.connect(settings.db_url)
    try:
        await _check_stored(good, token, aes_key)
    finally:
        await db.close()
    missing = await asyncio.to_thread(run, "wecom", "999", "--corp-id", "c1234", "--agent-id", "1", "--secret",
                                      SECRET, "--token", token, "--aes-key", aes_key)
    assert missing.returncode == 1 and "no seller 999" in missing.stderr


async def _check_stored(good, token: str, aes_key: str) -> None:
    app = await WecomApp.get(corp_id="wwcorp03")
    assert f"callback URL: https://desk.example.com/wechat/work/{app.tenant}" in good.stdout
    assert "boss" in good.stdout and "packer1" in good.stdout
    for secret in (SECRET, token, aes_key):
        assert secret not in good.stdout + good.stderr
        assert secret not in app.secret_enc + app.token_enc + app.aes_key_enc
    roles = {m.chat_id: m.role for m in await Member.filter(channel="wecom")}
    assert roles == {"boss": "owner", "packer1": "packer"}


@pytest.mark.sqlite_only
@pytest.mark.sqlite_only  # reads the database file
async def test_wecom_secrets_are_not_in_the_database_file(make_settings, sandbox, fake_wecom):
    services = await _services(make_settings, sandbox, fake_wecom)
    try:
        seller = (await services.desk.connect_seller(CLIENT_ID, API_KEY)).seller
        token, aes_key = new_token(), new_aes_key()
        await services.apps.configure_wecom(seller, corp_id="wwcorp04", agent_id="10", secret=SECRET, token=token,
                                            aes_key=aes_key)
        raw = Path(services.settings.db_url.removeprefix("sqlite://")).read_bytes()
        for secret in (SECRET, token, aes_key):
            assert secret.encode() not in raw
    finally:
        await services.stop()
