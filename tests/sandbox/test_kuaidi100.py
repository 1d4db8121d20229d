"""The Kuaidi100 stand-in against the documentation (next-features.md §3), and our client against the
stand-in, over real HTTP on loopback. Signatures are computed here from the documented formulas, not
with either side's helpers."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web

from sandbox.kuaidi100 import Kuaidi100Sandbox
from services.kuaidi100.client import PUSH_REPLY, Kuaidi100Client, SignatureMismatch, parse_push
from services.kuaidi100.errors import Kuaidi100AuthError, Kuaidi100Refused, Kuaidi100Unavailable
from services.kuaidi100.models import SubscribeRequest, TraceState

KEY, CUSTOMER = "kd100-key-0123456789", "C0FFEE0123456789"


def md5u(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest().upper()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Receiver:
    """Our side of the push, as Kuaidi100 sees it: a form POST answered with PUSH_REPLY."""

    def __init__(self, answer_ok: bool = True) -> None:
        self.forms: list[dict[str, str]] = []
        self.answer_ok = answer_ok
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-www-form-urlencoded"
        self.forms.append({k: str(v) for k, v in (await request.post()).items()})
        if not self.answer_ok:
            return web.json_response({"result": False, "returnCode": "500", "message": "busy"})
        return web.json_response(PUSH_REPLY)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/kuaidi100/{token}", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/kuaidi100/tok1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def kd():
    clock = Clock()
    box = Kuaidi100Sandbox(clock=clock, push_retry_delay=0.05)
    box.add_account(KEY, CUSTOMER)
    await box.start()
    box.clock = clock
    yield box
    await box.stop()


@pytest.fixture
async def client(kd):
    async with aiohttp.ClientSession() as session:
        yield Kuaidi100Client(session, kd.base_url, timeout=3)


async def _raw(kd, path: str, form: dict[str, str]) -> dict:
    async with aiohttp.ClientSession() as s, s.post(kd.base_url + path, data=form) as r:
        return json.loads(await r.text())


async def test_subscribe_answers_the_documented_codes(kd):
    def param(**over):
        p = {"company": "yuantong", "number": "YT1234567890123", "key": KEY,
             "parameters": {"callbackurl": "http://127.0.0.1:1/kuaidi100/x", "salt": "s1"}}
        p.update(over)
        return {"schema": "json", "param": json.dumps(p)}

    assert await _raw(kd, "/poll", param()) == {"result": True, "returnCode": "200", "message": "提交成功"}
    assert (await _raw(kd, "/poll", param()))["returnCode"] == "501"  # duplicate
    assert (await _raw(kd, "/poll", param(key="nope")))["returnCode"] == "600"
    assert (await _raw(kd, "/poll", param(company="marsexpress")))["returnCode"] == "701"
    assert (await _raw(kd, "/poll", param(number="")))["returnCode"] == "700"
    assert (await _raw(kd, "/poll", param(number="X" * 33)))["returnCode"] == "700"
    assert (await _raw(kd, "/poll", param(company="", number="77123456789012",
                                          parameters={"callbackurl": "http://h/x", "autoCom": "1"})))["returnCode"] == "702"
    assert (await _raw(kd, "/poll", {"schema": "json", "param": "{not json"}))["returnCode"] == "700"
    kd.expire_account(KEY)
    assert (await _raw(kd, "/poll", param(number="YT9999999999999")))["returnCode"] == "601"
    assert len(kd.subscriptions) == 1


async def test_query_checks_the_documented_signature(kd):
    kd.scan("yuantong", "YT1234567890123", "【义乌市】快件已揽收", state=1, area="浙江,金华市,义乌市")
    param = json.dumps({"com": "yuantong", "num": "YT1234567890123"})
    ok = await _raw(kd, "/poll/query.do", {"customer": CUSTOMER, "param": param, "sign": md5u(param + KEY + CUSTOMER)})
    assert ok["status"] == "200" and ok["state"] == "1" and ok["data"][0]["context"] == "【义乌市】快件已揽收"
    forged = await _raw(kd, "/poll/query.do", {"customer": CUSTOMER, "param": param, "sign": md5u(param + CUSTOMER + KEY)})
    assert forged["result"] is False and forged["returnCode"] == "503"


async def test_pushes_carry_the_documented_form_and_signature(kd):
    async with Receiver() as rx:
        param = {"company": "zhongtong", "number": "75312345678901", "key": KEY,
                 "parameters": {"callbackurl": rx.url, "salt": "pepper", "phone": "1234"}}
        assert (await _raw(kd, "/poll", {"schema": "json", "param": json.dumps(param)}))["returnCode"] == "200"
        kd.add_parcel("zhongtong", "75312345678901", phone="13800001234")
        kd.scan("zhongtong", "75312345678901", "快件已揽收", state=1)
        kd.clock.now += timedelta(hours=5)
        kd.scan("zhongtong", "75312345678901", "快件已发往 乌鲁木齐", state=0)
        await kd.flush()
        assert len(rx.forms) == 2
        last = rx.forms[-1]
        assert last["sign"] == md5u(last["param"] + "pepper")
        body = json.loads(last["param"])
        assert body["status"] == "polling"
        result = body["lastResult"]
        assert [e["context"] for e in result["data"]] == ["快件已发往 乌鲁木齐", "快件已揽收"]  # newest first
        assert result["data"][0]["time"] == "2026-12-04 21:00:00"  # Beijing time
        assert all(p.accepted for p in kd.pushes)


async def test_sf_without_the_phone_tail_sees_nothing_and_is_aborted_after_three_days(kd):
    async with Receiver() as rx:
        param = {"company": "shunfeng", "number": "SF1402938475612", "key": KEY,
                 "parameters": {"callbackurl": rx.url, "salt": "s"}}
        await _raw(kd, "/poll", {"schema": "json", "param": json.dumps(param)})
        kd.add_parcel("shunfeng", "SF1402938475612", phone="13912345678")
        kd.scan("shunfeng", "SF1402938475612", "顺丰速运 已收取快件", state=1)
        kd.clock.now += timedelta(days=2)
        assert kd.check_aborts() == 0
        kd.clock.now += timedelta(days=1)
        assert kd.check_aborts() == 1
        await kd.flush()
        (form,) = rx.forms
        body = json.loads(form["param"])
        assert body["status"] == "abort" and body["message"] == "3天查询无记录"
        assert body["lastResult"]["data"] == []
        # after an abort the number may be subscribed again (not a duplicate)
        again = await _raw(kd, "/poll", {"schema": "json", "param": json.dumps(param)})
        assert again["returnCode"] == "200"


async def test_an_unaccepted_push_is_pushed_again(kd):
    async with Receiver(answer_ok=False) as rx:
        param = {"company": "yunda", "number": "435332472136948", "key": KEY,
                 "parameters": {"callbackurl": rx.url, "salt": "s"}}
        await _raw(kd, "/poll", {"schema": "json", "param": json.dumps(param)})
        kd.scan("yunda", "435332472136948", "浙江义乌 已揽收", state=1)
        while len(rx.forms) < 2:  # refused once, then pushed again
            await asyncio.sleep(0.01)
        rx.answer_ok = True
        await kd.flush()
        assert len(rx.forms) >= 2 and kd.pushes[-1].accepted
        assert not any(p.accepted for p in kd.pushes[:-1])


async def test_faults_down_and_injected_codes(kd):
    kd.faults.down = True
    async with aiohttp.ClientSession() as s, s.post(kd.base_url + "/poll", data={"schema": "json"}) as r:
        assert r.status == 502
    kd.faults.down = False
    kd.faults.error_code, kd.faults.error_count = "500", 1
    assert (await _raw(kd, "/poll", {"schema": "json", "param": "{}"}))["returnCode"] == "500"
    assert (await _raw(kd, "/poll", {"schema": "json", "param": "{}"}))["returnCode"] == "600"


# ---- our client against the stand-in ------------------------------------------------------------------
async def test_client_subscribes_and_verifies_pushes(kd, client):
    async with Receiver() as rx:
        request = SubscribeRequest(company="yuantong", number="YT1234567890123", callback_url=rx.url, salt="salt-9")
        assert await client.subscribe(KEY, request) is True
        assert await client.subscribe(KEY, request) is False  # 501: already there, harmless
        kd.scan("yuantong", "YT1234567890123", "快件已揽收", state=1)
        kd.scan("yuantong", "YT1234567890123", "已签收", state=3)
        await kd.flush()
        push = parse_push(rx.forms[-1]["param"], rx.forms[-1]["sign"], "salt-9")
        assert push.status == "shutdown" and push.last_result.signed
        assert push.last_result.state is TraceState.SIGNED
        assert push.last_result.data[1].at == datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
        with pytest.raises(SignatureMismatch):
            parse_push(rx.forms[-1]["param"], rx.forms[-1]["sign"], "other-salt")
        with pytest.raises(SignatureMismatch):
            parse_push(rx.forms[-1]["param"].replace("已签收", "已退回"), rx.forms[-1]["sign"], "salt-9")


async def test_client_errors_are_typed(kd, client):
    req = SubscribeRequest(company="marsexpress", number="YT1", callback_url="http://127.0.0.1:1/k/x")
    with pytest.raises(Kuaidi100Refused) as refused:
        await client.subscribe(KEY, req)
    assert refused.value.code == "701" and not refused.value.retryable
    with pytest.raises(Kuaidi100AuthError):
        await client.subscribe("wrong-key", SubscribeRequest(company="ems", number="1234567890123",
                                                            callback_url="http://127.0.0.1:1/k/x"))
    kd.faults.down = True
    with pytest.raises(Kuaidi100Unavailable) as down:
        await client.subscribe(KEY, SubscribeRequest(company="ems", number="1234567890123",
                                                    callback_url="http://127.0.0.1:1/k/x"))
    assert down.value.retryable
    kd.faults.down = False
    await client.check_account(KEY, CUSTOMER)  # a real signed call passes
    with pytest.raises(Kuaidi100AuthError):
        await client.check_account(KEY, "SOMEONE-ELSE")
    with pytest.raises(Kuaidi100AuthError):
        await client.check_account("wrong-key", CUSTOMER)


async def test_client_query_reads_the_trace(kd, client):
    kd.add_parcel("zhongtong", "75312345678901", phone="13800001234")
    kd.scan("zhongtong", "75312345678901", "快件已揽收", state=1, area="浙江,金华市,义乌市")
    with pytest.raises(Kuaidi100Refused) as no_phone:
        await client.query(KEY, CUSTOMER, "zhongtong", "75312345678901")
    assert no_phone.value.code == "408"
    trace = await client.query(KEY, CUSTOMER, "zhongtong", "75312345678901", phone="1234")
    assert trace.state is TraceState.PICKED_UP and trace.data[0].area_name == "浙江,金华市,义乌市"


async def test_a_courier_script_moves_every_new_subscription_by_itself():
    box = Kuaidi100Sandbox(courier_script=[(0.05, "快件已揽收", 1), (0.1, "已签收", 3)])
    box.add_account(KEY, CUSTOMER)
    await box.start()
    try:
        async with Receiver() as rx:
            param = {"company": "ems", "number": "1234567890123", "key": KEY,
                     "parameters": {"callbackurl": rx.url, "salt": "s"}}
            await _raw(box, "/poll", {"schema": "json", "param": json.dumps(param)})
            while len(rx.forms) < 2:
                await asyncio.sleep(0.02)
            await box.flush()
            states = [json.loads(f["param"])["status"] for f in rx.forms]
            assert states == ["polling", "shutdown"] and box.subscriptions[0].status == "shutdown"
    finally:
        await box.stop()
