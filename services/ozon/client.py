"""Async client for the Ozon Seller API methods the shipping desk uses.

All HTTP goes through ``OzonClient._call``: it applies the shared rate limiter, retries what is worth
retrying (429, 5xx, ``Circle is open``, timeouts, dropped connections) with exponential backoff and
jitter, never retries other 4xx (Ozon would only repeat the business error), and turns failures into
the typed errors of ``services.ozon.errors``. The endpoint methods above it only build request bodies
and parse responses defensively, because Ozon's payloads drift (see ``models``).

Why one file of ~650 lines: it is one class whose methods mirror Ozon's endpoints one to one, each a few
lines over the shared ``_call``; split by endpoint family they would each need the loop's privates.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp

from .errors import (
    OzonError,
    OzonRateLimited,
    OzonRequestError,
    OzonUnavailable,
    error_from_response,
)
from .limiter import RateLimits
from .models import (
    CancellationRequest,
    ErrorIndex,
    IndexCharge,
    LabelStatus,
    LabelTask,
    MoveResult,
    PickLine,
    PickPage,
    Posting,
    PostingPage,
    RoleInfo,
    StockResult,
    Warehouse,
    WarehouseStock,
    unwrap_result,
)

__all__ = ["DEFAULT_RETRY", "OzonClient", "RetryPolicy"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[Any]]

UNFULFILLED_LIST = "/v4/posting/fbs/unfulfilled/list"
POSTING_LIST = "/v4/posting/fbs/list"
POSTING_GET = "/v3/posting/fbs/get"
SHIP = "/v4/posting/fbs/ship"
LABEL_CREATE = "/v3/posting/fbs/package-label/create"
LABEL_GET = "/v2/posting/fbs/package-label/get"
TRACKING_SET = "/v2/fbs/posting/tracking-number/set"
MOVE_DELIVERING = "/v2/fbs/posting/delivering"
MOVE_LAST_MILE = "/v2/fbs/posting/last-mile"
MOVE_DELIVERED = "/v2/fbs/posting/delivered"
ROLES = "/v1/roles"
WAREHOUSES = "/v2/warehouse/list"
PICK_LIST = "/v1/assembly/fbs/product/list"
CANCELLATION_LIST = "/v2/conditional-cancellation/list"
CANCELLATION_APPROVE = "/v2/conditional-cancellation/approve"
CANCELLATION_REJECT = "/v2/conditional-cancellation/reject"
CANCELLATION_PAGE = 500  # the list's maximum limit
INDEX_INFO = "/v1/rating/index/fbs/info"
INDEX_POSTINGS = "/v1/rating/index/fbs/posting/list"
STOCKS_READ = "/v2/product/info/stocks-by-warehouse/fbs"
STOCKS_SET = "/v2/products/stocks"
STOCKS_READ_LIMIT = 1000
STOCK_PAIRS_PER_CALL = 100  # Ozon: at most 100 product-warehouse pairs per /v2/products/stocks

PAGE_LIMIT = 100  # v4 lists accept 1..100
TRACKING_BATCH = 20  # tracking-number/set takes at most 20 pairs per call
LABEL_BATCH = 1000  # package-label/create takes 1..1000 postings
MOVE_BATCH = 100
ORDER_NUMBERS_BATCH = 100  # /v4/posting/fbs/list filter.order_numbers max
WAREHOUSE_PAGE = 100

# The list methods reject a request without a cutoff window, so "everything open" needs a wide one.
UNFULFILLED_LOOKBACK = timedelta(days=90)
UNFULFILLED_LOOKAHEAD = timedelta(days=180)

AWAITING_PACKAGING = "awaiting_packaging"
SHIP_FAILED = "ship_failed"
ALREADY_SHIPPED = "POSTING_ALREADY_SHIPPED"
SHIP_NOT_CONFIRMED = "SHIP_NOT_CONFIRMED"
FIRST_CONFIRM_LOOK = 0.3  # seconds after ship before the first look at the posting


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request. ``timeout`` bounds each attempt (connect to last byte).

    ``circuit_delay`` is the first backoff after ``Circle is open``: Ozon then blocks the method for
    minutes, so hammering it at the 5xx pace only prolongs the block.
    """

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    timeout: float = 20.0
    circuit_delay: float = 10.0
    # told of each retry: (API path, the error that caused it); the service counts them in its metrics
    on_retry: Callable[[str, OzonError], None] | None = field(default=None, compare=False, repr=False)

    def backoff(self, attempt: int, *, circuit: bool = False) -> float:
        """Exponential backoff for the ``attempt``-th failure with "equal jitter" (50-100 %).

        Jitter spreads the retries of many sellers' workers that failed together.
        """
        base = self.circuit_delay if circuit else self.base_delay
        delay = min(self.max_delay, base * 2 ** max(0, attempt - 1))
        return delay * (0.5 + random.random() / 2)


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _rfc3339(moment: datetime) -> str:
    """UTC RFC 3339 with ``Z``, the form Ozon documents; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _chunks(items: Sequence[T], size: int) -> Iterable[list[T]]:
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _list_body(cursor: str, limit: int, flt: dict[str, Any]) -> dict[str, Any]:
    return {"cursor": cursor, "limit": max(1, min(PAGE_LIMIT, limit)), "sort_dir": "ASC", "filter": flt,
            "with": _list_with()}


def _list_with() -> dict[str, bool]:
    """Extra blocks for list requests: what the alert needs (region, barcodes, prices)."""
    return {"analytics_data": True, "barcodes": True, "financial_data": True, "legal_info": False}


def _left_packaging(posting: Posting) -> bool:
    return bool(posting.status) and posting.status != AWAITING_PACKAGING and posting.substatus != SHIP_FAILED


def _move_body(cancellation_id: int, comment: str) -> dict[str, Any]:
    body: dict[str, Any] = {"cancellation_id": cancellation_id}
    if comment:
        body["comment"] = comment
    return body


def _move_results(data: dict[str, Any]) -> list[MoveResult]:
    payload = unwrap_result(data)
    if isinstance(payload, dict):
        payload = payload.get("result") or payload.get("results") or []
    if not isinstance(payload, list):
        return []
    return [MoveResult.model_validate(item) for item in payload if isinstance(item, dict)]


class OzonClient:
    """One seller's view of the Seller API.

    Pass the application's shared ``RateLimits`` so every client of a Client-Id draws from the same
    buckets; without one the client gets a private registry (fine for tools and tests).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        client_id: str,
        api_key: str,
        limits: RateLimits | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._origin = self._origin_of(self._base_url)
        self._client_id = str(client_id)
        self._api_key = api_key
        self._limits = limits if limits is not None else RateLimits(sleep=sleep)
        self._retry = retry
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"OzonClient(base_url={self._base_url!r}, client_id={self._client_id!r})"

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def base_url(self) -> str:
        return self._base_url

    # ----------------------------------------------------------------------- transport

    async def request(self, path: str, body: dict[str, Any], *, once: bool = False) -> dict[str, Any]:
        """POST ``body`` to ``path`` and return the decoded JSON object.

        A JSON value that is not an object is returned as ``{"result": value}``. ``once``: a single attempt,
        for a call that must never reach Ozon twice (a timeout may hide one Ozon did); the caller reads
        Ozon's state before it tries again.
        """
        return await self._call("POST", self._base_url + path, path, body=body, parse=self._decode_json,
                                attempts=1 if once else None)

    async def download(self, url: str) -> bytes:
        """GET a file (a label's ``file_url``) with the same retry policy.

        Credentials and the Ozon rate limit apply only when the file is on the API's own host: a
        CDN link must never receive the Api-Key.
        """
        if url.startswith("/"):
            url = self._base_url + url
        own = self._origin_of(url) == self._origin
        path = urlsplit(url).path or "/"
        return await self._call(
            "GET", url, path, body=None, parse=lambda reply: reply.body, auth=own, limited=own
        )

    async def _call(
        self,
        method: str,
        url: str,
        path: str,
        *,
        body: dict[str, Any] | None,
        parse: Callable[[_Reply], T],
        auth: bool = True,
        limited: bool = True,
        attempts: int | None = None,
    ) -> T:
        """The retry loop around one HTTP exchange; ``parse`` turns a 2xx reply into the result.

        A 429 pauses the whole seller in the shared limiter (the next ``acquire`` does the waiting),
        so concurrent requests of that seller back off too; other retryable failures sleep here.
        """
        attempts = attempts or max(1, self._retry.attempts)
        for attempt in range(1, attempts + 1):
            if limited:
                await self._limits.acquire(self._client_id, path)
            try:
                reply = await self._attempt(method, url, path, body, auth, attempt)
                if 200 <= reply.status < 300:
                    return parse(reply)
                error = error_from_response(
                    reply.status, reply.body, path=path, headers=reply.headers, secrets=self._secrets()
                )
            except OzonUnavailable as exc:  # an unreadable 2xx body
                exc.path = exc.path or path
                error = exc
            except aiohttp.InvalidURL as exc:
                raise OzonRequestError(f"invalid URL: {exc}", path=path) from None
            except (TimeoutError, aiohttp.ClientError) as exc:
                error = self._transport_error(exc, path)
            if not error.retryable:
                raise error
            delay = self._delay(error, attempt)
            if isinstance(error, OzonRateLimited) and limited:
                self._limits.pause(self._client_id, delay)  # every request of this seller waits
            if attempt == attempts:
                raise error
            if self._retry.on_retry is not None:
                self._retry.on_retry(path, error)
            log.warning(
                "Ozon %s %s failed (%s); retry %d/%d in %.2fs",
                method,
                path,
                error.token,
                attempt,
                attempts - 1,
                delay,
            )
            if not (isinstance(error, OzonRateLimited) and limited):
                await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self, method: str, url: str, path: str, body: dict[str, Any] | None, auth: bool, attempt: int
    ) -> _Reply:
        timeout = aiohttp.ClientTimeout(total=self._retry.timeout)
        headers = self._headers() if auth else {}
        started = time.monotonic()
        try:
            async with self._session.request(
                method, url, json=body, headers=headers, timeout=timeout
            ) as response:
                reply = _Reply(response.status, response.headers, await response.read())
        except BaseException:
            log.debug(
                "Ozon %s %s -> no response after %.0f ms (attempt %d)",
                method,
                path,
                (time.monotonic() - started) * 1000,
                attempt,
            )
            raise
        log.debug(
            "Ozon %s %s -> %d in %.0f ms (attempt %d)",
            method,
            path,
            reply.status,
            (time.monotonic() - started) * 1000,
            attempt,
        )
        return reply

    def _headers(self) -> dict[str, str]:
        return {"Client-Id": self._client_id, "Api-Key": self._api_key, "Content-Type": "application/json"}

    def _secrets(self) -> tuple[str, ...]:
        return (self._api_key,) if self._api_key else ()

    def _delay(self, error: OzonError, attempt: int) -> float:
        """Seconds to wait before the next attempt; Ozon's ``Retry-After`` wins when it sent one."""
        retry_after = getattr(error, "retry_after", None)
        circuit = isinstance(error, OzonUnavailable) and error.circuit_open
        backoff = self._retry.backoff(attempt, circuit=circuit)
        if retry_after is None:
            return backoff
        if isinstance(error, OzonRateLimited):
            return min(retry_after, self._retry.max_delay)
        return max(backoff, min(retry_after, self._retry.max_delay))

    def _transport_error(self, exc: BaseException, path: str) -> OzonUnavailable:
        if isinstance(exc, TimeoutError):
            text = f"timeout after {self._retry.timeout:g}s"
        else:
            text = f"{type(exc).__name__}: {exc}"
        for secret in self._secrets():
            text = text.replace(secret, "***")
        error = OzonUnavailable(text[:300], path=path)
        error.__cause__ = exc
        return error

    @staticmethod
    def _decode_json(reply: _Reply) -> dict[str, Any]:
        try:
            data = json.loads(reply.body) if reply.body.strip() else {}
        except ValueError:
            raise OzonUnavailable("invalid JSON in a successful response", status=reply.status) from None
        return data if isinstance(data, dict) else {"result": data}

    @staticmethod
    def _origin_of(url: str) -> tuple[str, str]:
        parts = urlsplit(url)
        return parts.scheme.lower(), parts.netloc.lower()

    # ----------------------------------------------------------------------- postings

    async def unfulfilled_page(
        self,
        *,
        cursor: str = "",
        limit: int = PAGE_LIMIT,
        cutoff_from: datetime,
        cutoff_to: datetime,
        statuses: list[str] | None = None,
        changed_since: datetime | None = None,
    ) -> PostingPage:
        """One page of ``/v4/posting/fbs/unfulfilled/list``."""
        flt: dict[str, Any] = {"cutoff_from": _rfc3339(cutoff_from), "cutoff_to": _rfc3339(cutoff_to)}
        if statuses:
            flt["statuses"] = list(statuses)
        if changed_since is not None:
            flt["last_changed_status_date"] = self._since_window(changed_since)
        return PostingPage.from_api(await self.request(UNFULFILLED_LIST, _list_body(cursor, limit, flt)))

    async def iter_unfulfilled(
        self,
        *,
        cutoff_from: datetime | None = None,
        cutoff_to: datetime | None = None,
        statuses: list[str] | None = None,
        changed_since: datetime | None = None,
        limit: int = PAGE_LIMIT,
    ) -> AsyncIterator[Posting]:
        """Every unfulfilled posting, across all pages (default window: now-90 d .. now+180 d)."""
        now = datetime.now(UTC)
        fetch = functools.partial(
            self._unfulfilled_by_cursor,
            limit=limit,
            cutoff_from=cutoff_from or now - UNFULFILLED_LOOKBACK,
            cutoff_to=cutoff_to or now + UNFULFILLED_LOOKAHEAD,
            statuses=statuses,
            changed_since=changed_since,
        )
        async for posting in self._paginate(fetch, UNFULFILLED_LIST):
            yield posting

    async def unfulfilled_fingerprinted(
        self, known: str | None = None, *, limit: int = PAGE_LIMIT
    ) -> tuple[str, list[Posting] | None]:
        """Every unfulfilled posting (as ``iter_unfulfilled``) and a fingerprint of the raw pages.

        When the fingerprint equals ``known`` (Ozon answered byte for byte as at that read) the postings
        come back as None and are never parsed: parsing is most of a poll's CPU, and a poll mostly finds
        nothing new. A seller whose open postings fit one page is recognised after that one request.
        """
        now = datetime.now(UTC)
        flt = {"cutoff_from": _rfc3339(now - UNFULFILLED_LOOKBACK), "cutoff_to": _rfc3339(now + UNFULFILLED_LOOKAHEAD)}
        digest = hashlib.blake2b(digest_size=16)
        bodies: list[Any] = []
        cursor, cursors = "", set()
        while True:
            raw = await self._call("POST", self._base_url + UNFULFILLED_LIST, UNFULFILLED_LIST,
                                   body=_list_body(cursor, limit, flt), parse=lambda reply: reply.body)
            digest.update(raw)
            if not bodies and known is not None and digest.hexdigest() == known:
                return known, None
            body = self._decode_json(_Reply(200, {}, raw))
            bodies.append(body)
            head = PostingPage.from_api({**(unwrap_result(body) or {}), "postings": []})
            if not head.has_next or not head.cursor or head.cursor in cursors:
                break
            cursors.add(head.cursor)
            cursor = head.cursor
        fingerprint = digest.hexdigest()
        if fingerprint == known:
            return known, None
        postings: dict[str, Posting] = {}
        for body in bodies:
            for posting in PostingPage.from_api(body).postings:
                postings.setdefault(posting.posting_number, posting)
        return fingerprint, list(postings.values())

    async def _unfulfilled_by_cursor(self, cursor: str, **kwargs: Any) -> PostingPage:
        return await self.unfulfilled_page(cursor=cursor, **kwargs)

    async def iter_postings(
        self,
        *,
        since: datetime,
        to: datetime,
        statuses: list[str] | None = None,
        order_numbers: list[str] | None = None,
        limit: int = PAGE_LIMIT,
    ) -> AsyncIterator[Posting]:
        """Postings in any status from ``/v4/posting/fbs/list`` (order numbers go 100 per query)."""
        batches: list[list[str] | None] = (
            list(_chunks(order_numbers, ORDER_NUMBERS_BATCH)) if order_numbers else [None]
        )
        for batch in batches:
            fetch = functools.partial(
                self._list_page, since=since, to=to, statuses=statuses, order_numbers=batch, limit=limit
            )
            async for posting in self._paginate(fetch, POSTING_LIST):
                yield posting

    async def _list_page(
        self,
        cursor: str,
        *,
        since: datetime,
        to: datetime,
        statuses: list[str] | None,
        order_numbers: list[str] | None,
        limit: int,
    ) -> PostingPage:
        flt: dict[str, Any] = {"since": _rfc3339(since), "to": _rfc3339(to)}
        if statuses:
            flt["statuses"] = list(statuses)
        if order_numbers:
            flt["order_numbers"] = list(order_numbers)
        return PostingPage.from_api(await self.request(POSTING_LIST, _list_body(cursor, limit, flt)))

    @staticmethod
    async def _paginate(fetch: Callable[[str], Awaitable[PostingPage]], path: str) -> AsyncIterator[Posting]:
        """Follow cursors until ``has_next`` is false or the cursor is empty or repeats.

        The repeat guard stops a misbehaving server from looping us forever; postings seen on an
        earlier page (the list can shift while we read it) are not yielded twice.
        """
        cursor = ""
        cursors: set[str] = set()
        numbers: set[str] = set()
        while True:
            page = await fetch(cursor)
            for posting in page.postings:
                if posting.posting_number not in numbers:
                    numbers.add(posting.posting_number)
                    yield posting
            if not page.has_next:
                return
            if not page.cursor or page.cursor in cursors:
                log.warning("Ozon %s: has_next with an empty or repeated cursor; stopping", path)
                return
            cursors.add(page.cursor)
            cursor = page.cursor

    def _since_window(self, since: datetime) -> dict[str, str]:
        # A day of slack on "to" absorbs clock skew between us and Ozon.
        return {"from": _rfc3339(since), "to": _rfc3339(datetime.now(UTC) + timedelta(days=1))}

    async def get_posting(self, posting_number: str) -> Posting:
        """Full details from ``/v3/posting/fbs/get`` (with analytics, barcodes and prices)."""
        body = {
            "posting_number": posting_number,
            "with": {
                "analytics_data": True,
                "barcodes": True,
                "financial_data": True,
                "legal_info": False,
                "product_exemplars": False,
                "related_postings": True,
                "translit": False,
            },
        }
        payload = unwrap_result(await self.request(POSTING_GET, body))
        if not isinstance(payload, dict) or not payload.get("posting_number"):
            raise OzonUnavailable("response carries no posting", status=200, path=POSTING_GET)
        return Posting.from_api(payload)

    # ----------------------------------------------------------------------- packing

    async def ship(self, posting_number: str, packages: list[list[tuple[int, int]]]) -> list[str]:
        """Pack a posting into ``packages`` (each a list of ``(sku, quantity)``).

        Returns the resulting posting numbers. ``POSTING_ALREADY_SHIPPED`` is success (``[]``) so a
        retried or resumed ship is harmless. HTTP 200 does not prove packing worked: use
        ``ship_and_confirm`` to wait for the status to move.
        """
        body = {
            "posting_number": posting_number,
            "packages": self._packages_body(packages),
            "with": {"additional_data": True},
        }
        try:
            data = await self.request(SHIP, body)
        except OzonRequestError as exc:
            if exc.matches(ALREADY_SHIPPED):
                log.info("Ozon ship %s: already shipped, treated as success", posting_number)
                return []
            raise
        result = data.get("result")
        return [str(number) for number in result] if isinstance(result, list) else []

    @staticmethod
    def _packages_body(packages: list[list[tuple[int, int]]]) -> list[dict[str, Any]]:
        if not packages or any(not package for package in packages):
            raise ValueError("ship needs at least one package, each with at least one product")
        body = []
        for package in packages:
            products = [{"product_id": int(sku), "quantity": int(qty)} for sku, qty in package]
            if any(product["quantity"] <= 0 for product in products):
                raise ValueError("product quantities must be positive")
            body.append({"products": products})
        return body

    async def ship_and_confirm(
        self,
        posting_number: str,
        packages: list[list[tuple[int, int]]],
        *,
        attempts: int = 3,
        poll_interval: float = 1.0,
        poll_attempts: int = 10,
    ) -> Posting:
        """Ship, then poll until the posting leaves ``awaiting_packaging``; return it.

        Packing is asynchronous at Ozon: ``ship_failed`` means "call ship again", which is done up to
        ``attempts`` times. A posting that simply never moves is not re-shipped blindly; the caller
        gets ``OzonRequestError`` with token ``SHIP_NOT_CONFIRMED`` and can resume later.
        """
        last: Posting | None = None
        for round_ in range(1, max(1, attempts) + 1):
            await self.ship(posting_number, packages)
            last = await self._await_packed(posting_number, poll_interval, poll_attempts)
            if _left_packaging(last):
                return last
            if last.substatus != SHIP_FAILED:
                break
            log.warning("Ozon ship %s: ship_failed (round %d/%d)", posting_number, round_, attempts)
        details = {"status": last.status, "substatus": last.substatus} if last else None
        raise OzonRequestError(SHIP_NOT_CONFIRMED, path=SHIP, details=details)

    async def _await_packed(self, posting_number: str, interval: float, polls: int) -> Posting:
        """Poll ``get_posting`` until it moved on or reports ``ship_failed``; the last state seen.

        The first look comes sooner than the interval: packing usually settles within a fraction of a
        second, and the packer is watching the button until we know."""
        posting: Posting | None = None
        for poll in range(max(1, polls)):
            await self._sleep(min(interval, FIRST_CONFIRM_LOOK) if poll == 0 else interval)
            posting = await self.get_posting(posting_number)
            if _left_packaging(posting) or posting.substatus == SHIP_FAILED:
                break
        assert posting is not None
        return posting

    # ----------------------------------------------------------------------- pick list

    async def pick_list(self, cutoff_from: datetime, cutoff_to: datetime, *, limit: int = 1000) -> list[PickLine]:
        """Ozon's SKU pick list of the postings to pack whose cutoff is in the window, every page. Warehouses
        the method does not cover answer an error (OzonRequestError): the caller builds the list itself."""
        lines: list[PickLine] = []
        offset = 0
        while True:
            body = {"filter": {"cutoff_from": _rfc3339(cutoff_from), "cutoff_to": _rfc3339(cutoff_to)},
                    "limit": limit, "offset": offset, "sort_dir": "ASC"}
            page = PickPage.model_validate(unwrap_result(await self.request(PICK_LIST, body)) or {})
            lines.extend(page.products)
            offset += len(page.products)
            if not page.has_next or not page.products:
                return lines

    # ----------------------------------------------------------------------- labels

    async def create_label_task(self, posting_numbers: list[str]) -> list[LabelTask]:
        """Start label generation (``/v3/posting/fbs/package-label/create``); one task per label size."""
        tasks: list[LabelTask] = []
        for chunk in _chunks(posting_numbers, LABEL_BATCH):
            payload = unwrap_result(await self.request(LABEL_CREATE, {"posting_numbers": chunk}))
            if isinstance(payload, dict):
                # v3 returns {"tasks": [...]}; the retired v1 returned a single {"task_id"}.
                payload = payload.get("tasks") if "tasks" in payload else [payload]
            items = payload if isinstance(payload, list) else []
            tasks.extend(LabelTask.model_validate(item) for item in items if isinstance(item, dict))
        return [task for task in tasks if task.task_id]

    async def get_label(self, task_id: int) -> LabelStatus:
        """State of a label task; when ``ready``, fetch ``file_url`` with ``download``."""
        return LabelStatus.model_validate(await self.request(LABEL_GET, {"task_id": task_id}))

    # ----------------------------------------------------------------------- rFBS delivery

    async def set_tracking_numbers(self, pairs: list[tuple[str, str]]) -> list[MoveResult]:
        """Send ``(posting_number, tracking_number)`` pairs, 20 per call as Ozon requires."""
        results: list[MoveResult] = []
        for chunk in _chunks(pairs, TRACKING_BATCH):
            body = {"tracking_numbers": [{"posting_number": p, "tracking_number": t} for p, t in chunk]}
            results.extend(_move_results(await self.request(TRACKING_SET, body)))
        return results

    async def move_to_delivering(self, posting_numbers: list[str]) -> list[MoveResult]:
        return await self._move(MOVE_DELIVERING, posting_numbers)

    async def move_to_last_mile(self, posting_numbers: list[str]) -> list[MoveResult]:
        return await self._move(MOVE_LAST_MILE, posting_numbers)

    async def move_to_delivered(self, posting_numbers: list[str]) -> list[MoveResult]:
        return await self._move(MOVE_DELIVERED, posting_numbers)

    async def _move(self, path: str, posting_numbers: list[str]) -> list[MoveResult]:
        """Status moves are asynchronous at Ozon: a ``result: true`` item means accepted, not done."""
        results: list[MoveResult] = []
        for chunk in _chunks(posting_numbers, MOVE_BATCH):
            results.extend(_move_results(await self.request(path, {"posting_number": chunk})))
        return results

    # ----------------------------------------------------------------------- rFBS cancellation requests

    async def cancellation_requests(self, *, state: str = "ON_APPROVAL",
                                    posting_numbers: list[str] | None = None) -> list[CancellationRequest]:
        """Every request in ``state`` (ALL, ON_APPROVAL, APPROVED, REJECTED), following ``last_id``; there is
        no push for them, so they are polled. ``posting_numbers`` narrows the list to those postings."""
        found: list[CancellationRequest] = []
        last_id = 0
        filters: dict[str, Any] = {"state": state}
        if posting_numbers:
            filters["posting_number"] = posting_numbers
        for _ in range(1000):  # a runaway last_id cannot loop for ever
            body: dict[str, Any] = {"filters": filters, "limit": CANCELLATION_PAGE}
            if last_id:
                body["last_id"] = last_id
            payload = await self.request(CANCELLATION_LIST, body)
            items = payload.get("result") if isinstance(payload, dict) else None
            page = [CancellationRequest.model_validate(item) for item in items or [] if isinstance(item, dict)]
            found.extend(request for request in page if request.cancellation_id and request.posting_number)
            next_id = payload.get("last_id") if isinstance(payload, dict) else None
            if len(page) < CANCELLATION_PAGE or not isinstance(next_id, int) or next_id <= last_id:
                return found
            last_id = next_id
        return found

    async def approve_cancellation(self, cancellation_id: int, comment: str = "") -> None:
        """Agree to the request (only ON_APPROVAL): Ozon cancels the order and refunds the buyer. One attempt:
        after a failure the caller reads the request's state before it decides to send again."""
        await self.request(CANCELLATION_APPROVE, _move_body(cancellation_id, comment), once=True)

    async def reject_cancellation(self, cancellation_id: int, comment: str) -> None:
        """Refuse the request (only ON_APPROVAL) with the reason; the order stays and must be delivered."""
        await self.request(CANCELLATION_REJECT, _move_body(cancellation_id, comment), once=True)

    # ----------------------------------------------------------------------- FBS stock

    async def stocks_by_warehouse(self, *, skus: list[int] | None = None,
                                  offer_ids: list[str] | None = None) -> list[WarehouseStock]:
        """Present, reserved and free stock of each product in each FBS warehouse, by SKU or by offer_id."""
        body: dict[str, Any] = {"limit": STOCKS_READ_LIMIT}
        if skus:
            body["sku"] = [str(sku) for sku in skus]
        else:
            body["offer_id"] = list(offer_ids or [])
        return await self._cursor_pages(STOCKS_READ, body, "products", WarehouseStock)

    async def set_stocks(self, items: list[tuple[str, int, int, int]]) -> list[StockResult]:
        """Sets the available stock of ``(offer_id, product_id, warehouse_id, stock)`` pairs, 100 per call;
        each pair's answer says whether it was updated or why not. One attempt per call: a repeat inside
        Ozon's 30 s window is refused for the pair, so the caller decides when to send again."""
        results: list[StockResult] = []
        for chunk in _chunks(items, STOCK_PAIRS_PER_CALL):
            body = {"stocks": [{"offer_id": offer_id, "product_id": product_id, "warehouse_id": warehouse_id,
                                "stock": stock, "quant_size": 1}
                               for offer_id, product_id, warehouse_id, stock in chunk]}
            payload = unwrap_result(await self.request(STOCKS_SET, body, once=True))
            items_ = payload if isinstance(payload, list) else (payload or {}).get("result") or []
            results.extend(StockResult.model_validate(item) for item in items_ if isinstance(item, dict))
        return results

    # ----------------------------------------------------------------------- the FBS error index

    async def error_index(self) -> ErrorIndex:
        payload = unwrap_result(await self.request(INDEX_INFO, {}))
        return ErrorIndex.model_validate(payload if isinstance(payload, dict) else {})

    async def index_charges(self, since: datetime, to: datetime) -> list[IndexCharge]:
        """The postings charged between ``since`` and ``to``, following the cursor."""
        body: dict[str, Any] = {"filter": {"date_from": _rfc3339(since), "date_to": _rfc3339(to)}, "limit": 1000}
        return await self._cursor_pages(INDEX_POSTINGS, body, "errors", IndexCharge)

    async def _cursor_pages(self, path: str, body: dict[str, Any], key: str, model):
        """Every item of a cursor-paged method (`has_next` + `cursor`); a cursor seen twice ends the walk."""
        found, seen = [], set()
        while True:
            payload = unwrap_result(await self.request(path, body))
            if not isinstance(payload, dict):
                return found
            found.extend(model.model_validate(item) for item in payload.get(key) or [] if isinstance(item, dict))
            cursor = str(payload.get("cursor") or "")
            if not payload.get("has_next") or not cursor or cursor in seen:
                return found
            seen.add(cursor)
            body["cursor"] = cursor

    # ----------------------------------------------------------------------- account

    async def roles(self) -> RoleInfo:
        """The key's roles and ``expires_at``; also the cheapest way to validate a new key."""
        payload = unwrap_result(await self.request(ROLES, {}))
        return RoleInfo.model_validate(payload if isinstance(payload, dict) else {"roles": payload})

    async def warehouses(self) -> list[Warehouse]:
        """All warehouses (``/v2/warehouse/list``), following the cursor."""
        found: list[Warehouse] = []
        cursor = ""
        seen: set[str] = set()
        while True:
            payload = unwrap_result(
                await self.request(WAREHOUSES, {"cursor": cursor, "limit": WAREHOUSE_PAGE})
            )
            if not isinstance(payload, dict):
                payload = {"warehouses": payload}
            items = payload.get("warehouses")
            found.extend(Warehouse.model_validate(item) for item in items or [] if isinstance(item, dict))
            cursor = str(payload.get("cursor") or "")
            if not payload.get("has_next") or not cursor or cursor in seen:
                return found
            seen.add(cursor)
