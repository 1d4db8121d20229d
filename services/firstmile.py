"""First-mile tracking (issue 15): the domestic courier leg, watched through Kuaidi100 push.

- A seller's **tracking account** (Kuaidi100 key and customer id) is checked with a real signed call, then
  stored with the key encrypted. Without one, nothing here does anything.
- Every domestic waybill the desk records is **subscribed once** (`Waybill`, unique per seller, courier and
  number), with its own random salt and the seller's callback URL `/kuaidi100/<token>`. A subscription
  Kuaidi100 cannot take now (down, 5xx, key trouble) stays `pending` and is tried again with a backoff
  until it goes through: none is lost. A permanent refusal is told to the desk once.
- A **push** is believed only when its signature matches the salt of a waybill of that seller; then each
  trace event is stored once (`TraceEvent`, unique by its digest), the waybill keeps its newest scan and
  the posting's card is refreshed. An `abort` (no record in 3 days, no change in 60) is renewed once.
- **Alerts** (each an `Event` of kind `trace`, whose unique key is the once-ever guarantee): no pickup
  scan N hours after hand-over, the trace frozen N hours, a problem state (疑难, 退签, 退回) at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from services.couriers import check_number, kuaidi100_code
from services.durations import in_quiet_hours
from services.i18n import Translator
from services.kuaidi100.client import Kuaidi100Client, SignatureMismatch, parse_push
from services.kuaidi100.errors import Kuaidi100AuthError, Kuaidi100Error, Kuaidi100Refused
from services.kuaidi100.models import PushNotification, SubscribeRequest
from services.security import SecretBox
from services.storage.models import Event, Member, Posting, Seller, TraceEvent, TrackingAccount, Waybill
from services.storage.states import PEOPLE, EventKind, InboundState, WaybillRole, WaybillState
from services.views import View

log = logging.getLogger(__name__)

PHONE_COMPANIES = frozenset({"shunfeng", "shunfengkuaiyun", "zhongtong"})  # answer only with the phone tail
RENEW_AFTER = timedelta(minutes=30)  # next-features.md §3: re-subscribe an aborted number after ~30 min
RETRY_FIRST = timedelta(seconds=30)
RETRY_CAP = timedelta(minutes=30)
CLAIM = timedelta(minutes=2)  # a subscription being sent is not taken by another tick meanwhile
DUE_BATCH = 50
WATCHED = (WaybillState.SUBSCRIBED,)

# alert keys (Event.key is "<kind>:<waybill id>[:<what it is about>]")
NO_PICKUP, FROZEN, PROBLEM, REFUSED, ARRIVED = "no_pickup", "frozen", "problem", "refused", "arrived"


class AccountError(Exception):
    """reason: "bad_input" (empty or malformed), "rejected" (Kuaidi100 refused the key or customer id),
    "unavailable" (Kuaidi100 did not answer: nothing was stored)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


class PushRefused(Exception):
    """A push that proves nothing (unknown token, no such waybill, bad signature, not a push). The sender is
    told the same in every case."""


@dataclass(frozen=True)
class PushTaken:
    waybill: Waybill
    new_events: int


class FirstMile:
    def __init__(self, *, box: SecretBox, api_url: str, callback_base: str, clock: Callable[[], datetime],
                 on_change: Callable[[int], Awaitable[None]] | None = None,
                 on_events: Callable[[], Awaitable[None]] | None = None,
                 no_pickup_after: timedelta = timedelta(hours=24), frozen_after: timedelta = timedelta(hours=24),
                 timeout: float = 15.0):
        """`on_change(posting_id)` refreshes the posting's card after a push moved it; `on_events` asks the
        outbox to send new alerts."""
        self._box = box
        self._api_url = api_url
        self._callback_base = callback_base.rstrip("/")
        self._clock = clock
        self._on_change = on_change
        self._on_events = on_events
        self.no_pickup_after = no_pickup_after
        self.frozen_after = frozen_after
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()  # a subscription cut short stays pending: the retry job sends it
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> Kuaidi100Client:
        if self._session is None:
            raise RuntimeError("FirstMile.start() was not awaited")
        return Kuaidi100Client(self._session, self._api_url, timeout=self._timeout)

    def callback_url(self, account: TrackingAccount) -> str:
        return f"{self._callback_base}/kuaidi100/{account.token}"

    # ---- the account -----------------------------------------------------------------------------------
    async def connect_account(self, seller: Seller, key: str, customer: str, *, phone_tail: str = "") -> TrackingAccount:
        """Checks the key and customer id with a real signed call, then stores them (the key encrypted)."""
        key, customer, phone_tail = key.strip(), customer.strip(), phone_tail.strip()
        if not (8 <= len(key) <= 128 and key.isascii() and key.isalnum()) or not (
                1 <= len(customer) <= 64 and customer.isascii() and customer.isalnum()):
            raise AccountError("bad_input")
        if phone_tail and not (4 <= len(phone_tail) <= 16 and phone_tail.isdigit()):
            raise AccountError("bad_input", "phone")
        try:
            await self._client().check_account(key, customer)
        except Kuaidi100AuthError as exc:
            raise AccountError("rejected", exc.code) from exc
        except Kuaidi100Error as exc:
            raise AccountError("unavailable", exc.code or str(exc.status)) from exc
        account = await TrackingAccount.get_or_none(seller=seller)
        if account is None:
            return await TrackingAccount.create(seller=seller, key_enc=self._box.encrypt(key), customer=customer,
                                                phone_tail=phone_tail, token=secrets.token_urlsafe(18))
        account.key_enc, account.customer, account.phone_tail = self._box.encrypt(key), customer, phone_tail
        await account.save(update_fields=["key_enc", "customer", "phone_tail"])
        # subscriptions held back by a wrong key go through with the new one at once
        await Waybill.filter(seller=seller, state=WaybillState.PENDING).update(next_attempt_at=self._clock())
        return account

    @staticmethod
    async def remove_account(seller: Seller) -> bool:
        """Forget the account; the waybills stop being watched (pushes for them are refused from now on)."""
        return bool(await TrackingAccount.filter(seller=seller).delete())

    # ---- subscriptions ---------------------------------------------------------------------------------
    async def watch(self, posting: Posting, number: str, *, role: WaybillRole = WaybillRole.OUTBOUND) -> Waybill | None:
        """Record a domestic waybill of the posting and subscribe it; None when the seller has no account or
        Kuaidi100 knows no such courier. Recording the same waybill again changes nothing."""
        account = await TrackingAccount.get_or_none(seller_id=posting.seller_id)
        company = kuaidi100_code(posting.courier)
        if account is None or company is None:
            return None
        try:
            waybill = await Waybill.create(
                seller_id=posting.seller_id, posting=posting, role=role, courier=posting.courier or "",
                company=company, number=number, salt_enc=self._box.encrypt(secrets.token_hex(16)),
                since=self._clock(), next_attempt_at=self._clock() + CLAIM)
        except IntegrityError:
            return await Waybill.get_or_none(seller_id=posting.seller_id, company=company, number=number)
        # sent beside the packer's answer, not before it: Kuaidi100 may be slow or away, and the row is the
        # promise (a subscription cut short is pending and the retry job sends it)
        self._spawn(self._subscribe(waybill, account))
        return waybill

    async def add_inbound(self, member: Member, text: str, tr: Translator) -> View | None:
        """`<posting number> <waybill>` typed by a person on the desk: a supplier's parcel for that posting,
        watched the same way. None when the text is not that (the caller then reads it as usual)."""
        parts = text.split()
        if len(parts) != 2 or member.role not in PEOPLE:
            return None
        posting = await Posting.get_or_none(seller_id=member.seller_id, posting_number=parts[0].strip().upper())
        check = check_number("other", parts[1])
        if posting is None or not check.valid_chars:
            return None
        _ = tr.gettext
        account = await TrackingAccount.get_or_none(seller_id=member.seller_id)
        if account is None:
            return View(text=_("Supplier parcels are watched through Kuaidi100: the owner connects an account "
                               "first (ozonbot seller kuaidi100)."))
        # a number that only one courier's format fits names it; otherwise Kuaidi100 detects the courier
        likely = [code for code in check.likely_couriers if kuaidi100_code(code)]
        courier = likely[0] if len(likely) == 1 else "other"
        company = kuaidi100_code(courier) or ""
        try:
            waybill = await Waybill.create(
                seller_id=member.seller_id, posting=posting, role=WaybillRole.INBOUND, courier=courier,
                company=company, number=check.number, salt_enc=self._box.encrypt(secrets.token_hex(16)),
                since=self._clock(), next_attempt_at=self._clock() + CLAIM)
        except IntegrityError:
            return View(text=_("{number} is already watched.").format(number=check.number))
        await Posting.filter(id=posting.id, inbound__in=[InboundState.NONE, InboundState.ARRIVED]).update(
            inbound=InboundState.ON_THE_WAY)
        self._spawn(self._subscribe(waybill, account))
        if self._on_change is not None:
            await self._on_change(posting.id)
        return View(text=_("📥 Supplier parcel {number} added to {posting}. The desk hears when it arrives.").format(
            number=check.number, posting=posting.posting_number))

    def _spawn(self, job) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for the subscriptions under way (tests, and a clean stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def subscribe_due(self) -> int:
        """Subscriptions Kuaidi100 has not taken yet, whose time has come. Returns how many went through."""
        now = self._clock()
        due = await Waybill.filter(state=WaybillState.PENDING).filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)).order_by("id").limit(DUE_BATCH)
        done = 0
        for waybill in due:
            # claimed by moving its time on: of two ticks (or processes), one sends it
            if not await Waybill.filter(id=waybill.id, state=WaybillState.PENDING,
                                        next_attempt_at=waybill.next_attempt_at).update(next_attempt_at=now + CLAIM):
                continue
            account = await TrackingAccount.get_or_none(seller_id=waybill.seller_id)
            if account is None:
                continue  # the account was removed: it stays pending until one is connected again
            done += await self._subscribe(waybill, account)
        return done

    async def _subscribe(self, waybill: Waybill, account: TrackingAccount) -> bool:
        request = SubscribeRequest(company=waybill.company, number=waybill.number,
                                   callback_url=self.callback_url(account), salt=self._box.decrypt(waybill.salt_enc),
                                   phone=account.phone_tail if waybill.company in PHONE_COMPANIES else "",
                                   auto_com=not waybill.company)
        now = self._clock()
        try:
            await self._client().subscribe(self._box.decrypt(account.key_enc), request)
        except Kuaidi100Refused as exc:
            await Waybill.filter(id=waybill.id).update(state=WaybillState.REFUSED, last_error=exc.code or "refused",
                                                       next_attempt_at=None)
            if waybill.posting_id is not None:
                await self._alert(waybill, f"{REFUSED}:{waybill.id}", {"code": exc.code})
            return False
        except Kuaidi100Error as exc:
            attempts = waybill.attempts + 1
            delay = min(RETRY_CAP, RETRY_FIRST * 2 ** min(attempts - 1, 10))
            await Waybill.filter(id=waybill.id).update(attempts=attempts, next_attempt_at=now + delay,
                                                       last_error=exc.code or f"HTTP {exc.status}" or "unavailable")
            log.warning("kuaidi100 subscription of waybill %s not taken (%s); again in %.0fs", waybill.id,
                        exc.code or exc.status or type(exc).__name__, delay.total_seconds())
            return False
        await Waybill.filter(id=waybill.id).update(state=WaybillState.SUBSCRIBED, subscribed_at=now,
                                                   next_attempt_at=None, last_error=None)
        return True

    # ---- pushes ----------------------------------------------------------------------------------------
    async def take_push(self, token: str, param: str, sign: str) -> PushTaken:
        """Verify, then store. Raises PushRefused for anything that does not prove itself."""
        account = await TrackingAccount.get_or_none(token=token)
        if account is None:
            raise PushRefused("token")
        try:
            claimed = json.loads(param)  # only to find whose salt to check: nothing of it is believed yet
            result = claimed.get("lastResult") if isinstance(claimed, dict) else None
            number = str(result.get("nu") or "") if isinstance(result, dict) else ""
        except ValueError as exc:
            raise PushRefused("json") from exc
        if not number:
            raise PushRefused("number")
        for waybill in await Waybill.filter(seller_id=account.seller_id, number=number):
            try:
                push = parse_push(param, sign, self._box.decrypt(waybill.salt_enc))
            except SignatureMismatch:
                continue
            except ValueError as exc:
                raise PushRefused("shape") from exc
            return PushTaken(waybill, await self._store(waybill, push))
        raise PushRefused("signature")

    async def _store(self, waybill: Waybill, push: PushNotification) -> int:
        trace = push.last_result
        rows = []
        for event in trace.data:
            digest = hashlib.sha1(f"{event.ftime or event.time}|{event.context}".encode()).hexdigest()
            state = event.status_code if event.status_code.isdigit() else None
            rows.append(TraceEvent(waybill_id=waybill.id, key=digest, at=event.at, context=event.context[:2000],
                                   area=event.area_name[:128], state=int(state) if state else None))
        before = await TraceEvent.filter(waybill_id=waybill.id).count()
        if rows:
            await TraceEvent.bulk_create(rows, ignore_conflicts=True)
        new = await TraceEvent.filter(waybill_id=waybill.id).count() - before
        changes: dict = {}
        newest = trace.data[0] if trace.data else None
        if newest is not None and (waybill.last_scan_at is None or (newest.at and newest.at > waybill.last_scan_at)):
            changes.update(last_scan_at=newest.at, last_context=newest.context[:2000], last_area=newest.area_name[:128],
                           trace_state=int(trace.state) if trace.state is not None else None)
        if push.status == "shutdown" or trace.signed:
            changes["state"] = WaybillState.SIGNED
        elif push.aborted and waybill.state == WaybillState.SUBSCRIBED:
            if waybill.renewed:
                changes["state"] = WaybillState.ABORTED
            else:  # renewed once: the number may be right and the parcel not yet scanned
                changes.update(state=WaybillState.PENDING, renewed=True, attempts=0,
                               next_attempt_at=self._clock() + RENEW_AFTER)
        if changes:
            await Waybill.filter(id=waybill.id).update(**changes)
            await waybill.refresh_from_db()
        if "last_scan_at" in changes and waybill.posting_id is not None and changes["last_scan_at"] is not None:
            # the posting keeps the newest scan of all its waybills (an older one pushed late changes nothing)
            await Posting.filter(Q(last_scan_at__isnull=True) | Q(last_scan_at__lt=changes["last_scan_at"]),
                                 id=waybill.posting_id).update(last_scan_at=changes["last_scan_at"],
                                                               last_scan=_scan_text(waybill))
        if waybill.posting_id is not None and waybill.role == WaybillRole.INBOUND and waybill.state == WaybillState.SIGNED:
            if not await Waybill.filter(posting_id=waybill.posting_id, role=WaybillRole.INBOUND,
                                        state__not=WaybillState.SIGNED).exists():
                await Posting.filter(id=waybill.posting_id).update(inbound=InboundState.ARRIVED)
            await self._alert(waybill, f"{ARRIVED}:{waybill.id}", {})
        if waybill.posting_id is not None:
            state = trace.state
            if new and state is not None and state.troubled:
                await self._alert(waybill, f"{PROBLEM}:{waybill.id}:{int(state)}", {"context": waybill.last_context})
            if new and self._on_change is not None:
                await self._on_change(waybill.posting_id)
        return new

    # ---- alerts ----------------------------------------------------------------------------------------
    async def check_due(self) -> int:
        """No pickup scan N hours after hand-over, or the trace frozen N hours: each alert once per waybill
        (and, for a frozen trace, once per last scan). Returns how many were raised."""
        now, raised = self._clock(), 0
        # quiet hours hold these two like other non-urgent notices: raised when the seller's quiet hours end
        held = {seller.id for seller in await Seller.filter(waybills__state=WaybillState.SUBSCRIBED).distinct()
                if in_quiet_hours(seller.quiet_hours, seller.timezone, now)}
        quiet = await Waybill.filter(state=WaybillState.SUBSCRIBED, posting_id__isnull=False,
                                     role=WaybillRole.OUTBOUND, last_scan_at__isnull=True,
                                     since__lte=now - self.no_pickup_after).exclude(seller_id__in=held)
        for waybill in quiet:
            hours = round(self.no_pickup_after.total_seconds() / 3600)
            raised += await self._alert(waybill, f"{NO_PICKUP}:{waybill.id}", {"hours": hours}, dispatch=False)
        frozen = await Waybill.filter(state=WaybillState.SUBSCRIBED, posting_id__isnull=False,
                                      last_scan_at__lte=now - self.frozen_after).exclude(seller_id__in=held)
        for waybill in frozen:
            stamp = int(waybill.last_scan_at.timestamp())
            hours = round(self.frozen_after.total_seconds() / 3600)
            raised += await self._alert(waybill, f"{FROZEN}:{waybill.id}:{stamp}",
                                        {"context": waybill.last_context, "hours": hours}, dispatch=False)
        if raised and self._on_events is not None:
            await self._on_events()
        return raised

    async def _alert(self, waybill: Waybill, key: str, payload: dict, *, dispatch: bool = True) -> bool:
        payload = {"courier": waybill.courier, "number": waybill.number, **payload}
        _, created = await Event.get_or_create(posting_id=waybill.posting_id, kind=EventKind.TRACE, key=key,
                                               defaults={"payload": payload})
        if created and dispatch and self._on_events is not None:
            await self._on_events()
        return created


def _scan_text(waybill: Waybill) -> str:
    area = f"[{waybill.last_area}] " if waybill.last_area and waybill.last_area not in waybill.last_context else ""
    return (area + waybill.last_context)[:500]


def render(event: Event, posting: Posting, tr: Translator, now: datetime) -> View | None:
    """The message of a first-mile alert (`EventKind.TRACE`)."""
    _ = tr.gettext
    kind = event.key.split(":", 1)[0]
    payload = event.payload or {}
    values = {"posting": posting.posting_number, "number": payload.get("number", ""),
              "context": payload.get("context", "")}
    if kind == NO_PICKUP:
        hours = int(payload.get("hours") or 0)
        text = tr.ngettext(
            "📦 {number} ({posting}) has no pickup scan {hours} hour after it was handed over. Check with the "
            "courier that the parcel was really collected.",
            "📦 {number} ({posting}) has no pickup scan {hours} hours after it was handed over. Check with the "
            "courier that the parcel was really collected.", hours).format(hours=hours, **values)
    elif kind == FROZEN:
        hours = int(payload.get("hours") or 0)
        text = tr.ngettext("🧊 The trace of {number} ({posting}) has not moved for {hours} hour. Last scan: {context}",
                           "🧊 The trace of {number} ({posting}) has not moved for {hours} hours. Last scan: {context}",
                           hours).format(hours=hours, **values)
    elif kind == PROBLEM:
        text = _("🚨 {number} ({posting}) is in trouble at the courier: {context}").format(**values)
    elif kind == ARRIVED:
        text = _("📥 The supplier's parcel {number} for {posting} was signed for: the goods are here, ready "
                 "to pack.").format(**values)
    elif kind == REFUSED:
        text = _("⚠️ Kuaidi100 will not track {number} ({posting}): check the courier and the number.").format(**values)
    else:
        return None
    return View(text=text)

