"""Contract tests: saved Ozon payloads (written from the API reference) parse into the models.

Each test pins concrete values, so a model change that silently drops or mangles a field fails here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.ozon.errors import (
    OzonAuthError,
    OzonRateLimited,
    OzonRequestError,
    OzonUnavailable,
    error_from_response,
    parse_error_body,
)
from services.ozon.models import (
    LabelStatus,
    LabelTask,
    Money,
    MoveResult,
    Posting,
    PostingPage,
    Product,
    RoleInfo,
    Warehouse,
    parse_utc,
    unwrap_result,
)

PAYLOADS = Path(__file__).parent / "payloads"


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def raw(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


# --------------------------------------------------------------------------- posting lists


@pytest.mark.parametrize("name", ["unfulfilled_list_v4.json", "unfulfilled_list_v4_wrapped.json"])
def test_unfulfilled_page_parses_wrapped_and_unwrapped(name: str) -> None:
    page = PostingPage.from_api(load(name))

    assert page.count == 3
    assert page.has_next is True
    assert page.cursor == "eyJsYXN0X2lkIjozOTEwMDAwMDAwMn0="
    assert [p.posting_number for p in page.postings] == ["12345678-0001-1", "12345679-0002-1"]


def test_v4_aggregator_posting_fields() -> None:
    posting = PostingPage.from_api(load("unfulfilled_list_v4.json")).postings[0]

    assert posting.order_id == 39100000001
    assert posting.order_number == "12345678-0001"
    assert posting.status == "awaiting_packaging"
    assert posting.substatus == "posting_created"
    assert posting.flow == "aggregator"
    assert posting.shipment_date == datetime(2026, 10, 2, 9, 0, tzinfo=UTC)
    assert posting.in_process_at == datetime(2026, 9, 30, 3, 14, 8, tzinfo=UTC)
    assert posting.delivering_date is None
    assert posting.customer is None
    assert posting.delivery_method is not None
    assert posting.delivery_method.name == "ABT Economy Extra Small Xiamen 03 PUDO"
    assert posting.delivery_method.tpl_provider_id == 1065
    assert posting.delivery_method.warehouse_id == 1020005012345678
    assert posting.available_actions == [
        "ship",
        "ship_async",
        "cancel",
        "product_cancel",
        "has_barcode_for_printing",
    ]
    assert posting.requirements is not None
    assert posting.requirements["products_requiring_gtd"] == []
    assert posting.cancellation is not None and posting.cancellation.cancel_reason_id == 0

    (product,) = posting.products
    assert product.sku == 5462125811
    assert product.offer_id == "UR-TEAPOT-500"
    assert product.quantity == 1
    assert product.price == Money(amount=Decimal("89.00"), currency="CNY")

    # v4 tariffication is an object, kept as sent; the ladder is typed.
    assert posting.tariffication["next_tariff_starts_at"] == "2026-10-02T09:00:00Z"
    assert len(posting.tariffication_steps) == 5
    last = posting.tariffication_steps[-1]
    assert last.tariff_type == "commission"
    assert last.tariff_rate == Decimal(3)
    assert last.min_charge == Money(amount=Decimal("150"), currency="RUB")
    assert last.tariff_deadline_at == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)

    # Unknown fields are kept, not dropped.
    assert posting.model_extra["delivery_schema"] == "fbs"
    assert posting.financial_data is not None
    assert posting.financial_data["cluster_from"] == "Китай"
    assert posting.model_extra["received_at_sorting_center"] == "1970-01-01T00:00:00Z"


def test_v4_non_integrated_posting_fields() -> None:
    posting = PostingPage.from_api(load("unfulfilled_list_v4.json")).postings[1]

    assert posting.flow == "non_integrated"
    assert posting.status == "awaiting_deliver"
    # Fractional seconds, with and without trailing zeros, become aware UTC datetimes.
    assert posting.in_process_at == datetime(2026, 9, 29, 14, 3, 11, 482000, tzinfo=UTC)
    assert posting.shipment_date == datetime(2026, 10, 1, 14, 0, tzinfo=UTC)
    assert posting.customer is not None
    assert posting.customer.customer_id == 88765001
    assert posting.customer.address is not None
    assert posting.customer.address.city == "Казань"
    assert posting.customer.address.zip_code == "420111"
    assert posting.customer.address.latitude == pytest.approx(55.7963)
    assert [(p.sku, p.quantity, p.price.amount) for p in posting.products] == [
        (5462141122, 2, Decimal("35.22")),
        (5462141123, 1, Decimal("41.50")),  # the SKU came as a string
    ]
    assert posting.tariffication is None
    assert posting.tariffication_steps == []


def test_v4_list_page_has_no_count() -> None:
    page = PostingPage.from_api(load("fbs_list_v4.json"))

    assert page.count is None
    assert page.has_next is False
    assert page.cursor == ""
    delivered, cancelled = page.postings
    assert delivered.status == "delivered"
    assert delivered.tracking_number == "UR2026091500011CN"
    assert delivered.delivering_date == datetime(2026, 9, 13, 2, 11, tzinfo=UTC)
    assert cancelled.status == "cancelled"
    assert cancelled.cancellation is not None
    assert cancelled.cancellation.cancel_reason_id == 352
    assert cancelled.cancellation.cancellation_type == "seller"
    assert cancelled.cancellation.cancellation_initiator == "Продавец"
    assert cancelled.cancellation.affect_cancellation_rating is True
    assert cancelled.available_actions == []  # null in the payload


# --------------------------------------------------------------------------- posting details


def test_v3_get_string_prices_take_sibling_currency() -> None:
    posting = Posting.from_api(load("posting_get_v3.json"))

    assert posting.posting_number == "12345679-0002-1"
    assert posting.previous_substatus == "posting_acceptance_in_progress"
    first, second = posting.products
    assert first.price == Money(amount=Decimal("35.2200"), currency="CNY")
    assert first.currency_code == "CNY"
    assert second.price is not None and second.price.amount == Decimal("41.5")
    assert posting.barcodes == {"upper_barcode": "%101%123456789", "lower_barcode": "23012345678901"}
    assert posting.customer is not None and posting.customer.name == "Иван Петров"
    assert posting.tariffication["current_tariff_charge_currency_code"] == "RUB"
    assert posting.model_extra["prr_option"]["code"] == "none"


def test_next_tariff_step_is_the_one_in_force() -> None:
    posting = Posting.from_api(load("posting_get_v3.json"))

    early = posting.next_tariff_step(datetime(2026, 9, 30, 0, 0, tzinfo=UTC))
    assert early is not None and early.tariff_type == "discount"
    assert early.tariff_charge == Money(amount=Decimal("-12.36"), currency="RUB")

    mid = posting.next_tariff_step(datetime(2026, 10, 1, 8, 0, tzinfo=UTC))
    assert mid is not None and mid.tariff_type == "no_discount"
    assert mid.tariff_deadline_at == datetime(2026, 10, 1, 14, 0, tzinfo=UTC)

    late = posting.next_tariff_step(datetime(2026, 10, 9))  # naive means UTC
    assert late is not None and late.tariff_type == "commission"
    assert late.min_charge == Money(amount=Decimal("50"), currency="RUB")


def test_odd_posting_degrades_instead_of_failing() -> None:
    posting = Posting.from_api(load("posting_oddities.json"))

    assert posting.status == "awaiting_teleportation"
    assert posting.substatus == "posting_in_hyperspace"
    assert posting.order_id == 39100000005  # string int64
    assert posting.flow == "hybrid_aggregator"  # falls back to integration_type_flow
    assert posting.in_process_at is None and posting.shipment_date is None
    assert posting.tracking_number == ""
    assert posting.customer is None and posting.cancellation is None and posting.delivery_method is None
    assert posting.available_actions == []
    assert posting.tariffication_steps == []
    assert posting.requirements is None
    assert posting.next_tariff_step() is None
    # SW25 typed tariffication as an array; it is kept as sent.
    assert isinstance(posting.tariffication, list)
    assert posting.tariffication[0]["next_tariff_charge"] == "50"
    (product,) = posting.products
    assert product.quantity == 0
    assert product.price is None
    assert posting.model_extra["teleport_slot"] == {"gate": 7, "window": "2026-10-05T09:00:00Z"}
    assert posting.model_extra["quantum_entanglement_id"] == 42


def test_posting_without_number_is_skipped_in_page() -> None:
    page = PostingPage.from_api(
        {"postings": [{"status": "awaiting_packaging"}, None, {"posting_number": "1-1-1"}]}
    )

    assert [p.posting_number for p in page.postings] == ["1-1-1"]


def test_posting_number_is_required() -> None:
    with pytest.raises(ValueError):
        Posting.from_api({"status": "awaiting_packaging"})


# --------------------------------------------------------------------------- value shapes


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("89.0000", "CNY", (Decimal("89.0000"), "CNY")),
        (89.1, "RUB", (Decimal("89.1"), "RUB")),
        (7, None, (Decimal(7), None)),
        ({"amount": "35.22", "currency": "CNY"}, "RUB", (Decimal("35.22"), "CNY")),
        ({"amount": "1", "currency_code": "KZT"}, None, (Decimal(1), "KZT")),
        ({"amount": "abc", "currency": "RUB"}, None, (None, "RUB")),
        ("", "CNY", None),
        (None, "CNY", None),
        ([], "CNY", None),
    ],
)
def test_money_accepts_every_price_shape(value: Any, currency: str | None, expected: tuple | None) -> None:
    money = Money.parse(value, currency)

    if expected is None:
        assert money is None
    else:
        assert money is not None and (money.amount, money.currency) == expected


def test_product_price_shapes() -> None:
    v3 = Product.model_validate({"sku": 1, "price": "1530.0000", "currency_code": "CNY"})
    v4 = Product.model_validate({"sku": 1, "price": {"amount": "1530", "currency": "CNY"}})
    numeric = Product.model_validate({"sku": 1, "price": 1530, "currency_code": "RUB"})

    assert v3.price == Money(amount=Decimal("1530.0000"), currency="CNY")
    assert v4.price == Money(amount=Decimal("1530"), currency="CNY")
    assert numeric.price == Money(amount=Decimal(1530), currency="RUB")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-10-02T09:00:00Z", datetime(2026, 10, 2, 9, 0, tzinfo=UTC)),
        ("2026-10-02T09:00:00.5Z", datetime(2026, 10, 2, 9, 0, 0, 500000, tzinfo=UTC)),
        ("2026-10-02T09:00:00.123456789Z", datetime(2026, 10, 2, 9, 0, 0, 123456, tzinfo=UTC)),
        ("2026-10-02T17:00:00+08:00", datetime(2026, 10, 2, 9, 0, tzinfo=UTC)),
        ("2026-10-02T09:00:00", datetime(2026, 10, 2, 9, 0, tzinfo=UTC)),
        ("", None),
        ("   ", None),
        (None, None),
        ("not a date", None),
        ("0001-01-01T00:00:00Z", None),
        ("1970-01-01T00:00:00Z", None),
    ],
)
def test_parse_utc(text: str | None, expected: datetime | None) -> None:
    parsed = parse_utc(text)

    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() == timedelta(0)


def test_unwrap_result_only_unwraps_containers() -> None:
    assert unwrap_result({"result": {"a": 1}}) == {"a": 1}
    assert unwrap_result({"result": [1]}) == [1]
    assert unwrap_result({"result": True}) == {"result": True}
    assert unwrap_result({"postings": []}) == {"postings": []}


# --------------------------------------------------------------------------- other endpoints


def test_ship_response() -> None:
    body = load("ship_response.json")

    assert body["result"] == ["87654321-0016-1", "87654321-0016-2"]
    extra = Product.model_validate(body["additional_data"][0]["products"][0])
    assert extra.price == Money(amount=Decimal("76.00"), currency="CNY")


def test_label_create() -> None:
    tasks = [LabelTask.model_validate(t) for t in load("label_create.json")["tasks"]]

    assert tasks == [
        LabelTask(task_id=5819327210248, task_type="big_label"),
        LabelTask(task_id=5819327210249, task_type="small_label"),
    ]


def test_label_get_pending() -> None:
    status = LabelStatus.model_validate(load("label_get_pending.json"))

    assert status.code == "pending"
    assert status.file_url == ""
    assert status.error is None  # an empty error object means no error
    assert status.unprinted == []
    assert status.postings_count == 2
    assert not status.ready and not status.failed


def test_label_get_completed() -> None:
    status = LabelStatus.model_validate(load("label_get_completed.json"))

    assert status.code == "completed"
    assert status.ready
    assert status.file_url.endswith("/5819327210248.pdf")
    assert status.printed_postings_count == 1
    assert status.unprinted == [
        {"posting_number": "12345001-0042-1", "message": "The next postings aren't ready"}
    ]


def test_label_get_legacy_and_error_shapes() -> None:
    legacy = LabelStatus.model_validate(
        {"result": {"status": "error", "file_url": "", "error": "NO_POSTINGS"}}
    )
    failed = LabelStatus.model_validate(
        {"status": {"code": "error"}, "error": {"code": "E1", "message": "boom"}}
    )

    assert legacy.code == "error" and legacy.failed and legacy.error == "NO_POSTINGS"
    assert failed.error == "boom"


def test_tracking_partial_errors_normalised() -> None:
    results = [MoveResult.model_validate(r) for r in load("tracking_set_partial.json")["result"]]

    assert [(r.posting_number, r.result, r.error) for r in results] == [
        ("12345679-0002-1", True, ""),
        ("12345682-0006-1", True, ""),
        ("12345683-0007-1", True, ""),
        ("12345678-0001-1", False, "HAS_INCORRECT_TPL_INTEGRATION_TYPE"),
    ]


def test_move_result_error_list_is_joined() -> None:
    result = MoveResult.model_validate({"posting_number": "x", "result": False, "error": ["A", "", "B"]})

    assert result.error == "A; B"


def test_roles_with_expiry() -> None:
    info = RoleInfo.model_validate(load("roles.json"))

    assert info.expires_at == datetime(2027, 2, 24, 8, 21, 37, 519000, tzinfo=UTC)
    assert info.names == ["Posting FBS", "Admin read only"]
    assert "/v4/posting/fbs/ship" in info.roles[0]["methods"]


def test_roles_tolerates_bare_names_and_missing_expiry() -> None:
    info = RoleInfo.model_validate({"roles": ["Posting FBS", None], "expires_at": None})

    assert info.roles == [{"name": "Posting FBS"}]
    assert info.expires_at is None


def test_warehouse_list() -> None:
    urumqi, moscow = (Warehouse.model_validate(w) for w in load("warehouse_list.json")["warehouses"])

    assert urumqi.warehouse_id == 1020005012345678
    assert urumqi.name == "Urumqi main"
    assert urumqi.status == "created"
    assert urumqi.is_rfbs is True
    assert urumqi.utc_offset == timedelta(hours=8)
    assert urumqi.model_extra["first_mile"]["type"] == "DropOff"
    assert moscow.utc_offset == timedelta(hours=3)
    assert moscow.is_rfbs is False


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        ("UTC+03:00", timedelta(hours=3)),
        ("UTC-3", timedelta(hours=-3)),
        ("+0530", timedelta(hours=5, minutes=30)),
        (6, timedelta(hours=6)),
        ("garbage", None),
        (None, None),
    ],
)
def test_warehouse_utc_offset_forms(utc: Any, expected: timedelta | None) -> None:
    assert Warehouse.model_validate({"address_info": {"utc": utc}}).utc_offset == expected


# --------------------------------------------------------------------------- error bodies


def test_rpc_status_error() -> None:
    error = error_from_response(400, raw("error_rpc_status.json"), path="/v4/posting/fbs/ship")

    assert type(error) is OzonRequestError
    assert (error.status, error.code, error.token) == (400, 3, "HAS_INCORRECT_STATUS")
    assert error.details[0]["typeUrl"] == "type.googleapis.com/google.rpc.BadRequest"
    assert error.path == "/v4/posting/fbs/ship"
    assert "HAS_INCORRECT_STATUS" in str(error)


def test_legacy_error_body() -> None:
    error = error_from_response(404, raw("error_legacy.json"))

    assert type(error) is OzonRequestError
    assert error.token == "POSTING_NOT_FOUND"
    assert error.code is None  # the legacy code is a string
    assert error.details == []


def test_legacy_error_without_message_uses_code() -> None:
    assert parse_error_body(b'{"error": {"code": "NOT_FOUND_ERROR", "message": ""}}') == (
        None,
        "NOT_FOUND_ERROR",
        None,
    )


def test_rate_limit_error_with_retry_after() -> None:
    error = error_from_response(429, raw("error_rate_limit.json"), headers={"Retry-After": "2"})

    assert isinstance(error, OzonRateLimited)
    assert error.code == 8
    assert error.retry_after == 2.0
    assert error.retryable


def test_invalid_key_error() -> None:
    error = error_from_response(404, raw("error_invalid_key.json"))

    assert isinstance(error, OzonAuthError)
    assert error.reason == "invalid_key"
    assert (error.status, error.code) == (404, 5)


@pytest.mark.parametrize(
    ("status", "message", "reason"),
    [
        (403, "Api-key is deactivated, use another one or generate a new one", "deactivated"),
        (403, "Api-Key is missing a required role for a method", "missing_role"),
        (403, "Api-Key is restricted to specific IP addresses", "ip_restricted"),
        (403, "Offer not signed", "offer_not_signed"),
        (400, "Client-Id header value should be positive integer", "invalid_key"),
    ],
)
def test_auth_error_reasons(status: int, message: str, reason: str) -> None:
    error = error_from_response(status, json.dumps({"code": 7, "message": message, "details": []}))

    assert isinstance(error, OzonAuthError)
    assert error.reason == reason


def test_circle_is_open_and_5xx_are_unavailable() -> None:
    circuit = error_from_response(400, raw("error_circle_open.json"))
    internal = error_from_response(500, b'{"code": 13, "message": "Internal error", "details": []}')

    assert isinstance(circuit, OzonUnavailable) and circuit.circuit_open
    assert isinstance(internal, OzonUnavailable) and not internal.circuit_open
    assert internal.token == "Internal error"


def test_plain_text_error_body() -> None:
    error = error_from_response(502, b"<html><body>502 Bad Gateway</body></html>\n")

    assert isinstance(error, OzonUnavailable)
    assert error.token == "<html><body>502 Bad Gateway</body></html>"
    assert error.code is None


def test_error_body_echoing_the_key_is_scrubbed() -> None:
    key = "9c5b0d3e-aaaa-bbbb-cccc-000000000001"
    body = json.dumps({"code": 3, "message": f"bad key {key}", "details": [{"key": key}]})

    error = error_from_response(400, body, secrets=[key])

    assert key not in str(error) and key not in repr(error)
    assert key not in json.dumps(error.details)
    assert error.token == "bad key ***"


def test_next_surcharge_starts_where_the_step_before_it_ends() -> None:
    steps = [
        {"tariff_type": "no_discount", "tariff_rate": 0, "tariff_deadline_at": "2026-10-01T09:00:00Z"},
        {"tariff_type": "commission", "tariff_rate": 1, "tariff_deadline_at": "2026-10-01T21:00:00Z"},
        {"tariff_type": "commission", "tariff_rate": 2, "tariff_deadline_at": "9999-12-31T23:59:59Z"},
    ]
    posting = Posting.from_api({"posting_number": "1-1-1", "tariffication_steps": steps})
    start, step = posting.next_surcharge(datetime(2026, 10, 1, 8, tzinfo=UTC))
    assert (start, step.tariff_rate) == (datetime(2026, 10, 1, 9, tzinfo=UTC), 1)
    start, step = posting.next_surcharge(datetime(2026, 10, 1, 10, tzinfo=UTC))
    assert (start, step.tariff_rate) == (datetime(2026, 10, 1, 21, tzinfo=UTC), 2)
    assert posting.next_surcharge(datetime(2026, 10, 2, tzinfo=UTC)) is None
