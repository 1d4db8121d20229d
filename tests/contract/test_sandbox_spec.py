"""The Ozon sandbox against Ozon's own published spec (issue 19).

Our real client drives the sandbox through every method it calls, in every flow and state it meets,
and through the errors it meets (bad input, unknown postings, roles, expired and wrong keys, rate
limits, 5xx, "Circle is open"). A middleware on the sandbox records each exchange as it crossed the
wire; every request is held against the method's request schema and every answer against its response
schema (200) or ``rpcStatus`` (any error). Wrong types, values outside an enum and missing required
fields fail; fields the spec does not list are reported (pytest's terminal summary), not failed.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sandbox.ozon import Faults, OzonSandbox
from sandbox.ozon.states import FLOWS
from services.ozon.client import OzonClient, RetryPolicy
from services.ozon.errors import OzonAuthError, OzonError
from tests.contract.openapi import Findings, spec
from tests.harness.report import LINES, report

CLIENT_ID, API_KEY = "777001", "contract-key"
RAW = "X-Contract-Raw"  # requests the test builds itself (not our client's): their bodies are not judged
QUICK = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, timeout=5.0)


class RecordingSandbox(OzonSandbox):
    """The sandbox with a tap on its wire: (path, raw?, request body, status, answer) per API call."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exchanges: list[tuple[str, bool, Any, int, Any]] = []

    def make_app(self) -> web.Application:
        app = super().make_app()
        paths = set(spec()["paths"])

        @web.middleware
        async def tap(request: web.Request, handler):
            response = await handler(request)
            if request.path in paths:
                raw = await request.read()
                body = json.loads(raw) if raw.strip() else None
                is_json = response.content_type == "application/json"
                self.exchanges.append((request.path, RAW in request.headers, body, response.status,
                                       json.loads(response.body) if is_json else None))
            return response

        app.middlewares.append(tap)
        return app


async def _raw(session: aiohttp.ClientSession, base: str, path: str, body: Any, *,
               client_id: str = CLIENT_ID, api_key: str = API_KEY) -> int:
    headers = {"Client-Id": client_id, "Api-Key": api_key, RAW: "1"}
    async with session.post(base + path, json=body, headers=headers) as resp:
        await resp.read()
        return resp.status


async def _drive(box: RecordingSandbox, session: aiohttp.ClientSession) -> None:
    base = box.base_url
    assert base
    client = OzonClient(session, base_url=base, client_id=CLIENT_ID, api_key=API_KEY, retry=QUICK)
    now = datetime.now(UTC)

    # every flow, several warehouses, single- and multi-product postings, one of each cancelled
    box.generate_orders(CLIENT_ID, 12, flows=FLOWS)
    pair = box.add_posting(CLIENT_ID, {"tpl_integration_type": "non_integrated", "products": [
        {"sku": 1543210001, "quantity": 2}, {"sku": 1543210002, "quantity": 1}]})
    await client.roles()
    await client.warehouses()
    open_ = [p async for p in client.iter_unfulfilled(limit=3)]
    assert len(open_) >= 13
    box.cancel(CLIENT_ID, open_[0].posting_number)

    by_flow: dict[str, list[str]] = {}
    for posting in open_[1:]:
        by_flow.setdefault(posting.tpl_integration_type or "", []).append(posting.posting_number)

    # packing: one package, a split into two, a repeat (already shipped), a cancelled posting
    shipped = []
    for numbers in by_flow.values():
        number = numbers[0]
        if number == pair["posting_number"]:
            continue
        got = await client.get_posting(number)
        await client.ship_and_confirm(number, [[(line.sku, line.quantity) for line in got.products]],
                                      poll_interval=0.05, poll_attempts=40)
        shipped.append(number)
    lines = [(int(x["sku"]), int(x["quantity"])) for x in pair["products"]]
    parts = await client.ship(pair["posting_number"], [[lines[0]], [lines[1]]])
    assert len(parts) == 2
    shipped += parts
    assert await client.ship(shipped[0], [[(1, 1)]]) == []  # POSTING_ALREADY_SHIPPED answers 400
    with pytest.raises(OzonError):
        await client.ship(open_[0].posting_number, [[(open_[0].products[0].sku, 1)]])
    with pytest.raises(OzonError):
        await client.get_posting("00000000-0000-1")
    await asyncio.sleep(0.3)  # aggregator registration

    # every posting in full (v3), in the lists (v4), in each state reached
    for number in [p.posting_number for p in open_] + parts:
        await client.get_posting(number)
    [p async for p in client.iter_postings(since=now - timedelta(days=30), to=now + timedelta(days=1), limit=4)]
    [p async for p in client.iter_unfulfilled(statuses=["awaiting_deliver"], changed_since=now - timedelta(hours=1))]

    # the pick list: Ozon's own, and refused where the warehouse has none (the bot then builds it)
    await client.pick_list(now - timedelta(days=1), now + timedelta(days=30), limit=2)
    box.support_pick_list(CLIENT_ID, False)
    with pytest.raises(OzonError):
        await client.pick_list(now - timedelta(days=1), now + timedelta(days=30))
    box.support_pick_list(CLIENT_ID, True)

    # labels: pending, completed, a posting that is not ready
    ready = [n for n in shipped if box.posting(CLIENT_ID, n)["status"] == "awaiting_deliver"]
    tasks = await client.create_label_task(ready)
    await client.get_label(tasks[0].task_id)
    await asyncio.sleep(0.25)
    await client.get_label(tasks[0].task_id)
    with pytest.raises(OzonError):
        await client.create_label_task([by_flow["non_integrated"][-1]])
    # several postings, one Ozon cannot print and one not packed: printed in part, the rest listed; none at all
    box.refuse_label(ready[0], "cargo places not set")
    partial = await client.create_label_task(ready + [by_flow["non_integrated"][-1]])
    await asyncio.sleep(0.25)
    assert len((await client.get_label(partial[0].task_id)).unprinted) == 2
    nothing = await client.create_label_task([ready[0]])
    await asyncio.sleep(0.25)
    assert (await client.get_label(nothing[0].task_id)).code == "error"
    with pytest.raises(OzonError):
        await client.get_label(1)

    # rFBS: tracking numbers and the three moves, accepted and refused item by item
    mine = [n for n in shipped if box.posting(CLIENT_ID, n)["tpl_integration_type"] == "non_integrated"]
    others = [n for n in shipped if n not in mine]
    await client.set_tracking_numbers([(n, f"SF{i:010d}") for i, n in enumerate(mine)] + [(others[0], "X1")])
    await client.move_to_delivering(mine + others[:1] + ["00000000-0000-1"])
    await client.move_to_last_mile(mine[:1])
    await client.move_to_delivered(mine)
    await client.move_to_delivered(mine[:1])  # refused: already delivered
    for number in mine:
        await client.get_posting(number)
    [p async for p in client.iter_postings(since=now - timedelta(days=30), to=now + timedelta(days=1),
                                           statuses=["delivered", "cancelled"])]

    # rFBS cancellation requests: listed (all states, by posting, paged), approved, rejected, refused twice
    still_open = [p.posting_number for p in open_[1:] if box.posting(CLIENT_ID, p.posting_number)["status"]
                  == "awaiting_packaging"]
    asked = [box.request_cancellation(CLIENT_ID, n, message="нашёл дешевле")["cancellation_id"]
             for n in still_open[:3]]
    assert len(asked) == 3
    pending = await client.cancellation_requests()
    assert {r.cancellation_id for r in pending} >= set(asked)
    await client.approve_cancellation(asked[0])
    await client.reject_cancellation(asked[1], "Заказ уже передан в доставку")
    with pytest.raises(OzonError):
        await client.approve_cancellation(asked[0])
    with pytest.raises(OzonError):
        await client.reject_cancellation(999999999, "нет такой")
    await client.cancellation_requests(state="ALL", posting_numbers=still_open[:3])
    await _raw(session, base, "/v2/conditional-cancellation/list", {"limit": 1, "last_id": asked[0], "filters": {
        "state": "ALL", "cancellation_initiator": ["CLIENT"]}, "with": {"counter": True}})
    await _raw(session, base, "/v2/conditional-cancellation/list", {"limit": 0})

    # FBS stock: read by SKU and by offer_id, set (updated, refused inside the 30 s window, unknown product)
    rows = await client.stocks_by_warehouse(skus=[1543210001, 5462125811])
    assert rows and rows[0].free_stock is not None
    await client.stocks_by_warehouse(offer_ids=[rows[0].offer_id])
    row = rows[0]
    answer = await client.set_stocks([(row.offer_id, row.product_id, row.warehouse_id, 7),
                                      ("NO-SUCH-OFFER", 1, row.warehouse_id, 1)])
    assert answer[0].updated and answer[1].errors
    again = await client.set_stocks([(row.offer_id, row.product_id, row.warehouse_id, 8)])
    assert again[0].errors[0].code == "TOO_MANY_REQUESTS"
    await _raw(session, base, "/v2/product/info/stocks-by-warehouse/fbs", {"limit": 1, "offer_id": [row.offer_id]})
    await _raw(session, base, "/v2/product/info/stocks-by-warehouse/fbs", {"limit": 10})
    await _raw(session, base, "/v2/products/stocks", {"stocks": []})

    # every optional block, which our client does not ask for (the sandbox still answers them)
    every = {"analytics_data": True, "barcodes": True, "financial_data": True, "legal_info": True}
    window = {"cutoff_from": (now - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "cutoff_to": (now + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    await _raw(session, base, "/v4/posting/fbs/unfulfilled/list", {"limit": 100, "filter": window, "with": every})
    await _raw(session, base, "/v4/posting/fbs/list", {"limit": 100, "with": every, "filter": {
        "since": window["cutoff_from"], "to": window["cutoff_to"]}})
    # the error index: the period's index and the postings charged (late, cancelled by the seller)
    box.add_charge(CLIENT_ID, shipped[0], "SELLER_DELAY", 12.5)
    box.add_charge(CLIENT_ID, open_[0].posting_number, "SELLER_CANCELLATION", 30.0)
    index = await client.error_index()
    assert index.processing_costs_sum == 42.5
    charges = await client.index_charges(now - timedelta(days=7), now + timedelta(minutes=5))
    assert {c.posting_error_type for c in charges} == {"SELLER_DELAY", "SELLER_CANCELLATION"}
    await _raw(session, base, "/v1/rating/index/fbs/posting/list", {"limit": 1, "filter": {
        "date_from": window["cutoff_from"], "date_to": window["cutoff_to"], "posting_numbers": [shipped[0]]}})
    await _raw(session, base, "/v1/rating/index/fbs/posting/list", {"limit": 1})

    for number in shipped[:3]:
        await _raw(session, base, "/v3/posting/fbs/get", {"posting_number": number, "with": {
            **every, "product_exemplars": True, "related_postings": True, "translit": True}})

    # errors the client meets: a bad key, an expired key, a key without the role, rate limits, 5xx
    box.add_seller("777002", "read-only", roles=["Admin read only"])
    box.add_seller("777003", "expired", expires_at=now - timedelta(days=1))
    with pytest.raises(OzonAuthError):
        await OzonClient(session, base_url=base, client_id=CLIENT_ID, api_key="wrong", retry=QUICK).roles()
    with pytest.raises(OzonAuthError):
        await OzonClient(session, base_url=base, client_id="777003", api_key="expired", retry=QUICK).roles()
    reader = OzonClient(session, base_url=base, client_id="777002", api_key="read-only", retry=QUICK)
    await reader.roles()
    with pytest.raises(OzonError):
        await reader.ship(shipped[0], [[(1, 1)]])
    for faults in (Faults(rate_429=1.0), Faults(rate_500=1.0), Faults(circle_open_rate=1.0)):
        box.faults = faults
        with pytest.raises(OzonError):
            await client.roles()
    box.faults = Faults()
    await _raw(session, base, "/v4/posting/fbs/list", {"limit": 0})
    await _raw(session, base, "/v4/posting/fbs/unfulfilled/list", {"limit": 5, "cursor": "not-a-cursor",
                                                                  "filter": window})


def judge(box: RecordingSandbox) -> Findings:
    findings = Findings()
    for path, raw, body, status, answer in box.exchanges:
        if not raw:
            findings.request(path, body if body is not None else {})
        findings.response(path, status, answer)
    return findings


async def test_sandbox_answers_and_client_requests_follow_ozons_spec():
    box = RecordingSandbox(seed=19, label_delay=0.2, registration_delay=0.1)
    box.add_seller(CLIENT_ID, API_KEY, warehouses=3)
    await box.start()
    try:
        async with aiohttp.ClientSession() as session:
            await _drive(box, session)
    finally:
        await box.stop()
    findings = judge(box)
    methods = {path for path, *_ in box.exchanges}
    statuses = sorted({status for *_, status, _ in box.exchanges})
    report("Ozon spec contract", {"exchanges": len(box.exchanges), "methods": len(methods),
                                  "statuses": "/".join(map(str, statuses)), "checked": findings.checked,
                                  "violations": len(findings.violations),
                                  "extra_field_sites": len(findings.extras)})
    LINES.extend(f"  extra, not in Ozon's spec: {line}" for line in findings.extra_fields())
    assert methods >= set(spec()["x-project-calls"]) - {"/v2/delivery-method/list"}
    served = set(box._routes)
    assert served <= set(spec()["paths"]), (
        f"the sandbox serves methods the spec subset lacks: {sorted(served - set(spec()['paths']))}; "
        "take their schemas in with `python -m tests.contract.build_subset` from a copy of Ozon's spec")
    assert served <= methods, f"drive every method the sandbox serves in _drive(): {sorted(served - methods)}"
    assert {400, 403, 404, 429, 500} <= set(statuses)
    assert findings.violations == [], "\n".join(findings.violations)


# --------------------------------------------------------------------------- the guard keeps guarding

# The deviations issue 19 found, each put back into a real sandbox answer: every one must fail.
DEVIATIONS = [
    ("/v2/warehouse/list", "warehouses.0.working_days", [1, 2, 3, 4, 5]),
    ("/v2/warehouse/list", "warehouses.0.first_mile.type", "DropOff"),
    ("/v2/warehouse/list", "warehouses.0.carriage_label_type", ""),
    ("/v2/warehouse/list", "warehouses.0.cut_in_time", ""),
    ("/v2/warehouse/list", "warehouses.0.timetable.working_hours", {"from": "09:00", "to": "19:00"}),
    ("/v4/posting/fbs/unfulfilled/list", "postings.0.financial_data.products.0.commission.amount", "0.00"),
    ("/v4/posting/fbs/list", "postings.0.financial_data.products.0.commission.amount", "0.00"),
    ("/v4/posting/fbs/unfulfilled/list", "postings.0.scanit", {}),
    ("/v4/posting/fbs/list", "postings.0.scanit", {}),
    ("/v3/posting/fbs/get", "result.scanit", {}),
]


async def _answers() -> dict[str, Any]:
    box = OzonSandbox(seed=5)
    box.add_seller(CLIENT_ID, API_KEY)
    [posting] = box.generate_orders(CLIENT_ID, 1)
    now = datetime.now(UTC)
    window = {"since": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "to": (now + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    every = {"analytics_data": True, "barcodes": True, "financial_data": True}
    bodies = {
        "/v2/warehouse/list": {"limit": 10},
        "/v4/posting/fbs/unfulfilled/list": {"limit": 10, "with": every, "filter": {
            "cutoff_from": window["since"], "cutoff_to": window["to"]}},
        "/v4/posting/fbs/list": {"limit": 10, "with": every, "filter": window},
        "/v3/posting/fbs/get": {"posting_number": posting["posting_number"], "with": every},
    }
    base = await box.start()
    try:
        async with aiohttp.ClientSession(headers={"Client-Id": CLIENT_ID, "Api-Key": API_KEY}) as session:
            out = {}
            for path, body in bodies.items():
                async with session.post(base + path, json=body) as resp:
                    assert resp.status == 200
                    out[path] = await resp.json()
            return out
    finally:
        await box.stop()


def _put(doc: Any, dotted: str, value: Any) -> None:
    *head, last = dotted.split(".")
    for key in head:
        doc = doc[int(key)] if isinstance(doc, list) else doc[key]
    doc[last] = value


@pytest.mark.parametrize(("path", "field", "value"), DEVIATIONS, ids=[f"{p} {f}" for p, f, _ in DEVIATIONS])
async def test_each_deviation_found_in_issue_19_fails_again(path: str, field: str, value: Any):
    answer = (await _answers())[path]
    clean = Findings()
    clean.response(path, 200, answer)
    assert clean.violations == []
    _put(answer, field, value)
    broken = Findings()
    broken.response(path, 200, answer)
    at = "$." + ".".join(f"[{k}]" if k.isdigit() else k for k in field.split(".")).replace(".[", "[")
    assert broken.violations and all(v.split(": ")[0].endswith(at) or at in v for v in broken.violations)


def test_requests_missing_a_required_field_or_off_the_enum_fail_and_extras_are_only_reported():
    findings = Findings()
    findings.request("/v4/posting/fbs/ship", {"posting_number": "1-1-1", "packages": [{"products": [
        {"product_id": 1, "quantity": 1}]}], "with": {"additional_data": True}})
    assert findings.violations == [] and not findings.extras
    findings.request("/v4/posting/fbs/ship", {"posting_number": "1-1-1", "surprise": 1, "packages": [
        {"products": [{"product_id": 1, "quantity": 1}]}]})
    assert findings.violations == [] and findings.extra_fields() == ["/v4/posting/fbs/ship request $: surprise"]
    findings.request("/v4/posting/fbs/ship", {"posting_number": "1-1-1"})
    findings.request("/v4/posting/fbs/list", {"limit": 10, "sort_dir": "UP", "filter": {
        "since": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}})
    findings.request("/v2/posting/fbs/package-label/get", {"task_id": "one"})
    assert [v.split(": ")[1].split()[0] for v in findings.violations] == ["required", "enum", "type"]


def test_null_is_not_set_where_optional_and_a_violation_where_required():
    findings = Findings()
    findings.response("/v3/posting/fbs/get", 200, {"result": {"posting_number": "1-1-1", "barcodes": None}})
    assert findings.violations == []
    findings.request("/v2/posting/fbs/package-label/get", {"task_id": None})
    assert len(findings.violations) == 1 and "type" in findings.violations[0]
