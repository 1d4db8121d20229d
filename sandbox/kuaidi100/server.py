"""The Kuaidi100 stand-in: accounts, parcels and their traces, subscriptions, pushes, faults, control API.

All state lives on the instance. Times on the wire are Beijing time, ``YYYY-MM-DD HH:MM:SS``, as
Kuaidi100 sends them; the clock is injectable so a test can make three days pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import ClientSession, ClientTimeout, web

log = logging.getLogger(__name__)

BEIJING = ZoneInfo("Asia/Shanghai")
WIRE_TIME = "%Y-%m-%d %H:%M:%S"

# Kuaidi100 courier codes (reference/peers.md Appendix C)
COMPANIES = frozenset({
    "shunfeng", "shunfengkuaiyun", "zhongtong", "yunda", "shentong", "yuantong", "jd", "ems",
    "youzhengguonei", "jtexpress", "huitongkuaidi",
})
# SF and ZTO answer only with the phone number on the waybill or its last 4 digits (peers.md)
PHONE_REQUIRED = frozenset({"shunfeng", "shunfengkuaiyun", "zhongtong"})
STATE_NAMES = {0: "在途", 1: "揽收", 2: "疑难", 3: "签收", 4: "退签", 5: "派件", 6: "退回", 7: "转投"}
SIGNED = 3

NO_RECORD_AFTER = timedelta(days=3)  # "3天查询无记录"
NO_CHANGE_AFTER = timedelta(days=60)  # "60天无变化"
_NUMBER = re.compile(r"[A-Za-z0-9]{1,32}")

# subscribe return codes and their messages (next-features.md §3)
MESSAGES = {
    "200": "提交成功",
    "500": "服务器错误",
    "501": "重复订阅",
    "600": "您不是合法的订阅者（即授权Key出错）",
    "601": "POLL:KEY已过期",
    "700": "订阅方的订阅数据存在错误（如不支持的快递公司、单号为空、单号超长等）",
    "701": "拒绝订阅的快递公司",
    "702": "POLL:识别不到该单号对应的快递公司",
}
PUSH_OK = {"result": True, "returnCode": "200"}


def _md5_upper(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()


def sign_query(param: str, key: str, customer: str) -> str:
    """The real-time query's signature: UPPER(MD5(param + key + customer)), no separators."""
    return _md5_upper(param + key + customer)


def sign_push(param: str, salt: str) -> str:
    """A push's signature: UPPER(MD5(param + salt))."""
    return _md5_upper(param + salt)


@dataclass
class Faults:
    """``down``: every API call answers HTTP 502 from the front (the service is away). ``error_code``:
    the next ``error_count`` calls (subscribe and query) answer that returnCode. ``latency``: seconds
    added to each call. ``push_down``: pushes are not sent (queued until it clears)."""

    down: bool = False
    error_code: str | None = None
    error_count: int = 0
    latency: float = 0.0
    push_down: bool = False


@dataclass
class Account:
    key: str
    customer: str
    expired: bool = False


@dataclass
class Event:
    at: datetime
    context: str
    state: int
    area: str = ""
    area_code: str = ""

    def wire(self) -> dict[str, Any]:
        local = self.at.astimezone(BEIJING).strftime(WIRE_TIME)
        return {"time": local, "ftime": local, "context": self.context, "areaCode": self.area_code,
                "areaName": self.area, "status": STATE_NAMES.get(self.state, ""), "statusCode": str(self.state)}


@dataclass
class Parcel:
    com: str
    num: str
    phone: str = ""
    events: list[Event] = field(default_factory=list)  # newest first

    @property
    def state(self) -> int:
        return self.events[0].state if self.events else 0


@dataclass
class Subscription:
    key: str
    com: str
    num: str
    callback_url: str
    salt: str
    phone: str
    subscribed_at: datetime
    status: str = "polling"  # polling | shutdown | abort
    pushed: int = 0  # how many trace events the last accepted push carried


@dataclass
class RecordedPush:
    url: str
    param: str
    sign: str | None
    http_status: int
    reply: str
    accepted: bool


@dataclass
class RecordedCall:
    path: str
    form: dict[str, str]
    answer: dict[str, Any]


class Kuaidi100Sandbox:
    def __init__(self, *, clock: Callable[[], datetime] | None = None, push_retry_delay: float = 0.5,
                 push_retries: int = 5, push_timeout: float = 5.0,
                 courier_script: list[tuple[float, str, int]] | None = None):
        """`courier_script`: (seconds after the subscription, scan text, state) played on every new
        subscription, so a demo parcel moves by itself."""
        self._clock = clock or (lambda: datetime.now(UTC))
        self.push_retry_delay = push_retry_delay
        self.push_retries = push_retries
        self.push_timeout = push_timeout
        self.courier_script = list(courier_script or [])
        self.faults = Faults()
        self.accounts: dict[str, Account] = {}
        self.parcels: dict[tuple[str, str], Parcel] = {}
        self.subscriptions: list[Subscription] = []
        self.calls: list[RecordedCall] = []
        self.pushes: list[RecordedPush] = []
        self.base_url: str | None = None
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._queue: asyncio.Queue[tuple[Subscription, str, int]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    # ---- the world -------------------------------------------------------------------------------
    def add_account(self, key: str, customer: str) -> Account:
        account = self.accounts[key] = Account(key, customer)
        return account

    def expire_account(self, key: str) -> None:
        self.accounts[key].expired = True

    def add_parcel(self, com: str, num: str, *, phone: str = "") -> Parcel:
        parcel = self.parcels.get((com, num))
        if parcel is None:
            parcel = self.parcels[(com, num)] = Parcel(com, num, phone)
        elif phone:
            parcel.phone = phone
        return parcel

    def scan(self, com: str, num: str, context: str, *, state: int = 0, area: str = "",
             at: datetime | None = None) -> Event:
        """A courier scan: the parcel's trace gains an event and every live subscription that can see it
        is pushed the whole trace (``shutdown`` once signed for)."""
        parcel = self.add_parcel(com, num)
        event = Event(at or self._clock(), context, state, area)
        parcel.events.insert(0, event)
        for sub in self.subscriptions:
            if sub.status == "polling" and (sub.com, sub.num) == (com, num) and self._sees(sub, parcel):
                status = "shutdown" if state == SIGNED else "polling"
                self._push(sub, status, "")
                if state == SIGNED:
                    sub.status = "shutdown"
        return event

    def check_aborts(self) -> int:
        """Kuaidi100 gives up on a subscription with no record 3 days after it was made, or with no change
        in 60 days, and says so with an ``abort`` push. Returns how many were aborted."""
        now, aborted = self._clock(), 0
        for sub in self.subscriptions:
            if sub.status != "polling":
                continue
            parcel = self.parcels.get((sub.com, sub.num))
            visible = parcel is not None and parcel.events and self._sees(sub, parcel)
            if not visible and now - sub.subscribed_at >= NO_RECORD_AFTER:
                message = "3天查询无记录"
            elif visible and now - parcel.events[0].at >= NO_CHANGE_AFTER:
                message = "60天无变化"
            else:
                continue
            sub.status = "abort"
            self._push(sub, "abort", message)
            aborted += 1
        return aborted

    @staticmethod
    def _sees(sub: Subscription, parcel: Parcel) -> bool:
        if sub.com not in PHONE_REQUIRED or not parcel.phone:
            return True
        return len(sub.phone) >= 4 and parcel.phone.endswith(sub.phone)

    # ---- pushes ----------------------------------------------------------------------------------
    def push_body(self, sub: Subscription, status: str, message: str) -> str:
        parcel = self.parcels.get((sub.com, sub.num)) or Parcel(sub.com, sub.num)
        events = parcel.events if self._sees(sub, parcel) else []
        state = events[0].state if events else 0
        body = {
            "status": status,
            "billstatus": "got" if status != "abort" else "",
            "message": message,
            "autoCheck": "0",
            "comOld": "",
            "comNew": "",
            "lastResult": {
                "message": "ok", "state": str(state), "status": "200", "condition": "F00",
                "ischeck": "1" if state == SIGNED else "0", "com": sub.com, "nu": sub.num,
                "data": [e.wire() for e in events],
            },
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    def _push(self, sub: Subscription, status: str, message: str) -> None:
        if self._queue is None:
            raise RuntimeError("the Kuaidi100 stand-in is not started")
        self._queue.put_nowait((sub, self.push_body(sub, status, message), 0))

    async def _push_loop(self) -> None:
        assert self._queue is not None
        while True:
            sub, param, attempt = await self._queue.get()
            try:
                while self.faults.push_down:
                    await asyncio.sleep(0.05)
                await self._deliver(sub, param, attempt)
            except Exception:  # a stand-in keeps serving whatever one push did
                log.exception("kuaidi100 stand-in: push failed")
            finally:
                self._queue.task_done()

    async def _deliver(self, sub: Subscription, param: str, attempt: int) -> None:
        assert self._session is not None
        form = {"param": param}
        sign = sign_push(param, sub.salt) if sub.salt else None
        if sign:
            form["sign"] = sign
        status, reply = 0, ""
        try:
            async with self._session.post(sub.callback_url, data=form) as resp:
                status, reply = resp.status, await resp.text()
        except (TimeoutError, OSError) as exc:
            reply = f"{type(exc).__name__}: {exc}"
        accepted = False
        with contextlib.suppress(ValueError, AttributeError):
            answer = json.loads(reply)
            accepted = status == 200 and answer.get("result") is True and str(answer.get("returnCode")) == "200"
        self.pushes.append(RecordedPush(sub.callback_url, param, sign, status, reply, accepted))
        if not accepted and attempt < self.push_retries:
            task = asyncio.get_running_loop().create_task(self._retry_later(sub, param, attempt + 1))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _play(self, com: str, num: str) -> None:
        started = 0.0
        for delay, context, state in self.courier_script:
            await asyncio.sleep(max(0.0, delay - started))
            started = delay
            self.scan(com, num, context, state=state)

    async def _retry_later(self, sub: Subscription, param: str, attempt: int) -> None:
        await asyncio.sleep(self.push_retry_delay)
        if self._queue is not None:
            self._queue.put_nowait((sub, param, attempt))

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued push (and retry due so far) is delivered."""
        async def drain() -> None:
            while True:
                assert self._queue is not None
                await self._queue.join()
                if not self._pending:
                    return
                await asyncio.gather(*list(self._pending), return_exceptions=True)
        await asyncio.wait_for(drain(), timeout)

    # ---- the API ---------------------------------------------------------------------------------
    async def _door(self, request: web.Request) -> web.Response | None:
        """Faults before anything is read: latency, the service away, injected return codes."""
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        if self.faults.down:
            return web.Response(status=502, text="<html><body>502 Bad Gateway</body></html>",
                                content_type="text/html")
        if self.faults.error_code and self.faults.error_count > 0:
            self.faults.error_count -= 1
            code = self.faults.error_code
            return self._answer(request.path, {}, {"result": False, "returnCode": code,
                                                   "message": MESSAGES.get(code, "服务器错误")})
        return None

    def _answer(self, path: str, form: dict[str, str], body: dict[str, Any]) -> web.Response:
        self.calls.append(RecordedCall(path, form, body))
        return web.json_response(body, dumps=lambda o: json.dumps(o, ensure_ascii=False))

    def _refuse(self, path: str, form: dict[str, str], code: str, message: str | None = None) -> web.Response:
        return self._answer(path, form, {"result": False, "returnCode": code,
                                         "message": message or MESSAGES[code]})

    async def _poll(self, request: web.Request) -> web.Response:
        faulted = await self._door(request)
        if faulted is not None:
            return faulted
        form = {k: str(v) for k, v in (await request.post()).items()}
        path = request.path
        if form.get("schema", "json") != "json":
            return self._refuse(path, form, "700")
        try:
            param = json.loads(form.get("param", ""))
            if not isinstance(param, dict):
                raise ValueError
        except ValueError:
            return self._refuse(path, form, "700")
        account = self.accounts.get(str(param.get("key") or ""))
        if account is None:
            return self._refuse(path, form, "600")
        if account.expired:
            return self._refuse(path, form, "601")
        extra = param.get("parameters") if isinstance(param.get("parameters"), dict) else {}
        number = str(param.get("number") or "")
        company = str(param.get("company") or "")
        callback = str(extra.get("callbackurl") or "")
        if not _NUMBER.fullmatch(number) or not re.match(r"https?://", callback):
            return self._refuse(path, form, "700")
        if not company:
            if str(extra.get("autoCom") or "") != "1":
                return self._refuse(path, form, "700")
            known = [com for com, num in self.parcels if num == number]
            if not known:
                return self._refuse(path, form, "702")
            company = known[0]
        if company not in COMPANIES:
            return self._refuse(path, form, "701")
        for sub in self.subscriptions:
            if (sub.key, sub.com, sub.num) == (account.key, company, number) and sub.status == "polling":
                return self._refuse(path, form, "501")
        sub = Subscription(account.key, company, number, callback, str(extra.get("salt") or ""),
                           str(extra.get("phone") or ""), self._clock())
        self.subscriptions.append(sub)
        if self.courier_script:
            task = asyncio.get_running_loop().create_task(self._play(company, number))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        parcel = self.parcels.get((company, number))
        if parcel is not None and parcel.events and self._sees(sub, parcel):
            # a parcel already moving is pushed its trace so far at once
            self._push(sub, "shutdown" if parcel.state == SIGNED else "polling", "")
            if parcel.state == SIGNED:
                sub.status = "shutdown"
        return self._answer(path, form, {"result": True, "returnCode": "200", "message": MESSAGES["200"]})

    async def _query(self, request: web.Request) -> web.Response:
        faulted = await self._door(request)
        if faulted is not None:
            return faulted
        form = {k: str(v) for k, v in (await request.post()).items()}
        path = request.path
        customer, param_text, sign = form.get("customer", ""), form.get("param", ""), form.get("sign", "")
        account = next((a for a in self.accounts.values() if a.customer == customer), None)
        if account is None or sign_query(param_text, account.key, customer) != sign.upper() or not sign:
            return self._refuse(path, form, "503", "验证签名失败")
        if account.expired:
            return self._refuse(path, form, "601", "POLL:KEY已过期或账户没有余额")
        try:
            param = json.loads(param_text)
            if not isinstance(param, dict):
                raise ValueError
        except ValueError:
            return self._refuse(path, form, "400", "数据不完整")
        com, num, phone = str(param.get("com") or ""), str(param.get("num") or ""), str(param.get("phone") or "")
        if com not in COMPANIES:
            return self._refuse(path, form, "400", "找不到对应公司")
        if not _NUMBER.fullmatch(num):
            return self._refuse(path, form, "400", "单号不正确")
        parcel = self.parcels.get((com, num))
        if parcel is not None and com in PHONE_REQUIRED and parcel.phone and not (
                len(phone) >= 4 and parcel.phone.endswith(phone)):
            return self._refuse(path, form, "408", "快递公司参数异常：验证码错误")
        if parcel is None or not parcel.events:
            return self._refuse(path, form, "500", "查询无结果，请隔段时间再查")
        data = [e.wire() for e in parcel.events]
        if str(param.get("order") or "desc") == "asc":
            data.reverse()
        state = parcel.state
        return self._answer(path, form, {
            "message": "ok", "nu": num, "ischeck": "1" if state == SIGNED else "0", "condition": "F00",
            "com": com, "status": "200", "state": str(state), "data": data})

    # ---- control API -----------------------------------------------------------------------------
    async def _ctl_accounts(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.add_account(str(body["key"]), str(body["customer"]))
        return web.json_response({"ok": True})

    async def _ctl_scans(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("phone"):
            self.add_parcel(body["com"], body["num"], phone=str(body["phone"]))
        self.scan(body["com"], body["num"], body.get("context", "快件已揽收"), state=int(body.get("state", 0)),
                  area=body.get("area", ""))
        return web.json_response({"ok": True})

    async def _ctl_subscriptions(self, request: web.Request) -> web.Response:
        return web.json_response([{**asdict(s), "subscribed_at": s.subscribed_at.isoformat(), "salt": bool(s.salt)}
                                  for s in self.subscriptions])

    async def _ctl_pushes(self, request: web.Request) -> web.Response:
        return web.json_response([asdict(p) for p in self.pushes])

    async def _ctl_faults(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.faults = Faults(**body)
        return web.json_response(asdict(self.faults))

    async def _ctl_aborts(self, request: web.Request) -> web.Response:
        return web.json_response({"aborted": self.check_aborts()})

    def make_app(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_post("/poll", self._poll)
        r.add_post("/poll/query.do", self._query)
        r.add_post("/__sandbox__/accounts", self._ctl_accounts)
        r.add_post("/__sandbox__/scans", self._ctl_scans)
        r.add_get("/__sandbox__/subscriptions", self._ctl_subscriptions)
        r.add_get("/__sandbox__/pushes", self._ctl_pushes)
        r.add_post("/__sandbox__/faults", self._ctl_faults)
        r.add_post("/__sandbox__/aborts", self._ctl_aborts)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._runner is not None:
            raise RuntimeError("the Kuaidi100 stand-in is already started")
        runner = web.AppRunner(self.make_app(), shutdown_timeout=1.0, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        self._session = ClientSession(timeout=ClientTimeout(total=self.push_timeout))
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._push_loop())
        self.base_url = f"http://{host}:{runner.addresses[0][1]}"
        return self.base_url

    async def stop(self) -> None:
        for task in [self._worker, *self._pending]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._worker, self._queue = None, None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Kuaidi100Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
