"""Order sync: the reconciliation poll and Ozon pushes feed one ingest that emits each domain event once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from services import metrics
from services.ozon.errors import OzonError, OzonUnavailable
from services.ozon.models import Posting as OzonPosting
from services.sellers import OzonGateway
from services.storage.models import Event, Intent, Posting, Seller
from services.storage.states import (
    ANNOUNCED_STATUSES,
    AWAITING_PACKAGING,
    CANCELLED_STATUSES,
    CHOOSING_STAGES,
    FINAL_STATUSES,
    UNPACKED_STATUSES,
    EventKind,
    IntentKind,
    IntentState,
    Stage,
)

log = logging.getLogger(__name__)
STATE_MOVES = (IntentKind.SHIP, IntentKind.TRACKING, IntentKind.DELIVERING)  # intents that change Ozon's status

PUSH_TYPES = frozenset({"TYPE_NEW_POSTING", "TYPE_STATE_CHANGED", "TYPE_POSTING_CANCELLED",
                        "TYPE_CUTOFF_DATE_CHANGED", "TYPE_DELIVERY_DATE_CHANGED"})
VANISHED_CHECKS_PER_POLL = 20
# push `new_state` → Seller API status, for the states after packing (reference §2.4); posting_created is
# left out on purpose: under it hides ship_failed, which only a read reveals
PUSH_STATE_STATUS = {
    "posting_awaiting_registration": "awaiting_registration",
    **dict.fromkeys(("posting_transferring_to_delivery", "posting_in_carriage", "posting_not_in_carriage"),
                    "awaiting_deliver"),
    **dict.fromkeys(("posting_on_way_to_city", "posting_transferred_to_courier_service", "posting_in_courier_service",
                     "posting_on_way_to_pickup_point", "posting_in_pickup_point",
                     "posting_conditionally_delivered"), "delivering"),
    **dict.fromkeys(("posting_delivered", "posting_received"), "delivered"),
}
KNOWN_ROWS_CHUNK = 500
# what _unchanged reads of a stored row (a changed posting is re-read in full, locked, by _ingest_one)
KNOWN_ROW_COLUMNS = ("id", "posting_number", "order_number", "status", "substatus", "flow", "shipment_date",
                     "tracking_number", "snapshot", "stage")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class PollReport:
    postings: int = 0
    events: int = 0
    rechecked: int = 0
    fingerprint: str | None = None
    unchanged: bool = False


class OrderSync:
    def __init__(self, gateway: OzonGateway, *, clock: Callable[[], datetime] = utcnow,
                 on_events: Callable[[], Awaitable[None]] | None = None):
        self._gateway = gateway
        self._clock = clock
        self._on_events = on_events

    async def ingest(self, seller: Seller, postings: Iterable[OzonPosting]) -> int:
        """Upsert every posting and record its events in the same transaction; returns events created."""
        postings = [p for p in postings if p.posting_number]
        known = await _known_rows(seller, [p.posting_number for p in postings])
        created = 0
        for posting in postings:
            row = known.get(posting.posting_number)
            if row is not None and _unchanged(seller, row, posting):
                continue  # a poll mostly re-reads what we have: no transaction, no write
            created += await self._ingest_one(seller, posting)
        if created and self._on_events is not None:
            await self._on_events()
        return created

    async def _ingest_one(self, seller: Seller, remote: OzonPosting) -> int:
        try:
            async with in_transaction() as conn:
                row = await Posting.filter(seller=seller, posting_number=remote.posting_number) \
                    .using_db(conn).select_for_update().first()
                events = _events_for(row, remote)
                row = await _upsert(conn, seller, row, remote)
                created = 0
                for kind, key, payload in events:
                    _, was_created = await Event.get_or_create(
                        posting=row, kind=kind, key=key, defaults={"payload": payload}, using_db=conn)
                    created += was_created
                return created
        except IntegrityError:
            # another worker inserted the same posting or event first: its transaction carries the events
            log.debug("concurrent ingest of %s", remote.posting_number)
            return 0

    @metrics.alerts_timed("poll")
    async def poll(self, seller: Seller, fingerprint: str | None = None) -> PollReport:
        """One reconciliation pass: every page of the unfulfilled list, plus postings that left it.

        `fingerprint` is the report's fingerprint from the last poll: when Ozon's pages are the same bytes
        the pass ends after the read, since that read was ingested in full and left nothing unchecked."""
        client = self._gateway.for_seller(seller)
        read_fingerprint, seen = await client.unfulfilled_fingerprinted(fingerprint)
        if seen is None:
            return PollReport(fingerprint=read_fingerprint, unchanged=True)
        report = PollReport(postings=len(seen))
        report.events = await self.ingest(seller, seen)
        numbers = {p.posting_number for p in seen}
        vanished = await Posting.filter(seller=seller).exclude(status__in=FINAL_STATUSES) \
            .exclude(posting_number__in=numbers).order_by("updated_at").limit(VANISHED_CHECKS_PER_POLL) \
            .values_list("posting_number", flat=True)
        for number in vanished:
            try:
                fresh = await client.get_posting(number)
            except OzonError as exc:
                log.info("recheck of %s failed: %s", number, exc)
                continue
            report.rechecked += 1
            report.events += await self.ingest(seller, [fresh])
        if not vanished:  # the pages explain every open posting we hold: safe to skip while they stay the same
            report.fingerprint = read_fingerprint
        return report

    @metrics.alerts_timed("push")
    async def handle_push(self, seller: Seller, payload: dict) -> None:
        """Re-read the posting from Ozon (pushes may be late, duplicated or partial), then ingest it."""
        kind = payload.get("message_type")
        number = payload.get("posting_number")
        if kind not in PUSH_TYPES or not isinstance(number, str) or not number:
            return
        if kind == "TYPE_STATE_CHANGED" and await _already_known(seller, number, payload.get("new_state")):
            return  # the state we moved it to ourselves and confirmed: re-reading it would tell us nothing
        try:
            posting = await self._gateway.for_seller(seller).get_posting(number)
        except OzonUnavailable as exc:
            log.warning("push for %s: Ozon read failed (%s), using the push body", number, exc)
            posting = posting_from_push(payload)
            if posting is None:
                return
        except OzonError as exc:  # Ozon answered and does not know it: the push is not believed
            log.warning("push for %s ignored: Ozon says %s", number, exc.token)
            return
        await self.ingest(seller, [posting])


async def _already_known(seller: Seller, number: str, state) -> bool:
    status = PUSH_STATE_STATUS.get(state) if isinstance(state, str) else None
    if status is None:
        return False
    row = await Posting.filter(seller=seller, posting_number=number).only("id", "status").first()
    if row is None:
        return False
    # a move of ours still in flight reads the posting back itself when it completes; a late label is no move
    # (it may stay pending for hours, L12)
    return row.status == status or await Intent.filter(posting_id=row.id, state=IntentState.PENDING,
                                                       kind__in=STATE_MOVES).exists()


def posting_from_push(payload: dict) -> OzonPosting | None:
    """The little a push carries, for when Ozon cannot be asked; the next poll completes it."""
    kind = payload.get("message_type")
    if kind == "TYPE_NEW_POSTING":
        data = {
            "posting_number": payload.get("posting_number"),
            "status": AWAITING_PACKAGING,
            "shipment_date": payload.get("shipment_date"),
            "in_process_at": payload.get("in_process_at"),
            "tpl_integration_type": payload.get("tpl_integration_type"),
            "tracking_number": payload.get("tracking_number") or "",
            "products": [{"sku": p.get("sku"), "offer_id": p.get("offer_id") or "", "quantity": p.get("quantity")}
                         for p in payload.get("products") or [] if isinstance(p, dict)],
        }
        return OzonPosting.from_api(data)
    if kind == "TYPE_POSTING_CANCELLED":
        return OzonPosting.from_api({"posting_number": payload.get("posting_number"), "status": "cancelled"})
    return None


async def _known_rows(seller: Seller, numbers: list[str]) -> dict[str, Posting]:
    """The seller's stored rows for these numbers, in one query per chunk instead of one per posting."""
    rows: dict[str, Posting] = {}
    for start in range(0, len(numbers), KNOWN_ROWS_CHUNK):
        chunk = numbers[start:start + KNOWN_ROWS_CHUNK]
        for row in await Posting.filter(seller=seller, posting_number__in=chunk).only(*KNOWN_ROW_COLUMNS):
            rows[row.posting_number] = row
    return rows


def _unchanged(seller: Seller, row: Posting, remote: OzonPosting) -> bool:
    """True when ingesting `remote` would neither emit an event nor change a stored column.

    Read outside the transaction: a row changed meanwhile only means the locked path runs next time."""
    if _events_for(row, remote):
        return False
    return all(getattr(row, name) == value for name, value in posting_fields(seller, row, remote).items())


def _events_for(row: Posting | None, remote: OzonPosting) -> list[tuple[EventKind, str, dict]]:
    status = remote.status or ""
    events: list[tuple[EventKind, str, dict]] = []
    if row is None:
        if status not in FINAL_STATUSES:
            events.append((EventKind.NEW, "", {"status": status}))
        return events
    if status and status != row.status:
        events.append((EventKind.STATUS, status, {"from": row.status, "to": status}))
        if status in CANCELLED_STATUSES:
            events.append((EventKind.CANCELLED, "", {"from": row.status}))
        elif status in ANNOUNCED_STATUSES:
            events.append((EventKind.ANNOUNCE, status, {"from": row.status}))
    deadline = remote.shipment_date
    if deadline and row.shipment_date and deadline != row.shipment_date and status in UNPACKED_STATUSES:
        events.append((EventKind.DEADLINE, deadline.isoformat(), {"from": row.shipment_date.isoformat()}))
    return events


def _stage_after(row: Posting | None, status: str) -> str:
    stage = row.stage if row else Stage.NEW
    if status in CANCELLED_STATUSES:
        return Stage.CANCELLED
    if stage in CHOOSING_STAGES and status and status not in UNPACKED_STATUSES:
        return Stage.PACKED  # packed elsewhere (e.g. in the Ozon cabinet)
    return stage


def posting_fields(seller: Seller, row: Posting | None, remote: OzonPosting) -> dict:
    """The stored columns of a posting after `remote` was read (a new row gets the seller's default courier)."""
    fields = {
        "order_number": remote.order_number or remote.posting_number.rsplit("-", 1)[0],
        "status": remote.status or (row.status if row else ""),
        "substatus": remote.substatus or "",
        "flow": remote.flow or (row.flow if row else ""),
        "shipment_date": remote.shipment_date or (row.shipment_date if row else None),
        "tracking_number": remote.tracking_number or (row.tracking_number if row else ""),
        "snapshot": _merge_snapshot(row, remote),
        "stage": _stage_after(row, remote.status or ""),
    }
    if row is None and seller.default_courier and fields["stage"] == Stage.NEW:
        fields.update(courier=seller.default_courier, stage=Stage.COURIER)  # the seller skips the courier step
    return fields


async def _upsert(conn, seller: Seller, row: Posting | None, remote: OzonPosting) -> Posting:
    fields = posting_fields(seller, row, remote)
    if row is None:
        return await Posting.create(seller=seller, posting_number=remote.posting_number, using_db=conn, **fields)
    for name, value in fields.items():
        setattr(row, name, value)
    # only the columns the sync owns: a save of every column would write back what this row held when it was
    # read over what another writer stored meanwhile (a waybill, a first-mile scan)
    await row.save(using_db=conn, update_fields=list(fields))
    return row


def _merge_snapshot(row: Posting | None, remote: OzonPosting) -> dict:
    """Keep what a fuller read told us when a thinner source (a push) arrives."""
    fresh = remote.model_dump(mode="json", exclude_none=True)
    if row is None or not row.snapshot:
        return fresh
    merged = dict(row.snapshot)
    for key, value in fresh.items():
        if value not in ("", [], {}, None):
            merged[key] = value
    return merged
