"""FBS stock per product and warehouse (reference next-features §7): read by SKU or offer_id
(`/v2/product/info/stocks-by-warehouse/fbs`), set (`/v2/products/stocks`) with Ozon's limits: at most 100
product-warehouse pairs per call and each pair at most once per 30 s (TOO_MANY_REQUESTS for the item)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from .api import _decode_cursor, _encode_cursor, _int, _invalid
from .catalogue import CATALOGUE
from .wire import Json

PAIRS_PER_CALL = 100
PAIR_WINDOW = timedelta(seconds=30)
READ_LIMIT = 1000
START_PRESENT = 25  # every catalogue item starts with this much in each of the seller's warehouses


def product_id_of(sku: int) -> int:
    return sku - 5_000_000_000  # Ozon's product_id and SKU are different numbers


class Stocks:
    """Stock per (client_id, sku, warehouse_id): present; reserved comes from the open postings."""

    _stock: dict[tuple[str, int, int], int]
    _stock_set_at: dict[tuple[str, int, int], datetime]

    def _stock_rows(self, client_id: str) -> list[Json]:
        seller = self._seller(client_id)
        reserved: dict[tuple[int, int], int] = {}
        for p in seller.postings.values():
            if p.data["status"] in ("awaiting_packaging", "awaiting_approve", "awaiting_verification"):
                warehouse = p.data["delivery_method"].get("warehouse_id")
                for line in p.data["products"]:
                    key = (int(line["sku"]), warehouse)
                    reserved[key] = reserved.get(key, 0) + int(line["quantity"])
        rows = []
        for product in CATALOGUE:
            for warehouse in seller.warehouses:
                wid = warehouse["warehouse_id"]
                present = self._stock.setdefault((client_id, product.sku, wid), START_PRESENT)
                held = min(present, reserved.get((product.sku, wid), 0))
                rows.append({"sku": product.sku, "offer_id": product.offer_id,
                             "product_id": product_id_of(product.sku), "warehouse_id": wid,
                             "warehouse_name": warehouse["name"], "present": present, "reserved": held,
                             "free_stock": present - held})
        return rows

    def stock_of(self, client_id: str, sku: int, warehouse_id: int) -> Json:
        """One row, as the read method answers it (for tests and the control API)."""
        for row in self._stock_rows(client_id):
            if row["sku"] == sku and row["warehouse_id"] == warehouse_id:
                return row
        raise KeyError(f"no stock row for {sku} at {warehouse_id}")

    def _api_stocks_read(self, seller: Any, body: Json) -> Json:
        limit = _int(body.get("limit"), "limit")
        if not 1 <= limit <= READ_LIMIT:
            raise _invalid("limit must be between 1 and 1000")
        skus, offers = body.get("sku"), body.get("offer_id")
        if bool(skus) == bool(offers):
            raise _invalid("exactly one of sku and offer_id is required")
        wanted = skus or offers
        if not isinstance(wanted, list) or len(wanted) > READ_LIMIT:
            raise _invalid("sku or offer_id must be a list of at most 1000")
        if skus:
            keys = {_int(x, "sku") for x in skus}
            rows = [r for r in self._stock_rows(seller.client_id) if r["sku"] in keys]
        else:
            keys = {str(x) for x in offers}
            rows = [r for r in self._stock_rows(seller.client_id) if r["offer_id"] in keys]
        start = _decode_cursor(body.get("cursor"))
        page = rows[start:start + limit]
        more = start + limit < len(rows)
        return {"products": page, "cursor": _encode_cursor(start + limit) if more else "", "has_next": more}

    def _api_stocks_set(self, seller: Any, body: Json) -> Json:
        stocks = body.get("stocks")
        if not isinstance(stocks, list) or not stocks:
            raise _invalid("stocks is required")
        if len(stocks) > PAIRS_PER_CALL:
            raise _invalid("at most 100 product-warehouse pairs per request")
        by_offer = {p.offer_id: p for p in CATALOGUE}
        by_product = {product_id_of(p.sku): p for p in CATALOGUE}
        warehouses = {w["warehouse_id"] for w in seller.warehouses}
        now = self.now()
        result = []
        for item in stocks:
            if not isinstance(item, dict):
                raise _invalid("invalid stocks item")
            offer = str(item.get("offer_id") or "")
            product = by_offer.get(offer) if offer else by_product.get(_int(item.get("product_id") or 0, "product_id"))
            warehouse_id = _int(item.get("warehouse_id"), "warehouse_id")
            stock = _int(item.get("stock"), "stock")
            answer: Json = {"warehouse_id": warehouse_id, "product_id": product_id_of(product.sku) if product else
                            _int(item.get("product_id") or 0, "product_id"), "offer_id": offer or
                            (product.offer_id if product else ""), "updated": False, "errors": []}
            key = (seller.client_id, product.sku, warehouse_id) if product else None
            if product is None:
                answer["errors"].append({"code": "NOT_FOUND", "message": "product not found"})
            elif warehouse_id not in warehouses:
                answer["errors"].append({"code": "WAREHOUSE_NOT_FOUND", "message": "warehouse not found"})
            elif stock < 0:
                answer["errors"].append({"code": "INVALID_STOCK", "message": "stock must not be negative"})
            elif key in self._stock_set_at and now - self._stock_set_at[key] < PAIR_WINDOW:
                answer["errors"].append({"code": "TOO_MANY_REQUESTS",
                                         "message": "a product-warehouse pair may be updated once per 30 seconds"})
            else:
                held = self.stock_of(seller.client_id, product.sku, warehouse_id)["reserved"]
                self._stock[key] = stock + held  # `stock` is what is available: reserved comes on top
                self._stock_set_at[key] = now
                answer["updated"] = True
            result.append(answer)
        return {"result": result}

    async def _ctl_stock(self, request: web.Request) -> web.Response:
        info = request.match_info
        return await self._ctl_call(lambda: self.stock_of(info["client_id"], int(info["sku"]),
                                                          int(info["warehouse_id"])))



