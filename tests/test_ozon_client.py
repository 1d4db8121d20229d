"""OzonClient and RateLimits against a small scripted Ozon stand-in over real HTTP on loopback.

The stand-in here is deliberately dumb (a queue of canned replies per path) so each test states
exactly what Ozon does; the full sandbox lives elsewhere and is not used.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.ozon.client import OzonClient, RetryPolicy
from services.ozon.errors import (
    OzonAuthError,
    OzonRateLimited,
    OzonRequestError,
    OzonUnavailable,
)
from services.ozon.limiter import Limit, RateLimits

PAYLOADS = Path(__file__).parent / "contract" / "payloads"
CLIENT_ID = "4281516"
API_KEY = "9c5b1e7a-3f0d-4c1b-8e2f-5a6b7c8d9e0f"
FAST = RetryPolicy(attempts=5, base_delay=0.5, max_delay=30.0, timeout=5.0)


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the stand-in


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    text: str | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


Script = Reply | Callable[[Any], Reply]


class FakeOzon:
    """Replies from a per-path queue; the last reply of a queue repeats. Records every call."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Script]] = {}
        self.calls: list[Call] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1")

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def script(self, path: str, *replies: Script) -> None:
        self.scripts.setdefault(path, []).extend(replies)

    def calls_to(self, path: str) -> list[Call]:
        return [call for call in self.calls if call.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.calls.append(Call(request.method, request.path, dict(request.headers), body))
        queue = self.scripts.get(request.path)
        if not queue:
            return web.json_response({"code": 12, "message": "not scripted", "details": []}, status=501)
        script = queue.pop(0) if len(queue) > 1 else queue[0]
        reply = script(body) if callable(script) else script
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.body is not None:
            return web.Response(body=reply.body, status=reply.status, headers=reply.headers)
        if reply.text is not None:
            return web.Response(text=reply.text, status=reply.status, headers=reply.headers)
        return web.json_response(
            reply.json if reply.json is not None else {}, status=reply.status, headers=reply.headers
        )


class SleepRecorder:
    """Stands in for asyncio.sleep: records the delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOzon]:
    server = FakeOzon()
    await server.server.start_server()
    yield server
    await server.server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make_client(
    fake: FakeOzon, session: aiohttp.ClientSession, sleeps: SleepRecorder
) -> Callable[..., OzonClient]:
    def make(**kwargs: Any) -> OzonClient:
        kwargs.setdefault("retry", FAST)
        kwargs.setdefault("base_url", fake.url)
        return OzonClient(session, client_id=CLIENT_ID, api_key=API_KEY, sleep=sleeps, **kwargs)

    return make


def page(postings: list[dict[str, Any]], cursor: str, has_next: bool) -> dict[str, Any]:
    return {"count": 3, "cursor": cursor, "has_next": has_next, "postings": postings}


def posting_state(status: str, substatus: str, number: str = "12345679-0002-1") -> Reply:
    detail = load("posting_get_v3.json")
    detail["result"].update(posting_number=number, status=status, substatus=substatus)
    return Reply(json=detail)


# --------------------------------------------------------------------------- transport


async def test_sends_credentials_and_json(fake: FakeOzon, make_client: Callable[..., OzonClient]) -> None:
    fake.script("/v1/roles", Reply(json=load("roles.json")))

    info = await make_client().roles()

    (call,) = fake.calls
    assert call.method == "POST"
    assert call.headers["Client-Id"] == CLIENT_ID
    assert call.headers["Api-Key"] == API_KEY
    assert call.headers["Content-Type"].startswith("application/json")
    assert call.body == {}
    assert info.expires_at == datetime(2027, 2, 24, 8, 21, 37, 519000, tzinfo=UTC)


async def test_repr_hides_the_key(make_client: Callable[..., OzonClient]) -> None:
    client = make_client()

    assert API_KEY not in repr(client) and API_KEY not in str(client)
    assert CLIENT_ID in repr(client)


async def test_retry_on_429_honours_retry_after(
    fake: FakeOzon, make_client: Callable[..., OzonClient], sleeps: SleepRecorder
) -> None:
    fake.script(
        "/v1/roles",
        Reply(status=429, json=load("error_rate_limit.json"), headers={"Retry-After": "1"}),
        Reply(json=load("roles.json")),
    )

    info = await make_client().roles()

    assert info.names == ["Posting FBS", "Admin read only"]
    assert len(fake.calls) == 2
    # The wait goes through the limiter's pause, measured against the real clock: just under 1 s.
    assert any(0.9 < delay <= 1.0 for delay in sleeps.delays), sleeps.delays


async def test_429_without_retry_after_uses_backoff(
    fake: FakeOzon, make_client: Callable[..., OzonClient], sleeps: SleepRecorder
) -> None:
    fake.script(
        "/v1/roles", Reply(status=429, json=load("error_rate_limit.json")), Reply(json=load("roles.json"))
    )

    await make_client().roles()

    assert len(fake.calls) == 2
    assert max(sleeps.delays) <= 0.5 and any(0.2 < d <= 0.5 for d in sleeps.delays), sleeps.delays


async def test_429_pauses_every_client_of_the_same_seller(
    fake: FakeOzon, session: aiohttp.ClientSession, sleeps: SleepRecorder
) -> None:
    limits = RateLimits(sleep=sleeps)
    first = OzonClient(
        session,
        base_url=fake.url,
        client_id=CLIENT_ID,
        api_key=API_KEY,
        limits=limits,
        retry=FAST,
        sleep=sleeps,
    )
    second = OzonClient(
        session,
        base_url=fake.url,
        client_id=CLIENT_ID,
        api_key=API_KEY,
        limits=limits,
        retry=FAST,
        sleep=sleeps,
    )
    fake.script(
        "/v1/roles",
        Reply(status=429, json=load("error_rate_limit.json"), headers={"Retry-After": "5"}),
        Reply(json=load("roles.json")),
    )
    fake.script("/v2/warehouse/list", Reply(json=load("warehouse_list.json")))

    await first.roles()
    sleeps.delays.clear()
    await second.warehouses()

    assert any(4.5 < delay <= 5.0 for delay in sleeps.delays), sleeps.delays


async def test_exhausted_429_raises_rate_limited(
    fake: FakeOzon, make_client: Callable[..., OzonClient]
) -> None:
    fake.script(
        "/v1/roles", Reply(status=429, json=load("error_rate_limit.json"), headers={"Retry-After": "2"})
    )

    with pytest.raises(OzonRateLimited) as caught:
        await make_client(retry=RetryPolicy(attempts=3)).roles()

    assert caught.value.retry_after == 2.0
    assert len(fake.calls) == 3


async def test_retry_on_500_then_success(
    fake: FakeOzon, make_client: Callable[..., OzonClient], sleeps: SleepRecorder
) -> None:
    internal = {"code": 13, "message": "Internal error", "details": []}
    fake.script(
        "/v1/roles",
        Reply(status=500, json=internal),
        Reply(status=502, text="Bad Gateway"),
        Reply(json=load("roles.json")),
    )

    info = await make_client().roles()

    assert info.expires_at is not None
    assert len(fake.calls) == 3
    backoffs = [d for d in sleeps.delays if d > 0.1]
    assert len(backoffs) == 2
    assert 0.25 <= backoffs[0] <= 0.5 and 0.5 <= backoffs[1] <= 1.0  # exponential, with jitter


async def test_each_retry_is_reported_and_counted_in_the_metrics(
    fake: FakeOzon, make_client: Callable[..., OzonClient], sleeps: SleepRecorder
) -> None:
    from dataclasses import replace

    from services import metrics

    internal = {"code": 13, "message": "Internal error", "details": []}
    fake.script("/v1/roles", Reply(status=500, json=internal), Reply(status=502, text="Bad Gateway"),
                Reply(json=load("roles.json")))
    told: list[tuple[str, str]] = []

    def on_retry(path: str, error: Exception) -> None:
        told.append((path, type(error).__name__))
        metrics.ozon_retry(path, error)

    labels = {"method": "/v1/roles", "reason": "OzonUnavailable"}
    before = metrics.REGISTRY.get_sample_value("ozonbot_ozon_retries_total", labels) or 0
    await make_client(retry=replace(FAST, on_retry=on_retry)).roles()

    assert told == [("/v1/roles", "OzonUnavailable")] * 2  # the final success is no retry
    assert metrics.REGISTRY.get_sample_value("ozonbot_ozon_retries_total", labels) - before == 2


async def test_circle_is_open_backs_off_longer(
    fake: FakeOzon, make_client: Callable[..., OzonClient], sleeps: SleepRecorder
) -> None:
    # Classified by Ozon's message, whatever the HTTP status.
    fake.script(
        "/v1/roles", Reply(status=400, json=load("error_circle_open.json")), Reply(json=load("roles.json"))
    )

    await make_client(retry=RetryPolicy(circuit_delay=10.0)).roles()

    assert len(fake.calls) == 2
    assert max(sleeps.delays) >= 5.0  # 10 s with 50-100 % jitter, versus 0.25-0.5 s for a 5xx


async def test_timeout_is_retried(
    fake: FakeOzon, make_client: Callable[..., OzonClient], sleeps: SleepRecorder
) -> None:
    fake.script("/v1/roles", Reply(json=load("roles.json"), delay=0.5), Reply(json=load("roles.json")))

    info = await make_client(retry=RetryPolicy(timeout=0.1)).roles()

    assert info.names
    assert len(fake.calls) == 2


async def test_timeouts_exhausted_raise_unavailable(
    fake: FakeOzon, make_client: Callable[..., OzonClient]
) -> None:
    fake.script("/v1/roles", Reply(json={}, delay=0.3))

    with pytest.raises(OzonUnavailable) as caught:
        await make_client(retry=RetryPolicy(attempts=2, timeout=0.05)).roles()

    assert caught.value.status == 0
    assert "timeout" in caught.value.token
    assert len(fake.calls) == 2


async def test_connection_refused_is_retried_then_unavailable(
    session: aiohttp.ClientSession, sleeps: SleepRecorder
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the client connects
    client = OzonClient(
        session,
        base_url=f"http://127.0.0.1:{port}",
        client_id=CLIENT_ID,
        api_key=API_KEY,
        retry=RetryPolicy(attempts=3),
        sleep=sleeps,
    )

    with pytest.raises(OzonUnavailable) as caught:
        await client.roles()

    assert len([d for d in sleeps.delays if d >= 0.25]) == 2
    assert API_KEY not in str(caught.value) and API_KEY not in repr(caught.value)


async def test_no_retry_on_400(
    fake: FakeOzon, make_client: Callable[..., OzonClient], sleeps: SleepRecorder
) -> None:
    fake.script("/v4/posting/fbs/ship", Reply(status=400, json=load("error_rpc_status.json")))

    with pytest.raises(OzonRequestError) as caught:
        await make_client().ship("12345678-0001-1", [[(5462125811, 1)]])

    assert len(fake.calls) == 1
    assert caught.value.token == "HAS_INCORRECT_STATUS"
    assert caught.value.code == 3
    assert not [d for d in sleeps.delays if d > 0.1]


async def test_invalid_key_is_auth_error_without_the_key(
    fake: FakeOzon, make_client: Callable[..., OzonClient]
) -> None:
    fake.script("/v1/roles", Reply(status=404, json=load("error_invalid_key.json")))

    with pytest.raises(OzonAuthError) as caught:
        await make_client().roles()

    error = caught.value
    assert error.reason == "invalid_key"
    assert (error.status, error.code) == (404, 5)
    assert len(fake.calls) == 1
    assert API_KEY not in str(error) and API_KEY not in repr(error)


async def test_error_body_echoing_the_key_is_scrubbed(
    fake: FakeOzon, make_client: Callable[..., OzonClient]
) -> None:
    fake.script("/v1/roles", Reply(status=400, json={"code": 3, "message": f"bad header Api-Key: {API_KEY}"}))

    with pytest.raises(OzonRequestError) as caught:
        await make_client().roles()

    assert API_KEY not in str(caught.value) and API_KEY not in repr(caught.value)


async def test_non_json_success_body_is_retried(
    fake: FakeOzon, make_client: Callable[..., OzonClient]
) -> None:
    fake.script("/v1/roles", Reply(text="<html>maintenance</html>"), Reply(json=load("roles.json")))

    info = await make_client().roles()

    assert info.names and len(fake.calls) == 2


# --------------------------------------------------------------------------- posting lists


async def test_iter_unfulfilled_follows_cursor_across_three_pages(
    fake: FakeOzon, make_client: Callable[..., OzonClient]
) -> None:
    first, second = load("unfulfilled_list_v4.json")["postings"]
    third = load("posting_oddities.json")
    pages = {
        "": page([first], "c1", True),
        "c1": {"result": page([second], "c2", True)},  # the same list, wrapped this time
        "c2": page([third], "", False),
    }
    fake.script("/v4/posting/fbs/unfulfilled/list", lambda body: Reply(json=pages[body["cursor"]]))

    postings = [p async for p in make_client().iter_unfulfilled(statuses=["awaiting_packaging"])]

    assert [p.posting_number for p in postings] == ["12345678-0001-1", "12345679-0002-1", "12345681-0005-1"]
    assert postings[2].status == "awaiting_teleportation"
    bodies = [call.body for call in fake.calls]
    assert [b["cursor"] for b in bodies] == ["", "c1", "c2"]
    body = bodies[0]
    assert body["limit"] == 100
    assert body["filter"]["statuses"] == ["awaiting_packaging"]
    assert body["with"]["financial_data"] is True
    cutoff_from = datetime.fromisoformat(body["filter"]["cutoff_from"])
    cutoff_to = datetime.fromisoformat(body["filter"]["cutoff_to"])
    now = datetime.now(UTC)
    assert abs(cutoff_from - (now - timedelta(days=90))) < timedelta(minutes=1)
    assert abs(cutoff_to - (now + timedelta(days=180))) < timedelta(minutes=1)
    assert "last_changed_status_date" not in body["filter"]


async def test_unfulfilled_page_sends_changed_since(
    fake: FakeOzon, make_client: Callable[..., OzonClient]
) -> None:
    fake.script("/v4/posting/fbs/unfulfilled/list", Reply(json=load("unfulfilled_list_v4_wrapped.json")))

    result = await make_client().unfulfilled_page(
        cutoff_from=datetime(2026, 7, 1, tzinfo=UTC),
        cutoff_to=datetime(2027, 3, 31, tzinfo=UTC),
        changed_since=datetime(2026, 9, 30, 3, 0, tzinfo=UTC),
        limit=500,
    )

    assert result.count == 3 and len(result.postings) == 2
    body = fake.calls[0].body
    assert body["limit"] == 100  # clamped to Ozon's maximum
    assert body["filter"]["cutoff_from"] == "2026-07-01T00:00:00Z"
    assert body["filter"]["cutoff_to"] == "2027-03-31T00:00:00Z"
    assert body["filter"]["last_changed_status_date"]["from"] == "2026-09-30T03:00:00Z"


async def test_repeated_cursor_stops_pagination(
    fake: FakeOzon, make_client: Callable[..., OzonClient]
) -> None:
    posting = load("unfulfilled_list_v4.json")["postings"][0]
    fake.script("/v4/posting/fbs/unfulfilled/list", Reply(json=page([posting], "stuck", True)))

    postings = [p async for p in make_client().iter_unfulfilled()]

    assert len(fake.calls) == 2
    assert [p.posting_number for p in postings] == ["12345678-0001-1"]  # not yielded twice


async def test_iter_postings_batches_order_numbers(
    fake: FakeOzon, make_client: Callable[..., OzonClient]
) -> None:
    fake.script("/v4/posting/fbs/list", Reply(json=load("fbs_list_v4.json")))
    numbers = [f"1234{i:04d}-0001" for i in range(150)]

    postings = [
        p
        async for p in make_client().iter_postings(
            since=datetime(2026, 9, 1, tzinfo=UTC),
            to=datetime(2026, 10, 1, tzinfo=UTC),
            statuses=["delivered", "cancelled"],
            order_numbers=numbers,
        )
    ]

    assert [len(call.body["filter"]["order_numbers"]) for call in fake.calls] == [100, 50]
    assert fake.calls[0].body["filter"]["since"] == "2026-09-01T00:00:00Z"
    assert fake.calls[0].body["filter"]["statuses"] == ["delivered", "cancelled"]
    assert [p.status for p in postings] == ["delivered", "cancelled", "delivered", "cancelled"]


async def test_get_posting(fake: FakeOzon, make_client: Callable[..., OzonClient]) -> None:
    fake.script("/v3/posting/fbs/get", Reply(json=load("posting_get_v3.json")))

    posting = await make_client().get_posting("12345679-0002-1")

    assert posting.posting_number == "12345679-0002-1"
    assert posting.products[0].price is not None and posting.products[0].price.currency == "CNY"
    body = fake.calls[0].body
    assert body["posting_number"] == "12345679-0002-1"
    assert body["with"]["analytics_data"] and body["with"]["financial_data"]


# --------------------------------------------------------------------------- packing


async def test_ship_sends_sku_packages(fake: FakeOzon, make_client: Callable[..., OzonClient]) -> None:
    fake.script("/v4/posting/fbs/ship", Reply(json=load("ship_response.json")))

    numbers = await make_client().ship("87654321-0016-1", [[(5462141122, 1)], [(5462141122, 1)]])

    assert numbers == ["87654321-0016-1", "87654321-0016-2"]
    assert fake.calls[0].body["packages"] == [
        {"products": [{"product_id": 5462141122, "quantity": 1}]},
        {"products": [{"product_id": 5462141122, "quantity": 1}]},
    ]


async def test_posting_already_shipped_is_success(
    fake: FakeOzon, make_client: Callable[..., OzonClient]
) -> None:
    fake.script("/v4/posting/fbs/ship", Reply(status=400, json=load("error_already_shipped.json")))

    assert await make_client().ship("87654321-0016-1", [[(5462141122, 2)]]) == []
    assert len(fake.calls) == 1


async def test_ship_rejects_empty_packages(make_client: Callable[..., OzonClient]) -> None:
    with pytest.raises(ValueError):
        await make_client().ship("1-1-1", [])
    with pytest.raises(ValueError):
        await make_client().ship("1-1-1", [[(1, 0)]])


async def test_ship_and_confirm_ships_again_after_ship_failed(
    fake: FakeOzon, make_client: Callable[..., OzonClient]
) -> None:
    fake.script("/v4/posting/fbs/ship", Reply(json={"result": ["12345679-0002-1"]}))
    fake.script(
        "/v3/posting/fbs/get",
        posting_state("awaiting_packaging", "ship_failed"),
        posting_state("awaiting_packaging", "posting_created"),  # the second ship is still in progress
        posting_state("awaiting_deliver", "posting_transferring_to_delivery"),
    )

    posting = await make_client().ship_and_confirm(
        "12345679-0002-1", [[(5462141122, 2), (5462141123, 1)]], poll_interval=0.01
    )

    assert posting.status == "awaiting_deliver"
    assert len(fake.calls_to("/v4/posting/fbs/ship")) == 2
    assert len(fake.calls_to("/v3/posting/fbs/get")) == 3


async def test_ship_and_confirm_gives_up_when_nothing_moves(
    fake: FakeOzon, make_client: Callable[..., OzonClient]
) -> None:
    fake.script("/v4/posting/fbs/ship", Reply(json={"result": ["12345679-0002-1"]}))
    fake.script("/v3/posting/fbs/get", posting_state("awaiting_packaging", "posting_created"))

    with pytest.raises(OzonRequestError) as caught:
        await make_client().ship_and_confirm("12345679-0002-1", [[(5462141122, 2)]], poll_attempts=4)

    assert caught.value.token == "SHIP_NOT_CONFIRMED"
    assert len(fake.calls_to("/v4/posting/fbs/ship")) == 1
    assert len(fake.calls_to("/v3/posting/fbs/get")) == 4


async def test_ship_and_confirm_bounds_ship_failed_retries(
    fake: FakeOzon, make_client: Callable[..., OzonClient]
) -> None:
    fake.script("/v4/posting/fbs/ship", Reply(json={"result": ["12345679-0002-1"]}))
    fake.script("/v3/posting/fbs/get", posting_state("awaiting_packaging", "ship_failed"))

    with pytest.raises(OzonRequestError) as caught:
        await make_client().ship_and_confirm("12345679-0002-1", [[(5462141122, 2)]], attempts=3)

    assert caught.value.matches("SHIP_NOT_CONFIRMED")
    assert caught.value.details == {"status": "awaiting_packaging", "substatus": "ship_failed"}
    assert len(fake.calls_to("/v4/posting/fbs/ship")) == 3


# --------------------------------------------------------------------------- labels


async def test_label_task_poll_and_download(fake: FakeOzon, make_client: Callable[..., OzonClient]) -> None:
    completed = load("label_get_completed.json")
    completed["file_url"] = fake.url + "/labels/5819327210248.pdf"
    fake.script("/v3/posting/fbs/package-label/create", Reply(json=load("label_create.json")))
    fake.script(
        "/v2/posting/fbs/package-label/get", Reply(json=load("label_get_pending.json")), Reply(json=completed)
    )
    fake.script(
        "/labels/5819327210248.pdf",
        Reply(status=503, text="busy"),
        Reply(body=b"%PDF-1.7 label", headers={"Content-Type": "application/pdf"}),
    )
    client = make_client()

    tasks = await client.create_label_task(["87654321-0015-1", "12345001-0042-1"])
    pending = await client.get_label(tasks[0].task_id)
    done = await client.get_label(tasks[0].task_id)
    pdf = await client.download(done.file_url)

    assert [t.task_type for t in tasks] == ["big_label", "small_label"]
    assert fake.calls_to("/v3/posting/fbs/package-label/create")[0].body == {
        "posting_numbers": ["87654321-0015-1", "12345001-0042-1"]
    }
    assert fake.calls_to("/v2/posting/fbs/package-label/get")[0].body == {"task_id": 5819327210248}
    assert pending.code == "pending" and not pending.ready
    assert done.ready
    assert pdf == b"%PDF-1.7 label"
    downloads = fake.calls_to("/labels/5819327210248.pdf")
    assert len(downloads) == 2 and downloads[-1].method == "GET"


async def test_download_from_another_host_gets_no_credentials(
    fake: FakeOzon, make_client: Callable[..., OzonClient]
) -> None:
    cdn = FakeOzon()
    await cdn.server.start_server()
    try:
        cdn.script("/s3/label.pdf", Reply(body=b"%PDF"))
        pdf = await make_client().download(cdn.url + "/s3/label.pdf")
    finally:
        await cdn.server.close()

    assert pdf == b"%PDF"
    assert "Api-Key" not in cdn.calls[0].headers and "Client-Id" not in cdn.calls[0].headers


# --------------------------------------------------------------------------- rFBS delivery


async def test_tracking_numbers_go_20_per_call(
    fake: FakeOzon, make_client: Callable[..., OzonClient]
) -> None:
    def echo(body: dict[str, Any]) -> Reply:
        items = [
            {"posting_number": t["posting_number"], "result": True, "error": None}
            for t in body["tracking_numbers"]
        ]
        return Reply(json={"result": items})

    fake.script("/v2/fbs/posting/tracking-number/set", echo)
    pairs = [(f"12345{i:03d}-0001-1", f"SF14029384{i:05d}") for i in range(45)]

    results = await make_client().set_tracking_numbers(pairs)

    assert [len(call.body["tracking_numbers"]) for call in fake.calls] == [20, 20, 5]
    assert fake.calls[2].body["tracking_numbers"][-1] == {
        "posting_number": "12345044-0001-1",
        "tracking_number": "SF1402938400044",
    }
    assert len(results) == 45 and all(r.result and r.error == "" for r in results)


async def test_tracking_partial_failure(fake: FakeOzon, make_client: Callable[..., OzonClient]) -> None:
    fake.script("/v2/fbs/posting/tracking-number/set", Reply(json=load("tracking_set_partial.json")))

    results = await make_client().set_tracking_numbers([("12345679-0002-1", "UR2026100100017CN")])

    assert [r.error for r in results] == ["", "", "", "HAS_INCORRECT_TPL_INTEGRATION_TYPE"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("move_to_delivering", "/v2/fbs/posting/delivering"),
        ("move_to_last_mile", "/v2/fbs/posting/last-mile"),
        ("move_to_delivered", "/v2/fbs/posting/delivered"),
    ],
)
async def test_status_moves(
    fake: FakeOzon, make_client: Callable[..., OzonClient], method: str, path: str
) -> None:
    fake.script(path, Reply(json=load("move_delivering.json")))

    results = await getattr(make_client(), method)(["12345679-0002-1", "12345680-0003-1"])

    assert fake.calls[0].body == {"posting_number": ["12345679-0002-1", "12345680-0003-1"]}
    assert [(r.result, r.error) for r in results] == [(True, ""), (False, "TRANSITION_IS_NOT_POSSIBLE")]


# --------------------------------------------------------------------------- account


async def test_warehouses_follow_the_cursor(fake: FakeOzon, make_client: Callable[..., OzonClient]) -> None:
    urumqi, moscow = load("warehouse_list.json")["warehouses"]
    fake.script(
        "/v2/warehouse/list",
        Reply(json={"cursor": "w1", "has_next": True, "warehouses": [urumqi]}),
        Reply(json={"result": {"cursor": "", "has_next": False, "warehouses": [moscow]}}),
    )

    warehouses = await make_client().warehouses()

    assert [w.name for w in warehouses] == ["Urumqi main", "Moscow returns"]
    assert warehouses[0].utc_offset == timedelta(hours=8)
    assert [call.body["cursor"] for call in fake.calls] == ["", "w1"]


# --------------------------------------------------------------------------- limiter


class VirtualTime:
    """A clock that only moves when someone sleeps: simulated seconds, real microseconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay
        await asyncio.sleep(0)


async def test_one_seller_is_held_to_50_per_second() -> None:
    time = VirtualTime()
    limits = RateLimits(clock=time.clock, sleep=time.sleep)

    await asyncio.gather(*(limits.acquire(CLIENT_ID, "/v3/posting/fbs/get") for _ in range(120)))

    assert 2.3 <= time.now <= 2.5  # 119 gaps of 20 ms


async def test_two_sellers_do_not_share_a_bucket() -> None:
    time = VirtualTime()
    limits = RateLimits(clock=time.clock, sleep=time.sleep)

    async def one(client_id: str) -> None:
        async with limits.acquire(client_id, "/v3/posting/fbs/get"):
            pass

    await asyncio.gather(*(one(cid) for _ in range(60) for cid in ("111", "222")))

    assert 1.1 <= time.now <= 1.25  # 60 each in parallel, not 120 in a row


async def test_method_bucket_applies_on_top_of_the_global_one() -> None:
    time = VirtualTime()
    limits = RateLimits(clock=time.clock, sleep=time.sleep)

    for _ in range(3):
        await limits.acquire(CLIENT_ID, "/v2/products/stocks")
    stocks_done = time.now
    await limits.acquire(CLIENT_ID, "/v3/posting/fbs/get")

    assert stocks_done == pytest.approx(1.5)  # 80 per minute: 0.75 s apart
    assert time.now == pytest.approx(stocks_done + 0.02)  # other methods only keep the global 20 ms gap


async def test_method_table_is_extensible_per_registry() -> None:
    time = VirtualTime()
    limits = RateLimits(clock=time.clock, sleep=time.sleep)
    limits.method_limits["/v1/slow"] = Limit(1, 10.0)

    await limits.acquire(CLIENT_ID, "/v1/slow")
    await limits.acquire(CLIENT_ID, "/v1/slow")

    assert time.now == pytest.approx(10.0)
    assert "/v1/slow" not in RateLimits().method_limits


async def test_pause_holds_only_that_seller() -> None:
    time = VirtualTime()
    limits = RateLimits(clock=time.clock, sleep=time.sleep)

    limits.pause("222", 3.0)
    await limits.acquire("111")
    assert time.now == 0.0
    await limits.acquire("222")
    assert time.now == pytest.approx(3.0)
    assert limits.paused_for("222") == 0.0
