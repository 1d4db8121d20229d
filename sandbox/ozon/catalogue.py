"""A Chinese seller's catalogue: products, customers, warehouses.

Nothing here holds state; every function takes its random source and its "now" explicitly."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .wire import fmt_dt, utc

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
                "carriage_label_type": "BIG",
                "phone": site["phone"],
                "courier_phones": [],
                # hours of the day as date-times (the spec's type); the date part means nothing
                "timetable": {
                    "working_hours": [{"time_from": "0001-01-01T09:00:00Z", "time_to": "0001-01-01T19:00:00Z"}],
                },
                "warehouse_type": "RFBS",
                "first_mile": {
                    "type": "DROP_OFF",
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
                "working_days": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY"],
                "has_entrusted_acceptance": False,
                "postings_limit": -1,
                "min_postings_limit": 10,
                "sla_cut_in": 1440,
                "cut_in_time": 1440,  # minutes
                "pause_at": None,
                "created_at": created,
                "updated_at": created,
                "_methods": methods,
            }
        )
    return out


def public_warehouse(warehouse: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in warehouse.items() if not k.startswith("_")}
