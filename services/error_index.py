"""Ozon's FBS error index on demand (`/index`, 指数): the index of the period, the fines charged this week with
their currency, and the postings behind them (late, or cancelled by the seller)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from services.i18n import N_, Catalogs
from services.ozon.errors import OzonError
from services.sellers import OzonGateway
from services.storage.models import Member, Seller
from services.views import View

WEEK = timedelta(days=7)
SHOWN = 10  # postings listed; the rest are counted
ERROR_WORDS = {"SELLER_DELAY": N_("late"), "SELLER_CANCELLATION": N_("cancelled by the seller")}


class ErrorIndexDesk:
    def __init__(self, *, gateway: OzonGateway, catalogs: Catalogs, clock: Callable[[], datetime]):
        self._gateway = gateway
        self._catalogs = catalogs
        self._clock = clock

    async def view(self, member: Member) -> View:
        seller = await Seller.get(id=member.seller_id)
        tr = self._catalogs.for_member(member, seller)
        client = self._gateway.for_seller(seller)
        now = self._clock()
        try:
            info = await client.error_index()
            charges = await client.index_charges(now - WEEK, now + timedelta(minutes=1))  # whole seconds at Ozon
        except OzonError as exc:
            return View(text=tr.gettext("Ozon did not answer the error index ({token}). Try again in a minute.")
                        .format(token=exc.token))
        fines: dict[str, float] = {}
        for charge in charges:
            currency = charge.charge_price_currency_code or info.currency_code or ""
            fines[currency] = fines.get(currency, 0.0) + (charge.charge_price or 0.0)
        late = sum(1 for c in charges if c.posting_error_type == "SELLER_DELAY")
        cancelled = sum(1 for c in charges if c.posting_error_type == "SELLER_CANCELLATION")
        lines = [tr.gettext("📉 Error index {index}% ({since} – {to})").format(
            index=f"{info.index:.2f}" if info.index is not None else "—", since=info.period_from or "—",
            to=info.period_to or "—")]
        money = ", ".join(f"{total:.2f} {currency}".strip() for currency, total in sorted(fines.items())) or "0"
        lines.append(tr.gettext("Fines this week: {money}").format(money=money))
        lines.append(tr.ngettext("{n} posting charged this week: {late} late, {cancelled} cancelled by you",
                                 "{n} postings charged this week: {late} late, {cancelled} cancelled by you",
                                 len(charges)).format(n=len(charges), late=late, cancelled=cancelled))
        for charge in charges[:SHOWN]:
            what = ERROR_WORDS.get(charge.posting_error_type)
            lines.append(tr.gettext("• {number}: {what}, {amount} {currency}").format(
                number=charge.posting_number, what=tr.gettext(what) if what else charge.posting_error_type,
                amount=f"{charge.charge_price or 0:.2f}", currency=charge.charge_price_currency_code))
        if len(charges) > SHOWN:
            lines.append(tr.ngettext("… and {n} more", "… and {n} more", len(charges) - SHOWN).format(
                n=len(charges) - SHOWN))
        return View(text="\n".join(lines))
