"""A minimal, valid PDF 1.4 label renderer (one A6 page per posting, built-in Helvetica)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

A6_WIDTH = 297.64
A6_HEIGHT = 419.53


_CYRILLIC = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        "a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh shch - y - e yu ya".split(),
        strict=True,
    )
)


def _latin(text: str) -> str:
    """Helvetica/WinAnsi can't draw Cyrillic or Chinese: transliterate Russian, drop the rest."""
    out = []
    for ch in text.replace("→", "->").replace("×", "x"):
        low = ch.lower()
        if low in _CYRILLIC:
            t = _CYRILLIC[low].replace("-", "")
            out.append(t.capitalize() if ch != low else t)
            continue
        try:
            ch.encode("cp1252")
        except UnicodeEncodeError:
            continue
        out.append(ch)
    return " ".join("".join(out).split())


def _pdf_text(text: str) -> bytes:
    """A PDF literal string in WinAnsi."""
    raw = _latin(text).encode("cp1252", errors="replace")
    raw = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    return b"(" + raw + b")"


def _label_stream(label: dict[str, Any]) -> bytes:
    ops: list[bytes] = []

    def text(x: float, y: float, size: float, s: str, font: str = "F1") -> None:
        ops.append(b"BT /%s %.1f Tf %.2f %.2f Td %s Tj ET" % (font.encode(), size, x, y, _pdf_text(s)))

    ops.append(b"0.5 w 10 10 %.2f %.2f re S" % (A6_WIDTH - 20, A6_HEIGHT - 20))
    text(22, 385, 22, "OZON", "F2")
    text(150, 390, 9, "rFBS / FBS label")
    text(22, 350, 9, "Posting / Otpravlenie:")
    text(22, 326, 19, str(label.get("posting_number", "")), "F2")
    text(22, 308, 9, f"Order: {label.get('order_number', '')}")
    # decorative bars derived from the posting number (not a scannable symbology)
    x = 22.0
    digits = [int(c) for c in str(label.get("posting_number", "")) if c.isdigit()] or [0]
    ops.append(b"0 g")
    for i in range(46):
        d = digits[i % len(digits)]
        width = 1.0 + (d % 3)
        if (d + i) % 2 == 0:
            ops.append(b"%.2f 230 %.2f 62 re f" % (x, width))
        x += width + 1.4
        if x > A6_WIDTH - 30:
            break
    text(22, 212, 9, f"Tracking: {label.get('tracking_number') or '-'}")
    text(22, 198, 9, f"Delivery: {label.get('delivery_method', '')}")
    text(22, 184, 9, f"Warehouse: {label.get('warehouse', '')}")
    y = 160.0
    text(22, y, 9, "Items:", "F2")
    for offer_id, qty in (label.get("items") or [])[:8]:
        y -= 13
        text(30, y, 9, f"{offer_id}  x{qty}")
    text(22, 20, 7, f"Task {label.get('task_id', '')} - ozonbot sandbox")
    return b"\n".join(ops) + b"\n"


def render_label_pdf(labels: Sequence[dict[str, Any]]) -> bytes:
    """Render labels (dicts with posting_number, order_number, tracking_number, delivery_method,
    warehouse, items [(offer_id, qty)], task_id) into a PDF document; correct xref offsets."""
    labels = list(labels) or [{"posting_number": ""}]
    objects: list[bytes] = []  # index i holds object number i + 1
    n_pages = len(labels)
    first_page = 5
    kids = b" ".join(b"%d 0 R" % (first_page + 2 * i) for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, n_pages))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    for i, label in enumerate(labels):
        content_num = first_page + 2 * i + 1
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.2f %.2f] "
            b"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents %d 0 R >>"
            % (A6_WIDTH, A6_HEIGHT, content_num)
        )
        stream = _label_stream(label)
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    info_num = len(objects) + 1
    objects.append(b"<< /Producer (ozonbot sandbox) /Title (Ozon package labels) >>")

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (num, body)
    xref_at = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        info_num,
        xref_at,
    )
    return bytes(out)
