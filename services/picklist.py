"""Today's pick list: every open posting still to pack, grouped by SKU, most urgent first.

Ozon keeps a pick list of its own (`/v1/assembly/fbs/product/list`, next-features §4) for the warehouses it
covers; where the warehouse does not answer it (rFBS and aggregator warehouses may not), the same list is
built from the postings we hold. Either way a line names the SKU, the offer_id, the product name, the total
quantity and the postings that need it, with their deadlines, and the list goes out as a chat message and
as a printable A4 PDF.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fpdf import FPDF
from fpdf.fonts import FontFace

from services.i18n import Catalogs, Translator
from services.ozon.errors import OzonAuthError, OzonError
from services.ozon.models import Posting as OzonPosting
from services.sellers import OzonGateway
from services.storage.models import Member, Posting, Seller
from services.storage.states import FINAL_STATUSES, Stage
from services.views import Attachment, View

log = logging.getLogger(__name__)
TO_PACK = (Stage.NEW, Stage.COURIER)  # nobody pressed Packed yet
LOOK_BACK = timedelta(days=14)  # overdue postings are still to pack
LOOK_AHEAD = timedelta(days=21)
TEXT_LIMIT = 3500  # Telegram's message holds 4096 characters; the PDF carries the rest
# One font for Chinese, Cyrillic and Latin: WenQuanYi Micro Hei (Debian fonts-wqy-microhei, installed by .ci/run)
DEFAULT_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"


@dataclass
class Need:
    posting_number: str
    quantity: int
    deadline: datetime | None


@dataclass
class PickLine:
    sku: int | None
    offer_id: str
    name: str
    quantity: int = 0
    needs: list[Need] = field(default_factory=list)

    @property
    def deadline(self) -> datetime | None:
        dates = [need.deadline for need in self.needs if need.deadline is not None]
        return min(dates) if dates else None


@dataclass
class PickList:
    lines: list[PickLine]
    source: str  # "ozon" (Ozon's own pick list) or "ours" (built from the postings we hold)

    @property
    def postings(self) -> int:
        return len({need.posting_number for line in self.lines for need in line.needs})

    @property
    def units(self) -> int:
        return sum(line.quantity for line in self.lines)


def _sorted(lines: list[PickLine]) -> list[PickLine]:
    far = datetime.max.replace(tzinfo=None)
    for line in lines:
        line.needs.sort(key=lambda need: (need.deadline.replace(tzinfo=None) if need.deadline else far,
                                          need.posting_number))
    return sorted(lines, key=lambda line: (line.deadline.replace(tzinfo=None) if line.deadline else far,
                                           line.offer_id, line.sku or 0))


class PickLists:
    def __init__(self, *, gateway: OzonGateway, catalogs: Catalogs, clock: Callable[[], datetime],
                 font: str = DEFAULT_FONT):
        self._gateway = gateway
        self._catalogs = catalogs
        self._clock = clock
        self._font = font

    async def build(self, seller: Seller) -> PickList:
        """Ozon's list where the warehouse answers it, else ours; deadlines come from the postings we hold."""
        ours = await Posting.filter(seller_id=seller.id, stage__in=TO_PACK).exclude(status__in=FINAL_STATUSES) \
            .order_by("shipment_date", "posting_number")
        deadlines = {posting.posting_number: posting.shipment_date for posting in ours}
        now = self._clock()
        try:
            remote = await self._gateway.for_seller(seller).pick_list(now - LOOK_BACK, now + LOOK_AHEAD)
        except OzonAuthError:
            raise
        except OzonError as exc:
            log.info("Ozon's pick list is not available for seller %s (%s): built from our postings",
                     seller.id, exc.token)
            return PickList(_sorted(self._from_ours(ours)), "ours")
        lines = [PickLine(sku=item.sku, offer_id=item.offer_id, name=item.product_name, quantity=item.quantity,
                          needs=[Need(p.posting_number, p.quantity, deadlines.get(p.posting_number))
                                 for p in item.postings]) for item in remote if item.quantity > 0]
        return PickList(_sorted(lines), "ozon")

    @staticmethod
    def _from_ours(postings: list[Posting]) -> list[PickLine]:
        lines: dict[tuple[int | None, str], PickLine] = {}
        for posting in postings:
            remote = OzonPosting.from_api(posting.snapshot or {"posting_number": posting.posting_number})
            for product in remote.products:
                key = (product.sku, product.offer_id)
                line = lines.setdefault(key, PickLine(sku=product.sku, offer_id=product.offer_id, name=product.name))
                line.quantity += product.quantity
                line.needs.append(Need(posting.posting_number, product.quantity, posting.shipment_date))
        return list(lines.values())

    # ---- what the member gets ------------------------------------------------------------------
    async def views(self, member: Member) -> list[View]:
        """The list as a message, then the PDF as a file (a caption holds far less than a message)."""
        seller = await Seller.get(id=member.seller_id)
        tr = self._catalogs.for_member(member, seller)
        picks = await self.build(seller)
        if not picks.lines:
            return [View(text=tr.gettext("Nothing to pick: no open order is waiting to be packed. 🎉"))]
        return [View(text=self.text(tr, picks)),
                View(text=tr.gettext("📋 Pick list to print (A4)"),
                     attachment=Attachment(self.filename(), self.pdf(tr, seller, picks)))]

    async def pdf_of(self, member: Member) -> bytes:
        """The printable list for the action page (a chat that cannot carry files)."""
        seller = await Seller.get(id=member.seller_id)
        tr = self._catalogs.for_member(member, seller)
        return self.pdf(tr, seller, await self.build(seller))

    def filename(self) -> str:
        return f"picklist-{self._clock():%Y%m%d-%H%M}.pdf"

    def text(self, tr: Translator, picks: PickList) -> str:
        now = self._clock()
        head = tr.ngettext("📋 Pick list: {n} posting to pack", "📋 Pick list: {n} postings to pack",
                           picks.postings).format(n=picks.postings)
        head += ", " + tr.ngettext("{n} item", "{n} items", picks.units).format(n=picks.units)
        out = [head, tr.gettext("Most urgent first."), ""]
        for index, line in enumerate(picks.lines, 1):
            block = [f"{index}. {line.offer_id or line.sku} × {line.quantity}", f"   {line.name}"]
            block += [f"   • {need.posting_number} × {need.quantity} ({tr.time_left(need.deadline, now) or '—'})"
                      for need in line.needs]
            if sum(map(len, out)) + sum(map(len, block)) > TEXT_LIMIT:
                out.append(tr.gettext("… and more in the PDF."))
                break
            out += block
        return "\n".join(out)

    def pdf(self, tr: Translator, seller: Seller, picks: PickList) -> bytes:
        """A4 portrait: a header, then one row per SKU with the postings that need it."""
        pdf = FPDF(orientation="P", unit="mm", format="A4")
        pdf.set_auto_page_break(auto=True, margin=14)
        pdf.add_font("cjk", fname=self._font, collection_font_number=0) if self._font.endswith(".ttc") \
            else pdf.add_font("cjk", fname=self._font)
        pdf.set_title(tr.gettext("Pick list"))
        pdf.add_page()
        pdf.set_font("cjk", size=16)
        pdf.cell(0, 9, tr.gettext("Pick list"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("cjk", size=10)
        now = self._clock()
        summary = tr.ngettext("{n} posting to pack", "{n} postings to pack", picks.postings).format(n=picks.postings)
        summary += ", " + tr.ngettext("{n} item", "{n} items", picks.units).format(n=picks.units)
        pdf.cell(0, 6, f"{seller.name or seller.client_id} · {tr.local_time(now)} · {summary}",
                 new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        widths = (8, 52, 16, 104)
        headers = ("#", tr.gettext("Offer ID / SKU"), tr.gettext("Qty"), tr.gettext("Product and postings"))
        pdf.set_font("cjk", size=9)
        with pdf.table(col_widths=widths, text_align=("RIGHT", "LEFT", "CENTER", "LEFT"),
                       line_height=5, first_row_as_headings=True,
                       headings_style=FontFace(emphasis="", fill_color=(230, 230, 230))) as table:
            row = table.row()
            for header in headers:
                row.cell(header)
            for index, line in enumerate(picks.lines, 1):
                row = table.row()
                row.cell(str(index))
                row.cell(f"{line.offer_id}\n{line.sku or ''}".strip())
                row.cell(str(line.quantity))
                needs = "\n".join(f"□ {need.posting_number} × {need.quantity}   {tr.local_time(need.deadline)}"
                                  for need in line.needs)
                row.cell(f"{line.name}\n{needs}")
        return bytes(pdf.output())

