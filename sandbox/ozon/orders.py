"""The deterministic order generator (postings with products, prices, tariffication and financial data)
and the v4 → v3 posting conversion.

Nothing here holds state; every function takes its random source and its "now" explicitly."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from .catalogue import CATALOGUE, CUSTOMERS, PRODUCTS_BY_SKU, Product
from .states import FLOWS, available_actions
from .wire import _CENT, FAR_FUTURE, clone, fmt_dt, money, utc

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
                "commission": {"amount": 0.0, "currency": "CNY", "percent": 15},  # 0 until delivered
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
        "scanit": "",
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
