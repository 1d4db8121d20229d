"""Data for the Ozon sandbox: a Chinese seller's catalogue, the deterministic order generator,
the v4 → v3 posting conversion, status helpers and a tiny hand-built PDF label renderer.

Nothing here holds state; every function takes its random source and its "now" explicitly.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

# ---------------------------------------------------------------------------------------------------------
# Status vocabulary (reference §2)

UNFULFILLED_STATUSES: frozenset[str] = frozenset(
    {
        "awaiting_registration",
        "acceptance_in_progress",
        "awaiting_approve",
        "awaiting_packaging",
        "awaiting_deliver",
        "arbitration",
        "client_arbitration",
        "delivering",
        "driver_pickup",
        "cancelled",
        "not_accepted",
    }
)

# statuses from which a posting counts as packed ("already shipped")
SHIPPED_STATUSES: frozenset[str] = frozenset(
    {
        "awaiting_registration",
        "acceptance_in_progress",
        "awaiting_deliver",
        "sent_by_seller",
        "delivering",
        "driver_pickup",
        "arbitration",
        "client_arbitration",
        "not_accepted",
        "delivered",
    }
)

# statuses in which a label can be printed
LABEL_STATUSES: frozenset[str] = frozenset(
    {
        "awaiting_deliver",
        "acceptance_in_progress",
        "sent_by_seller",
        "delivering",
        "driver_pickup",
        "arbitration",
        "client_arbitration",
        "not_accepted",
    }
)

# default substatus for a status (what the sandbox sets when it moves a posting)
DEFAULT_SUBSTATUS: dict[str, str] = {
    "awaiting_verification": "posting_created",
    "awaiting_approve": "posting_created",
    "awaiting_packaging": "posting_created",
    "awaiting_registration": "posting_awaiting_registration",
    "acceptance_in_progress": "posting_acceptance_in_progress",
    "awaiting_deliver": "posting_transferring_to_delivery",
    "sent_by_seller": "sent_by_seller",
    "delivering": "posting_on_way_to_city",
    "driver_pickup": "posting_driver_pick_up",
    "arbitration": "posting_in_arbitration",
    "client_arbitration": "posting_in_client_arbitration",
    "not_accepted": "posting_not_in_sort_center",
    "delivered": "posting_delivered",
    "cancelled": "posting_canceled",
}

LAST_MILE_SUBSTATUS = "posting_transferred_to_courier_service"

# reference §2.4: which push "state" names belong to which status
PUSH_STATES: dict[str, tuple[str, ...]] = {
    "acceptance_in_progress": ("posting_acceptance_in_progress",),
    "awaiting_approve": ("posting_created",),
    "awaiting_packaging": ("posting_created",),
    "awaiting_registration": ("posting_awaiting_registration",),
    "awaiting_deliver": (
        "posting_transferring_to_delivery",
        "posting_in_carriage",
        "posting_not_in_carriage",
    ),
    "arbitration": ("posting_in_arbitration",),
    "client_arbitration": ("posting_in_client_arbitration",),
    "delivering": (
        "posting_on_way_to_city",
        "posting_transferred_to_courier_service",
        "posting_in_courier_service",
        "posting_on_way_to_pickup_point",
        "posting_in_pickup_point",
        "posting_conditionally_delivered",
    ),
    "driver_pickup": ("posting_driver_pick_up",),
    "delivered": ("posting_delivered", "posting_received"),
    "cancelled": ("posting_canceled",),
    "not_accepted": ("posting_not_in_sort_center",),
}

FLOWS: tuple[str, ...] = ("aggregator", "non_integrated", "3pl_tracking", "ozon")
DEFAULT_FLOWS: tuple[str, ...] = ("aggregator", "non_integrated")


def push_state(status: str, substatus: str | None) -> str:
    """The push `new_state`/`old_state` name for a status and substatus."""
    states = PUSH_STATES.get(status)
    if not states:
        return substatus or status
    if substatus in states:
        return substatus  # type: ignore[return-value]
    return states[0]


def available_actions(flow: str, status: str, substatus: str | None) -> list[str]:
    """What Ozon offers for a posting in this state (reference §2.5)."""
    seller_delivers = flow == "non_integrated"
    if status == "awaiting_packaging":
        actions = ["ship"]
        if substatus == "ship_failed":
            actions.append("ship_async_retry")
        if seller_delivers:
            actions.append("set_cutoff")
        actions += ["cancel", "product_cancel"]
        if seller_delivers:
            actions.append("can_create_chat")
        return actions
    if status in ("awaiting_approve", "awaiting_verification"):
        return ["cancel"]
    if status == "awaiting_registration":
        return ["ship_async_in_process", "cancel"]
    if status == "awaiting_deliver":
        if seller_delivers:
            return [
                "set_track_number",
                "non_int_delivering",
                "label_download",
                "label_download_big",
                "cancel",
                "can_create_chat",
            ]
        return ["label_download", "label_download_big", "has_barcode_for_printing", "cancel"]
    if status == "delivering":
        if seller_delivers:
            if substatus == LAST_MILE_SUBSTATUS:
                return ["set_track_number", "non_int_delivered", "can_create_chat"]
            return ["set_track_number", "non_int_last_mile", "non_int_delivered", "can_create_chat"]
        return []
    if status in ("arbitration", "client_arbitration"):
        return ["awaiting_delivery"]
    return []


# ---------------------------------------------------------------------------------------------------------
# Formatting helpers


def clone(obj: Any) -> Any:
    """Deep copy of JSON-shaped data (dicts, lists, scalars); much faster than copy.deepcopy."""
    if type(obj) is dict:
        return {k: clone(v) for k, v in obj.items()}
    if type(obj) is list:
        return [clone(v) for v in obj]
    return obj


def utc(dt: datetime) -> datetime:
    """Make a datetime aware and in UTC (naive ones are taken as UTC)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def fmt_dt(dt: datetime | None) -> str | None:
    """RFC 3339 with Z, whole seconds."""
    if dt is None:
        return None
    return utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_dt(value: Any) -> datetime:
    """Parse an RFC 3339 timestamp (Z or offset, optional fraction). Raises ValueError."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"invalid timestamp: {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python 3.11 fromisoformat accepts up to 6 fractional digits; trim longer fractions
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    dt = datetime.fromisoformat(text)
    return utc(dt)


FAR_FUTURE = "9999-12-31T23:59:59Z"

_CENT = Decimal("0.01")


def money(amount: Decimal | float | str, places: int = 2) -> str:
    q = Decimal(10) ** -places
    return str(Decimal(str(amount)).quantize(q, rounding=ROUND_HALF_UP))


# ---------------------------------------------------------------------------------------------------------
# Catalogue of a Urumqi seller (names in Russian, as Ozon shows them)


@dataclass(frozen=True)
class Product:
    sku: int
    offer_id: str
    name: str
    price: str  # CNY
    weight: float  # kg
    color: str = ""


CATALOGUE: tuple[Product, ...] = (
    Product(5462125811, "UR-TEAPOT-500", "Чайник из исинской глины 500 мл", "89.00", 0.62, "коричневый"),
    Product(5462125902, "UR-GAIWAN-150", "Гайвань фарфоровая с росписью, 150 мл", "35.00", 0.31, "белый"),
    Product(
        5462131147,
        "UR-SILK-SCARF-RED",
        "Платок шёлковый ручной росписи, красный, 90×90 см",
        "65.00",
        0.08,
        "красный",
    ),
    Product(
        5462131255, "UR-SILK-SCARF-BLU", "Шарф шёлковый с узором «огурцы», синий", "58.00", 0.07, "синий"
    ),
    Product(5462140031, "UR-JADE-BR-58", "Браслет из хотанского нефрита, 58 мм", "120.00", 0.05, "зелёный"),
    Product(5462140118, "UR-JADE-PEND", "Подвеска из нефрита «Пи-диск» на шнурке", "45.00", 0.03, "белый"),
    Product(5462141122, "UR-RAISIN-GRN-500", "Изюм зелёный синьцзянский, 500 г", "28.50", 0.52),
    Product(5462141290, "UR-APRICOT-300", "Курага синьцзянская без косточки, 300 г", "24.00", 0.32),
    Product(5462141377, "UR-JUJUBE-1KG", "Финики китайские (унаби) Хотан, 1 кг", "39.90", 1.04),
    Product(5462141403, "UR-WALNUT-500", "Грецкий орех тонкоскорлупный Аксу, 500 г", "32.00", 0.53),
    Product(
        5462150068, "UR-CASE-IP15-DRG", "Чехол для iPhone 15 с драконом, силикон", "12.90", 0.04, "чёрный"
    ),
    Product(5462150174, "UR-CASE-RN13-PND", "Чехол для Redmi Note 13 с пандой", "9.90", 0.04, "прозрачный"),
    Product(5462160225, "UR-PUER-357", "Чай пуэр шэн, блин 357 г", "76.00", 0.40),
    Product(
        5462160339, "UR-CHOPSTICKS-5", "Палочки для еды из сандала, набор 5 пар", "18.00", 0.12, "коричневый"
    ),
    Product(5462160446, "UR-FAN-SILK", "Веер складной шёлковый с росписью", "22.00", 0.06, "красный"),
    Product(5462160512, "UR-ATLAS-1M", "Ткань атлас уйгурская, 1 м", "48.00", 0.15, "разноцветный"),
)

PRODUCTS_BY_SKU: dict[int, Product] = {p.sku: p for p in CATALOGUE}

# Russian buyers of seller-delivered (non_integrated) rFBS postings
CUSTOMERS: tuple[dict[str, Any], ...] = (
    {
        "name": "Иванова Мария",
        "city": "Москва",
        "region": "Москва",
        "district": "",
        "zip": "125009",
        "tail": "ул. Тверская, д. 7, кв. 12",
        "lat": 55.7601,
        "lon": 37.6107,
    },
    {
        "name": "Смирнов Алексей",
        "city": "Санкт-Петербург",
        "region": "Санкт-Петербург",
        "district": "",
        "zip": "191186",
        "tail": "Невский пр., д. 28, кв. 4",
        "lat": 59.9357,
        "lon": 30.3259,
    },
    {
        "name": "Кузнецова Ольга",
        "city": "Новосибирск",
        "region": "Новосибирская область",
        "district": "",
        "zip": "630099",
        "tail": "Красный пр., д. 25, кв. 31",
        "lat": 55.0302,
        "lon": 82.9204,
    },
    {
        "name": "Попов Дмитрий",
        "city": "Екатеринбург",
        "region": "Свердловская область",
        "district": "",
        "zip": "620014",
        "tail": "ул. Малышева, д. 36, кв. 58",
        "lat": 56.8356,
        "lon": 60.6009,
    },
    {
        "name": "Соколова Анна",
        "city": "Казань",
        "region": "Республика Татарстан",
        "district": "",
        "zip": "420111",
        "tail": "ул. Баумана, д. 19, кв. 7",
        "lat": 55.7903,
        "lon": 49.1147,
    },
    {
        "name": "Волков Сергей",
        "city": "Краснодар",
        "region": "Краснодарский край",
        "district": "",
        "zip": "350000",
        "tail": "ул. Красная, д. 109, кв. 15",
        "lat": 45.0355,
        "lon": 38.9753,
    },
)

WAREHOUSE_SITES: tuple[dict[str, Any], ...] = (
    {
        "name": "乌鲁木齐仓 Urumqi",
        "city": "Urumqi",
        "address": "新疆乌鲁木齐市沙依巴克区友好南路 668 号 (668 Youhao South Rd, Saybag, Urumqi)",
        "utc": "UTC+06:00",
        "lat": 43.8256,
        "lon": 87.6168,
        "phone": "+86 991 555 0100",
    },
    {
        "name": "义乌仓 Yiwu",
        "city": "Yiwu",
        "address": "浙江省义乌市稠城街道国际商贸城 (International Trade City, Yiwu)",
        "utc": "UTC+08:00",
        "lat": 29.3069,
        "lon": 120.0751,
        "phone": "+86 579 555 0101",
    },
    {
        "name": "厦门仓 Xiamen",
        "city": "Xiamen",
        "address": "福建省厦门市湖里区 (Huli District, Xiamen)",
        "utc": "UTC+08:00",
        "lat": 24.5118,
        "lon": 118.1467,
        "phone": "+86 592 555 0102",
    },
)


def _delivery_method_templates(city: str) -> dict[str, dict[str, Any]]:
    return {
        "aggregator": {
            "name": "ABT Economy Extra Small Xiamen 03 PUDO",
            "tpl_provider_id": 1065,
            "tpl_provider": "ABT Express",
        },
        "non_integrated": {
            "name": f"Seller delivery {city} → Moscow",
            "tpl_provider_id": 1093,
            "tpl_provider": "Доставка силами продавца",
        },
        "3pl_tracking": {
            "name": "UNI Express Extra Small UNE Putian",
            "tpl_provider_id": 1264,
            "tpl_provider": "UNI Express",
        },
        "ozon": {
            "name": "Ozon Логистика курьеру, Москва",
            "tpl_provider_id": 24,
            "tpl_provider": "Ozon Логистика",
        },
    }


def make_warehouses(rng: random.Random, count: int, now: datetime) -> list[dict[str, Any]]:
    """Warehouses in the `/v2/warehouse/list` shape, each with a private `_methods` map flow → method."""
    out: list[dict[str, Any]] = []
    created = fmt_dt(utc(now) - timedelta(days=400))
    for i in range(max(1, count)):
        site = WAREHOUSE_SITES[i % len(WAREHOUSE_SITES)]
        name = site["name"] if i < len(WAREHOUSE_SITES) else f"{site['name']} {i + 1}"
        warehouse_id = 1020005000000000 + rng.randint(100000, 999999) * 10 + i
        methods = {}
        for j, (flow, tmpl) in enumerate(_delivery_method_templates(site["city"]).items()):
            methods[flow] = {
                "id": 1020005000100000 + rng.randint(1000, 9999) * 10 + j,
                "name": tmpl["name"],
                "warehouse_id": warehouse_id,
                "warehouse": name,
                "tpl_provider_id": tmpl["tpl_provider_id"],
                "tpl_provider": tmpl["tpl_provider"],
            }
        out.append(
            {
                "warehouse_id": warehouse_id,
                "name": name,
                "status": "created",
                "is_rfbs": True,
                "is_express": False,
                "is_kgt": False,
                "is_auto_assembly": False,
                "is_waybill_enabled": False,
                "carriage_label_type": "",
                "phone": site["phone"],
                "courier_phones": [],
                "timetable": {"working_hours": {"from": "09:00", "to": "19:00"}},
                "warehouse_type": "RFBS",
                "first_mile": {
                    "type": "DropOff",
                    "dropoff_point_id": "",
                    "timeslot_id": 0,
                    "timeslot_from": "",
                    "timeslot_to": "",
                    "first_mile_is_changing": False,
                },
                "address_info": {
                    "address": site["address"],
                    "latitude": site["lat"],
                    "longitude": site["lon"],
                    "utc": site["utc"],
                },
                "working_days": [1, 2, 3, 4, 5, 6],
                "has_entrusted_acceptance": False,
                "postings_limit": -1,
                "min_postings_limit": 10,
                "sla_cut_in": 1440,
                "cut_in_time": "",
                "pause_at": None,
                "created_at": created,
                "updated_at": created,
                "_methods": methods,
            }
        )
    return out


def public_warehouse(warehouse: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in warehouse.items() if not k.startswith("_")}


# ---------------------------------------------------------------------------------------------------------
# Postings


def new_posting_number(rng: random.Random) -> tuple[str, str]:
    """(posting_number, order_number) in the NNNNNNNN-NNNN-1 form."""
    order_number = f"{rng.randint(10000000, 99999999)}-{rng.randint(1, 9999):04d}"
    return f"{order_number}-1", order_number


def _product_line(product: Product, quantity: int) -> dict[str, Any]:
    return {
        "sku": product.sku,
        "offer_id": product.offer_id,
        "name": product.name,
        "quantity": quantity,
        "price": {"amount": product.price, "currency": "CNY"},
        "imei": [],
        "is_blr_traceable": False,
        "is_marketplace_buyout": False,
        "product_color": product.color,
        "weight": product.weight,
    }


def _price_amount(line: dict[str, Any]) -> Decimal:
    price = line.get("price")
    if isinstance(price, dict):
        price = price.get("amount")
    try:
        return Decimal(str(price))
    except Exception:
        return Decimal(0)


def posting_total(products: Iterable[dict[str, Any]]) -> Decimal:
    return sum((_price_amount(p) * int(p.get("quantity") or 0) for p in products), Decimal(0))


def _cny(amount: Decimal | str | float) -> dict[str, str]:
    return {"amount": money(amount), "currency": "CNY"}


def tariffication_steps(products: Sequence[dict[str, Any]], shipment_date: datetime) -> list[dict[str, Any]]:
    """No surcharge until shipment_date, then +1 % of the posting total every 12 h (open-ended last step)."""
    total = posting_total(products)
    min_charge = _cny("5.00")
    steps = [
        {
            "tariff_type": "no_discount",
            "tariff_rate": 0,
            "tariff_charge": _cny(0),
            "min_charge": _cny(0),
            "tariff_deadline_at": fmt_dt(shipment_date),
        }
    ]
    for rate in (1, 2, 3):
        deadline = FAR_FUTURE if rate == 3 else fmt_dt(shipment_date + timedelta(hours=12 * rate))
        steps.append(
            {
                "tariff_type": "commission",
                "tariff_rate": rate,
                "tariff_charge": _cny(total * rate / 100),
                "min_charge": dict(min_charge),
                "tariff_deadline_at": deadline,
            }
        )
    return steps


def tariffication_v4(steps: Sequence[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """The current/next tariff summary for `now`, computed from the steps."""
    if not steps:
        return {}
    now_s = fmt_dt(now) or ""
    idx = len(steps) - 1
    for i, step in enumerate(steps):
        if str(step.get("tariff_deadline_at") or FAR_FUTURE) > now_s:
            idx = i
            break
    cur = steps[idx]
    nxt = steps[idx + 1] if idx + 1 < len(steps) else None
    return {
        "current_tariff_rate": cur.get("tariff_rate", 0),
        "current_tariff_type": cur.get("tariff_type", ""),
        "current_tariff_charge": cur.get("tariff_charge"),
        "current_tariff_min_charge": cur.get("min_charge"),
        "next_tariff_rate": nxt.get("tariff_rate", 0) if nxt else 0,
        "next_tariff_type": nxt.get("tariff_type", "") if nxt else "",
        "next_tariff_charge": nxt.get("tariff_charge") if nxt else None,
        "next_tariff_min_charge": nxt.get("min_charge") if nxt else None,
        "next_tariff_starts_at": cur.get("tariff_deadline_at") if nxt else None,
    }


CNY_RUB = Decimal("12.40")


def financial_data(products: Sequence[dict[str, Any]], city: str) -> dict[str, Any]:
    lines = []
    for p in products:
        amount = _price_amount(p)
        lines.append(
            {
                "product_id": p.get("sku"),
                "price": float(amount),
                "old_price": float((amount * Decimal("1.25")).quantize(_CENT)),
                "payout": 0,
                "quantity": int(p.get("quantity") or 0),
                "total_discount_value": float((amount * Decimal("0.25")).quantize(_CENT)),
                "total_discount_percent": 20.0,
                "actions": ["Системная виртуальная скидка селлера Россия (CNY)"],
                "commission": {"amount": "0.00", "currency": "CNY", "percent": 15},
                "customer_price": {"amount": money(amount * CNY_RUB), "currency": "RUB"},
            }
        )
    return {"cluster_from": "Китай", "cluster_to": city, "products": lines}


REQUIREMENT_KEYS = (
    "products_requiring_gtd",
    "products_requiring_country",
    "products_requiring_change_country",
    "products_requiring_mandatory_mark",
    "products_requiring_rnpt",
    "products_requiring_jw_uin",
    "products_requiring_imei",
    "products_requiring_weight",
)


def generate_posting(
    rng: random.Random,
    *,
    now: datetime,
    warehouse: dict[str, Any],
    flow: str,
    due_in: timedelta | None,
    posting_number: str,
    order_number: str,
) -> dict[str, Any]:
    """One new posting in the v4 list shape, status awaiting_packaging."""
    if flow not in FLOWS:
        raise ValueError(f"unknown flow {flow!r}; expected one of {', '.join(FLOWS)}")
    now = utc(now).replace(microsecond=0)
    if due_in is None:
        due_in = timedelta(minutes=rng.randint(6 * 60, 72 * 60))
    shipment = (now + due_in).replace(microsecond=0)
    method = dict(warehouse["_methods"][flow])

    n_products = rng.choice((1, 1, 1, 2, 2, 3))
    picked = rng.sample(CATALOGUE, n_products)
    products = [_product_line(p, rng.choice((1, 1, 1, 2, 3))) for p in picked]

    who = rng.choice(CUSTOMERS)
    customer_id = rng.randint(10_000_000, 99_999_999)
    phone = f"+7{rng.randint(900, 999)}{rng.randint(1000000, 9999999)}"
    order_id = rng.randint(30_000_000_000, 39_999_999_999)
    delivery_begin = shipment + timedelta(days=rng.randint(10, 16))
    delivery_end = delivery_begin + timedelta(days=6)

    seller_delivers = flow == "non_integrated"
    customer = None
    addressee = None
    if seller_delivers:
        customer = {
            "customer_id": customer_id,
            "name": who["name"],
            "phone": phone,
            "customer_email": "",
            "address": {
                "address_tail": who["tail"],
                "city": who["city"],
                "comment": "",
                "country": "Россия",
                "district": who["district"],
                "latitude": who["lat"],
                "longitude": who["lon"],
                "provider_pvz_code": "",
                "pvz_code": 0,
                "region": who["region"],
                "zip_code": who["zip"],
            },
        }
        addressee = {"name": who["name"]}

    status = "awaiting_packaging"
    substatus = "posting_created"
    steps = tariffication_steps(products, shipment)
    return {
        "posting_number": posting_number,
        "order_id": order_id,
        "order_number": order_number,
        "parent_posting_number": "",
        "status": status,
        "substatus": substatus,
        "delivery_method": method,
        "tracking_number": "",
        "tpl_integration_type": flow,
        "integration_type_flow": flow,
        "delivery_schema": "fbs",
        "in_process_at": fmt_dt(now),
        "shipment_date": fmt_dt(shipment),
        "shipment_date_without_delay": fmt_dt(shipment),
        "delivering_date": None,
        "pickup_code_verified_at": None,
        "cancellation": {
            "cancel_reason_id": 0,
            "cancel_reason": "",
            "cancellation_type": "",
            "cancellation_initiator": "",
            "cancelled_after_ship": False,
            "affect_cancellation_rating": False,
        },
        "customer": customer,
        "addressee": addressee,
        "products": products,
        "barcodes": None,
        "analytics_data": {
            "region": who["region"],
            "city": who["city"],
            "delivery_type": "Courier" if seller_delivers else "PVZ",
            "is_premium": False,
            "payment_type_group_name": "Карты оплаты",
            "warehouse_id": method["warehouse_id"],
            "warehouse": method["warehouse"],
            "tpl_provider_id": method["tpl_provider_id"],
            "tpl_provider": method["tpl_provider"],
            "delivery_date_begin": fmt_dt(delivery_begin),
            "delivery_date_end": fmt_dt(delivery_end),
            "client_delivery_date_begin": fmt_dt(delivery_begin),
            "client_delivery_date_end": fmt_dt(delivery_end),
            "is_legal": False,
        },
        "financial_data": financial_data(products, who["city"]),
        "requirements": {k: [] for k in REQUIREMENT_KEYS},
        "optional": {"products_with_possible_mandatory_mark": []},
        "available_actions": available_actions(flow, status, substatus),
        "is_express": False,
        "is_multibox": False,
        "multi_box_qty": 0,
        "legal_info": {"company_name": "", "inn": "", "kpp": ""},
        "tariffication": tariffication_v4(steps, now),
        "tariffication_steps": steps,
        "prr_option": "",
        "quantum_id": 0,
        # fields a client must tolerate without understanding
        "container": None,
        "container_sort_type": "",
        "destination_place_id": 0,
        "destination_place_name": "",
        "external_order": {"is_external": False, "platform_name": ""},
        "is_click_and_collect": False,
        "is_presortable": False,
        "require_blr_traceable_attrs": False,
        "scanit": {},
        "sorting_center": None,
        "volume_weight": round(sum(p["weight"] * p["quantity"] for p in products) * 1.2, 3),
    }


def fill_product(line: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Complete an explicitly given product line with catalogue data."""
    line = dict(line)
    sku = line.get("sku")
    product: Product | None = None
    if sku is not None:
        product = PRODUCTS_BY_SKU.get(int(sku))
    elif line.get("offer_id"):
        product = next((p for p in CATALOGUE if p.offer_id == line["offer_id"]), None)
    if product is None:
        product = rng.choice(CATALOGUE)
        if sku is None:
            line.setdefault("offer_id", product.offer_id)
    base = _product_line(product, int(line.get("quantity") or 1))
    if sku is not None:
        base["sku"] = int(sku)
    price = line.get("price")
    if isinstance(price, str | int | float) and not isinstance(price, bool):
        line["price"] = {"amount": money(price), "currency": "CNY"}
    base.update(line)
    base["quantity"] = int(base["quantity"])
    return base


# ---------------------------------------------------------------------------------------------------------
# v3 (/v3/posting/fbs/get) shape


def _v3_money(value: Any) -> tuple[str, str]:
    if isinstance(value, dict):
        return money(value.get("amount") or 0, 4), str(value.get("currency") or "CNY")
    if value is None:
        return "", ""
    return money(value, 4), "CNY"


def to_v3(
    posting: dict[str, Any],
    *,
    with_: dict[str, Any],
    now: datetime,
    previous_substatus: str,
    related: Sequence[str],
) -> dict[str, Any]:
    """Convert an internal (v4-shaped) posting to the `/v3/posting/fbs/get` result."""
    d = clone(posting)
    products = []
    for p in d.get("products") or []:
        price, currency = _v3_money(p.get("price"))
        q = dict(p)
        q["price"] = price
        q["currency_code"] = currency
        q.setdefault("mandatory_mark", [])
        q["dimensions"] = {
            "height": "40",
            "length": "150",
            "weight": str(int((p.get("weight") or 0) * 1000)),
            "width": "100",
        }
        q["jw_uin"] = []
        q["has_imei"] = False
        q["is_weight_needed"] = False
        q["weight_min"] = 0
        q["weight_max"] = 0
        products.append(q)
    d["products"] = products

    fin = d.get("financial_data")
    if fin and with_.get("financial_data"):
        lines = []
        for line in fin.get("products") or []:
            commission = line.get("commission") or {}
            customer_price = line.get("customer_price") or {}
            lines.append(
                {
                    "product_id": line.get("product_id"),
                    "price": line.get("price"),
                    "old_price": line.get("old_price"),
                    "payout": line.get("payout"),
                    "quantity": line.get("quantity"),
                    "total_discount_value": line.get("total_discount_value"),
                    "total_discount_percent": line.get("total_discount_percent"),
                    "actions": line.get("actions") or [],
                    "commission_amount": float(commission.get("amount") or 0),
                    "commission_percent": commission.get("percent") or 0,
                    "currency_code": commission.get("currency") or "CNY",
                    "customer_price": float(customer_price.get("amount") or 0),
                    "customer_currency_code": customer_price.get("currency") or "RUB",
                }
            )
        d["financial_data"] = {
            "cluster_from": fin.get("cluster_from"),
            "cluster_to": fin.get("cluster_to"),
            "products": lines,
        }
    else:
        d["financial_data"] = None
    if not with_.get("analytics_data"):
        d["analytics_data"] = None
    if not with_.get("barcodes"):
        d["barcodes"] = None
    if not with_.get("legal_info"):
        d["legal_info"] = None
    if d.get("addressee") is not None:
        d["addressee"] = {"name": d["addressee"].get("name", ""), "phone": ""}

    tariff = tariffication_v4(d.get("tariffication_steps") or [], now)
    v3_tariff: dict[str, Any] = {}
    for prefix in ("current", "next"):
        charge = tariff.get(f"{prefix}_tariff_charge") or {}
        min_charge = tariff.get(f"{prefix}_tariff_min_charge") or {}
        v3_tariff[f"{prefix}_tariff_rate"] = tariff.get(f"{prefix}_tariff_rate", 0)
        v3_tariff[f"{prefix}_tariff_type"] = tariff.get(f"{prefix}_tariff_type", "")
        v3_tariff[f"{prefix}_tariff_charge"] = charge.get("amount", "")
        v3_tariff[f"{prefix}_tariff_charge_currency_code"] = charge.get("currency", "")
        v3_tariff[f"{prefix}_tariff_min_charge"] = min_charge.get("amount", "")
        v3_tariff[f"{prefix}_tariff_min_charge_currency_code"] = min_charge.get("currency", "")
    v3_tariff["next_tariff_starts_at"] = tariff.get("next_tariff_starts_at")
    d["tariffication"] = v3_tariff

    d["additional_data"] = []
    d["courier"] = None
    d["delivery_price"] = ""
    d["provider_status"] = ""
    d["previous_substatus"] = previous_substatus
    d["fact_delivery_date"] = None
    d["related_weight_postings"] = []
    d["prr_option"] = {"code": d.get("prr_option") or "", "price": "", "currency_code": "", "floor": ""}
    d["product_exemplars"] = (
        {"products": [{"sku": p["sku"], "exemplars": []} for p in products]}
        if with_.get("product_exemplars")
        else None
    )
    d["related_postings"] = (
        {"related_posting_numbers": list(related)} if with_.get("related_postings") else None
    )
    return d


# ---------------------------------------------------------------------------------------------------------
# A minimal, valid PDF 1.4 label renderer (one A6 page per posting, built-in Helvetica)

A6_WIDTH = 297.64
A6_HEIGHT = 419.53


_CYRILLIC = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        "a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh shch - y - e yu ya".split(),
        strict=True,
    )
)


def _latin(text: str) -> str:
    """Helvetica/WinAnsi can't draw Cyrillic or Chinese: transliterate Russian, drop the rest."""
    out = []
    for ch in text.replace("→", "->").replace("×", "x"):
        low = ch.lower()
        if low in _CYRILLIC:
            t = _CYRILLIC[low].replace("-", "")
            out.append(t.capitalize() if ch != low else t)
            continue
        try:
            ch.encode("cp1252")
        except UnicodeEncodeError:
            continue
        out.append(ch)
    return " ".join("".join(out).split())


def _pdf_text(text: str) -> bytes:
    """A PDF literal string in WinAnsi."""
    raw = _latin(text).encode("cp1252", errors="replace")
    raw = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    return b"(" + raw + b")"


def _label_stream(label: dict[str, Any]) -> bytes:
    ops: list[bytes] = []

    def text(x: float, y: float, size: float, s: str, font: str = "F1") -> None:
        ops.append(b"BT /%s %.1f Tf %.2f %.2f Td %s Tj ET" % (font.encode(), size, x, y, _pdf_text(s)))

    ops.append(b"0.5 w 10 10 %.2f %.2f re S" % (A6_WIDTH - 20, A6_HEIGHT - 20))
    text(22, 385, 22, "OZON", "F2")
    text(150, 390, 9, "rFBS / FBS label")
    text(22, 350, 9, "Posting / Otpravlenie:")
    text(22, 326, 19, str(label.get("posting_number", "")), "F2")
    text(22, 308, 9, f"Order: {label.get('order_number', '')}")
    # decorative bars derived from the posting number (not a scannable symbology)
    x = 22.0
    digits = [int(c) for c in str(label.get("posting_number", "")) if c.isdigit()] or [0]
    ops.append(b"0 g")
    for i in range(46):
        d = digits[i % len(digits)]
        width = 1.0 + (d % 3)
        if (d + i) % 2 == 0:
            ops.append(b"%.2f 230 %.2f 62 re f" % (x, width))
        x += width + 1.4
        if x > A6_WIDTH - 30:
            break
    text(22, 212, 9, f"Tracking: {label.get('tracking_number') or '-'}")
    text(22, 198, 9, f"Delivery: {label.get('delivery_method', '')}")
    text(22, 184, 9, f"Warehouse: {label.get('warehouse', '')}")
    y = 160.0
    text(22, y, 9, "Items:", "F2")
    for offer_id, qty in (label.get("items") or [])[:8]:
        y -= 13
        text(30, y, 9, f"{offer_id}  x{qty}")
    text(22, 20, 7, f"Task {label.get('task_id', '')} - ozonbot sandbox")
    return b"\n".join(ops) + b"\n"


def render_label_pdf(labels: Sequence[dict[str, Any]]) -> bytes:
    """Render labels (dicts with posting_number, order_number, tracking_number, delivery_method,
    warehouse, items [(offer_id, qty)], task_id) into a PDF document; correct xref offsets."""
    labels = list(labels) or [{"posting_number": ""}]
    objects: list[bytes] = []  # index i holds object number i + 1
    n_pages = len(labels)
    first_page = 5
    kids = b" ".join(b"%d 0 R" % (first_page + 2 * i) for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, n_pages))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    for i, label in enumerate(labels):
        content_num = first_page + 2 * i + 1
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.2f %.2f] "
            b"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents %d 0 R >>"
            % (A6_WIDTH, A6_HEIGHT, content_num)
        )
        stream = _label_stream(label)
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    info_num = len(objects) + 1
    objects.append(b"<< /Producer (ozonbot sandbox) /Title (Ozon package labels) >>")

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (num, body)
    xref_at = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        info_num,
        xref_at,
    )
    return bytes(out)
