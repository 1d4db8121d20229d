"""The FBS error index (`/v1/rating/index/fbs/info`, `/v1/rating/index/fbs/posting/list`, next-features §6): the
charges Ozon bills for seller-caused cancellations and late shipments, per posting, and the index they make."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .api import _decode_cursor, _dt, _encode_cursor, _int, _invalid
from .wire import Json, fmt_dt

TYPES = ("SELLER_CANCELLATION", "SELLER_DELAY")
LIST_LIMIT = 1000
PERIOD = timedelta(days=7)


@dataclass
class _Charge:
    client_id: str
    posting_number: str
    error_type: str
    charge: float
    currency: str
    at: datetime
    schema: str = "rFBS"


class Rating:
    """Charges per seller (state lives on `OzonSandbox`)."""

    _charges: list[_Charge]

    def add_charge(self, client_id: str, posting_number: str, error_type: str = "SELLER_DELAY",
                   charge: float = 12.5, currency: str = "CNY", at: datetime | None = None) -> Json:
        if error_type not in TYPES:
            raise ValueError(f"unknown error type {error_type!r}")
        self._seller(client_id)
        item = _Charge(client_id, posting_number, error_type, charge, currency, at or self.now())
        self._charges.append(item)
        return self._charge_json(item)

    def _charge_json(self, c: _Charge) -> Json:
        return {"posting_number": c.posting_number, "posting_error_type": c.error_type, "charge_price": c.charge,
                "charge_percent": 5.0, "charge_price_currency_code": c.currency, "delivery_schema": c.schema,
                "error_at": fmt_dt(c.at), "has_grace_status": False, "index": self._index(c.client_id)}

    def _index(self, client_id: str) -> float:
        postings = max(1, len(self._seller(client_id).postings))
        errors = {c.posting_number for c in self._charges if c.client_id == client_id}
        return round(100.0 * len(errors) / postings, 2)

    def _api_rating_info(self, seller: Any, body: Json) -> Json:
        now = self.now()
        start = now - PERIOD
        mine = [c for c in self._charges if c.client_id == seller.client_id and c.at >= start]
        days: dict[str, float] = {}
        for c in mine:
            days[c.at.date().isoformat()] = days.get(c.at.date().isoformat(), 0.0) + c.charge
        return {"index": self._index(seller.client_id), "period_from": start.date().isoformat(),
                "period_to": now.date().isoformat(), "processing_costs_sum": round(sum(c.charge for c in mine), 2),
                "currency_code": mine[0].currency if mine else "CNY",
                "defects": [{"date": day, "index_by_date": self._index(seller.client_id),
                             "processing_costs_sum_by_date": round(total, 2)} for day, total in sorted(days.items())]}

    def _api_rating_postings(self, seller: Any, body: Json) -> Json:
        limit = _int(body.get("limit"), "limit")
        if not 1 <= limit <= LIST_LIMIT:
            raise _invalid("limit must be between 1 and 1000")
        flt = body.get("filter")
        if not isinstance(flt, dict):
            raise _invalid("filter is required")
        since, to = _dt(flt.get("date_from"), "filter.date_from"), _dt(flt.get("date_to"), "filter.date_to")
        numbers = set(flt.get("posting_numbers") or [])
        mine = [c for c in self._charges if c.client_id == seller.client_id and since <= c.at <= to
                and (not numbers or c.posting_number in numbers)]
        start = _decode_cursor(body.get("cursor"))
        page = mine[start:start + limit]
        more = start + limit < len(mine)
        return {"errors": [self._charge_json(c) for c in page], "cursor": _encode_cursor(start + limit) if more else "",
                "has_next": more}
