"""The sandbox's world: sellers, postings, the state machine's transitions, splits, the clock.

`World` is one of the mixins `OzonSandbox` is made of (see server.py); its methods are the Python API
tests and the control API drive Ozon's side with."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .catalogue import make_warehouses
from .orders import (
    fill_product,
    financial_data,
    generate_posting,
    new_posting_number,
    tariffication_steps,
    tariffication_v4,
)
from .states import DEFAULT_FLOWS, DEFAULT_SUBSTATUS, FLOWS, SHIPPED_STATUSES, available_actions, push_state
from .wire import Json, clone, fmt_dt, parse_dt, utc

if TYPE_CHECKING:
    from .api import RecordedCall

log = logging.getLogger(__name__)


@dataclass
class _Posting:
    client_id: str
    data: Json
    last_changed: datetime
    previous_substatus: str = ""
    registration_due: datetime | None = None

    _dates: dict[str, tuple[Any, datetime | None]] = field(default_factory=dict)

    @property
    def number(self) -> str:
        return self.data["posting_number"]

    def date(self, key: str) -> datetime | None:
        """A timestamp field parsed once per value (the lists sort and filter on these)."""
        raw = self.data.get(key)
        cached = self._dates.get(key)
        if cached is not None and cached[0] == raw:
            return cached[1]
        try:
            value = parse_dt(raw) if raw else None
        except ValueError:
            value = None
        self._dates[key] = (raw, value)
        return value

    @property
    def flow(self) -> str:
        return self.data.get("tpl_integration_type") or "non_integrated"


@dataclass
class _Seller:
    client_id: str
    api_key: str
    expires_at: datetime
    roles: list[str]
    warehouses: list[Json]
    rng: random.Random
    postings: dict[str, _Posting] = field(default_factory=dict)
    push_url: str | None = None
    pick_list: bool = True  # whether its warehouses answer /v1/assembly/fbs/product/list (rFBS may not)


@dataclass
class _LabelTask:
    task_id: int
    client_id: str
    posting_numbers: list[str]
    created_at: datetime
    pdf: bytes | None = None
    unprinted: dict[str, str] = field(default_factory=dict)  # posting -> Ozon's reason


class World:
    """Sellers, postings and their transitions (state lives on `OzonSandbox`)."""

    # ------------------------------------------------------------------------------------------------
    # clock and lazy time-driven transitions

    def now(self) -> datetime:
        return utc(self._clock())

    def _tick(self) -> None:
        """Apply transitions that are due by the clock (aggregator registration)."""
        if not self._awaiting_registration:
            return
        now = self.now()
        for number in sorted(self._awaiting_registration):
            p = self._postings.get(number)
            if p is None or p.data["status"] != "awaiting_registration" or p.registration_due is None:
                self._awaiting_registration.discard(number)
                continue
            if p.registration_due <= now:
                self._awaiting_registration.discard(number)
                p.data["tracking_number"] = p.number
                self._packed_barcodes(p)
                self._set_state(p, "awaiting_deliver", when=p.registration_due)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            try:
                self._tick()
            except Exception:  # pragma: no cover - never let the ticker die
                log.exception("sandbox tick failed")

    # ------------------------------------------------------------------------------------------------
    # sellers and postings (Python API)

    def add_seller(
        self,
        client_id: str,
        api_key: str,
        *,
        expires_at: datetime | None = None,
        roles: list[str] | None = None,
        warehouses: int = 1,
    ) -> None:
        client_id = str(client_id)
        if not client_id.isdigit() or int(client_id) <= 0:
            raise ValueError("client_id must be a positive integer (Ozon sends it as Client-Id)")
        now = self.now()
        expiry = utc(expires_at) if expires_at else now + timedelta(days=90)
        existing = self._sellers.get(client_id)
        if existing is not None:
            existing.api_key = api_key
            existing.expires_at = expiry
            if roles is not None:
                existing.roles = list(roles)
            return
        rng = random.Random(f"{self.seed}:{client_id}")
        self._sellers[client_id] = _Seller(
            client_id=client_id,
            api_key=api_key,
            expires_at=expiry,
            roles=list(roles) if roles is not None else ["Admin"],
            warehouses=make_warehouses(rng, warehouses, now),
            rng=rng,
        )

    def _seller(self, client_id: str) -> _Seller:
        try:
            return self._sellers[str(client_id)]
        except KeyError:
            raise KeyError(f"unknown seller {client_id}") from None

    def _new_number(self, rng: random.Random) -> tuple[str, str]:
        while True:
            number, order_number = new_posting_number(rng)
            if number not in self._postings:
                return number, order_number

    def _register(self, seller: _Seller, data: Json, *, push_new: bool = True) -> _Posting:
        p = _Posting(client_id=seller.client_id, data=data, last_changed=self.now())
        seller.postings[p.number] = p
        self._postings[p.number] = p
        if data["status"] == "awaiting_registration":
            p.registration_due = self.now() + timedelta(seconds=self.registration_delay)
            self._awaiting_registration.add(p.number)
        if push_new:
            self._emit(seller, self._new_posting_push(seller, p))
        return p

    def generate_orders(
        self,
        client_id: str,
        count: int,
        *,
        flows: Sequence[str] | None = None,
        due_in: timedelta | None = None,
    ) -> list[dict]:
        """Create ``count`` new awaiting_packaging postings (deterministic from the seed); returns copies."""
        seller = self._seller(client_id)
        flows = list(flows) if flows else list(DEFAULT_FLOWS)
        for flow in flows:
            if flow not in FLOWS:
                raise ValueError(f"unknown flow {flow!r}; expected one of {', '.join(FLOWS)}")
        now = self.now()
        out = []
        for i in range(count):
            flow = flows[i % len(flows)]
            warehouse = seller.warehouses[i % len(seller.warehouses)]
            number, order_number = self._new_number(seller.rng)
            data = generate_posting(
                seller.rng,
                now=now,
                warehouse=warehouse,
                flow=flow,
                due_in=due_in,
                posting_number=number,
                order_number=order_number,
            )
            self._register(seller, data)
            out.append(clone(data))
        return out

    def refuse_label(self, posting_number: str, message: str = "POSTING_LABEL_NOT_AVAILABLE") -> None:
        """Ozon cannot print this posting's label: a multi-posting task lists it as unprinted, with `message`."""
        self._label_refusals[posting_number] = message

    def support_pick_list(self, client_id: str, supported: bool) -> None:
        """Whether the seller's warehouses answer Ozon's pick-list method (unknown for rFBS: next-features §4)."""
        self._seller(client_id).pick_list = supported

    def add_posting(self, client_id: str, posting: dict) -> dict:
        """Add an explicit posting; missing fields are filled like the generator does. Returns a copy."""
        seller = self._seller(client_id)
        posting = clone(posting)
        flow = posting.get("tpl_integration_type") or posting.get("integration_type_flow") or "aggregator"
        if flow not in FLOWS:
            raise ValueError(f"unknown flow {flow!r}")
        number = posting.get("posting_number")
        if number is not None and number in self._postings:
            raise ValueError(f"posting {number} already exists")
        if number is None:
            number, order_number = self._new_number(seller.rng)
        else:
            order_number = number.rsplit("-", 1)[0] if number.count("-") >= 2 else number
        warehouse = seller.warehouses[0]
        wanted_wh = (posting.get("delivery_method") or {}).get("warehouse_id")
        for w in seller.warehouses:
            if wanted_wh is not None and w["warehouse_id"] == wanted_wh:
                warehouse = w
        due_in = None
        if posting.get("shipment_date"):
            due_in = parse_dt(posting["shipment_date"]) - self.now().replace(microsecond=0)
        base = generate_posting(
            seller.rng,
            now=self.now(),
            warehouse=warehouse,
            flow=flow,
            due_in=due_in,
            posting_number=number,
            order_number=order_number,
        )
        if "products" in posting:
            posting["products"] = [fill_product(p, seller.rng) for p in posting["products"] or []]
            base["financial_data"] = financial_data(posting["products"], base["analytics_data"]["city"])
        if isinstance(posting.get("delivery_method"), dict):
            method = dict(base["delivery_method"])
            method.update(posting["delivery_method"])
            posting["delivery_method"] = method
        base.update(posting)
        base["tpl_integration_type"] = flow
        base.setdefault("integration_type_flow", flow)
        if "substatus" not in posting:
            base["substatus"] = DEFAULT_SUBSTATUS.get(base["status"], "")
        if "available_actions" not in posting:
            base["available_actions"] = available_actions(flow, base["status"], base["substatus"])
        if "tariffication_steps" not in posting or "products" in posting:
            base["tariffication_steps"] = tariffication_steps(
                base["products"], parse_dt(base["shipment_date"])
            )
        p = self._register(seller, base)
        return clone(p.data)

    def posting(self, client_id: str, posting_number: str) -> dict:
        """Current state of a posting (deep copy, v4 shape with every block), for assertions."""
        self._tick()
        p = self._seller(client_id).postings.get(posting_number)
        if p is None:
            raise KeyError(f"unknown posting {posting_number} for seller {client_id}")
        return self._snapshot(p)

    def _snapshot(self, p: _Posting) -> dict:
        data = clone(p.data)
        data["tariffication"] = tariffication_v4(data.get("tariffication_steps") or [], self.now())
        return data

    def postings(self, client_id: str) -> list[dict]:
        self._tick()
        return [self._snapshot(p) for p in self._seller(client_id).postings.values()]

    def cancel(self, client_id: str, posting_number: str, reason: str = "Покупатель отменил заказ") -> None:
        """Cancel a posting as the buyer would (emits TYPE_POSTING_CANCELLED)."""
        self._tick()
        seller = self._seller(client_id)
        p = seller.postings.get(posting_number)
        if p is None:
            raise KeyError(f"unknown posting {posting_number}")
        if p.data["status"] in ("cancelled", "delivered"):
            raise ValueError(f"posting {posting_number} is {p.data['status']}, it cannot be cancelled")
        old_state = push_state(p.data["status"], p.data["substatus"])
        reason_id = 501 if "Покупатель" in reason else 352
        p.data["cancellation"] = {
            "cancel_reason_id": reason_id,
            "cancel_reason": reason,
            "cancellation_type": "client" if reason_id == 501 else "seller",
            "cancellation_initiator": "Покупатель" if reason_id == 501 else "Продавец",
            "cancelled_after_ship": p.data["status"] in SHIPPED_STATUSES,
            "affect_cancellation_rating": False,
        }
        self._awaiting_registration.discard(posting_number)
        self._set_state(p, "cancelled", push=False)
        self._emit(
            seller,
            {
                "message_type": "TYPE_POSTING_CANCELLED",
                "posting_number": p.number,
                "products": [{"sku": x["sku"], "quantity": x["quantity"]} for x in p.data["products"]],
                "old_state": old_state,
                "new_state": "posting_canceled",
                "changed_state_date": fmt_dt(p.last_changed),
                "reason": {"id": reason_id, "message": reason},
                "warehouse_id": p.data["delivery_method"]["warehouse_id"],
                "seller_id": int(seller.client_id),
            },
        )

    def set_status(
        self, client_id: str, posting_number: str, status: str, substatus: str | None = None
    ) -> None:
        """Move a posting as Ozon or the carrier would (e.g. an aggregator parcel to delivering/delivered)."""
        self._tick()
        p = self._seller(client_id).postings.get(posting_number)
        if p is None:
            raise KeyError(f"unknown posting {posting_number}")
        if status == "cancelled":
            self.cancel(client_id, posting_number)
            return
        if status == "delivering" and not p.data.get("delivering_date"):
            p.data["delivering_date"] = fmt_dt(self.now())
        self._awaiting_registration.discard(posting_number)
        self._set_state(p, status, substatus)

    def fail_next_ship(self, posting_number: str, times: int = 1) -> None:
        """The next ``times`` ship calls answer 200 but leave the posting awaiting_packaging/ship_failed."""
        self._ship_failures[posting_number] = times

    def set_push_url(self, client_id: str, url: str | None) -> None:
        self._seller(client_id).push_url = url

    def calls_to(
        self, path: str, client_id: str | None = None, *, ok_only: bool = True
    ) -> list[RecordedCall]:
        return [
            c
            for c in self.calls
            if c.path == path
            and (client_id is None or c.client_id == str(client_id))
            and (not ok_only or c.status == 200)
        ]

    # ------------------------------------------------------------------------------------------------
    # state changes and pushes

    def _packed_barcodes(self, p: _Posting) -> None:
        digits = "".join(c for c in p.number if c.isdigit())
        p.data["barcodes"] = {"upper_barcode": f"%{digits}%", "lower_barcode": f"{p.data['order_id']}"}

    def _set_state(
        self,
        p: _Posting,
        status: str,
        substatus: str | None = None,
        *,
        when: datetime | None = None,
        push: bool = True,
    ) -> None:
        substatus = substatus or DEFAULT_SUBSTATUS.get(status, "")
        p.previous_substatus = p.data.get("substatus") or ""
        p.data["status"] = status
        p.data["substatus"] = substatus
        p.data["available_actions"] = available_actions(p.flow, status, substatus)
        p.last_changed = when or self.now()
        if push:
            seller = self._sellers[p.client_id]
            self._emit(
                seller,
                {
                    "message_type": "TYPE_STATE_CHANGED",
                    "posting_number": p.number,
                    "new_state": push_state(status, substatus),
                    "changed_state_date": fmt_dt(p.last_changed),
                    "warehouse_id": p.data["delivery_method"]["warehouse_id"],
                    "seller_id": int(seller.client_id),
                },
            )


    def _split(self, seller: _Seller, parent: _Posting, parcels: list[dict[int, int]]) -> list[_Posting]:
        """Ozon splits a multi-parcel ship into postings -1, -2, …; the first parcel keeps the number."""
        order_number = parent.data["order_number"]
        used = [
            int(n.rsplit("-", 1)[1])
            for n in self._postings
            if n.startswith(order_number + "-") and n.rsplit("-", 1)[1].isdigit()
        ]
        next_index = max(used, default=1) + 1
        lines = {int(x["sku"]): x for x in parent.data["products"]}

        def products_for(parcel: dict[int, int]) -> list[Json]:
            return [dict(lines[sku], quantity=qty) for sku, qty in parcel.items()]

        def fin_for(data: Json, parcel: dict[int, int]) -> None:
            fin = data.get("financial_data")
            if fin:
                fin["products"] = [
                    dict(x, quantity=parcel[x["product_id"]])
                    for x in fin.get("products") or []
                    if x.get("product_id") in parcel
                ]

        children = []
        for parcel in parcels[1:]:
            data = clone(parent.data)
            data["posting_number"] = f"{order_number}-{next_index}"
            data["parent_posting_number"] = parent.number
            data["products"] = products_for(parcel)
            fin_for(data, parcel)
            next_index += 1
            child = self._register(seller, data, push_new=False)
            child.last_changed = parent.last_changed
            children.append(child)
        parent.data["products"] = products_for(parcels[0])
        fin_for(parent.data, parcels[0])
        return children

    def _packed(self, p: _Posting) -> None:
        if p.flow == "aggregator":
            p.registration_due = self.now() + timedelta(seconds=self.registration_delay)
            self._awaiting_registration.add(p.number)
            self._set_state(p, "awaiting_registration")
            self._tick()  # a zero registration_delay registers at once
        else:
            self._packed_barcodes(p)
            self._set_state(p, "awaiting_deliver")
