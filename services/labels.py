"""One label PDF for many postings (/labels): a single Ozon label task for every packed posting whose label has
not been printed yet, polled until Ozon is done, one file per label size; the postings Ozon could not print
are listed with Ozon's reason, and every printed label is recorded (who, when, which task), so printing
them again says it is a reprint.

Ozon's `/v3/posting/fbs/package-label/create` takes 1..1000 postings and answers one task per label size
(`big_label`, `small_label`); `/v2/posting/fbs/package-label/get` gives the file and the unprinted postings
(next-features §4, §11). Sizes are never mixed in one file: the printer's roll differs.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pypdf import PdfReader, PdfWriter

from services.i18n import Catalogs, Translator
from services.ozon.errors import OzonError
from services.ozon.models import LabelStatus
from services.sellers import OzonGateway
from services.storage.models import LabelPrint, Member, Posting, Seller
from services.storage.states import AFTER_PACKING
from services.views import Attachment, View

log = logging.getLogger(__name__)
PRINTABLE = "awaiting_deliver"  # the only Ozon status a label task accepts
REPRINT_WORDS = ("all", "again", "全部", "重印", "все", "снова")
POLLS = 30


@dataclass
class Batch:
    """What one /labels run printed: a file per label size, and what Ozon refused."""

    files: dict[str, bytes] = field(default_factory=dict)  # task_type -> PDF
    kinds: dict[str, int] = field(default_factory=dict)  # task_type -> its first task (the action page's file)
    printed: list[str] = field(default_factory=list)
    unprinted: dict[str, str] = field(default_factory=dict)  # posting -> Ozon's reason
    reprint: bool = False
    tasks: list[int] = field(default_factory=list)


def merge(pdfs: list[bytes]) -> bytes:
    """Several PDFs as one, page after page (several tasks of one size when a batch is over 1,000)."""
    if len(pdfs) == 1:
        return pdfs[0]
    writer = PdfWriter()
    for pdf in pdfs:
        writer.append(PdfReader(io.BytesIO(pdf)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


class LabelBatches:
    def __init__(self, *, gateway: OzonGateway, catalogs: Catalogs, clock: Callable[[], datetime],
                 poll_interval: float = 1.0):
        self._gateway = gateway
        self._catalogs = catalogs
        self._clock = clock
        self._poll_interval = poll_interval

    async def due(self, seller_id: int, *, again: bool) -> list[Posting]:
        """Packed postings Ozon can label: those never printed in a batch, or all of them (a reprint)."""
        query = Posting.filter(seller_id=seller_id, stage__in=AFTER_PACKING, status=PRINTABLE)
        if not again:
            printed = await LabelPrint.filter(posting__seller_id=seller_id).values_list("posting_id", flat=True)
            query = query.exclude(id__in=list(printed))
        return await query.order_by("shipment_date", "posting_number")

    async def run(self, member: Member, postings: list[Posting], *, reprint: bool) -> Batch:
        seller = await Seller.get(id=member.seller_id)
        client = self._gateway.for_seller(seller)
        batch = Batch(reprint=reprint)
        by_number = {posting.posting_number: posting for posting in postings}
        files: dict[str, list[bytes]] = {}
        tasks = await client.create_label_task(list(by_number))
        for task in tasks:
            status = await self._finished(client, task.task_id)
            batch.tasks.append(task.task_id)
            for item in status.unprinted:
                number = str(item.get("posting_number") or "")
                if number:
                    batch.unprinted[number] = str(item.get("message") or item.get("error") or "—")
            if status.code != "completed" or not status.file_url:
                reason = status.error or status.code or "—"
                for number in by_number:
                    batch.unprinted.setdefault(number, reason)
                continue
            files.setdefault(task.task_type or "label", []).append(await client.download(status.file_url))
            batch.kinds.setdefault(task.task_type or "label", task.task_id)
        batch.files = {kind: merge(pdfs) for kind, pdfs in files.items()}
        batch.printed = [number for number in by_number if number not in batch.unprinted] if batch.files else []
        await LabelPrint.bulk_create([LabelPrint(posting_id=by_number[number].id, member_id=member.id,
                                                 task_id=batch.tasks[0], reprint=reprint)
                                      for number in batch.printed])
        return batch

    async def _finished(self, client, task_id: int) -> LabelStatus:
        status = LabelStatus()
        for _ in range(POLLS):
            await asyncio.sleep(self._poll_interval)  # a task is never done the moment it is created
            status = await client.get_label(task_id)
            if status.code in ("completed", "error"):
                return status
        return status

    # ---- what the member gets ------------------------------------------------------------------
    async def views(self, member: Member, arg: str, *, command: str,
                    file_url: Callable[[str], str] | None = None) -> list[View]:
        """`command` is how the member's surface spells /labels; `file_url` links the action page's copy of a
        file for a chat that cannot carry one (the Official Account)."""
        seller = await Seller.get(id=member.seller_id)
        tr = self._catalogs.for_member(member, seller)
        again = arg.strip().lower() in REPRINT_WORDS
        postings = await self.due(member.seller_id, again=again)
        if not postings:
            if again:
                return [View(text=tr.gettext("No packed posting is waiting for the courier: no label to print."))]
            return [View(text=tr.gettext("Every packed posting has its label printed. Send {labels} all to print "
                                         "them again.").format(labels=command))]
        reprint = again and await LabelPrint.filter(posting_id__in=[p.id for p in postings]).exists()
        try:
            batch = await self.run(member, postings, reprint=reprint)
        except OzonError as exc:
            log.info("label batch for seller %s refused: %s", seller.id, exc.token)
            return [View(text=tr.gettext("Ozon refused the label task: {reason}. Try again in a minute.").format(
                reason=exc.token or exc.status))]
        return self.render(tr, batch, file_url)

    def render(self, tr: Translator, batch: Batch, file_url: Callable[[str], str] | None = None) -> list[View]:
        lines = []
        if batch.printed:
            lines.append(tr.ngettext("🏷 Labels of {n} posting in one PDF", "🏷 Labels of {n} postings in one PDF",
                                     len(batch.printed)).format(n=len(batch.printed)))
            if batch.reprint:
                lines.append(tr.gettext("⚠️ This is a reprint: these labels were printed before."))
        if batch.unprinted:
            lines.append(tr.ngettext("Ozon could not print {n} label:", "Ozon could not print {n} labels:",
                                     len(batch.unprinted)).format(n=len(batch.unprinted)))
            lines += [f"• {number}: {reason}" for number, reason in batch.unprinted.items()]
        views = [View(text="\n".join(lines))]
        stamp = f"{self._clock():%Y%m%d-%H%M}"
        for kind, pdf in batch.files.items():
            size = tr.gettext("small labels") if kind == "small_label" else tr.gettext("labels")
            if file_url is None:
                views.append(View(text=f"🏷 {size}", attachment=Attachment(f"labels-{stamp}-{kind}.pdf", pdf)))
            else:
                views.append(View(text=f"🏷 {size}: {file_url(f'labels/{batch.kinds[kind]}')}"))
        return views

    async def file_of(self, member: Member, task_id: int) -> bytes | None:
        """A printed batch's file again, for someone on the desk that printed it (the action page's link)."""
        printed = await LabelPrint.filter(task_id=task_id, posting__seller_id=member.seller_id).exists()
        if not printed:
            return None
        client = self._gateway.for_seller(await Seller.get(id=member.seller_id))
        try:
            status = await client.get_label(task_id)
            return await client.download(status.file_url) if status.file_url else None
        except OzonError as exc:
            log.info("label task %s not available: %s", task_id, exc.token)
            return None
