"""A faithful stand-in for the Ozon Seller API (there is no real sandbox), served over real HTTP.

Used by the tests, the demo and the benchmarks. It enforces the posting state machine, the payload
shapes and the rpcStatus error bodies of reference/ozon-seller-api.md, and can inject latency, 429s,
5xx, "Circle is open" and hanging requests. A JSON control API under ``/__sandbox__/`` lets another
process drive it. Run alone with ``python -m services.ozon.sandbox --port 8081``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import copy
import json
import logging
import random
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from . import sandbox_data as sd

log = logging.getLogger(__name__)

Json = dict[str, Any]

_dumps = partial(json.dumps, ensure_ascii=False)  # Ozon answers UTF-8 text, not \u escapes


def _json(data: Any, **kwargs: Any) -> web.Response:
    return web.json_response(data, dumps=_dumps, **kwargs)


REMOVED_PATHS = frozenset(
    {
        "/v3/posting/fbs/unfulfilled/list",
        "/v3/posting/fbs/list",
        "/v3/posting/fbs/ship",
        "/v2/fbs/posting/sent-by-seller",
        "/v2/posting/fbs/package-label",
        "/v1/posting/fbs/package-label/create",
        "/v2/posting/fbs/package-label/create",
        "/v1/posting/fbs/package-label/get",
        "/v1/warehouse/list",
    }
)

READ_ONLY_METHODS = (
    "/v1/roles",
    "/v2/warehouse/list",
    "/v4/posting/fbs/unfulfilled/list",
    "/v4/posting/fbs/list",
    "/v3/posting/fbs/get",
    "/v2/posting/fbs/package-label/get",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

RATE_LIMIT_NOMINAL = 50  # requests per second per Client-Id (reference §1.4)


@dataclass
class Faults:
    """Fault injection. Rates are independent probabilities per API call, drawn from the sandbox's own
    ``random.Random(seed)``. ``paths`` limits faults to those API paths (None: every API path)."""

    latency: float = 0.0
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    timeout_seconds: float = 30.0
    retry_after: int = 1
    circle_open_rate: float = 0.0
    paths: set[str] | None = None
    # a "timeout" normally hangs without touching state; True applies the call first, then hangs
    # (the client times out although Ozon did the work: the case idempotent retries must survive)
    timeout_after_processing: bool = False

    def applies_to(self, path: str) -> bool:
        return self.paths is None or path in self.paths

    def to_json(self) -> Json:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["paths"] = sorted(self.paths) if self.paths is not None else None
        return out


@dataclass
class RecordedCall:
    path: str
    client_id: str | None
    body: Any
    status: int
    timestamp: datetime

    def to_json(self) -> Json:
        return {
            "path": self.path,
            "client_id": self.client_id,
            "body": self.body,
            "status": self.status,
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
        }


@dataclass
class RecordedPush:
    url: str
    payload: Json
    status: int | None  # HTTP status answered by the receiver, None when the request failed
    error: str | None
    timestamp: datetime

    def to_json(self) -> Json:
        return {
            "url": self.url,
            "payload": self.payload,
            "status": self.status,
            "error": self.error,
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
        }


@dataclass
class _Posting:
    client_id: str
    data: Json
    last_changed: datetime
    previous_substatus: str = ""
    registration_due: datetime | None = None

    _dates: dict[str, tuple[Any, datetime | None]] = field(default_factory=dict)

    @property
    def number(self) -> str:
        return self.data["posting_number"]

    def date(self, key: str) -> datetime | None:
        """A timestamp field parsed once per value (the lists sort and filter on these)."""
        raw = self.data.get(key)
        cached = self._dates.get(key)
        if cached is not None and cached[0] == raw:
            return cached[1]
        try:
            value = sd.parse_dt(raw) if raw else None
        except ValueError:
            value = None
        self._dates[key] = (raw, value)
        return value

    @property
    def flow(self) -> str:
        return self.data.get("tpl_integration_type") or "non_integrated"


@dataclass
class _Seller:
    client_id: str
    api_key: str
    expires_at: datetime
    roles: list[str]
    warehouses: list[Json]
    rng: random.Random
    postings: dict[str, _Posting] = field(default_factory=dict)
    push_url: str | None = None


@dataclass
class _LabelTask:
    task_id: int
    client_id: str
    posting_numbers: list[str]
    created_at: datetime
    pdf: bytes | None = None


class ApiError(Exception):
    """An Ozon-style error answer: HTTP status plus rpcStatus body."""

    def __init__(self, http_status: int, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response(
            dumps=_dumps,
            data={"code": self.code, "message": self.message, "details": []},
            status=self.http_status,
            headers=self.headers,
        )


def _invalid(message: str) -> ApiError:
    return ApiError(400, 3, message)


def _not_found(message: str = "POSTING_NOT_FOUND") -> ApiError:
    return ApiError(404, 5, message)


def _int(value: Any, name: str) -> int:
    """proto-JSON int64: a number or a numeric string."""
    if isinstance(value, bool):
        raise _invalid(f"invalid value for {name}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise _invalid(f"invalid value for {name}: {value!r}")


def _obj(value: Any, name: str) -> Json:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(f"{name} must be an object")
    return value


def _str_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(f"{name} must be an array")
    return [str(v) for v in value]


def _dt(value: Any, name: str) -> datetime:
    try:
        return sd.parse_dt(value)
    except (ValueError, TypeError):
        raise _invalid(f"invalid value for {name}: {value!r}") from None


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: Any) -> int:
    if cursor in (None, ""):
        return 0
    if not isinstance(cursor, str):
        raise _invalid("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        offset = json.loads(raw)["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise _invalid("invalid cursor") from None
    if not isinstance(offset, int) or offset < 0:
        raise _invalid("invalid cursor")
    return offset


def _limit(body: Json) -> int:
    limit = body.get("limit")
    try:
        value = _int(limit, "limit") if limit is not None else 0
    except ApiError:
        value = 0
    if not 1 <= value <= 100:
        raise _invalid("invalid request: limit must be in range [1, 100]")
    return value


def _sort_desc(body: Json) -> bool:
    sort_dir = body.get("sort_dir") or body.get("dir") or "ASC"
    if not isinstance(sort_dir, str) or sort_dir.upper() not in ("ASC", "DESC"):
        raise _invalid(f"invalid value for sort_dir: {sort_dir!r}")
    return sort_dir.upper() == "DESC"


class OzonSandbox:
    """The Ozon Seller API stand-in. All state lives on the instance."""

    def __init__(
        self,
        *,
        seed: int = 7,
        label_delay: float = 2.0,
        registration_delay: float = 1.0,
        clock: Callable[[], datetime] | None = None,
        public_url: str | None = None,
        wrap_lists: bool = False,
        rate_limit: int | None = None,
        push_timeout: float = 5.0,
        max_calls: int | None = 200_000,
    ):
        self.seed = seed
        self.label_delay = label_delay
        self.registration_delay = registration_delay
        self._clock = clock or (lambda: datetime.now(UTC))
        self.public_url = public_url.rstrip("/") if public_url else None
        self.wrap_lists = wrap_lists
        self.rate_limit = rate_limit  # None: report Ratelimit-Remaining against 50 rps but never enforce
        self.push_timeout = push_timeout
        self.max_calls = max_calls  # oldest recorded calls are dropped past this (long benchmarks)
        self.faults = Faults()
        self.calls: list[RecordedCall] = []
        self.pushes: list[RecordedPush] = []
        self.base_url: str | None = None

        self._fault_rng = random.Random(seed)
        self._sellers: dict[str, _Seller] = {}
        self._postings: dict[str, _Posting] = {}
        self._awaiting_registration: set[str] = set()
        self._ship_failures: dict[str, int] = {}
        self._label_tasks: dict[int, _LabelTask] = {}
        self._next_task_id = 5819327210248
        self._windows: dict[str, deque[float]] = {}
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        self._push_queue: asyncio.Queue[tuple[str, Json]] | None = None
        self._push_task: asyncio.Task[None] | None = None
        self._push_session: ClientSession | None = None
        self._routes: dict[str, Callable[[_Seller, Json], Awaitable[Json] | Json]] = {
            "/v1/roles": self._api_roles,
            "/v2/warehouse/list": self._api_warehouses,
            "/v4/posting/fbs/unfulfilled/list": self._api_unfulfilled,
            "/v4/posting/fbs/list": self._api_list,
            "/v3/posting/fbs/get": self._api_get,
            "/v4/posting/fbs/ship": self._api_ship,
            "/v3/posting/fbs/package-label/create": self._api_label_create,
            "/v2/posting/fbs/package-label/get": self._api_label_get,
            "/v2/fbs/posting/tracking-number/set": self._api_tracking,
            "/v2/fbs/posting/delivering": self._api_delivering,
            "/v2/fbs/posting/last-mile": self._api_last_mile,
            "/v2/fbs/posting/delivered": self._api_delivered,
        }

    # ------------------------------------------------------------------------------------------------
    # clock and lazy time-driven transitions

    def now(self) -> datetime:
        return sd.utc(self._clock())

    def _tick(self) -> None:
        """Apply transitions that are due by the clock (aggregator registration)."""
        if not self._awaiting_registration:
            return
        now = self.now()
        for number in sorted(self._awaiting_registration):
            p = self._postings.get(number)
            if p is None or p.data["status"] != "awaiting_registration" or p.registration_due is None:
                self._awaiting_registration.discard(number)
                continue
            if p.registration_due <= now:
                self._awaiting_registration.discard(number)
                p.data["tracking_number"] = p.number
                self._packed_barcodes(p)
                self._set_state(p, "awaiting_deliver", when=p.registration_due)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            try:
                self._tick()
            except Exception:  # pragma: no cover - never let the ticker die
                log.exception("sandbox tick failed")

    # ------------------------------------------------------------------------------------------------
    # sellers and postings (Python API)

    def add_seller(
        self,
        client_id: str,
        api_key: str,
        *,
        expires_at: datetime | None = None,
        roles: list[str] | None = None,
        warehouses: int = 1,
    ) -> None:
        client_id = str(client_id)
        if not client_id.isdigit() or int(client_id) <= 0:
            raise ValueError("client_id must be a positive integer (Ozon sends it as Client-Id)")
        now = self.now()
        expiry = sd.utc(expires_at) if expires_at else now + timedelta(days=90)
        existing = self._sellers.get(client_id)
        if existing is not None:
            existing.api_key = api_key
            existing.expires_at = expiry
            if roles is not None:
                existing.roles = list(roles)
            return
        rng = random.Random(f"{self.seed}:{client_id}")
        self._sellers[client_id] = _Seller(
            client_id=client_id,
            api_key=api_key,
            expires_at=expiry,
            roles=list(roles) if roles is not None else ["Admin"],
            warehouses=sd.make_warehouses(rng, warehouses, now),
            rng=rng,
        )

    def _seller(self, client_id: str) -> _Seller:
        try:
            return self._sellers[str(client_id)]
        except KeyError:
            raise KeyError(f"unknown seller {client_id}") from None

    def _new_number(self, rng: random.Random) -> tuple[str, str]:
        while True:
            number, order_number = sd.new_posting_number(rng)
            if number not in self._postings:
                return number, order_number

    def _register(self, seller: _Seller, data: Json, *, push_new: bool = True) -> _Posting:
        p = _Posting(client_id=seller.client_id, data=data, last_changed=self.now())
        seller.postings[p.number] = p
        self._postings[p.number] = p
        if data["status"] == "awaiting_registration":
            p.registration_due = self.now() + timedelta(seconds=self.registration_delay)
            self._awaiting_registration.add(p.number)
        if push_new:
            self._emit(seller, self._new_posting_push(seller, p))
        return p

    def generate_orders(
        self,
        client_id: str,
        count: int,
        *,
        flows: Sequence[str] | None = None,
        due_in: timedelta | None = None,
    ) -> list[dict]:
        """Create ``count`` new awaiting_packaging postings (deterministic from the seed); returns copies."""
        seller = self._seller(client_id)
        flows = list(flows) if flows else list(sd.DEFAULT_FLOWS)
        for flow in flows:
            if flow not in sd.FLOWS:
                raise ValueError(f"unknown flow {flow!r}; expected one of {', '.join(sd.FLOWS)}")
        now = self.now()
        out = []
        for i in range(count):
            flow = flows[i % len(flows)]
            warehouse = seller.warehouses[i % len(seller.warehouses)]
            number, order_number = self._new_number(seller.rng)
            data = sd.generate_posting(
                seller.rng,
                now=now,
                warehouse=warehouse,
                flow=flow,
                due_in=due_in,
                posting_number=number,
                order_number=order_number,
            )
            self._register(seller, data)
            out.append(sd.clone(data))
        return out

    def add_posting(self, client_id: str, posting: dict) -> dict:
        """Add an explicit posting; missing fields are filled like the generator does. Returns a copy."""
        seller = self._seller(client_id)
        posting = sd.clone(posting)
        flow = posting.get("tpl_integration_type") or posting.get("integration_type_flow") or "aggregator"
        if flow not in sd.FLOWS:
            raise ValueError(f"unknown flow {flow!r}")
        number = posting.get("posting_number")
        if number is not None and number in self._postings:
            raise ValueError(f"posting {number} already exists")
        if number is None:
            number, order_number = self._new_number(seller.rng)
        else:
            order_number = number.rsplit("-", 1)[0] if number.count("-") >= 2 else number
        warehouse = seller.warehouses[0]
        wanted_wh = (posting.get("delivery_method") or {}).get("warehouse_id")
        for w in seller.warehouses:
            if wanted_wh is not None and w["warehouse_id"] == wanted_wh:
                warehouse = w
        due_in = None
        if posting.get("shipment_date"):
            due_in = sd.parse_dt(posting["shipment_date"]) - self.now().replace(microsecond=0)
        base = sd.generate_posting(
            seller.rng,
            now=self.now(),
            warehouse=warehouse,
            flow=flow,
            due_in=due_in,
            posting_number=number,
            order_number=order_number,
        )
        if "products" in posting:
            posting["products"] = [sd.fill_product(p, seller.rng) for p in posting["products"] or []]
            base["financial_data"] = sd.financial_data(posting["products"], base["analytics_data"]["city"])
        if isinstance(posting.get("delivery_method"), dict):
            method = dict(base["delivery_method"])
            method.update(posting["delivery_method"])
            posting["delivery_method"] = method
        base.update(posting)
        base["tpl_integration_type"] = flow
        base.setdefault("integration_type_flow", flow)
        if "substatus" not in posting:
            base["substatus"] = sd.DEFAULT_SUBSTATUS.get(base["status"], "")
        if "available_actions" not in posting:
            base["available_actions"] = sd.available_actions(flow, base["status"], base["substatus"])
        if "tariffication_steps" not in posting or "products" in posting:
            base["tariffication_steps"] = sd.tariffication_steps(
                base["products"], sd.parse_dt(base["shipment_date"])
            )
        p = self._register(seller, base)
        return sd.clone(p.data)

    def posting(self, client_id: str, posting_number: str) -> dict:
        """Current state of a posting (deep copy, v4 shape with every block), for assertions."""
        self._tick()
        p = self._seller(client_id).postings.get(posting_number)
        if p is None:
            raise KeyError(f"unknown posting {posting_number} for seller {client_id}")
        return self._snapshot(p)

    def _snapshot(self, p: _Posting) -> dict:
        data = sd.clone(p.data)
        data["tariffication"] = sd.tariffication_v4(data.get("tariffication_steps") or [], self.now())
        return data

    def postings(self, client_id: str) -> list[dict]:
        self._tick()
        return [self._snapshot(p) for p in self._seller(client_id).postings.values()]

    def cancel(self, client_id: str, posting_number: str, reason: str = "Покупатель отменил заказ") -> None:
        """Cancel a posting as the buyer would (emits TYPE_POSTING_CANCELLED)."""
        self._tick()
        seller = self._seller(client_id)
        p = seller.postings.get(posting_number)
        if p is None:
            raise KeyError(f"unknown posting {posting_number}")
        if p.data["status"] in ("cancelled", "delivered"):
            raise ValueError(f"posting {posting_number} is {p.data['status']}, it cannot be cancelled")
        old_state = sd.push_state(p.data["status"], p.data["substatus"])
        reason_id = 501 if "Покупатель" in reason else 352
        p.data["cancellation"] = {
            "cancel_reason_id": reason_id,
            "cancel_reason": reason,
            "cancellation_type": "client" if reason_id == 501 else "seller",
            "cancellation_initiator": "Покупатель" if reason_id == 501 else "Продавец",
            "cancelled_after_ship": p.data["status"] in sd.SHIPPED_STATUSES,
            "affect_cancellation_rating": False,
        }
        self._awaiting_registration.discard(posting_number)
        self._set_state(p, "cancelled", push=False)
        self._emit(
            seller,
            {
                "message_type": "TYPE_POSTING_CANCELLED",
                "posting_number": p.number,
                "products": [{"sku": x["sku"], "quantity": x["quantity"]} for x in p.data["products"]],
                "old_state": old_state,
                "new_state": "posting_canceled",
                "changed_state_date": sd.fmt_dt(p.last_changed),
                "reason": {"id": reason_id, "message": reason},
                "warehouse_id": p.data["delivery_method"]["warehouse_id"],
                "seller_id": int(seller.client_id),
            },
        )

    def set_status(
        self, client_id: str, posting_number: str, status: str, substatus: str | None = None
    ) -> None:
        """Move a posting as Ozon or the carrier would (e.g. an aggregator parcel to delivering/delivered)."""
        self._tick()
        p = self._seller(client_id).postings.get(posting_number)
        if p is None:
            raise KeyError(f"unknown posting {posting_number}")
        if status == "cancelled":
            self.cancel(client_id, posting_number)
            return
        if status == "delivering" and not p.data.get("delivering_date"):
            p.data["delivering_date"] = sd.fmt_dt(self.now())
        self._awaiting_registration.discard(posting_number)
        self._set_state(p, status, substatus)

    def fail_next_ship(self, posting_number: str, times: int = 1) -> None:
        """The next ``times`` ship calls answer 200 but leave the posting awaiting_packaging/ship_failed."""
        self._ship_failures[posting_number] = times

    def set_push_url(self, client_id: str, url: str | None) -> None:
        self._seller(client_id).push_url = url

    def calls_to(
        self, path: str, client_id: str | None = None, *, ok_only: bool = True
    ) -> list[RecordedCall]:
        return [
            c
            for c in self.calls
            if c.path == path
            and (client_id is None or c.client_id == str(client_id))
            and (not ok_only or c.status == 200)
        ]

    # ------------------------------------------------------------------------------------------------
    # state changes and pushes

    def _packed_barcodes(self, p: _Posting) -> None:
        digits = "".join(c for c in p.number if c.isdigit())
        p.data["barcodes"] = {"upper_barcode": f"%{digits}%", "lower_barcode": f"{p.data['order_id']}"}

    def _set_state(
        self,
        p: _Posting,
        status: str,
        substatus: str | None = None,
        *,
        when: datetime | None = None,
        push: bool = True,
    ) -> None:
        substatus = substatus or sd.DEFAULT_SUBSTATUS.get(status, "")
        p.previous_substatus = p.data.get("substatus") or ""
        p.data["status"] = status
        p.data["substatus"] = substatus
        p.data["available_actions"] = sd.available_actions(p.flow, status, substatus)
        p.last_changed = when or self.now()
        if push:
            seller = self._sellers[p.client_id]
            self._emit(
                seller,
                {
                    "message_type": "TYPE_STATE_CHANGED",
                    "posting_number": p.number,
                    "new_state": sd.push_state(status, substatus),
                    "changed_state_date": sd.fmt_dt(p.last_changed),
                    "warehouse_id": p.data["delivery_method"]["warehouse_id"],
                    "seller_id": int(seller.client_id),
                },
            )

    def _new_posting_push(self, seller: _Seller, p: _Posting) -> Json:
        d = p.data
        analytics = d.get("analytics_data") or {}
        return {
            "message_type": "TYPE_NEW_POSTING",
            "seller_id": int(seller.client_id),
            "posting_number": p.number,
            "products": [
                {"sku": x["sku"], "offer_id": x.get("offer_id", ""), "quantity": x["quantity"]}
                for x in d.get("products") or []
            ],
            "in_process_at": d.get("in_process_at"),
            "warehouse_id": d["delivery_method"]["warehouse_id"],
            "shipment_date": d.get("shipment_date"),
            "tpl_integration_type": d.get("tpl_integration_type"),
            "is_express": bool(d.get("is_express")),
            "tracking_number": d.get("tracking_number") or "",
            "delivery_date_begin": analytics.get("delivery_date_begin"),
            "delivery_date_end": analytics.get("delivery_date_end"),
        }

    def _emit(self, seller: _Seller, payload: Json) -> None:
        if not seller.push_url:
            return
        url = seller.push_url
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning("sandbox push to %s dropped: no running event loop", url)
            self.pushes.append(RecordedPush(url, payload, None, "no running event loop", self.now()))
            return
        if self._push_task is None or self._push_task.done() or self._push_task.get_loop() is not loop:
            self._push_queue = asyncio.Queue()
            self._push_task = loop.create_task(self._push_worker(self._push_queue))
        assert self._push_queue is not None
        self._push_queue.put_nowait((url, payload))

    async def _push_worker(self, queue: asyncio.Queue[tuple[str, Json]]) -> None:
        while True:
            url, payload = await queue.get()
            try:
                await self._send_push(url, payload)
            except Exception as exc:  # never raised to anyone: logged and recorded
                log.warning("sandbox push to %s failed: %r", url, exc)
            finally:
                queue.task_done()

    async def _send_push(self, url: str, payload: Json) -> None:
        if self._push_session is None or self._push_session.closed:
            self._push_session = ClientSession(timeout=ClientTimeout(total=self.push_timeout))
        status: int | None = None
        error: str | None = None
        try:
            async with self._push_session.post(url, json=payload) as resp:
                status = resp.status
                await resp.read()
                if status != 200:
                    error = f"HTTP {status}"
                    log.warning(
                        "sandbox push %s to %s answered HTTP %s", payload.get("message_type"), url, status
                    )
        except Exception as exc:
            error = repr(exc)
            log.warning("sandbox push %s to %s failed: %r", payload.get("message_type"), url, exc)
        self.pushes.append(RecordedPush(url, payload, status, error, self.now()))

    async def flush_pushes(self, timeout: float = 10.0) -> None:
        """Wait until every queued push has been delivered (or has failed)."""
        if self._push_queue is not None and self._push_task is not None and not self._push_task.done():
            await asyncio.wait_for(self._push_queue.join(), timeout)

    # ------------------------------------------------------------------------------------------------
    # HTTP plumbing

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        r = app.router
        r.add_post("/__sandbox__/sellers", self._ctl_sellers)
        r.add_post("/__sandbox__/orders", self._ctl_orders)
        r.add_post("/__sandbox__/postings", self._ctl_add_posting)
        r.add_get("/__sandbox__/postings/{client_id}/{posting_number}", self._ctl_get_posting)
        r.add_get("/__sandbox__/postings/{client_id}", self._ctl_list_postings)
        r.add_post("/__sandbox__/cancel", self._ctl_cancel)
        r.add_post("/__sandbox__/status", self._ctl_status)
        r.add_post("/__sandbox__/fail_next_ship", self._ctl_fail_next_ship)
        r.add_post("/__sandbox__/faults", self._ctl_faults)
        r.add_get("/__sandbox__/faults", self._ctl_get_faults)
        r.add_post("/__sandbox__/push_url", self._ctl_push_url)
        r.add_get("/__sandbox__/calls", self._ctl_calls)
        r.add_delete("/__sandbox__/calls", self._ctl_clear_calls)
        r.add_get("/__sandbox__/pushes", self._ctl_pushes)
        r.add_get("/__sandbox__/health", self._ctl_health)
        r.add_get("/labels/{name}", self._serve_label)
        r.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 picks a free port); returns the base URL."""
        if self._runner is not None:
            raise RuntimeError("sandbox already started")
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self.make_app(), shutdown_timeout=1.0, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_port = runner.addresses[0][1]
        shown_host = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown_host}:{bound_port}"
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()  # releases hanging "timeout" calls
        with contextlib.suppress(TimeoutError):
            await self.flush_pushes(timeout=1.0)
        for task in (self._ticker, self._push_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                    await task
        self._ticker = None
        self._push_task = None
        self._push_queue = None
        if self._push_session is not None:
            await self._push_session.close()
            self._push_session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OzonSandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _remaining(self, client_id: str | None) -> tuple[int, bool]:
        """Count this call in the client's 1 s window: (Ratelimit-Remaining, over the limit)."""
        limit = self.rate_limit or RATE_LIMIT_NOMINAL
        window = self._windows.setdefault(client_id or "", deque())
        t = time.monotonic()
        while window and t - window[0] >= 1.0:
            window.popleft()
        over = self.rate_limit is not None and len(window) >= self.rate_limit
        if not over:
            window.append(t)
        return max(0, limit - len(window)), over

    async def _hang(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        call = RecordedCall(path, request.headers.get("Client-Id"), None, 0, self.now())
        self.calls.append(call)
        if self.max_calls is not None and len(self.calls) > self.max_calls:
            del self.calls[: max(1, self.max_calls // 10)]
        raw = await request.read()
        body: Any = None
        body_error = False
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                body_error = True
                body = raw.decode("utf-8", "replace")
        call.body = body
        remaining = RATE_LIMIT_NOMINAL
        try:
            handler = self._routes.get(path)
            if handler is None:
                raise ApiError(404, 5, "method not found")
            if request.method != "POST":
                raise ApiError(405, 12, "method is not allowed")
            seller = self._authenticate(request, path)
            remaining, over = self._remaining(seller.client_id)
            if over:
                raise ApiError(
                    429,
                    8,
                    "You have reached request rate limit per second",
                    {"Retry-After": str(self.faults.retry_after)},
                )
            faults = self.faults
            hang_after = False
            if faults.applies_to(path):
                if faults.latency > 0:
                    await asyncio.sleep(faults.latency)
                fault = self._draw_fault(faults)
                if fault == "429":
                    raise ApiError(
                        429,
                        8,
                        "You have reached request rate limit per second",
                        {"Retry-After": str(faults.retry_after)},
                    )
                if fault == "500":
                    raise ApiError(500, 13, "Internal error")
                if fault == "circle":
                    raise ApiError(429, 8, "Circle is open")
                if fault == "timeout":
                    if not faults.timeout_after_processing:
                        call.status = 504
                        await self._hang(faults.timeout_seconds)
                        raise ApiError(504, 4, "Gateway Timeout")
                    hang_after = True
            if body_error:
                raise _invalid("invalid request payload: body is not valid JSON")
            if body is None:
                body = {}
            if not isinstance(body, dict):
                raise _invalid("invalid request payload: expected a JSON object")
            self._tick()
            result = handler(seller, body)
            if asyncio.iscoroutine(result):
                result = await result
            response = _json(result)
            if hang_after:
                call.status = 200
                await self._hang(faults.timeout_seconds)
        except ApiError as err:
            response = err.response()
        except Exception:
            log.exception("sandbox handler for %s crashed", path)
            response = ApiError(500, 13, "Internal error").response()
        response.headers["Ratelimit-Remaining"] = str(remaining)
        call.status = response.status
        return response

    def _draw_fault(self, faults: Faults) -> str | None:
        rng = self._fault_rng
        if faults.rate_429 > 0 and rng.random() < faults.rate_429:
            return "429"
        if faults.rate_500 > 0 and rng.random() < faults.rate_500:
            return "500"
        if faults.circle_open_rate > 0 and rng.random() < faults.circle_open_rate:
            return "circle"
        if faults.rate_timeout > 0 and rng.random() < faults.rate_timeout:
            return "timeout"
        return None

    def _authenticate(self, request: web.Request, path: str) -> _Seller:
        client_id = (request.headers.get("Client-Id") or "").strip()
        if not client_id.isdigit() or int(client_id) <= 0:
            raise _invalid("Client-Id header value should be positive integer")
        seller = self._sellers.get(str(int(client_id)))
        api_key = request.headers.get("Api-Key") or ""
        if seller is None or not api_key or api_key != seller.api_key:
            raise ApiError(404, 5, "Invalid Api-Key, please check the key and try again")
        if seller.expires_at <= self.now():
            raise ApiError(403, 7, "Api-key is deactivated, use another one or generate a new one")
        if path != "/v1/roles" and path not in self._allowed_methods(seller):
            raise ApiError(403, 7, "Api-Key is missing a required role for a method")
        return seller

    def _role_methods(self, role: str) -> list[str]:
        if role in ("Admin", "Posting FBS"):
            return sorted(self._routes)
        if role == "Admin read only":
            return list(READ_ONLY_METHODS)
        return ["/v1/roles"]

    def _allowed_methods(self, seller: _Seller) -> set[str]:
        allowed: set[str] = set()
        for role in seller.roles:
            allowed.update(self._role_methods(role))
        return allowed

    def _wrap(self, body: Json) -> Json:
        return {"result": body} if self.wrap_lists else body

    def _posting_of(self, seller: _Seller, number: Any) -> _Posting:
        if not isinstance(number, str) or not number:
            raise _invalid("posting_number is required")
        p = seller.postings.get(number)
        if p is None:
            raise _not_found()
        return p

    # ------------------------------------------------------------------------------------------------
    # API methods

    def _api_roles(self, seller: _Seller, body: Json) -> Json:
        return {
            "roles": [{"name": role, "methods": self._role_methods(role)} for role in seller.roles],
            "expires_at": sd.fmt_dt(seller.expires_at),
        }

    def _api_warehouses(self, seller: _Seller, body: Json) -> Json:
        wanted = {_int(x, "warehouse_ids") for x in body.get("warehouse_ids") or []}
        items = [
            sd.public_warehouse(w) for w in seller.warehouses if not wanted or w["warehouse_id"] in wanted
        ]
        return {"cursor": "", "has_next": False, "warehouses": items}

    def _render_v4(self, p: _Posting, with_: Json, now: datetime) -> Json:
        d = dict(p.data)
        for block in ("analytics_data", "financial_data", "barcodes", "legal_info"):
            if not with_.get(block):
                d[block] = None
        d["tariffication"] = sd.tariffication_v4(d.get("tariffication_steps") or [], now)
        return d

    def _common_filter(self, seller: _Seller, flt: Json) -> list[_Posting]:
        items = list(seller.postings.values())
        statuses = _str_list(flt.get("statuses"), "filter.statuses")
        if statuses:
            items = [p for p in items if p.data["status"] in statuses]
        for key, getter in (
            ("warehouse_ids", lambda p: p.data["delivery_method"].get("warehouse_id")),
            ("delivery_method_ids", lambda p: p.data["delivery_method"].get("id")),
            ("provider_ids", lambda p: p.data["delivery_method"].get("tpl_provider_id")),
        ):
            raw = flt.get(key)
            if raw:
                if not isinstance(raw, list) or len(raw) > 1000:
                    raise _invalid(f"invalid filter.{key}")
                ids = {_int(x, f"filter.{key}") for x in raw}
                items = [p for p in items if getter(p) in ids]
        changed = _obj(flt.get("last_changed_status_date"), "filter.last_changed_status_date")
        if changed.get("from"):
            since = _dt(changed["from"], "filter.last_changed_status_date.from")
            items = [p for p in items if p.last_changed >= since]
        if changed.get("to"):
            until = _dt(changed["to"], "filter.last_changed_status_date.to")
            items = [p for p in items if p.last_changed <= until]
        return items

    def _page(
        self, items: list[_Posting], body: Json, sort_key: Callable[[_Posting], Any]
    ) -> tuple[list[_Posting], str, bool]:
        limit = _limit(body)
        desc = _sort_desc(body)
        offset = _decode_cursor(body.get("cursor"))
        items.sort(key=lambda p: (sort_key(p), p.number), reverse=desc)
        page = items[offset : offset + limit]
        has_next = offset + limit < len(items)
        return page, _encode_cursor(offset + limit) if has_next else "", has_next

    @staticmethod
    def _window(flt: Json, lo: str, hi: str) -> tuple[datetime, datetime] | None:
        if flt.get(lo) in (None, "") and flt.get(hi) in (None, ""):
            return None
        if flt.get(lo) in (None, "") or flt.get(hi) in (None, ""):
            raise _invalid(f"filter.{lo} and filter.{hi} must both be specified")
        start, end = _dt(flt[lo], f"filter.{lo}"), _dt(flt[hi], f"filter.{hi}")
        if end - start > timedelta(days=366):
            raise _invalid("PERIOD_IS_TOO_LONG")
        return start, end

    def _api_unfulfilled(self, seller: _Seller, body: Json) -> Json:
        flt = _obj(body.get("filter"), "filter")
        _limit(body)
        cutoff = self._window(flt, "cutoff_from", "cutoff_to")
        delivering = self._window(flt, "delivering_date_from", "delivering_date_to")
        if cutoff is None and delivering is None:
            raise _invalid("either filter.cutoff or filter.delivering_date must be specified")
        if cutoff is not None and delivering is not None:
            raise _invalid("filter.cutoff and filter.delivering_date can't be specified together")
        items = [p for p in self._common_filter(seller, flt) if p.data["status"] in sd.UNFULFILLED_STATUSES]
        if cutoff is not None:
            lo, hi = cutoff
            items = [p for p in items if (d := p.date("shipment_date")) is not None and lo <= d <= hi]
        else:
            assert delivering is not None
            lo, hi = delivering
            items = [p for p in items if (d := p.date("delivering_date")) is not None and lo <= d <= hi]
        total = len(items)
        page, cursor, has_next = self._page(items, body, lambda p: p.date("shipment_date") or _EPOCH)
        now = self.now()
        with_ = _obj(body.get("with"), "with")
        return self._wrap(
            {
                "count": total,
                "cursor": cursor,
                "has_next": has_next,
                "postings": [self._render_v4(p, with_, now) for p in page],
            }
        )

    def _api_list(self, seller: _Seller, body: Json) -> Json:
        flt = _obj(body.get("filter"), "filter")
        _limit(body)
        if not flt.get("since") or not flt.get("to"):
            raise _invalid("filter.since and filter.to must be specified")
        since, to = _dt(flt["since"], "filter.since"), _dt(flt["to"], "filter.to")
        if to - since > timedelta(days=366):
            raise _invalid("PERIOD_IS_TOO_LONG")
        items = [
            p
            for p in self._common_filter(seller, flt)
            if (d := p.date("in_process_at")) is not None and since <= d <= to
        ]
        order_numbers = _str_list(flt.get("order_numbers"), "filter.order_numbers")
        if len(order_numbers) > 100:
            raise _invalid("filter.order_numbers: at most 100 items")
        if order_numbers:
            items = [p for p in items if p.data.get("order_number") in order_numbers]
        if flt.get("order_id") not in (None, "", 0, "0"):
            order_id = _int(flt["order_id"], "filter.order_id")
            items = [p for p in items if p.data.get("order_id") == order_id]
        flows = _str_list(flt.get("integration_type_flow"), "filter.integration_type_flow")
        if flows:
            items = [p for p in items if p.data.get("integration_type_flow") in flows]
        page, cursor, has_next = self._page(items, body, lambda p: p.date("in_process_at") or _EPOCH)
        now = self.now()
        with_ = _obj(body.get("with"), "with")
        return self._wrap(
            {
                "cursor": cursor,
                "has_next": has_next,
                "postings": [self._render_v4(p, with_, now) for p in page],
            }
        )

    def _api_get(self, seller: _Seller, body: Json) -> Json:
        p = self._posting_of(seller, body.get("posting_number"))
        related = sorted(
            n
            for n, q in seller.postings.items()
            if n != p.number and q.data.get("order_number") == p.data.get("order_number")
        )
        result = sd.to_v3(
            p.data,
            with_=_obj(body.get("with"), "with"),
            now=self.now(),
            previous_substatus=p.previous_substatus,
            related=related,
        )
        return {"result": result}

    def _api_ship(self, seller: _Seller, body: Json) -> Json:
        p = self._posting_of(seller, body.get("posting_number"))
        status = p.data["status"]
        if status == "cancelled":
            raise _invalid("POSTING_ALREADY_CANCELLED")
        if status in sd.SHIPPED_STATUSES:
            raise _invalid("POSTING_ALREADY_SHIPPED")
        if status != "awaiting_packaging":
            raise _invalid("HAS_INCORRECT_STATUS")
        packages = body.get("packages")
        if not isinstance(packages, list) or not packages:
            raise _invalid("packages: value must contain at least 1 item(s)")
        ordered = {int(x["sku"]): x for x in p.data["products"]}
        wanted: dict[int, int] = {}
        for x in p.data["products"]:
            wanted[int(x["sku"])] = wanted.get(int(x["sku"]), 0) + int(x.get("quantity") or 0)
        got: dict[int, int] = {}
        parcels: list[dict[int, int]] = []
        for pkg in packages:
            products = pkg.get("products") if isinstance(pkg, dict) else None
            if not isinstance(products, list) or not products:
                raise _invalid("packages.products: value must contain at least 1 item(s)")
            parcel: dict[int, int] = {}
            for line in products:
                if not isinstance(line, dict):
                    raise _invalid("invalid packages.products item")
                try:
                    sku = _int(line.get("product_id"), "product_id")
                except ApiError:
                    raise _invalid("UNKNOWN_PRODUCT_DEFINED") from None
                if sku not in ordered:
                    raise _invalid("UNKNOWN_PRODUCT_DEFINED")
                try:
                    qty = _int(line.get("quantity"), "quantity")
                except ApiError:
                    raise _invalid("HAS_INCORRECT_PRODUCT_QUANTITY") from None
                if qty <= 0:
                    raise _invalid("HAS_INCORRECT_PRODUCT_QUANTITY")
                parcel[sku] = parcel.get(sku, 0) + qty
                got[sku] = got.get(sku, 0) + qty
            parcels.append(parcel)
        if got != wanted:
            raise _invalid("HAS_INCORRECT_PRODUCT_QUANTITY")

        failures = self._ship_failures.get(p.number, 0)
        if failures > 0:
            self._ship_failures[p.number] = failures - 1
            p.previous_substatus = p.data["substatus"]
            p.data["substatus"] = "ship_failed"
            p.data["available_actions"] = sd.available_actions(p.flow, "awaiting_packaging", "ship_failed")
            return {"result": [p.number], "additional_data": [self._additional_data(p)]}

        shipped = [p]
        if len(parcels) > 1:
            shipped += self._split(seller, p, parcels)
        for q in shipped:
            self._packed(q)
        return {
            "result": [q.number for q in shipped],
            "additional_data": [self._additional_data(q) for q in shipped],
        }

    def _split(self, seller: _Seller, parent: _Posting, parcels: list[dict[int, int]]) -> list[_Posting]:
        """Ozon splits a multi-parcel ship into postings -1, -2, …; the first parcel keeps the number."""
        order_number = parent.data["order_number"]
        used = [
            int(n.rsplit("-", 1)[1])
            for n in self._postings
            if n.startswith(order_number + "-") and n.rsplit("-", 1)[1].isdigit()
        ]
        next_index = max(used, default=1) + 1
        lines = {int(x["sku"]): x for x in parent.data["products"]}

        def products_for(parcel: dict[int, int]) -> list[Json]:
            return [dict(lines[sku], quantity=qty) for sku, qty in parcel.items()]

        def fin_for(data: Json, parcel: dict[int, int]) -> None:
            fin = data.get("financial_data")
            if fin:
                fin["products"] = [
                    dict(x, quantity=parcel[x["product_id"]])
                    for x in fin.get("products") or []
                    if x.get("product_id") in parcel
                ]

        children = []
        for parcel in parcels[1:]:
            data = sd.clone(parent.data)
            data["posting_number"] = f"{order_number}-{next_index}"
            data["parent_posting_number"] = parent.number
            data["products"] = products_for(parcel)
            fin_for(data, parcel)
            next_index += 1
            child = self._register(seller, data, push_new=False)
            child.last_changed = parent.last_changed
            children.append(child)
        parent.data["products"] = products_for(parcels[0])
        fin_for(parent.data, parcels[0])
        return children

    def _packed(self, p: _Posting) -> None:
        if p.flow == "aggregator":
            p.registration_due = self.now() + timedelta(seconds=self.registration_delay)
            self._awaiting_registration.add(p.number)
            self._set_state(p, "awaiting_registration")
            self._tick()  # a zero registration_delay registers at once
        else:
            self._packed_barcodes(p)
            self._set_state(p, "awaiting_deliver")

    @staticmethod
    def _additional_data(p: _Posting) -> Json:
        products = []
        for x in p.data["products"]:
            amount, currency = sd._v3_money(x.get("price"))
            products.append(
                {
                    "currency_code": currency,
                    "mandatory_mark": [],
                    "name": x.get("name", ""),
                    "offer_id": x.get("offer_id", ""),
                    "price": sd.money(amount) if amount else "",
                    "quantity": x["quantity"],
                    "sku": x["sku"],
                }
            )
        return {"posting_number": p.number, "products": products}

    def _api_label_create(self, seller: _Seller, body: Json) -> Json:
        numbers = body.get("posting_numbers")
        if not isinstance(numbers, list) or not 1 <= len(numbers) <= 1000:
            raise _invalid("posting_numbers: value must contain between 1 and 1000 items")
        numbers = [str(n) for n in numbers]
        not_ready = []
        for n in numbers:
            p = seller.postings.get(n)
            if p is not None and p.data["status"] == "delivered":
                raise _invalid("label not allowed for delivered postings")
            if p is None or p.data["status"] not in sd.LABEL_STATUSES:
                not_ready.append(n)
        if not_ready:
            raise _invalid("The next postings aren't ready")
        task_id = self._next_task_id
        self._next_task_id += 1
        self._label_tasks[task_id] = _LabelTask(task_id, seller.client_id, numbers, self.now())
        return {"tasks": [{"task_id": task_id, "task_type": "big_label"}]}

    def _task_done(self, task: _LabelTask) -> bool:
        return self.now() >= task.created_at + timedelta(seconds=self.label_delay)

    def _api_label_get(self, seller: _Seller, body: Json) -> Json:
        task_id = _int(body.get("task_id"), "task_id")
        task = self._label_tasks.get(task_id)
        if task is None or task.client_id != seller.client_id:
            raise _not_found("TASK_NOT_FOUND")
        done = self._task_done(task)
        base = self.public_url or self.base_url or ""
        return {
            "status": {
                "code": "completed" if done else "pending",
                "postings_count": len(task.posting_numbers),
                "printed_postings_count": len(task.posting_numbers) if done else 0,
                "unprinted_postings": [],
            },
            "file_url": f"{base}/labels/{task_id}.pdf" if done else "",
            "error": None,
        }

    async def _serve_label(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        stem = name[:-4] if name.endswith(".pdf") else ""
        task = self._label_tasks.get(int(stem)) if stem.isdigit() else None
        if task is None or not self._task_done(task):
            return web.Response(status=404, text="label not found")
        if task.pdf is None:
            labels = []
            for n in task.posting_numbers:
                p = self._postings.get(n)
                d = p.data if p is not None else {"posting_number": n}
                labels.append(
                    {
                        "task_id": task.task_id,
                        "posting_number": n,
                        "order_number": d.get("order_number", ""),
                        "tracking_number": d.get("tracking_number", ""),
                        "delivery_method": (d.get("delivery_method") or {}).get("name", ""),
                        "warehouse": (d.get("delivery_method") or {}).get("warehouse", ""),
                        "items": [
                            (x.get("offer_id", ""), x.get("quantity", 0)) for x in d.get("products") or []
                        ],
                    }
                )
            task.pdf = sd.render_label_pdf(labels)
        return web.Response(
            body=task.pdf,
            content_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{task.task_id}.pdf"'},
        )

    @staticmethod
    def _item(number: str, ok: bool, error: str = "") -> Json:
        return {"posting_number": number, "result": ok, "error": error}

    def _api_tracking(self, seller: _Seller, body: Json) -> Json:
        items = body.get("tracking_numbers")
        if not isinstance(items, list) or not items:
            raise _invalid("tracking_numbers: value must contain at least 1 item(s)")
        if len(items) > 20:
            raise _invalid("tracking_numbers: value must contain at most 20 item(s)")
        out = []
        for item in items:
            if not isinstance(item, dict):
                raise _invalid("invalid tracking_numbers item")
            number = str(item.get("posting_number") or "")
            tracking = str(item.get("tracking_number") or "").strip()
            p = seller.postings.get(number)
            if p is None:
                out.append(self._item(number, False, "POSTING_NOT_FOUND"))
            elif p.flow != "non_integrated":
                out.append(self._item(number, False, "HAS_INCORRECT_TPL_INTEGRATION_TYPE"))
            elif p.data["status"] not in ("awaiting_deliver", "delivering"):
                out.append(self._item(number, False, "HAS_INCORRECT_STATUS"))
            elif not tracking:
                out.append(self._item(number, False, "INVALID_TRACKING_NUMBER"))
            else:
                p.data["tracking_number"] = tracking
                out.append(self._item(number, True))
        return {"result": out}

    def _move(self, seller: _Seller, body: Json, apply: Callable[[_Posting], str | None]) -> Json:
        numbers = body.get("posting_number")
        if isinstance(numbers, str):
            numbers = [numbers]
        if not isinstance(numbers, list) or not numbers:
            raise _invalid("posting_number: value must contain at least 1 item(s)")
        if len(numbers) > 1000:
            raise _invalid("posting_number: value must contain at most 1000 item(s)")
        out = []
        for number in (str(n) for n in numbers):
            p = seller.postings.get(number)
            if p is None:
                out.append(self._item(number, False, "POSTING_NOT_FOUND"))
            elif p.flow != "non_integrated":
                out.append(self._item(number, False, "HAS_INCORRECT_TPL_INTEGRATION_TYPE"))
            else:
                error = apply(p)
                out.append(self._item(number, error is None, error or ""))
        return {"result": out}

    def _api_delivering(self, seller: _Seller, body: Json) -> Json:
        def apply(p: _Posting) -> str | None:
            if p.data["status"] != "awaiting_deliver":
                return "TRANSITION_IS_NOT_POSSIBLE"
            p.data["delivering_date"] = sd.fmt_dt(self.now())
            self._set_state(p, "delivering")
            return None

        return self._move(seller, body, apply)

    def _api_last_mile(self, seller: _Seller, body: Json) -> Json:
        def apply(p: _Posting) -> str | None:
            if p.data["status"] != "delivering" or p.data["substatus"] == sd.LAST_MILE_SUBSTATUS:
                return "TRANSITION_IS_NOT_POSSIBLE"
            self._set_state(p, "delivering", sd.LAST_MILE_SUBSTATUS)
            return None

        return self._move(seller, body, apply)

    def _api_delivered(self, seller: _Seller, body: Json) -> Json:
        def apply(p: _Posting) -> str | None:
            if p.data["status"] != "delivering":
                return "TRANSITION_IS_NOT_POSSIBLE"
            self._set_state(p, "delivered")
            return None

        return self._move(seller, body, apply)

    # ------------------------------------------------------------------------------------------------
    # control API (/__sandbox__/…)

    @staticmethod
    async def _ctl_body(request: web.Request) -> Json:
        try:
            body = await request.json() if (await request.read()).strip() else {}
        except ValueError:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "body is not valid JSON"}), content_type="application/json"
            ) from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "expected a JSON object"}), content_type="application/json"
            )
        return body

    @staticmethod
    def _ctl_error(status: int, message: str) -> web.Response:
        return _json({"error": message}, status=status)

    async def _ctl_call(self, fn: Callable[[], Any]) -> web.Response:
        try:
            return _json(fn())
        except KeyError as exc:
            return self._ctl_error(404, str(exc.args[0] if exc.args else exc))
        except (ValueError, TypeError) as exc:
            return self._ctl_error(400, str(exc))

    async def _ctl_sellers(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)

        def run() -> Json:
            expires = sd.parse_dt(body["expires_at"]) if body.get("expires_at") else None
            self.add_seller(
                str(body["client_id"]),
                str(body["api_key"]),
                expires_at=expires,
                roles=body.get("roles"),
                warehouses=int(body.get("warehouses") or 1),
            )
            seller = self._sellers[str(body["client_id"])]
            return {
                "client_id": seller.client_id,
                "expires_at": sd.fmt_dt(seller.expires_at),
                "roles": seller.roles,
                "warehouses": [sd.public_warehouse(w) for w in seller.warehouses],
            }

        if "client_id" not in body or "api_key" not in body:
            return self._ctl_error(400, "client_id and api_key are required")
        return await self._ctl_call(run)

    async def _ctl_orders(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)

        def run() -> list[Json]:
            due = body.get("due_in_seconds")
            return self.generate_orders(
                str(body["client_id"]),
                int(body.get("count") or 1),
                flows=body.get("flows"),
                due_in=timedelta(seconds=float(due)) if due is not None else None,
            )

        return await self._ctl_call(run)

    async def _ctl_add_posting(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        return await self._ctl_call(
            lambda: self.add_posting(str(body["client_id"]), body.get("posting") or {})
        )

    async def _ctl_get_posting(self, request: web.Request) -> web.Response:
        info = request.match_info
        return await self._ctl_call(lambda: self.posting(info["client_id"], info["posting_number"]))

    async def _ctl_list_postings(self, request: web.Request) -> web.Response:
        return await self._ctl_call(lambda: self.postings(request.match_info["client_id"]))

    async def _ctl_cancel(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)

        def run() -> Json:
            args = [str(body["client_id"]), str(body["posting_number"])]
            if body.get("reason"):
                args.append(str(body["reason"]))
            self.cancel(*args)
            return self.posting(args[0], args[1])

        return await self._ctl_call(run)

    async def _ctl_status(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)

        def run() -> Json:
            cid, number = str(body["client_id"]), str(body["posting_number"])
            self.set_status(cid, number, str(body["status"]), body.get("substatus"))
            return self.posting(cid, number)

        return await self._ctl_call(run)

    async def _ctl_fail_next_ship(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)

        def run() -> Json:
            self.fail_next_ship(str(body["posting_number"]), int(body.get("times", 1)))
            return {"ok": True}

        return await self._ctl_call(run)

    async def _ctl_faults(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        known = {f.name: f for f in fields(Faults)}
        unknown = set(body) - set(known) - {"reset"}
        if unknown:
            return self._ctl_error(400, f"unknown fault fields: {', '.join(sorted(unknown))}")
        faults = Faults() if body.get("reset") else copy.copy(self.faults)
        try:
            for name, value in body.items():
                if name == "reset":
                    continue
                if name == "paths":
                    faults.paths = set(value) if value is not None else None
                elif name == "timeout_after_processing":
                    faults.timeout_after_processing = bool(value)
                elif name == "retry_after":
                    faults.retry_after = int(value)
                else:
                    setattr(faults, name, float(value))
        except (TypeError, ValueError) as exc:
            return self._ctl_error(400, str(exc))
        self.faults = faults
        return _json(faults.to_json())

    async def _ctl_get_faults(self, request: web.Request) -> web.Response:
        return _json(self.faults.to_json())

    async def _ctl_push_url(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)

        def run() -> Json:
            self.set_push_url(str(body["client_id"]), body.get("url") or None)
            return {"ok": True}

        return await self._ctl_call(run)

    async def _ctl_calls(self, request: web.Request) -> web.Response:
        q = request.query
        ok_only = q.get("ok_only", "false").lower() in ("1", "true", "yes")
        calls = self.calls
        if q.get("path"):
            calls = self.calls_to(q["path"], q.get("client_id"), ok_only=ok_only)
        else:
            calls = [
                c
                for c in calls
                if (not q.get("client_id") or c.client_id == q["client_id"])
                and (not ok_only or c.status == 200)
            ]
        return _json([c.to_json() for c in calls])

    async def _ctl_clear_calls(self, request: web.Request) -> web.Response:
        self.calls.clear()
        return _json({"ok": True})

    async def _ctl_pushes(self, request: web.Request) -> web.Response:
        return _json([p.to_json() for p in self.pushes])

    async def _ctl_health(self, request: web.Request) -> web.Response:
        return web.json_response(
            dumps=_dumps, data={"ok": True, "sellers": sorted(self._sellers), "postings": len(self._postings)}
        )


# ----------------------------------------------------------------------------------------------------
# standalone server


async def serve(
    host: str = "127.0.0.1",
    port: int = 8081,
    seed: int = 7,
    client_id: str = "100500",
    api_key: str = "demo-key",
    orders: int = 5,
    label_delay: float = 2.0,
) -> None:
    """Run a sandbox with one seller and ``orders`` new postings until cancelled (Ctrl+C)."""
    sandbox = OzonSandbox(seed=seed, label_delay=label_delay)
    sandbox.add_seller(str(client_id), api_key)
    if orders:
        sandbox.generate_orders(str(client_id), orders)
    url = await sandbox.start(host, port)
    print(
        f"Ozon sandbox on {url}  (Client-Id {client_id}, Api-Key {api_key}, {orders} new postings; "
        f"control API under {url}/__sandbox__/)",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await sandbox.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.ozon.sandbox", description="Ozon Seller API sandbox"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--client-id", default="100500")
    parser.add_argument("--api-key", default="demo-key")
    parser.add_argument("--orders", type=int, default=5)
    parser.add_argument("--label-delay", type=float, default=2.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run() -> None:
        task = asyncio.ensure_future(
            serve(
                args.host, args.port, args.seed, args.client_id, args.api_key, args.orders, args.label_delay
            )
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # also when SIGINT was inherited as ignored (a background job of a script)
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
