"""The Seller API methods our client calls (`_api_*`), each answering the shapes of reference §3."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from .api import (
    ApiError,
    _decode_cursor,
    _dt,
    _encode_cursor,
    _int,
    _invalid,
    _limit,
    _not_found,
    _obj,
    _sort_desc,
    _str_list,
)
from .catalogue import public_warehouse
from .label_pdf import render_label_pdf
from .orders import _v3_money, tariffication_v4, to_v3
from .states import (
    LABEL_STATUSES,
    LAST_MILE_SUBSTATUS,
    SHIPPED_STATUSES,
    UNFULFILLED_STATUSES,
    available_actions,
)
from .wire import Json, fmt_dt, money
from .world import _LabelTask, _Posting, _Seller

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Methods:
    """The `_api_*` handlers (state lives on `OzonSandbox`)."""

    # API methods

    def _api_roles(self, seller: _Seller, body: Json) -> Json:
        return {
            "roles": [{"name": role, "methods": self._role_methods(role)} for role in seller.roles],
            "expires_at": fmt_dt(seller.expires_at),
        }

    def _api_warehouses(self, seller: _Seller, body: Json) -> Json:
        wanted = {_int(x, "warehouse_ids") for x in body.get("warehouse_ids") or []}
        items = [
            public_warehouse(w) for w in seller.warehouses if not wanted or w["warehouse_id"] in wanted
        ]
        return {"cursor": "", "has_next": False, "warehouses": items}

    def _render_v4(self, p: _Posting, with_: Json, now: datetime) -> Json:
        d = dict(p.data)
        for block in ("analytics_data", "financial_data", "barcodes", "legal_info"):
            if not with_.get(block):
                d[block] = None
        d["tariffication"] = tariffication_v4(d.get("tariffication_steps") or [], now)
        return d

    def _common_filter(self, seller: _Seller, flt: Json) -> list[_Posting]:
        items = list(seller.postings.values())
        statuses = _str_list(flt.get("statuses"), "filter.statuses")
        if statuses:
            items = [p for p in items if p.data["status"] in statuses]
        for key, getter in (
            ("warehouse_ids", lambda p: p.data["delivery_method"].get("warehouse_id")),
            ("delivery_method_ids", lambda p: p.data["delivery_method"].get("id")),
            ("provider_ids", lambda p: p.data["delivery_method"].get("tpl_provider_id")),
        ):
            raw = flt.get(key)
            if raw:
                if not isinstance(raw, list) or len(raw) > 1000:
                    raise _invalid(f"invalid filter.{key}")
                ids = {_int(x, f"filter.{key}") for x in raw}
                items = [p for p in items if getter(p) in ids]
        changed = _obj(flt.get("last_changed_status_date"), "filter.last_changed_status_date")
        if changed.get("from"):
            since = _dt(changed["from"], "filter.last_changed_status_date.from")
            items = [p for p in items if p.last_changed >= since]
        if changed.get("to"):
            until = _dt(changed["to"], "filter.last_changed_status_date.to")
            items = [p for p in items if p.last_changed <= until]
        return items

    def _page(
        self, items: list[_Posting], body: Json, sort_key: Callable[[_Posting], Any]
    ) -> tuple[list[_Posting], str, bool]:
        limit = _limit(body)
        desc = _sort_desc(body)
        offset = _decode_cursor(body.get("cursor"))
        items.sort(key=lambda p: (sort_key(p), p.number), reverse=desc)
        page = items[offset : offset + limit]
        has_next = offset + limit < len(items)
        return page, _encode_cursor(offset + limit) if has_next else "", has_next

    @staticmethod
    def _window(flt: Json, lo: str, hi: str) -> tuple[datetime, datetime] | None:
        if flt.get(lo) in (None, "") and flt.get(hi) in (None, ""):
            return None
        if flt.get(lo) in (None, "") or flt.get(hi) in (None, ""):
            raise _invalid(f"filter.{lo} and filter.{hi} must both be specified")
        start, end = _dt(flt[lo], f"filter.{lo}"), _dt(flt[hi], f"filter.{hi}")
        if end - start > timedelta(days=366):
            raise _invalid("PERIOD_IS_TOO_LONG")
        return start, end

    def _api_unfulfilled(self, seller: _Seller, body: Json) -> Json:
        flt = _obj(body.get("filter"), "filter")
        _limit(body)
        cutoff = self._window(flt, "cutoff_from", "cutoff_to")
        delivering = self._window(flt, "delivering_date_from", "delivering_date_to")
        if cutoff is None and delivering is None:
            raise _invalid("either filter.cutoff or filter.delivering_date must be specified")
        if cutoff is not None and delivering is not None:
            raise _invalid("filter.cutoff and filter.delivering_date can't be specified together")
        items = [p for p in self._common_filter(seller, flt) if p.data["status"] in UNFULFILLED_STATUSES]
        if cutoff is not None:
            lo, hi = cutoff
            items = [p for p in items if (d := p.date("shipment_date")) is not None and lo <= d <= hi]
        else:
            assert delivering is not None
            lo, hi = delivering
            items = [p for p in items if (d := p.date("delivering_date")) is not None and lo <= d <= hi]
        total = len(items)
        page, cursor, has_next = self._page(items, body, lambda p: p.date("shipment_date") or _EPOCH)
        now = self.now()
        with_ = _obj(body.get("with"), "with")
        return self._wrap(
            {
                "count": total,
                "cursor": cursor,
                "has_next": has_next,
                "postings": [self._render_v4(p, with_, now) for p in page],
            }
        )

    def _api_list(self, seller: _Seller, body: Json) -> Json:
        flt = _obj(body.get("filter"), "filter")
        _limit(body)
        if not flt.get("since") or not flt.get("to"):
            raise _invalid("filter.since and filter.to must be specified")
        since, to = _dt(flt["since"], "filter.since"), _dt(flt["to"], "filter.to")
        if to - since > timedelta(days=366):
            raise _invalid("PERIOD_IS_TOO_LONG")
        items = [
            p
            for p in self._common_filter(seller, flt)
            if (d := p.date("in_process_at")) is not None and since <= d <= to
        ]
        order_numbers = _str_list(flt.get("order_numbers"), "filter.order_numbers")
        if len(order_numbers) > 100:
            raise _invalid("filter.order_numbers: at most 100 items")
        if order_numbers:
            items = [p for p in items if p.data.get("order_number") in order_numbers]
        if flt.get("order_id") not in (None, "", 0, "0"):
            order_id = _int(flt["order_id"], "filter.order_id")
            items = [p for p in items if p.data.get("order_id") == order_id]
        flows = _str_list(flt.get("integration_type_flow"), "filter.integration_type_flow")
        if flows:
            items = [p for p in items if p.data.get("integration_type_flow") in flows]
        page, cursor, has_next = self._page(items, body, lambda p: p.date("in_process_at") or _EPOCH)
        now = self.now()
        with_ = _obj(body.get("with"), "with")
        return self._wrap(
            {
                "cursor": cursor,
                "has_next": has_next,
                "postings": [self._render_v4(p, with_, now) for p in page],
            }
        )

    def _api_get(self, seller: _Seller, body: Json) -> Json:
        p = self._posting_of(seller, body.get("posting_number"))
        related = sorted(
            n
            for n, q in seller.postings.items()
            if n != p.number and q.data.get("order_number") == p.data.get("order_number")
        )
        result = to_v3(
            p.data,
            with_=_obj(body.get("with"), "with"),
            now=self.now(),
            previous_substatus=p.previous_substatus,
            related=related,
        )
        return {"result": result}

    def _api_ship(self, seller: _Seller, body: Json) -> Json:
        p = self._posting_of(seller, body.get("posting_number"))
        status = p.data["status"]
        if status == "cancelled":
            raise _invalid("POSTING_ALREADY_CANCELLED")
        if status in SHIPPED_STATUSES:
            raise _invalid("POSTING_ALREADY_SHIPPED")
        if status != "awaiting_packaging":
            raise _invalid("HAS_INCORRECT_STATUS")
        packages = body.get("packages")
        if not isinstance(packages, list) or not packages:
            raise _invalid("packages: value must contain at least 1 item(s)")
        ordered = {int(x["sku"]): x for x in p.data["products"]}
        wanted: dict[int, int] = {}
        for x in p.data["products"]:
            wanted[int(x["sku"])] = wanted.get(int(x["sku"]), 0) + int(x.get("quantity") or 0)
        got: dict[int, int] = {}
        parcels: list[dict[int, int]] = []
        for pkg in packages:
            products = pkg.get("products") if isinstance(pkg, dict) else None
            if not isinstance(products, list) or not products:
                raise _invalid("packages.products: value must contain at least 1 item(s)")
            parcel: dict[int, int] = {}
            for line in products:
                if not isinstance(line, dict):
                    raise _invalid("invalid packages.products item")
                try:
                    sku = _int(line.get("product_id"), "product_id")
                except ApiError:
                    raise _invalid("UNKNOWN_PRODUCT_DEFINED") from None
                if sku not in ordered:
                    raise _invalid("UNKNOWN_PRODUCT_DEFINED")
                try:
                    qty = _int(line.get("quantity"), "quantity")
                except ApiError:
                    raise _invalid("HAS_INCORRECT_PRODUCT_QUANTITY") from None
                if qty <= 0:
                    raise _invalid("HAS_INCORRECT_PRODUCT_QUANTITY")
                parcel[sku] = parcel.get(sku, 0) + qty
                got[sku] = got.get(sku, 0) + qty
            parcels.append(parcel)
        if got != wanted:
            raise _invalid("HAS_INCORRECT_PRODUCT_QUANTITY")

        failures = self._ship_failures.get(p.number, 0)
        if failures > 0:
            self._ship_failures[p.number] = failures - 1
            p.previous_substatus = p.data["substatus"]
            p.data["substatus"] = "ship_failed"
            p.data["available_actions"] = available_actions(p.flow, "awaiting_packaging", "ship_failed")
            return {"result": [p.number], "additional_data": [self._additional_data(p)]}

        shipped = [p]
        if len(parcels) > 1:
            shipped += self._split(seller, p, parcels)
        for q in shipped:
            self._packed(q)
        return {
            "result": [q.number for q in shipped],
            "additional_data": [self._additional_data(q) for q in shipped],
        }


    @staticmethod
    def _additional_data(p: _Posting) -> Json:
        products = []
        for x in p.data["products"]:
            amount, currency = _v3_money(x.get("price"))
            products.append(
                {
                    "currency_code": currency,
                    "mandatory_mark": [],
                    "name": x.get("name", ""),
                    "offer_id": x.get("offer_id", ""),
                    "price": money(amount) if amount else "",
                    "quantity": x["quantity"],
                    "sku": x["sku"],
                }
            )
        return {"posting_number": p.number, "products": products}

    def _api_pick_list(self, seller: _Seller, body: Json) -> Json:
        """The SKU pick list of the postings awaiting packaging whose cutoff is in the window."""
        flt = _obj(body.get("filter"), "filter")
        limit = _int(body.get("limit"), "limit") if body.get("limit") is not None else 0
        if not 1 <= limit <= 1000:
            raise _invalid("invalid request: limit must be in range [1, 1000]")
        offset = _int(body.get("offset") or 0, "offset")
        cutoff = self._window(flt, "cutoff_from", "cutoff_to")
        if cutoff is None:
            raise _invalid("filter.cutoff_from and filter.cutoff_to are required")
        if not seller.pick_list:
            raise _invalid("assembly lists are not available for this warehouse type")
        lo, hi = cutoff
        items = [p for p in seller.postings.values() if p.data["status"] == "awaiting_packaging"
                 and (d := p.date("shipment_date")) is not None and lo <= d <= hi]
        items.sort(key=lambda p: (p.date("shipment_date") or _EPOCH, p.number), reverse=_sort_desc(body))
        lines: dict[int, Json] = {}
        for p in items:
            for x in p.data.get("products") or []:
                line = lines.setdefault(int(x["sku"]), {"sku": int(x["sku"]), "offer_id": x.get("offer_id", ""),
                                                        "product_name": x.get("name", ""), "picture_url": "",
                                                        "quantity": 0, "postings": []})
                line["quantity"] += int(x["quantity"])
                line["postings"].append({"posting_number": p.number, "quantity": int(x["quantity"])})
        products = list(lines.values())
        page = products[offset:offset + limit]
        return {"products": page, "products_count": len(products), "has_next": offset + limit < len(products)}

    def _api_label_create(self, seller: _Seller, body: Json) -> Json:
        numbers = body.get("posting_numbers")
        if not isinstance(numbers, list) or not 1 <= len(numbers) <= 1000:
            raise _invalid("posting_numbers: value must contain between 1 and 1000 items")
        numbers = [str(n) for n in numbers]
        not_ready = []
        for n in numbers:
            p = seller.postings.get(n)
            if p is not None and p.data["status"] == "delivered":
                raise _invalid("label not allowed for delivered postings")
            if p is None or p.data["status"] not in LABEL_STATUSES:
                not_ready.append(n)
        if len(not_ready) == len(numbers):
            raise _invalid("The next postings aren't ready")
        # a task with several postings prints what it can and lists the rest with the reason (v3, §4)
        unprinted = {n: "POSTING_NOT_IN_AWAITING_DELIVER_STATUS" for n in not_ready}
        unprinted.update({n: self._label_refusals[n] for n in numbers if n in self._label_refusals})
        task_id = self._next_task_id
        self._next_task_id += 1
        self._label_tasks[task_id] = _LabelTask(task_id, seller.client_id, numbers, self.now(), unprinted=unprinted)
        return {"tasks": [{"task_id": task_id, "task_type": "big_label"}]}

    def _task_done(self, task: _LabelTask) -> bool:
        return self.now() >= task.created_at + timedelta(seconds=self.label_delay)

    def _api_label_get(self, seller: _Seller, body: Json) -> Json:
        task_id = _int(body.get("task_id"), "task_id")
        task = self._label_tasks.get(task_id)
        if task is None or task.client_id != seller.client_id:
            raise _not_found("TASK_NOT_FOUND")
        done = self._task_done(task)
        base = self.public_url or self.base_url or ""
        if done and len(task.unprinted) == len(task.posting_numbers):  # nothing printable: no file
            return {
                "status": {"code": "error", "postings_count": len(task.posting_numbers), "printed_postings_count": 0,
                           "unprinted_postings": [{"posting_number": n, "message": m}
                                                  for n, m in task.unprinted.items()]},
                "file_url": "",
                "error": {"code": "NO_LABELS", "message": "no posting of the task could be printed"},
            }
        return {
            "status": {
                "code": "completed" if done else "pending",
                "postings_count": len(task.posting_numbers),
                "printed_postings_count": len(task.posting_numbers) - len(task.unprinted) if done else 0,
                "unprinted_postings": [{"posting_number": n, "message": m} for n, m in task.unprinted.items()]
                if done else [],
            },
            "file_url": f"{base}/labels/{task_id}.pdf" if done else "",
            "error": None,
        }

    async def _serve_label(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        stem = name[:-4] if name.endswith(".pdf") else ""
        task = self._label_tasks.get(int(stem)) if stem.isdigit() else None
        if task is None or not self._task_done(task):
            return web.Response(status=404, text="label not found")
        if task.pdf is None:
            labels = []
            for n in task.posting_numbers:
                if n in task.unprinted:
                    continue
                p = self._postings.get(n)
                d = p.data if p is not None else {"posting_number": n}
                labels.append(
                    {
                        "task_id": task.task_id,
                        "posting_number": n,
                        "order_number": d.get("order_number", ""),
                        "tracking_number": d.get("tracking_number", ""),
                        "delivery_method": (d.get("delivery_method") or {}).get("name", ""),
                        "warehouse": (d.get("delivery_method") or {}).get("warehouse", ""),
                        "items": [
                            (x.get("offer_id", ""), x.get("quantity", 0)) for x in d.get("products") or []
                        ],
                    }
                )
            task.pdf = render_label_pdf(labels)
        return web.Response(
            body=task.pdf,
            content_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{task.task_id}.pdf"'},
        )

    @staticmethod
    def _item(number: str, ok: bool, error: str = "") -> Json:
        return {"posting_number": number, "result": ok, "error": error}

    def _api_tracking(self, seller: _Seller, body: Json) -> Json:
        items = body.get("tracking_numbers")
        if not isinstance(items, list) or not items:
            raise _invalid("tracking_numbers: value must contain at least 1 item(s)")
        if len(items) > 20:
            raise _invalid("tracking_numbers: value must contain at most 20 item(s)")
        out = []
        for item in items:
            if not isinstance(item, dict):
                raise _invalid("invalid tracking_numbers item")
            number = str(item.get("posting_number") or "")
            tracking = str(item.get("tracking_number") or "").strip()
            p = seller.postings.get(number)
            if p is None:
                out.append(self._item(number, False, "POSTING_NOT_FOUND"))
            elif p.flow != "non_integrated":
                out.append(self._item(number, False, "HAS_INCORRECT_TPL_INTEGRATION_TYPE"))
            elif p.data["status"] not in ("awaiting_deliver", "delivering"):
                out.append(self._item(number, False, "HAS_INCORRECT_STATUS"))
            elif not tracking:
                out.append(self._item(number, False, "INVALID_TRACKING_NUMBER"))
            else:
                p.data["tracking_number"] = tracking
                out.append(self._item(number, True))
        return {"result": out}

    def _move(self, seller: _Seller, body: Json, apply: Callable[[_Posting], str | None]) -> Json:
        numbers = body.get("posting_number")
        if isinstance(numbers, str):
            numbers = [numbers]
        if not isinstance(numbers, list) or not numbers:
            raise _invalid("posting_number: value must contain at least 1 item(s)")
        if len(numbers) > 1000:
            raise _invalid("posting_number: value must contain at most 1000 item(s)")
        out = []
        for number in (str(n) for n in numbers):
            p = seller.postings.get(number)
            if p is None:
                out.append(self._item(number, False, "POSTING_NOT_FOUND"))
            elif p.flow != "non_integrated":
                out.append(self._item(number, False, "HAS_INCORRECT_TPL_INTEGRATION_TYPE"))
            else:
                error = apply(p)
                out.append(self._item(number, error is None, error or ""))
        return {"result": out}

    def _api_delivering(self, seller: _Seller, body: Json) -> Json:
        def apply(p: _Posting) -> str | None:
            if p.data["status"] != "awaiting_deliver":
                return "TRANSITION_IS_NOT_POSSIBLE"
            p.data["delivering_date"] = fmt_dt(self.now())
            self._set_state(p, "delivering")
            return None

        return self._move(seller, body, apply)

    def _api_last_mile(self, seller: _Seller, body: Json) -> Json:
        def apply(p: _Posting) -> str | None:
            if p.data["status"] != "delivering" or p.data["substatus"] == LAST_MILE_SUBSTATUS:
                return "TRANSITION_IS_NOT_POSSIBLE"
            self._set_state(p, "delivering", LAST_MILE_SUBSTATUS)
            return None

        return self._move(seller, body, apply)

    def _api_delivered(self, seller: _Seller, body: Json) -> Json:
        def apply(p: _Posting) -> str | None:
            if p.data["status"] != "delivering":
                return "TRANSITION_IS_NOT_POSSIBLE"
            self._set_state(p, "delivered")
            return None

        return self._move(seller, body, apply)
