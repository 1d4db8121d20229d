"""The Seller API's door: routing, authentication by Client-Id/Api-Key and roles, the per-second rate
limit, injected faults, and Ozon's rpcStatus error bodies (reference §1)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from aiohttp import web

from .wire import Json, _dumps, _json, parse_dt
from .world import _Posting, _Seller

log = logging.getLogger(__name__)


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
        return parse_dt(value)
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


class Api:
    """Dispatch of /v*/… requests to the `_api_*` methods (state lives on `OzonSandbox`)."""

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
