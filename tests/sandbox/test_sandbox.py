"""The Ozon sandbox over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout, web

from sandbox.ozon import Faults, OzonSandbox, serve
from sandbox.ozon.label_pdf import render_label_pdf
from sandbox.ozon.wire import parse_dt

CID = "100500"
KEY = "demo-key"
T0 = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)
WIDE = {"cutoff_from": "2026-09-01T00:00:00Z", "cutoff_to": "2027-05-01T00:00:00Z"}


class FakeClock:
    def __init__(self, start: datetime = T0):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sandbox(clock: FakeClock):
    sb = OzonSandbox(seed=7, clock=clock, label_delay=30, registration_delay=60)
    sb.add_seller(CID, KEY)
    await sb.start()
    yield sb
    await sb.stop()


@pytest.fixture
async def http():
    async with ClientSession(timeout=ClientTimeout(total=5)) as session:
        yield session


async def call(
    http: ClientSession,
    sb: OzonSandbox,
    path: str,
    body: Any = None,
    *,
    cid: str = CID,
    key: str = KEY,
    timeout: float | None = None,
) -> tuple[int, Any, Any]:
    kwargs: dict[str, Any] = {"headers": {"Client-Id": cid, "Api-Key": key}, "json": body or {}}
    if timeout is not None:
        kwargs["timeout"] = ClientTimeout(total=timeout)
    async with http.post(sb.base_url + path, **kwargs) as resp:
        return resp.status, await resp.json(), resp.headers


async def ok(http: ClientSession, sb: OzonSandbox, path: str, body: Any = None, **kw: Any) -> Any:
    status, data, _ = await call(http, sb, path, body, **kw)
    assert status == 200, (path, status, data)
    return data


async def get(http: ClientSession, sb: OzonSandbox, number: str) -> dict:
    data = await ok(http, sb, "/v3/posting/fbs/get", {"posting_number": number})
    return data["result"]


def ship_body(posting: dict) -> dict:
    return {
        "posting_number": posting["posting_number"],
        "packages": [
            {"products": [{"product_id": p["sku"], "quantity": p["quantity"]} for p in posting["products"]]}
        ],
    }


# ----------------------------------------------------------------------------------------------------


async def test_auth_failures_and_roles(sandbox: OzonSandbox, http: ClientSession, clock: FakeClock):
    status, body, headers = await call(http, sandbox, "/v1/roles", cid="abc")
    assert status == 400
    assert body == {"code": 3, "message": "Client-Id header value should be positive integer", "details": []}
    assert "Ratelimit-Remaining" in headers

    wrong = {"code": 5, "message": "Invalid Api-Key, please check the key and try again", "details": []}
    status, body, headers = await call(http, sandbox, "/v1/roles", key="nope")
    assert (status, body) == (404, wrong)
    assert "Ratelimit-Remaining" in headers
    status, body, _ = await call(http, sandbox, "/v1/roles", cid="999")
    assert (status, body) == (404, wrong)

    status, body, headers = await call(http, sandbox, "/v1/roles")
    assert status == 200
    assert int(headers["Ratelimit-Remaining"]) < 50
    assert body["expires_at"] == "2027-02-24T08:00:00Z"  # 90 days
    assert body["roles"][0]["name"] == "Admin"
    assert "/v4/posting/fbs/ship" in body["roles"][0]["methods"]

    # an expired key, and a read-only key trying to ship
    sandbox.add_seller("200", "k2", expires_at=T0 - timedelta(days=1))
    status, body, _ = await call(http, sandbox, "/v1/roles", cid="200", key="k2")
    assert status == 403 and body["message"].startswith("Api-key is deactivated")
    sandbox.add_seller("300", "k3", roles=["Admin read only"])
    status, body, _ = await call(http, sandbox, "/v4/posting/fbs/ship", {}, cid="300", key="k3")
    assert status == 403 and body["message"] == "Api-Key is missing a required role for a method"


async def test_unknown_and_removed_paths(sandbox: OzonSandbox, http: ClientSession):
    for path in (
        "/v1/does-not-exist",
        "/v3/posting/fbs/unfulfilled/list",
        "/v3/posting/fbs/list",
        "/v2/fbs/posting/sent-by-seller",
        "/v2/posting/fbs/package-label",
    ):
        status, body, _ = await call(http, sandbox, path, {"posting_number": ["x"]})
        assert (status, body) == (404, {"code": 5, "message": "method not found", "details": []}), path


async def test_warehouses(sandbox: OzonSandbox, http: ClientSession):
    data = await ok(http, sandbox, "/v2/warehouse/list", {"limit": 100})
    assert data["has_next"] is False and data["cursor"] == ""
    (wh,) = data["warehouses"]
    assert wh["name"] == "乌鲁木齐仓 Urumqi" and wh["is_rfbs"] is True and wh["status"] == "created"
    assert wh["address_info"]["utc"] == "UTC+06:00"
    assert isinstance(wh["warehouse_id"], int)
    assert not any(k.startswith("_") for k in wh)


async def test_unfulfilled_requires_cutoff_and_limit(sandbox: OzonSandbox, http: ClientSession):
    path = "/v4/posting/fbs/unfulfilled/list"
    status, body, _ = await call(http, sandbox, path, {"limit": 10, "filter": {}})
    assert status == 400
    assert body == {
        "code": 3,
        "message": "either filter.cutoff or filter.delivering_date must be specified",
        "details": [],
    }
    both = dict(WIDE, delivering_date_from="2026-11-01T00:00:00Z", delivering_date_to="2026-12-01T00:00:00Z")
    status, body, _ = await call(http, sandbox, path, {"limit": 10, "filter": both})
    assert status == 400 and body["code"] == 3
    for limit in (0, 101, None):
        status, body, _ = await call(http, sandbox, path, {"limit": limit, "filter": WIDE})
        assert status == 400 and body["code"] == 3, limit
    status, body, _ = await call(http, sandbox, "/v4/posting/fbs/list", {"limit": 10, "filter": {}})
    assert status == 400


async def test_pagination_250(sandbox: OzonSandbox, http: ClientSession):
    sandbox.generate_orders(CID, 250)
    seen: list[str] = []
    dates: list[str] = []
    cursor = ""
    pages = 0
    while True:
        body = await ok(
            http,
            sandbox,
            "/v4/posting/fbs/unfulfilled/list",
            {"cursor": cursor, "limit": 100, "filter": WIDE},
        )
        assert set(body) == {"count", "cursor", "has_next", "postings"}
        assert body["count"] == 250
        pages += 1
        seen += [p["posting_number"] for p in body["postings"]]
        dates += [p["shipment_date"] for p in body["postings"]]
        if not body["has_next"]:
            assert body["cursor"] == ""
            break
        cursor = body["cursor"]
        assert cursor
    assert pages == 3
    assert len(seen) == 250 and len(set(seen)) == 250
    assert dates == sorted(dates)

    # DESC, statuses and the shipment window narrow the answer
    body = await ok(
        http,
        sandbox,
        "/v4/posting/fbs/unfulfilled/list",
        {"limit": 5, "sort_dir": "DESC", "filter": dict(WIDE, statuses=["awaiting_deliver"])},
    )
    assert body["count"] == 0 and body["postings"] == [] and body["has_next"] is False
    body = await ok(
        http,
        sandbox,
        "/v4/posting/fbs/unfulfilled/list",
        {"limit": 5, "sort_dir": "desc", "filter": WIDE},
    )
    assert [p["shipment_date"] for p in body["postings"]] == sorted(dates, reverse=True)[:5]
    window = {"cutoff_from": "2026-11-26T00:00:00Z", "cutoff_to": "2026-11-26T20:00:00Z"}
    body = await ok(http, sandbox, "/v4/posting/fbs/unfulfilled/list", {"limit": 100, "filter": window})
    assert 0 < body["count"] < 250
    assert all(p["shipment_date"] <= "2026-11-26T20:00:00Z" for p in body["postings"])


async def test_wrap_lists_switch(clock: FakeClock, http: ClientSession):
    sb = OzonSandbox(seed=7, clock=clock, wrap_lists=True)
    sb.add_seller(CID, KEY)
    sb.generate_orders(CID, 3)
    await sb.start()
    try:
        body = await ok(http, sb, "/v4/posting/fbs/unfulfilled/list", {"limit": 10, "filter": WIDE})
        assert set(body) == {"result"}
        assert body["result"]["count"] == 3 and len(body["result"]["postings"]) == 3
        body = await ok(
            http,
            sb,
            "/v4/posting/fbs/list",
            {"limit": 10, "filter": {"since": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}},
        )
        assert set(body["result"]) == {"cursor", "has_next", "postings"}
    finally:
        await sb.stop()


async def test_fbs_list_filters(sandbox: OzonSandbox, http: ClientSession):
    postings = sandbox.generate_orders(CID, 4)
    flt = {"since": "2026-11-26T00:00:00Z", "to": "2026-11-27T00:00:00Z"}
    body = await ok(http, sandbox, "/v4/posting/fbs/list", {"limit": 10, "filter": flt})
    assert "count" not in body and len(body["postings"]) == 4
    flt_one = dict(flt, order_numbers=[postings[2]["order_number"]])
    body = await ok(http, sandbox, "/v4/posting/fbs/list", {"limit": 10, "filter": flt_one})
    assert [p["posting_number"] for p in body["postings"]] == [postings[2]["posting_number"]]
    old = {"since": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}
    body = await ok(http, sandbox, "/v4/posting/fbs/list", {"limit": 10, "filter": old})
    assert body["postings"] == []


async def test_posting_shapes_v4_and_v3(sandbox: OzonSandbox, http: ClientSession):
    agg, non = sandbox.generate_orders(CID, 2)
    assert agg["tpl_integration_type"] == "aggregator" and non["tpl_integration_type"] == "non_integrated"
    assert re.fullmatch(r"\d{8}-\d{4}-1", agg["posting_number"])
    assert agg["order_number"] == agg["posting_number"][:-2]
    assert agg["customer"] is None and non["customer"]["address"]["country"] == "Россия"
    assert agg["delivery_method"]["tpl_provider_id"] == 1065
    assert agg["status"] == "awaiting_packaging" and agg["substatus"] == "posting_created"
    assert agg["in_process_at"] == "2026-11-26T08:00:00Z"
    due = parse_dt(agg["shipment_date"]) - T0
    assert timedelta(hours=6) <= due <= timedelta(hours=72)
    for line in agg["products"]:
        assert 1_000_000_000 <= line["sku"] <= 9_999_999_999
        assert 1 <= line["quantity"] <= 3
        assert line["price"]["currency"] == "CNY" and re.fullmatch(r"\d+\.\d\d", line["price"]["amount"])
    assert agg["tariffication_steps"][0]["tariff_type"] == "no_discount"
    assert "scanit" in agg and "container" in agg

    body = await ok(http, sandbox, "/v4/posting/fbs/unfulfilled/list", {"limit": 10, "filter": WIDE})
    listed = {p["posting_number"]: p for p in body["postings"]}
    assert listed[agg["posting_number"]]["financial_data"] is None  # not requested
    assert listed[agg["posting_number"]]["tariffication"]["current_tariff_type"] == "no_discount"

    v3 = await get(http, sandbox, agg["posting_number"])
    line = v3["products"][0]
    assert isinstance(line["price"], str) and re.fullmatch(r"\d+\.\d{4}", line["price"])
    assert line["currency_code"] == "CNY"
    assert "ship" in v3["available_actions"]
    assert v3["requirements"]["products_requiring_gtd"] == []
    assert v3["tariffication_steps"]

    status, body, _ = await call(http, sandbox, "/v3/posting/fbs/get", {"posting_number": "00000000-0000-1"})
    assert (status, body) == (404, {"code": 5, "message": "POSTING_NOT_FOUND", "details": []})


async def test_ship_aggregator_registers_later(sandbox: OzonSandbox, http: ClientSession, clock: FakeClock):
    (posting,) = sandbox.generate_orders(CID, 1, flows=["aggregator"])
    number = posting["posting_number"]
    body = await ok(http, sandbox, "/v4/posting/fbs/ship", ship_body(posting))
    assert body["result"] == [number]
    assert body["additional_data"][0]["products"][0]["sku"] == posting["products"][0]["sku"]

    v3 = await get(http, sandbox, number)
    assert (v3["status"], v3["substatus"]) == ("awaiting_registration", "posting_awaiting_registration")
    assert v3["tracking_number"] == ""

    clock.advance(61)
    v3 = await get(http, sandbox, number)
    assert v3["status"] == "awaiting_deliver"
    assert v3["tracking_number"] == number
    assert "label_download" in v3["available_actions"]
    assert "set_track_number" not in v3["available_actions"]

    status, body, _ = await call(http, sandbox, "/v4/posting/fbs/ship", ship_body(posting))
    assert (status, body["message"]) == (400, "POSTING_ALREADY_SHIPPED")

    # Ozon owns the tracking of partner parcels; rFBS setters are refused
    body = await ok(
        http,
        sandbox,
        "/v2/fbs/posting/tracking-number/set",
        {"tracking_numbers": [{"posting_number": number, "tracking_number": "SF1402938475612"}]},
    )
    assert body == {
        "result": [{"posting_number": number, "result": False, "error": "HAS_INCORRECT_TPL_INTEGRATION_TYPE"}]
    }
    body = await ok(http, sandbox, "/v2/fbs/posting/delivering", {"posting_number": [number]})
    assert body["result"][0]["error"] == "HAS_INCORRECT_TPL_INTEGRATION_TYPE"
    assert sandbox.posting(CID, number)["tracking_number"] == number


async def test_ship_non_integrated_and_delivery_order(sandbox: OzonSandbox, http: ClientSession):
    (posting,) = sandbox.generate_orders(CID, 1, flows=["non_integrated"])
    number = posting["posting_number"]
    assert "set_cutoff" in posting["available_actions"]
    await ok(http, sandbox, "/v4/posting/fbs/ship", ship_body(posting))
    state = sandbox.posting(CID, number)
    assert state["status"] == "awaiting_deliver"
    assert {"set_track_number", "non_int_delivering"} <= set(state["available_actions"])

    for path in ("/v2/fbs/posting/last-mile", "/v2/fbs/posting/delivered"):
        body = await ok(http, sandbox, path, {"posting_number": [number]})
        assert body["result"] == [
            {"posting_number": number, "result": False, "error": "TRANSITION_IS_NOT_POSSIBLE"}
        ]

    body = await ok(
        http,
        sandbox,
        "/v2/fbs/posting/tracking-number/set",
        {"tracking_numbers": [{"posting_number": number, "tracking_number": "SF1402938475612"}]},
    )
    assert body["result"] == [{"posting_number": number, "result": True, "error": ""}]
    body = await ok(http, sandbox, "/v2/fbs/posting/delivering", {"posting_number": [number]})
    assert body["result"][0]["result"] is True
    assert sandbox.posting(CID, number)["status"] == "delivering"
    body = await ok(http, sandbox, "/v2/fbs/posting/delivering", {"posting_number": [number]})
    assert body["result"][0]["error"] == "TRANSITION_IS_NOT_POSSIBLE"
    await ok(http, sandbox, "/v2/fbs/posting/last-mile", {"posting_number": [number]})
    assert sandbox.posting(CID, number)["substatus"] == "posting_transferred_to_courier_service"
    await ok(http, sandbox, "/v2/fbs/posting/delivered", {"posting_number": [number]})
    final = sandbox.posting(CID, number)
    assert (final["status"], final["tracking_number"]) == ("delivered", "SF1402938475612")

    too_many = [{"posting_number": number, "tracking_number": f"T{i}"} for i in range(21)]
    status, body, _ = await call(
        http, sandbox, "/v2/fbs/posting/tracking-number/set", {"tracking_numbers": too_many}
    )
    assert status == 400 and body["code"] == 3


async def test_ship_errors_and_ship_failed(sandbox: OzonSandbox, http: ClientSession):
    a, b, c = sandbox.generate_orders(CID, 3, flows=["non_integrated"])
    sku = a["products"][0]["sku"]
    qty = a["products"][0]["quantity"]

    bad = ship_body(a)
    bad["packages"][0]["products"][0]["product_id"] = 1234567890
    status, body, _ = await call(http, sandbox, "/v4/posting/fbs/ship", bad)
    assert (status, body) == (400, {"code": 3, "message": "UNKNOWN_PRODUCT_DEFINED", "details": []})

    bad = ship_body(a)
    bad["packages"][0]["products"][0]["quantity"] = qty + 1
    status, body, _ = await call(http, sandbox, "/v4/posting/fbs/ship", bad)
    assert (status, body["message"]) == (400, "HAS_INCORRECT_PRODUCT_QUANTITY")

    status, body, _ = await call(
        http, sandbox, "/v4/posting/fbs/ship", {"posting_number": "11111111-1111-1", "packages": []}
    )
    assert (status, body["message"]) == (404, "POSTING_NOT_FOUND")

    sandbox.cancel(CID, b["posting_number"])
    status, body, _ = await call(http, sandbox, "/v4/posting/fbs/ship", ship_body(b))
    assert (status, body["message"]) == (400, "POSTING_ALREADY_CANCELLED")

    approve = sandbox.add_posting(
        CID,
        {
            "status": "awaiting_approve",
            "products": [{"sku": sku, "quantity": 1}],
            "tpl_integration_type": "ozon",
        },
    )
    assert approve["substatus"] == "posting_created" and approve["products"][0]["offer_id"]
    status, body, _ = await call(http, sandbox, "/v4/posting/fbs/ship", ship_body(approve))
    assert (status, body["message"]) == (400, "HAS_INCORRECT_STATUS")

    # HTTP 200 does not prove the packing worked
    sandbox.fail_next_ship(c["posting_number"])
    await ok(http, sandbox, "/v4/posting/fbs/ship", ship_body(c))
    v3 = await get(http, sandbox, c["posting_number"])
    assert (v3["status"], v3["substatus"]) == ("awaiting_packaging", "ship_failed")
    assert "ship_async_retry" in v3["available_actions"]
    await ok(http, sandbox, "/v4/posting/fbs/ship", ship_body(c))
    v3 = await get(http, sandbox, c["posting_number"])
    assert v3["status"] == "awaiting_deliver" and v3["previous_substatus"] == "ship_failed"


async def test_ship_in_two_parcels_splits(sandbox: OzonSandbox, http: ClientSession):
    posting = sandbox.add_posting(
        CID,
        {"tpl_integration_type": "non_integrated", "products": [{"sku": 5462125811, "quantity": 2}]},
    )
    body = {
        "posting_number": posting["posting_number"],
        "packages": [
            {"products": [{"product_id": 5462125811, "quantity": 1}]},
            {"products": [{"product_id": "5462125811", "quantity": 1}]},
        ],
    }
    result = (await ok(http, sandbox, "/v4/posting/fbs/ship", body))["result"]
    assert result == [posting["posting_number"], posting["order_number"] + "-2"]
    child = sandbox.posting(CID, result[1])
    assert child["parent_posting_number"] == posting["posting_number"]
    assert child["status"] == "awaiting_deliver" and child["products"][0]["quantity"] == 1
    assert sandbox.posting(CID, result[0])["products"][0]["quantity"] == 1


async def test_labels_pending_then_pdf(sandbox: OzonSandbox, http: ClientSession, clock: FakeClock):
    (posting,) = sandbox.generate_orders(CID, 1, flows=["non_integrated"])
    number = posting["posting_number"]
    create = "/v3/posting/fbs/package-label/create"
    status, body, _ = await call(http, sandbox, create, {"posting_numbers": [number]})
    assert (status, body["message"]) == (400, "The next postings aren't ready")

    await ok(http, sandbox, "/v4/posting/fbs/ship", ship_body(posting))
    body = await ok(http, sandbox, create, {"posting_numbers": [number]})
    assert set(body) == {"tasks"}
    (task,) = body["tasks"]
    assert task["task_type"] == "big_label" and isinstance(task["task_id"], int)

    body = await ok(http, sandbox, "/v2/posting/fbs/package-label/get", {"task_id": task["task_id"]})
    assert body["status"]["code"] == "pending" and body["file_url"] == ""
    clock.advance(31)
    body = await ok(http, sandbox, "/v2/posting/fbs/package-label/get", {"task_id": str(task["task_id"])})
    assert body["status"]["code"] == "completed"
    assert body["status"]["postings_count"] == 1 and body["error"] is None
    assert body["file_url"] == f"{sandbox.base_url}/labels/{task['task_id']}.pdf"

    async with http.get(body["file_url"]) as resp:
        assert resp.status == 200 and resp.content_type == "application/pdf"
        pdf = await resp.read()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert_pdf_structure(pdf, pages=1)
    assert f"({number})".encode() in pdf

    status, body, _ = await call(http, sandbox, "/v2/posting/fbs/package-label/get", {"task_id": 1})
    assert status == 404


def assert_pdf_structure(pdf: bytes, pages: int) -> None:
    """Every xref entry points at its object, startxref at the xref table."""
    startxref = int(re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", pdf).group(1))
    assert pdf[startxref:].startswith(b"xref\n")
    m = re.match(rb"xref\n0 (\d+)\n", pdf[startxref:])
    count = int(m.group(1))
    table = pdf[startxref + m.end() :]
    entries = [table[i * 20 : (i + 1) * 20] for i in range(count)]
    assert entries[0] == b"0000000000 65535 f \n"
    for num, entry in enumerate(entries[1:], start=1):
        offset = int(entry[:10])
        assert pdf[offset:].startswith(b"%d 0 obj" % num), num
    assert pdf.count(b"/Type /Page ") == pages
    assert b"/BaseFont /Helvetica" in pdf
    for length, stream in re.findall(rb"/Length (\d+) >>\nstream\n(.*?)\nendstream", pdf, re.S):
        assert int(length) == len(stream)


def test_pdf_renderer_multi_page():
    pdf = render_label_pdf(
        [
            {"posting_number": "12345678-0001-1", "delivery_method": "Seller delivery Urumqi → Moscow"},
            {
                "posting_number": "12345678-0002-1",
                "items": [("UR-TEAPOT-500", 2)],
                "warehouse": "乌鲁木齐仓 (x)",
            },
        ]
    )
    assert_pdf_structure(pdf, pages=2)
    assert b"Urumqi -> Moscow" in pdf and b"\\(x\\)" in pdf


async def test_faults(sandbox: OzonSandbox, http: ClientSession):
    sandbox.faults = Faults(rate_429=1.0, retry_after=3)
    status, body, headers = await call(http, sandbox, "/v1/roles")
    assert status == 429
    assert body == {"code": 8, "message": "You have reached request rate limit per second", "details": []}
    assert headers["Retry-After"] == "3" and "Ratelimit-Remaining" in headers

    sandbox.faults = Faults(rate_500=1.0, paths={"/v2/warehouse/list"})
    status, body, _ = await call(http, sandbox, "/v2/warehouse/list")
    assert status == 500 and body["code"] == 13
    await ok(http, sandbox, "/v1/roles")  # not in paths

    sandbox.faults = Faults(circle_open_rate=1.0)
    status, body, _ = await call(http, sandbox, "/v1/roles")
    assert status == 429 and body["message"] == "Circle is open"

    sandbox.faults = Faults(rate_timeout=1.0, timeout_seconds=0.4)
    with pytest.raises(asyncio.TimeoutError):
        await call(http, sandbox, "/v1/roles", timeout=0.1)

    sandbox.faults = Faults(latency=0.15)
    loop = asyncio.get_running_loop()
    t = loop.time()
    await ok(http, sandbox, "/v1/roles")
    assert loop.time() - t >= 0.15

    sandbox.faults = Faults()
    assert [c.status for c in sandbox.calls_to("/v1/roles", CID, ok_only=False)] == [429, 200, 429, 504, 200]
    assert all(c.status == 200 for c in sandbox.calls_to("/v1/roles"))


async def test_timeout_after_processing_applies_the_call(sandbox: OzonSandbox, http: ClientSession):
    (posting,) = sandbox.generate_orders(CID, 1, flows=["non_integrated"])
    sandbox.faults = Faults(rate_timeout=1.0, timeout_seconds=0.4, timeout_after_processing=True)
    with pytest.raises(asyncio.TimeoutError):
        await call(http, sandbox, "/v4/posting/fbs/ship", ship_body(posting), timeout=0.1)
    assert sandbox.posting(CID, posting["posting_number"])["status"] == "awaiting_deliver"
    sandbox.faults = Faults()
    status, body, _ = await call(http, sandbox, "/v4/posting/fbs/ship", ship_body(posting))
    assert (status, body["message"]) == (400, "POSTING_ALREADY_SHIPPED")


async def test_rate_limit_enforced_when_configured(clock: FakeClock, http: ClientSession):
    sb = OzonSandbox(clock=clock, rate_limit=3)
    sb.add_seller(CID, KEY)
    await sb.start()
    try:
        statuses = [(await call(http, sb, "/v1/roles"))[0] for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
    finally:
        await sb.stop()


async def test_control_api(sandbox: OzonSandbox, http: ClientSession):
    base = sandbox.base_url + "/__sandbox__"
    async with http.post(base + "/sellers", json={"client_id": "777", "api_key": "ctl-key"}) as resp:
        assert resp.status == 200
    async with http.post(
        base + "/orders", json={"client_id": "777", "count": 3, "due_in_seconds": 3600}
    ) as resp:
        postings = await resp.json()
    assert len(postings) == 3
    assert all(p["shipment_date"] == "2026-11-26T09:00:00Z" for p in postings)
    number = postings[0]["posting_number"]

    body = await ok(
        http,
        sandbox,
        "/v4/posting/fbs/unfulfilled/list",
        {"limit": 10, "filter": WIDE},
        cid="777",
        key="ctl-key",
    )
    assert body["count"] == 3

    async with http.post(base + "/cancel", json={"client_id": "777", "posting_number": number}) as resp:
        assert resp.status == 200
    async with http.get(f"{base}/postings/777/{number}") as resp:
        state = await resp.json()
    assert (
        state["status"] == "cancelled"
        and state["cancellation"]["cancel_reason"] == "Покупатель отменил заказ"
    )
    async with http.get(f"{base}/postings/777/nope") as resp:
        assert resp.status == 404

    async with http.post(base + "/faults", json={"rate_500": 1.0, "paths": ["/v1/roles"]}) as resp:
        assert (await resp.json())["paths"] == ["/v1/roles"]
    status, _, _ = await call(http, sandbox, "/v1/roles", cid="777", key="ctl-key")
    assert status == 500
    async with http.post(base + "/faults", json={"reset": True}) as resp:
        assert (await resp.json())["rate_500"] == 0
    async with http.post(base + "/faults", json={"bogus": 1}) as resp:
        assert resp.status == 400

    async with http.get(base + "/calls", params={"path": "/v4/posting/fbs/unfulfilled/list"}) as resp:
        calls = await resp.json()
    assert len(calls) == 1 and calls[0]["client_id"] == "777" and calls[0]["status"] == 200
    assert calls[0]["body"]["limit"] == 10

    async with http.post(base + "/push_url", json={"client_id": "777", "url": None}) as resp:
        assert resp.status == 200
    async with http.post(base + "/orders", json={"client_id": "nobody", "count": 1}) as resp:
        assert resp.status == 404


async def test_push_notifications(sandbox: OzonSandbox, http: ClientSession):
    received: list[dict] = []

    async def receiver(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"result": True})

    app = web.Application()
    app.router.add_post("/ozon/push/token", receiver)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        sandbox.set_push_url(CID, f"http://127.0.0.1:{port}/ozon/push/token")
        agg, non = sandbox.generate_orders(CID, 2)
        await ok(http, sandbox, "/v4/posting/fbs/ship", ship_body(non))
        sandbox.cancel(CID, agg["posting_number"])
        await sandbox.flush_pushes()
    finally:
        await runner.cleanup()

    kinds = [(m["message_type"], m["posting_number"]) for m in received]
    assert kinds == [
        ("TYPE_NEW_POSTING", agg["posting_number"]),
        ("TYPE_NEW_POSTING", non["posting_number"]),
        ("TYPE_STATE_CHANGED", non["posting_number"]),
        ("TYPE_POSTING_CANCELLED", agg["posting_number"]),
    ]
    new = received[0]
    assert new["seller_id"] == int(CID)
    assert new["products"][0] == {
        "sku": agg["products"][0]["sku"],
        "offer_id": agg["products"][0]["offer_id"],
        "quantity": agg["products"][0]["quantity"],
    }
    assert new["tpl_integration_type"] == "aggregator" and new["shipment_date"] == agg["shipment_date"]
    assert {"in_process_at", "warehouse_id", "is_express", "tracking_number", "delivery_date_begin"} <= set(
        new
    )
    changed = received[2]
    assert changed["new_state"] == "posting_transferring_to_delivery"
    assert changed["changed_state_date"] == "2026-11-26T08:00:00Z"
    cancelled = received[3]
    assert cancelled["old_state"] == "posting_created" and cancelled["new_state"] == "posting_canceled"
    assert cancelled["reason"]["message"] == "Покупатель отменил заказ"
    assert all(p.status == 200 for p in sandbox.pushes)

    # an unreachable receiver is logged, never raised
    sandbox.set_push_url(CID, f"http://127.0.0.1:{port}/gone")
    sandbox.generate_orders(CID, 1)
    await sandbox.flush_pushes()
    assert sandbox.pushes[-1].status is None and sandbox.pushes[-1].error


def test_generator_is_deterministic():
    def make(seed: int) -> list[dict]:
        sb = OzonSandbox(seed=seed, clock=FakeClock())
        sb.add_seller(CID, KEY, warehouses=2)
        return sb.generate_orders(CID, 6, flows=["aggregator", "non_integrated", "3pl_tracking", "ozon"])

    first, second, other = make(7), make(7), make(8)
    assert first == second
    assert [p["posting_number"] for p in first] != [p["posting_number"] for p in other]
    assert [p["tpl_integration_type"] for p in first] == [
        "aggregator",
        "non_integrated",
        "3pl_tracking",
        "ozon",
        "aggregator",
        "non_integrated",
    ]
    assert {p["delivery_method"]["warehouse"] for p in first} == {"乌鲁木齐仓 Urumqi", "义乌仓 Yiwu"}


async def test_serve_entry_point(capsys: pytest.CaptureFixture[str], http: ClientSession):
    task = asyncio.create_task(serve("127.0.0.1", 0, 7, "100500", "demo-key", 2, 0.0))
    try:
        for _ in range(100):
            await asyncio.sleep(0.02)
            out = capsys.readouterr().out
            if "http://" in out:
                break
        url = re.search(r"http://127\.0\.0\.1:\d+", out).group(0)
        async with http.post(
            url + "/v4/posting/fbs/unfulfilled/list",
            headers={"Client-Id": "100500", "Api-Key": "demo-key"},
            json={
                "limit": 10,
                "filter": {"cutoff_from": "2000-01-01T00:00:00Z", "cutoff_to": "2000-06-01T00:00:00Z"},
            },
        ) as resp:
            assert resp.status == 200 and "Ratelimit-Remaining" in resp.headers
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_registration_happens_in_background(
    sandbox: OzonSandbox, http: ClientSession, clock: FakeClock
):
    """The carrier registers aggregator parcels by the clock even when nobody reads; a push follows."""
    (posting,) = sandbox.generate_orders(CID, 1, flows=["aggregator"])
    await ok(http, sandbox, "/v4/posting/fbs/ship", ship_body(posting))
    sandbox.set_push_url(CID, "http://127.0.0.1:9/unreachable")  # failures are recorded, never raised
    clock.advance(60)
    for _ in range(50):
        await asyncio.sleep(0.05)
        if sandbox.pushes:
            break
    (push,) = sandbox.pushes
    assert push.payload["message_type"] == "TYPE_STATE_CHANGED"
    assert push.payload["new_state"] == "posting_transferring_to_delivery"
    assert push.payload["changed_state_date"] == "2026-11-26T08:01:00Z"
    assert push.status is None and push.error
