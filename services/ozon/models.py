"""Typed views of Ozon Seller API payloads.

Ozon's payloads drift: fields appear, disappear, turn null, change from a string to an object
(``price``) or from an array to an object (``tariffication``), and lists may come back wrapped in
``result`` or not. These models therefore never fail on a surprising *value*: every field is
optional with a sensible default, a value of the wrong shape degrades to that default, unknown
fields are kept (``extra="allow"``) and unknown statuses stay plain strings. The one hard requirement
is ``Posting.posting_number``, the primary key everything else hangs off.

Why one file of ~550 lines: the models nest (a posting holds products, analytics, financial data,
requirements) and share the tolerant base and coercers; they are read together against Ozon's spec.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WrapValidator,
    field_validator,
    model_validator,
)

__all__ = [
    "Address",
    "Cancellation",
    "Customer",
    "DeliveryMethod",
    "LabelStatus",
    "LabelTask",
    "Money",
    "MoveResult",
    "OzonModel",
    "PickLine",
    "PickPage",
    "Posting",
    "PostingPage",
    "Product",
    "RoleInfo",
    "TarifficationStep",
    "Warehouse",
    "parse_utc",
    "unwrap_result",
]

# Dates Ozon uses to mean "not set" instead of null: Go's zero time and the Unix epoch
# (seen as ``received_at_sorting_center`` in live captures).
_UNSET_DATES = (datetime(1, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC))

_UTC_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])?\s*(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


# --------------------------------------------------------------------------- value coercion


def unwrap_result(body: Any) -> Any:
    """Return ``body["result"]`` when Ozon wrapped the payload in it, else ``body`` itself.

    The spec and live captures disagree about the ``result`` wrapper on several methods, so every
    reader goes through here instead of guessing per endpoint.
    """
    if isinstance(body, dict) and isinstance(body.get("result"), dict | list):
        return body["result"]
    return body


def parse_utc(value: Any) -> datetime | None:
    """Parse an Ozon timestamp into an aware UTC datetime; ``None`` for empty or unparseable values.

    Ozon sends RFC 3339 with ``Z`` and optional fractional seconds, ``""`` or ``null`` for "not set",
    and occasionally placeholder epochs. Naive values are taken as UTC because the API works in UTC.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            parsed = datetime.fromtimestamp(value, UTC)
        except (OverflowError, ValueError, OSError):  # L3: 1e20, inf, NaN, -1e15 (json.loads accepts NaN)
            return None
    else:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-03:00, Ozon's "no end" marker
        return datetime.max.replace(tzinfo=UTC)
    return None if parsed in _UNSET_DATES else parsed


def _parse_decimal(value: Any) -> Decimal | None:
    """Money amounts come as "89.0000", 89.0 or 89; floats go through ``str`` to avoid binary noise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | float):
        value = str(value)
    if isinstance(value, str) and value.strip():
        try:
            parsed = Decimal(value.strip())
        except InvalidOperation:
            return None
        return parsed if parsed.is_finite() else None
    return None


def _lenient(default_factory: Callable[[], Any]) -> WrapValidator:
    """A validator that replaces null, "" and any value of the wrong shape with the default.

    This is what makes a single odd field degrade instead of discarding the whole posting.
    """

    def validate(value: Any, handler: Callable[[Any], Any]) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return default_factory()
        try:
            return handler(value)
        except ValidationError:
            return default_factory()

    return WrapValidator(validate)


def _as_text(value: Any) -> Any:
    """Numbers become strings (IDs are int64 in one method and strings in the next)."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    return value


def _dict_items(value: Any) -> list[Any]:
    """A list of objects: null or a non-list becomes [], and non-object items are dropped."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def _text_items(value: Any) -> list[str]:
    """A list of strings: null or a non-list becomes [], scalars are stringified, objects dropped."""
    if not isinstance(value, list):
        return []
    return [str(_as_text(item)) for item in value if isinstance(item, str | int | float) and item != ""]


def _none(_: Any = None) -> None:
    return None


def _text_or(default: str | None) -> Callable[[Any], str | None]:
    """Text in one step: a string as sent, a number as its string, anything else (null, blank, true,
    an object) the default. The same as ``_as_text`` then ``_lenient`` around pydantic's str, which cost
    three calls per field, and text fields are most of a posting."""

    def validate(value: Any) -> str | None:
        if isinstance(value, str):
            return value if value.strip() else default
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return str(value)
        return default

    return validate


Text = Annotated[str, PlainValidator(_text_or(""))]
OptText = Annotated[str | None, PlainValidator(_text_or(None))]


def _scalar(kind: type, default_factory: Callable[[], Any]) -> PlainValidator:
    """``_lenient`` around pydantic's ``kind`` with a shortcut for a value already of exactly that type
    (what Ozon nearly always sends), which pydantic would return unchanged."""
    adapter = TypeAdapter(kind)

    def validate(value: Any) -> Any:
        if type(value) is kind:
            return value
        if value is None or (isinstance(value, str) and not value.strip()):
            return default_factory()
        try:
            return adapter.validate_python(value)
        except ValidationError:
            return default_factory()

    return PlainValidator(validate)


OptInt = Annotated[int | None, _scalar(int, _none)]
Int0 = Annotated[int, _scalar(int, int)]
Flag = Annotated[bool, _scalar(bool, bool)]
OptFlag = Annotated[bool | None, _scalar(bool, _none)]
OptFloat = Annotated[float | None, _scalar(float, _none)]
OptDecimal = Annotated[Decimal | None, BeforeValidator(_parse_decimal)]
UtcDateTime = Annotated[datetime | None, BeforeValidator(parse_utc)]
TextList = Annotated[list[str], BeforeValidator(_text_items)]
DictList = Annotated[list[dict[str, Any]], BeforeValidator(_dict_items)]
OptDict = Annotated[dict[str, Any] | None, _lenient(_none)]


class OzonModel(BaseModel):
    """Base for all payload models: unknown fields are kept so nothing Ozon adds is lost."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --------------------------------------------------------------------------- money and products


class Money(OzonModel):
    """An amount with its currency, from v4 ``{amount, currency}`` or a v3 string/number price."""

    amount: OptDecimal = None
    currency: OptText = None

    @model_validator(mode="before")
    @classmethod
    def _from_any(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if not data.get("currency") and data.get("currency_code"):
                return {**data, "currency": data["currency_code"]}
            return data
        if isinstance(data, str | int | float | Decimal):
            return {"amount": data}
        raise ValueError("not a price")  # the field-level lenient validator turns this into None

    @classmethod
    def parse(cls, value: Any, currency: str | None = None) -> Money | None:
        """Build from any price shape; ``currency`` fills in when the value carries none (v3)."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            money = cls.model_validate(value)
        except ValidationError:
            return None
        if money.currency is None and currency:
            money.currency = currency
        return money


OptMoney = Annotated[Money | None, _lenient(_none)]


def _fold_money(data: dict[str, Any], field: str, *currency_keys: str) -> dict[str, Any]:
    """Turn a v3 scalar price plus its sibling ``*currency_code`` into a ``{amount, currency}`` dict."""
    value = data.get(field)
    if isinstance(value, dict) and (value.get("currency") or value.get("currency_code")):
        return data  # v4: already an object with its currency
    currency = next((data[key] for key in currency_keys if data.get(key)), None)
    if isinstance(value, dict):
        if currency:
            return {**data, field: {**value, "currency": currency}}
        return data
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        return data
    if isinstance(value, str) and not value.strip():
        return data
    return {**data, field: {"amount": value, "currency": currency}}


class Product(OzonModel):
    """One line of a posting; ``sku`` is the Ozon SKU that ``ship`` calls ``product_id``."""

    sku: OptInt = None
    offer_id: Text = ""
    name: Text = ""
    quantity: Int0 = 0
    price: OptMoney = None
    currency_code: OptText = None

    @model_validator(mode="before")
    @classmethod
    def _v3_price(cls, data: Any) -> Any:
        return _fold_money(data, "price", "currency_code") if isinstance(data, dict) else data


# --------------------------------------------------------------------------- posting parts


class DeliveryMethod(OzonModel):
    id: OptInt = None
    name: Text = ""
    warehouse_id: OptInt = None
    warehouse: Text = ""
    tpl_provider_id: OptInt = None
    tpl_provider: Text = ""


class Cancellation(OzonModel):
    cancel_reason_id: OptInt = None
    cancel_reason: Text = ""
    cancellation_type: Text = ""
    cancellation_initiator: Text = ""
    cancelled_after_ship: Flag = False
    affect_cancellation_rating: Flag = False


class Address(OzonModel):
    address_tail: Text = ""
    city: Text = ""
    comment: Text = ""
    country: Text = ""
    district: Text = ""
    region: Text = ""
    zip_code: Text = ""
    latitude: OptFloat = None
    longitude: OptFloat = None
    provider_pvz_code: Text = ""
    pvz_code: OptInt = None


class Customer(OzonModel):
    """The buyer; usually null except for rFBS postings whose delivery needs the address."""

    customer_id: OptInt = None
    name: Text = ""
    phone: Text = ""
    customer_email: Text = ""
    address: Annotated[Address | None, _lenient(_none)] = None


class TarifficationStep(OzonModel):
    """One rung of the late-shipment price ladder, valid until ``tariff_deadline_at``."""

    tariff_type: Text = ""
    tariff_rate: OptDecimal = None
    tariff_charge: OptMoney = None
    min_charge: OptMoney = None
    tariff_deadline_at: UtcDateTime = None

    @model_validator(mode="before")
    @classmethod
    def _v3_charges(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = _fold_money(data, "tariff_charge", "tariff_charge_currency_code", "currency_code")
        return _fold_money(data, "min_charge", "min_charge_currency_code", "currency_code")


class Posting(OzonModel):
    """An FBS/rFBS posting as returned by the v4 lists and by ``/v3/posting/fbs/get``."""

    posting_number: Annotated[str, BeforeValidator(_as_text)]
    order_id: OptInt = None
    order_number: Text = ""
    parent_posting_number: Text = ""
    status: Text = ""
    substatus: Text = ""
    previous_substatus: Text = ""
    delivery_method: Annotated[DeliveryMethod | None, _lenient(_none)] = None
    tracking_number: Text = ""
    tpl_integration_type: Text = ""
    integration_type_flow: Text = ""
    is_express: Flag = False
    in_process_at: UtcDateTime = None
    shipment_date: UtcDateTime = None
    shipment_date_without_delay: UtcDateTime = None
    delivering_date: UtcDateTime = None
    products: Annotated[list[Product], BeforeValidator(_dict_items)] = Field(default_factory=list)
    customer: Annotated[Customer | None, _lenient(_none)] = None
    cancellation: Annotated[Cancellation | None, _lenient(_none)] = None
    available_actions: TextList = Field(default_factory=list)
    requirements: OptDict = None
    analytics_data: OptDict = None
    financial_data: OptDict = None
    barcodes: OptDict = None
    tariffication_steps: Annotated[list[TarifficationStep], BeforeValidator(_dict_items)] = Field(
        default_factory=list
    )
    tariffication: Any = None  # an object in the 2026 spec, an array in 2025; kept as sent

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Posting:
        """Parse a posting, accepting it bare or wrapped in ``result`` (``/v3/posting/fbs/get``)."""
        if isinstance(data, dict) and "posting_number" not in data:
            data = unwrap_result(data)
        return cls.model_validate(data)

    @property
    def flow(self) -> str:
        """How the posting is delivered, which decides who owns tracking (DESIGN §3)."""
        return self.tpl_integration_type or self.integration_type_flow

    def next_tariff_step(self, now: datetime | None = None) -> TarifficationStep | None:
        """The step in force at ``now``: the first whose deadline is still ahead.

        Its ``tariff_deadline_at`` is the next moment the seller's cost changes, which is what the
        bot shows next to the packing deadline. Steps without a deadline count as open-ended.
        """
        moment = parse_utc(now) if now is not None else datetime.now(UTC)
        far = datetime.max.replace(tzinfo=UTC)
        ahead = [s for s in self.tariffication_steps if (s.tariff_deadline_at or far) > moment]
        return min(ahead, key=lambda s: s.tariff_deadline_at or far, default=None)

    def next_surcharge(self, now: datetime | None = None) -> tuple[datetime, TarifficationStep] | None:
        """The next late fee still ahead: (when it starts, its step). A step starts where the one before
        it ends, so a 1 % step after a no_discount step ending at shipment_date starts at shipment_date."""
        moment = parse_utc(now) if now is not None else datetime.now(UTC)
        far = datetime.max.replace(tzinfo=UTC)
        ordered = sorted(self.tariffication_steps, key=lambda s: s.tariff_deadline_at or far)
        for before, step in pairwise(ordered):
            start = before.tariff_deadline_at
            if step.tariff_type == "commission" and start is not None and start > moment:
                return start, step
        return None


def _postings(value: Any) -> list[dict[str, Any]]:
    """Keep only postings that carry a number; one without is useless and must not sink the page."""
    return [p for p in _dict_items(value) if str(p.get("posting_number") or "").strip()]


class PostingPage(OzonModel):
    """One page of a v4 posting list; ``count`` (unfulfilled only) is the total match count."""

    postings: Annotated[list[Posting], BeforeValidator(_postings)] = Field(default_factory=list)
    has_next: Flag = False
    cursor: Text = ""
    count: OptInt = None

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> PostingPage:
        return cls.model_validate(unwrap_result(body) if isinstance(body, dict) else {})


# --------------------------------------------------------------------------- account


def _roles(value: Any) -> list[dict[str, Any]]:
    """Roles come as objects (``{name, methods}``); bare names are lifted into that shape."""
    if not isinstance(value, list):
        return []
    return [item if isinstance(item, dict) else {"name": str(item)} for item in value if item is not None]


class RoleInfo(OzonModel):
    """What an API key may do and when it stops working (keys expire after about 3 months)."""

    roles: Annotated[list[dict[str, Any]], BeforeValidator(_roles)] = Field(default_factory=list)
    expires_at: UtcDateTime = None

    @property
    def names(self) -> list[str]:
        return [str(role.get("name", "")) for role in self.roles if role.get("name")]


def _parse_utc_offset(value: Any) -> timedelta | None:
    """``"UTC+03:00"``, ``"+8"``, ``"UTC-3"`` or a number of hours into a timedelta."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(hours=value) if abs(value) <= 14 else None
    match = _UTC_OFFSET.match(value.strip()) if isinstance(value, str) else None
    if not match:
        return None
    sign, hours, minutes = match.groups()
    offset = timedelta(hours=int(hours), minutes=int(minutes or 0))
    if offset > timedelta(hours=14):
        return None
    return -offset if sign == "-" else offset


class Warehouse(OzonModel):
    """A seller warehouse; ``utc_offset`` comes from ``address_info.utc``."""

    warehouse_id: OptInt = None
    name: Text = ""
    status: Text = ""
    is_rfbs: Flag = False
    utc_offset: Annotated[timedelta | None, BeforeValidator(_parse_utc_offset)] = None

    @model_validator(mode="before")
    @classmethod
    def _offset_from_address(cls, data: Any) -> Any:
        if isinstance(data, dict) and "utc_offset" not in data:
            address = data.get("address_info")
            if isinstance(address, dict):
                return {**data, "utc_offset": address.get("utc")}
        return data


# --------------------------------------------------------------------------- labels and moves


class PickPosting(OzonModel):
    posting_number: Text = ""
    quantity: Int0 = 0


class PickLine(OzonModel):
    """One SKU of Ozon's pick list (``/v1/assembly/fbs/product/list``) and the postings that need it."""

    sku: OptInt = None
    offer_id: Text = ""
    product_name: Text = ""
    picture_url: Text = ""
    quantity: Int0 = 0
    postings: list[PickPosting] = Field(default_factory=list)


class PickPage(OzonModel):
    products: list[PickLine] = Field(default_factory=list)
    products_count: OptInt = None
    has_next: Flag = False


class LabelTask(OzonModel):
    task_id: Int0 = 0
    task_type: Text = ""


def _error_text(value: Any) -> str:
    """Ozon's per-item ``error`` is typed string but arrives as "", null, [] or an object."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        return _error_text(value.get("message") or value.get("code"))
    if isinstance(value, list):
        return "; ".join(text for text in map(_error_text, value) if text)
    return str(value)


class LabelStatus(OzonModel):
    """State of an async label task (``/v2/posting/fbs/package-label/get``), flattened.

    ``code`` is ``pending``/``in_progress``/``completed``/``error``; the v1 shape, where ``status``
    was a bare string, is accepted too.
    """

    code: Text = ""
    file_url: Text = ""
    error: str | None = None
    unprinted: DictList = Field(default_factory=list)
    postings_count: OptInt = None
    printed_postings_count: OptInt = None

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return {}
        inner = unwrap_result(data)
        data = dict(inner if isinstance(inner, dict) else data)
        status = data.get("status")
        if isinstance(status, dict):
            data.setdefault("code", status.get("code"))
            data.setdefault("unprinted", status.get("unprinted_postings"))
            data.setdefault("postings_count", status.get("postings_count"))
            data.setdefault("printed_postings_count", status.get("printed_postings_count"))
        elif isinstance(status, str):
            data.setdefault("code", status)
        data["error"] = _error_text(data.get("error")) or None
        return data

    @property
    def ready(self) -> bool:
        return self.code == "completed" and bool(self.file_url)

    @property
    def failed(self) -> bool:
        return self.code == "error"


class MoveResult(OzonModel):
    """Per-posting outcome of tracking-number/set and the rFBS status moves."""

    posting_number: Text = ""
    result: Flag = False
    error: Annotated[str, BeforeValidator(_error_text)] = ""


# --------------------------------------------------------------------------- rFBS cancellation requests


class CancellationState(StrEnum):
    """A cancellation request's state at Ozon (``state.state``); ALL is only a filter of the list."""

    ALL = "ALL"
    ON_APPROVAL = "ON_APPROVAL"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class CancellationReason(OzonModel):
    id: OptInt = None
    name: Text = ""


class CancellationRequest(OzonModel):
    """One buyer's (or Ozon's) request to cancel an rFBS posting (``/v2/conditional-cancellation/list``).

    ``state`` is the request's own state (ON_APPROVAL, APPROVED, REJECTED), read from ``state.state``."""

    cancellation_id: OptInt = None
    posting_number: Text = ""
    cancellation_initiator: Text = ""
    cancellation_reason: CancellationReason | None = None
    cancellation_reason_message: Text = ""
    approve_comment: Text = ""
    approve_date: UtcDateTime = None
    auto_approve_date: UtcDateTime = None
    cancelled_at: UtcDateTime = None
    state: Text = ""

    @model_validator(mode="before")
    @classmethod
    def _state_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("state"), dict):
            return {**data, "state": data["state"].get("state") or ""}
        return data

    @field_validator("cancellation_reason", mode="before")
    @classmethod
    def _reason(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else None

    @property
    def reason(self) -> str:
        return self.cancellation_reason.name if self.cancellation_reason else ""


# --------------------------------------------------------------------------- FBS stock


class WarehouseStock(OzonModel):
    """One product in one FBS warehouse (``/v2/product/info/stocks-by-warehouse/fbs``)."""

    sku: OptInt = None
    offer_id: Text = ""
    product_id: OptInt = None
    warehouse_id: OptInt = None
    warehouse_name: Text = ""
    present: OptInt = None
    reserved: OptInt = None
    free_stock: OptInt = None


class StockError(OzonModel):
    code: Text = ""
    message: Text = ""


class StockResult(OzonModel):
    """Ozon's answer for one product-warehouse pair of ``/v2/products/stocks``."""

    warehouse_id: OptInt = None
    product_id: OptInt = None
    offer_id: Text = ""
    updated: Flag = False
    errors: list[StockError] = Field(default_factory=list)

    @field_validator("errors", mode="before")
    @classmethod
    def _errors(cls, value: Any) -> Any:
        return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
