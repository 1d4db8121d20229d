"""Renders a posting as a view for one member: the alert card that every copy of the desk shares."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from services import cancellations
from services.actions import ActionCodec
from services.channels import Channels
from services.couriers import COURIERS, get_courier
from services.i18n import N_, Catalogs, Translator
from services.ozon.models import Posting as OzonPosting
from services.pacing import KeyedTurns
from services.storage.models import AlertMessage, CancelRequest, Member, Posting, Seller
from services.storage.states import (
    AFTER_PACKING,
    AWAITING_PACKAGING,
    AWAITING_REGISTRATION,
    CHOOSING_STAGES,
    UNPACKED_STAGES,
    InboundState,
    LabelState,
    Stage,
)
from services.views import Button, View

log = logging.getLogger(__name__)

STATUS_WORDS = {
    "awaiting_verification": N_("created, being verified"),
    "awaiting_approve": N_("awaiting approval"),
    "awaiting_packaging": N_("awaiting packaging"),
    "awaiting_registration": N_("packed, registering with the carrier"),
    "acceptance_in_progress": N_("being accepted"),
    "awaiting_deliver": N_("packed, awaiting hand-over"),
    "delivering": N_("in delivery"),
    "driver_pickup": N_("with the driver"),
    "arbitration": N_("in dispute"),
    "client_arbitration": N_("in a buyer's dispute"),
    "not_accepted": N_("not accepted at the sorting centre"),
    "delivered": N_("delivered"),
    "cancelled": N_("cancelled"),
    "cancelled_from_split_pending": N_("cancelled (split)"),
    "sent_by_seller": N_("sent by seller"),
}

FLOW_WORDS = {
    "non_integrated": N_("you deliver: give the waybill number and the bot sends it to Ozon"),
    "aggregator": N_("Ozon partner delivery: take the parcel to the partner's drop-off; Ozon's partner owns the tracking"),
    "3pl_tracking": N_("integrated carrier: the carrier owns the tracking"),
    "ozon": N_("Ozon logistics (FBS)"),
}

CHECKLIST = (
    N_("Packing materials ready"),
    N_("Goods checked against the order"),
    N_("Parcel packed and sealed"),
    N_("Ozon label printed and attached"),
)

# written out so that extraction sees them; couriers.py keeps the same English names
COURIER_NAMES = (N_("SF Express"), N_("ZTO Express"), N_("YTO Express"), N_("Yunda"), N_("STO Express"),
                 N_("JD Logistics"), N_("EMS"), N_("China Post"), N_("J&T Express"), N_("Other"))
PARTNER_OWNS_TRACKING = frozenset({"aggregator", "3pl_tracking", "ozon", "hybrid", "hybryd"})


def status_words(tr: Translator, status: str) -> str:
    word = STATUS_WORDS.get(status)
    return tr.gettext(word) if word else status or tr.gettext("unknown")


def courier_name(tr: Translator, code: str | None) -> str:
    courier = get_courier(code or "")
    return tr.gettext(courier.name_en) if courier else "—"


def member_name(member: Member | None) -> str:
    return member.name if member and member.name else "—"


class CardRenderer:
    def __init__(self, codec: ActionCodec, clock: Callable[[], datetime]):
        self._codec = codec
        self._clock = clock

    def action(self, verb: str, posting: Posting, arg: str = "") -> str:
        return self._codec.encode(verb, posting.id, arg)

    def card(self, tr: Translator, posting: Posting, *, packed_by: Member | None = None,
             acted_by: Member | None = None, cancel: CancelRequest | None = None,
             viewer: Member | None = None) -> View:
        """`cancel`: the buyer's latest cancellation request of the posting; `viewer`: whose copy this is (the
        owner's copy carries the decision buttons)."""
        _ = tr.gettext
        lines = [self._header(tr, posting), ""]
        lines += self._items(tr, posting)
        lines.append("")
        lines.append(_("Status: {status}").format(status=status_words(tr, posting.status)))
        if posting.stage in UNPACKED_STAGES:
            lines.append(_("Ship by: {deadline} ({left})").format(
                deadline=tr.local_time(posting.shipment_date),
                left=tr.time_left(posting.shipment_date, self._clock())))
            tariff = self.next_tariff(tr, posting)
            if tariff:
                lines.append(tariff)
        lines.append(_("Delivery: {method}").format(method=self._method(posting)))
        flow = FLOW_WORDS.get(posting.flow)
        lines.append(_("Flow: {flow}").format(flow=tr.gettext(flow) if flow else posting.flow or "—"))
        lines += self._stage_lines(tr, posting, packed_by, acted_by)
        lines += cancellations.posting_lines(tr, cancel, self._clock())
        buttons = cancellations.decision_buttons(tr, self._codec, posting, cancel, viewer) + \
            self._buttons(tr, posting, asked=cancellations.open_request_blocks(posting, cancel))
        return View(text="\n".join(lines), buttons=buttons)

    def _header(self, tr: Translator, posting: Posting) -> str:
        _ = tr.gettext
        if posting.stage == Stage.CANCELLED:
            return _("❌ CANCELLED, stop packing: {number}").format(number=posting.posting_number)
        if posting.stage in CHOOSING_STAGES:
            return _("🆕 New order {number}").format(number=posting.posting_number)
        return _("📦 Order {number}").format(number=posting.posting_number)

    def _items(self, tr: Translator, posting: Posting) -> list[str]:
        remote = OzonPosting.from_api(posting.snapshot or {"posting_number": posting.posting_number})
        lines = []
        for product in remote.products:
            price = ""
            if product.price and product.price.amount is not None:
                price = f" · {product.price.amount:.2f} {product.price.currency or ''}".rstrip()
            lines.append(tr.gettext("• {name} ({offer_id}) × {quantity}{price}").format(
                name=product.name or "—", offer_id=product.offer_id or "—",
                quantity=product.quantity, price=price))
        if not lines:
            lines.append(tr.gettext("• (items not known yet)"))
        return lines

    def _method(self, posting: Posting) -> str:
        method = (posting.snapshot or {}).get("delivery_method") or {}
        return method.get("name") or "—"

    def next_tariff(self, tr: Translator, posting: Posting) -> str:
        """What being late will cost, when Ozon tells us: the next surcharge and when it starts."""
        remote = OzonPosting.from_api(posting.snapshot or {"posting_number": posting.posting_number})
        surcharge = remote.next_surcharge(self._clock())
        if surcharge is None:
            return ""
        start, step = surcharge
        return tr.gettext("Late fee from {time}: {rate}%").format(time=tr.local_time(start), rate=step.tariff_rate)

    def _stage_lines(self, tr: Translator, posting: Posting, packed_by: Member | None,
                     acted_by: Member | None) -> list[str]:
        _ = tr.gettext
        stage = posting.stage
        lines: list[str] = []
        if posting.courier:
            lines.append(_("Courier: {courier}").format(courier=courier_name(tr, posting.courier)))
        if stage == Stage.COURIER:
            lines.append("")
            lines.append(_("Checklist before you press Packed:"))
            lines += [f"☐ {tr.gettext(item)}" for item in CHECKLIST]
        elif stage == Stage.PACKING:
            lines.append(_("⏳ Packing in Ozon… ({who})").format(who=member_name(acted_by)))
        elif stage in AFTER_PACKING:
            if posting.packed_at:
                lines.append(_("✅ Packed by {who} at {time}").format(
                    who=member_name(packed_by), time=tr.local_time(posting.packed_at)))
            lines.append(self._label_line(tr, posting))
        if stage == Stage.HANDED_OVER and posting.waybill:
            lines.append(_("🚚 Waybill: {number}").format(number=posting.waybill))
            if posting.flow in PARTNER_OWNS_TRACKING:
                lines.append(_("Kept as the first-mile record; Ozon's partner owns the tracking."))
            elif posting.tracking_number:
                lines.append(_("Tracking sent to Ozon: {number}").format(number=posting.tracking_number))
        if posting.inbound == InboundState.ON_THE_WAY:
            lines.append(_("📥 Goods on the way from the supplier"))
        elif posting.inbound == InboundState.ARRIVED:
            lines.append(_("📥 Goods arrived from the supplier"))
        if posting.last_scan_at is not None:  # the first mile, watched through Kuaidi100
            lines.append(_("📍 Last scan {time}: {scan}").format(time=tr.local_time(posting.last_scan_at),
                                                                 scan=posting.last_scan))
        return lines

    def _label_line(self, tr: Translator, posting: Posting) -> str:
        _ = tr.gettext
        return {
            LabelState.PENDING: _("🏷 Label: Ozon is preparing it"),
            LabelState.SENT: _("🏷 Label: sent"),
            LabelState.FAILED: _("🏷 Label: not ready yet, press Get label to retry"),
        }.get(posting.label_state, _("🏷 Label: will follow shortly"))

    def _buttons(self, tr: Translator, posting: Posting, *, asked: bool = False) -> tuple[tuple[Button, ...], ...]:
        _ = tr.gettext
        stage = posting.stage
        if stage == Stage.NEW and posting.status == AWAITING_PACKAGING:
            buttons = [Button(tr.gettext(c.name_en), self.action("c", posting, c.code)) for c in COURIERS]
            return tuple(tuple(buttons[i:i + 3]) for i in range(0, len(buttons), 3))
        if stage == Stage.COURIER:
            packed = Button(_("✅ Packed (buyer asked to cancel)"), self.action("p", posting, "ask")) if asked \
                else Button(_("✅ Packed"), self.action("p", posting))
            return ((packed,),
                    (Button(_("Change courier"), self.action("x", posting)),))
        if stage == Stage.PACKED:
            rows = [(Button(_("✍️ Enter waybill number"), self.action("w", posting)),)]
            if posting.status != AWAITING_REGISTRATION:
                rows.append((Button(_("🏷 Get label"), self.action("l", posting)),))
            return tuple(rows)
        if stage == Stage.HANDED_OVER:
            return ((Button(_("Correct waybill number"), self.action("w", posting)),),)
        return ()


class CardCopies:
    """Every member's copy of a posting's card: rendered for that member, and kept current."""

    def __init__(self, *, renderer: CardRenderer, channels: Channels, catalogs: Catalogs):
        self.renderer = renderer
        self._channels = channels
        self._catalogs = catalogs
        self._turns = KeyedTurns()

    async def render(self, posting: Posting, member: Member, seller: Seller,
                     people: dict[int, Member] | None = None, cancel: CancelRequest | None | bool = True) -> View:
        """`people`: the posting's packer and last actor, when the caller already read them (one read serves
        every copy of a card)."""
        if people is None:
            people = await self._people(posting)
        if cancel is True:  # not read by the caller yet
            cancel = await cancellations.Cancellations.of_posting(posting.id)
        return self.renderer.card(self._catalogs.for_member(member, seller), posting,
                                  packed_by=people.get(posting.packed_by_id), acted_by=people.get(posting.acted_by_id),
                                  cancel=cancel or None, viewer=member)

    @staticmethod
    async def _people(posting: Posting, known: dict[int, Member] | None = None) -> dict[int, Member]:
        """`known`: members already read (the card's recipients); usually the packer is one of them."""
        people = {i: known[i] for i in (posting.packed_by_id, posting.acted_by_id) if i and known and i in known}
        missing = {i for i in (posting.packed_by_id, posting.acted_by_id) if i and i not in people}
        if missing:
            people.update({m.id: m for m in await Member.filter(id__in=missing)})
        return people

    async def refresh(self, posting_id: int) -> None:
        """Edits every member's copy of the posting's card to its current state.

        Refreshes of one posting take turns, and each reads the posting once its turn comes: two edits
        racing each other could otherwise land in the wrong order and leave a card showing an older state."""
        async with self._turns.turn(posting_id):
            await self._refresh_now(posting_id)

    async def _refresh_now(self, posting_id: int) -> None:
        alerts = await AlertMessage.filter(posting_id=posting_id).select_related("member")
        if not alerts:
            return
        posting = await Posting.get(id=posting_id).select_related("seller")
        people = await self._people(posting, known={a.member.id: a.member for a in alerts})
        cancel = await cancellations.Cancellations.of_posting(posting.id)
        for alert in alerts:
            member: Member = alert.member
            if not self._channels.has(member.channel):
                continue
            view = await self.render(posting, member, posting.seller, people, cancel)
            try:
                await self._channels.edit(member, alert.message_ref, view)
            except Exception as exc:
                log.info("edit of card %s for member %s failed: %s", posting.id, member.id, exc)
