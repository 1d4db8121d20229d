"""FBS stock from the chat: `/stock <offer_id or SKU>` shows free, reserved and present per warehouse, and the
free stock is set with a button or a typed number. Ozon takes one change per product-warehouse pair every 30 s
(100 pairs per call, 80 calls a minute): a change inside the window is queued, a later one replaces it, and it
is sent when Ozon allows, so nobody waits and nothing is refused for being quick. Ozon's answer per item is
what the desk is told: set, or refused and why."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

from tortoise.expressions import Q

from services.actions import Action, ActionCodec
from services.channels import Channels
from services.i18n import Catalogs, Translator
from services.ozon.errors import OzonError
from services.ozon.models import WarehouseStock
from services.sellers import OzonGateway
from services.storage.models import Member, Seller, StockItem
from services.storage.states import PEOPLE, StockState
from services.views import Answer, Button, View

log = logging.getLogger(__name__)

VERB = "t"  # the ActionCodec letter of a stock button: posting slot 0, arg "<item id>:<free stock to set>"
PAIR_WINDOW = timedelta(seconds=30)  # Ozon: each product-warehouse pair at most once per 30 s
CALLS_PER_MINUTE = 80
PAIRS_PER_CALL = 100
STUCK_AFTER = timedelta(minutes=2)  # a `sending` row older than this was cut short: the value is sent again
STEPS = (-1, 1, 10)
TOO_MANY = "TOO_MANY_REQUESTS"


class StockDesk:
    def __init__(self, *, gateway: OzonGateway, codec: ActionCodec, catalogs: Catalogs, channels: Channels,
                 clock: Callable[[], datetime], window: timedelta = PAIR_WINDOW):
        self._gateway = gateway
        self._codec = codec
        self._catalogs = catalogs
        self._channels = channels
        self._clock = clock
        self._window = window
        self._calls: dict[int, deque[datetime]] = {}  # seller id -> the set calls of the last minute

    # ---- what the person asks ------------------------------------------------------------------
    async def command(self, member: Member, arg: str, *, buttons: bool, usage: str) -> Answer:
        """`arg`: '<offer_id or SKU>' to show it, '<offer_id or SKU> <number> [warehouse]' to set it."""
        tr, seller = await self._tr(member)
        parts = arg.split()
        if not parts:
            return Answer(replies=[View(text=usage)])
        try:
            items = await self._read(seller, parts[0])
        except OzonError as exc:
            return Answer(replies=[View(text=tr.gettext("Ozon did not answer the stock read ({token}). Try again "
                                                        "in a minute.").format(token=exc.token))])
        if not items:
            return Answer(replies=[View(text=tr.gettext("No FBS stock found for {query}: check the offer_id or "
                                                        "SKU.").format(query=parts[0]))])
        if len(parts) == 1:
            return Answer(replies=[self.view(tr, items, buttons=buttons)])
        if not parts[1].isdigit():
            return Answer(replies=[View(text=usage)])
        target = int(parts[1])
        place = " ".join(parts[2:]).lower()
        chosen = [i for i in items if place and (place == str(i.warehouse_id) or place in i.warehouse_name.lower())]
        if len(items) == 1 or len(chosen) == 1:
            return Answer(replies=[View(text=await self.set(member, (chosen or items)[0], target))])
        if not buttons:
            return Answer(replies=[View(text=tr.gettext("Which warehouse? Add its name or number: {choices}").format(
                choices=", ".join(f"{i.warehouse_name or i.warehouse_id} ({i.warehouse_id})" for i in items)))])
        return Answer(replies=[View(text=tr.gettext("Set the free stock of {offer} to {n} in which warehouse?").format(
            offer=items[0].offer_id, n=target), buttons=tuple(
            (Button(i.warehouse_name or str(i.warehouse_id), self._codec.encode(VERB, 0, f"{i.id}:{target}")),)
            for i in items))])

    async def press(self, member: Member | None, action: Action) -> Answer:
        tr = self._catalogs.translator(member.locale if member else None)
        item_id, _, value = action.arg.partition(":")
        item = await StockItem.get_or_none(id=int(item_id), seller_id=member.seller_id) \
            if member is not None and member.role in PEOPLE and item_id.isdigit() and value.lstrip("-").isdigit() \
            else None
        if item is None:
            return Answer(toast=tr.gettext("This button is not for you: the order belongs to another desk."),
                          alert=True)
        tr, _ = await self._tr(member)
        outcome = await self.set(member, item, int(value))
        fresh = await StockItem.filter(seller_id=item.seller_id, sku=item.sku).order_by("warehouse_id")
        return Answer(toast=outcome, edit=self.view(tr, fresh, buttons=True))

    def view(self, tr: Translator, items: list[StockItem], *, buttons: bool) -> View:
        first = items[0]
        lines = [tr.gettext("📦 Stock of {offer} (SKU {sku})").format(offer=first.offer_id or "—", sku=first.sku)]
        rows: list[tuple[Button, ...]] = []
        for item in items:
            lines.append(tr.gettext("{warehouse}: free {free}, reserved {reserved}, present {present}").format(
                warehouse=item.warehouse_name or item.warehouse_id, free=_n(item.free), reserved=_n(item.reserved),
                present=_n(item.present)))
            if item.state in (StockState.QUEUED, StockState.SENDING) and item.target is not None:
                lines.append("  " + tr.gettext("⏳ {n} waits for Ozon's 30 s limit").format(n=item.target))
            elif item.state == StockState.REFUSED:
                lines.append("  " + tr.gettext("⚠️ Ozon refused the last change: {error}").format(error=item.error))
            base = item.target if item.state in (StockState.QUEUED, StockState.SENDING) else item.free
            if buttons and base is not None:
                prefix = f"{item.warehouse_name[:10]} " if len(items) > 1 else ""
                rows.append(tuple(Button(f"{prefix}{step:+d} → {base + step}",
                                         self._codec.encode(VERB, 0, f"{item.id}:{base + step}"))
                                  for step in STEPS if base + step >= 0))
        return View(text="\n".join(lines), buttons=tuple(rows))

    # ---- the change, once, within Ozon's limits ------------------------------------------------
    async def set(self, member: Member, item: StockItem, target: int) -> str:
        """Queues `target` for the pair and sends it at once when Ozon's window allows; returns what to say."""
        tr, seller = await self._tr(member)
        if target < 0:
            return tr.gettext("Stock cannot be negative.")
        await item.refresh_from_db()
        owed = item.state in (StockState.QUEUED, StockState.SENDING)
        if (owed and item.target == target) or (not owed and item.free == target and item.state == StockState.IDLE
                                                 and item.sent_at is not None and self._in_window(item)):
            return tr.gettext("Free stock {n} is already on its way to Ozon.").format(n=target) if owed else \
                tr.gettext("Ozon already has free stock {n}.").format(n=target)
        await StockItem.filter(id=item.id).update(target=target, state=StockState.QUEUED, member_id=member.id, error="")
        if item.state == StockState.SENDING or self._in_window(item):
            when = (item.sent_at or self._clock()) + self._window
            return tr.gettext("Queued: Ozon takes one change per item every 30 s. {n} goes at {time}; a later "
                              "change replaces it.").format(n=target, time=tr.local_time(when))
        done = await self._send(seller, [item.id])
        return self._outcome(tr, done.get(item.id) or await StockItem.get(id=item.id))

    async def run_due(self) -> int:
        """Sends every queued change whose window has passed (and re-sends any cut short), then tells whoever
        asked what Ozon said."""
        now = self._clock()
        await StockItem.filter(state=StockState.SENDING, updated_at__lt=now - STUCK_AFTER).update(
            state=StockState.QUEUED)
        due = await StockItem.filter(Q(sent_at__isnull=True) | Q(sent_at__lte=now - self._window),
                                     state=StockState.QUEUED).order_by("id")
        by_seller: dict[int, list[int]] = {}
        for item in due:
            by_seller.setdefault(item.seller_id, []).append(item.id)
        sent = 0
        for seller_id, ids in by_seller.items():
            seller = await Seller.get(id=seller_id)
            for item in (await self._send(seller, ids)).values():
                sent += 1
                await self._tell(item)
        return sent

    async def _send(self, seller: Seller, ids: list[int]) -> dict[int, StockItem]:
        """One call per 100 pairs, at most 80 a minute; each row is claimed first (queued -> sending), so
        two processes or two taps never send the same change twice."""
        done: dict[int, StockItem] = {}
        for start in range(0, len(ids), PAIRS_PER_CALL):
            if not self._may_call(seller.id):
                break  # the rest waits for the next run: still queued
            chunk = [i for i in ids[start:start + PAIRS_PER_CALL]
                     if await StockItem.filter(id=i, state=StockState.QUEUED).update(state=StockState.SENDING)]
            items = {item.id: item for item in await StockItem.filter(id__in=chunk)}
            if not items:
                continue
            now = self._clock()
            try:
                answers = await self._gateway.for_seller(seller).set_stocks(
                    [(i.offer_id, i.product_id or 0, i.warehouse_id, i.target) for i in items.values()])
            except OzonError as exc:
                log.info("stock set of seller %s failed: %s", seller.id, exc.token)
                await StockItem.filter(id__in=list(items)).update(state=StockState.QUEUED, sent_at=now)
                continue
            for item in items.values():
                answer = next((a for a in answers if a.warehouse_id == item.warehouse_id and
                               (a.offer_id == item.offer_id or a.product_id == item.product_id)), None)
                if answer is not None and answer.updated:
                    await StockItem.filter(id=item.id, state=StockState.SENDING).update(
                        state=StockState.IDLE, free=item.target, sent_at=now, error="")
                elif answer is not None and any(e.code == TOO_MANY for e in answer.errors):
                    await StockItem.filter(id=item.id).update(state=StockState.QUEUED, sent_at=now)
                else:
                    error = "; ".join(f"{e.code}: {e.message}".strip(": ") for e in answer.errors) if answer \
                        else "no answer for this item"
                    await StockItem.filter(id=item.id).update(state=StockState.REFUSED, error=error[:500], sent_at=now)
                done[item.id] = await StockItem.get(id=item.id)
        return done

    def _may_call(self, seller_id: int) -> bool:
        now = self._clock()
        calls = self._calls.setdefault(seller_id, deque())
        while calls and now - calls[0] >= timedelta(minutes=1):
            calls.popleft()
        if len(calls) >= CALLS_PER_MINUTE:
            return False
        calls.append(now)
        return True

    async def _tell(self, item: StockItem) -> None:
        member = await Member.get_or_none(id=item.member_id) if item.member_id else None
        if member is None:
            return
        tr, _ = await self._tr(member)
        try:
            await self._channels.send(member, View(text=self._outcome(tr, item)))
        except Exception as exc:
            log.info("stock outcome for member %s not sent: %s", member.id, type(exc).__name__)

    def _outcome(self, tr: Translator, item: StockItem) -> str:
        name = item.offer_id or str(item.sku)
        where = item.warehouse_name or str(item.warehouse_id)
        if item.state == StockState.IDLE:
            return tr.gettext("✅ Ozon set the free stock of {name} in {warehouse} to {n}.").format(
                name=name, warehouse=where, n=item.free)
        if item.state == StockState.REFUSED:
            return tr.gettext("⚠️ Ozon refused the stock of {name} in {warehouse}: {error}").format(
                name=name, warehouse=where, error=item.error)
        return tr.gettext("Queued: Ozon takes one change per item every 30 s. {n} goes at {time}; a later "
                          "change replaces it.").format(n=item.target, time=tr.local_time(
                              (item.sent_at or self._clock()) + self._window))

    def _in_window(self, item: StockItem) -> bool:
        return item.sent_at is not None and self._clock() - item.sent_at < self._window

    async def _read(self, seller: Seller, query: str) -> list[StockItem]:
        """Ozon's current stock of the product in each warehouse, stored beside the change still owed."""
        client = self._gateway.for_seller(seller)
        rows: list[WarehouseStock] = []
        if query.isdigit():
            rows = await client.stocks_by_warehouse(skus=[int(query)])
        if not rows:
            rows = await client.stocks_by_warehouse(offer_ids=[query])
        items = []
        for row in rows:
            if row.sku is None or row.warehouse_id is None:
                continue
            item, _ = await StockItem.get_or_create(seller=seller, sku=row.sku, warehouse_id=row.warehouse_id,
                                                    defaults={"offer_id": row.offer_id})
            fields = {"offer_id": row.offer_id or item.offer_id, "product_id": row.product_id,
                      "warehouse_name": row.warehouse_name[:128], "reserved": row.reserved, "present": row.present}
            if item.state not in (StockState.QUEUED, StockState.SENDING):
                fields["free"] = row.free_stock
            await StockItem.filter(id=item.id).update(**fields)
            items.append(await StockItem.get(id=item.id))
        return sorted(items, key=lambda i: i.warehouse_id)

    async def _tr(self, member: Member) -> tuple[Translator, Seller]:
        seller = await Seller.get(id=member.seller_id)
        return self._catalogs.for_member(member, seller), seller


def _n(value: int | None) -> str:
    return "—" if value is None else str(value)
