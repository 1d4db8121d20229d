"""Our client reads every shape Ozon's published spec allows (issue 19, item 3).

Answers are generated straight from the response schemas in tests/fixtures/ozon-openapi-subset.json:
every property present, arrays of several items, each item taking the next value of every enum (so
working days come as day names, first-mile types, label types and statuses cycle through the spec's
values), integers where the spec says integer (``cut_in_time``), arrays where it says array (the
timetable's ``working_hours``), numbers where it says number (commissions), a string ``scanit``. A
stand-in on loopback serves them and the real client calls every method against it.
"""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.ozon.client import OzonClient, RetryPolicy
from tests.contract.openapi import Findings, resolve, response_schema, spec

VARIANTS = 8  # the longest enum the client meets has 8 values (working days)


def sample(schema: dict[str, Any], variant: int = 0, name: str = "") -> Any:
    """A value of ``schema``, the ``variant``-th of its kind: every property set, every enum cycled."""
    schema = resolve(schema)
    if "enum" in schema:
        values = schema["enum"]
        return values[variant % len(values)]
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "object" or "properties" in schema:
        return {key: sample(sub, variant, key) for key, sub in schema.get("properties", {}).items()}
    if kind in ("array", "array of strings") or "items" in schema:
        items = schema.get("items", {"type": "string"})
        count = max(2, schema.get("minItems", 0))
        return [sample(items, variant + i, name) for i in range(count)]
    if kind == "integer":
        return max(schema.get("minimum", 0), min(schema.get("maximum", 10**12), 1000 + variant))
    if kind == "number":
        return 12.5 + variant
    if kind == "boolean":
        return variant % 2 == 0
    if fmt == "date-time":
        return (datetime(2026, 12, 1, 9, tzinfo=UTC) + timedelta(days=variant)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if fmt == "int64":
        return str(4000 + variant)
    if fmt == "byte":
        return base64.b64encode(b"ozon").decode()
    if name == "posting_number":
        return f"8765432{variant}-0001-1"
    return f"{name or 'text'} {variant}"


def answer(path: str, variant: int) -> dict[str, Any]:
    body = sample(response_schema(path), variant)
    if isinstance(body, dict) and "has_next" in body:
        body["has_next"] = False  # one page: pagination has tests of its own
    return body


def test_generated_answers_are_what_the_spec_says():
    """The generator itself follows the spec (else this test would prove nothing), for every method in
    the subset, those our client calls and those the new capabilities add (``x-capability-calls``)."""
    findings = Findings()
    for path in spec()["paths"]:
        for variant in range(VARIANTS):
            findings.response(path, 200, answer(path, variant))
    assert findings.violations == []
    wh = answer("/v2/warehouse/list", 0)["warehouses"][0]
    assert wh["working_days"][0] in ("MONDAY", "UNSPECIFIED") and isinstance(wh["cut_in_time"], int)
    assert isinstance(wh["timetable"]["working_hours"], list)
    posting = answer("/v4/posting/fbs/list", 0)["postings"][0]
    assert isinstance(posting["financial_data"]["products"][0]["commission"]["amount"], float)
    assert isinstance(posting["scanit"], str)


@pytest.mark.parametrize("variant", range(VARIANTS))
async def test_client_reads_every_answer_the_spec_allows(variant: int):
    served: dict[str, dict[str, Any]] = {path: answer(path, variant) for path in spec()["x-project-calls"]}

    async def reply(request: web.Request) -> web.Response:
        return web.json_response(copy.deepcopy(served[request.path]))

    app = web.Application()
    app.router.add_post("/{tail:.*}", reply)
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            client = OzonClient(session, base_url=str(server.make_url("")), client_id="1", api_key="k",
                                retry=RetryPolicy(attempts=1, timeout=5.0))
            roles = await client.roles()
            assert roles.names == [r["name"] for r in served["/v1/roles"]["roles"]] and roles.expires_at is not None
            warehouses = await client.warehouses()
            assert [w.warehouse_id for w in warehouses] == [
                w["warehouse_id"] for w in served["/v2/warehouse/list"]["warehouses"]]
            for path, postings in (
                ("/v4/posting/fbs/unfulfilled/list", [p async for p in client.iter_unfulfilled()]),
                ("/v4/posting/fbs/list", [p async for p in client.iter_postings(
                    since=datetime(2026, 1, 1, tzinfo=UTC), to=datetime(2026, 2, 1, tzinfo=UTC))]),
            ):
                sent = served[path]["postings"]
                assert [p.posting_number for p in postings] == [p["posting_number"] for p in sent]
                first = postings[0]
                assert first.status == sent[0]["status"] and len(first.products) == len(sent[0]["products"])
                assert first.shipment_date is not None and first.financial_data is not None
                assert first.next_tariff_step(datetime(2026, 1, 1, tzinfo=UTC)) is not None
            got = await client.get_posting("x")
            v3 = served["/v3/posting/fbs/get"]["result"]
            assert got.posting_number == v3["posting_number"] and got.status == v3["status"]
            assert [p.sku for p in got.products] == [p["sku"] for p in v3["products"]]
            shipped = await client.ship("x", [[(1, 1)]])
            assert shipped == [str(n) for n in served["/v4/posting/fbs/ship"]["result"]]
            tasks = await client.create_label_task(["x"])
            assert [t.task_id for t in tasks] == [
                t["task_id"] for t in served["/v3/posting/fbs/package-label/create"]["tasks"]]
            label = await client.get_label(1)
            sent = served["/v2/posting/fbs/package-label/get"]
            assert (label.file_url, label.code) == (sent["file_url"], sent["status"]["code"])
            assert label.error == sent["error"]["message"]
            for path, call in (
                ("/v2/fbs/posting/tracking-number/set", client.set_tracking_numbers([("x", "T")])),
                ("/v2/fbs/posting/delivering", client.move_to_delivering(["x"])),
                ("/v2/fbs/posting/last-mile", client.move_to_last_mile(["x"])),
                ("/v2/fbs/posting/delivered", client.move_to_delivered(["x"])),
            ):
                results = await call
                assert [r.posting_number for r in results] == [r["posting_number"] for r in served[path]["result"]]
    finally:
        await server.close()
