"""Domestic (first-mile) couriers: registry, waybill number formats, barcode reading.

Knows no chat platform. Number patterns follow ``reference/peers.md`` Appendix D; the
sources disagree, so the patterns are *hints*: a number that does not fit the chosen
courier is flagged for confirmation (``NumberCheck.matches_courier``), never rejected.
Only numbers with illegal characters or an impossible length are refused
(``NumberCheck.valid_chars``), and the caller then simply asks again.
"""

from __future__ import annotations

import io
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import zxingcpp
from PIL import Image, ImageFilter, ImageOps

__all__ = (
    "COURIERS",
    "Courier",
    "NumberCheck",
    "check_number",
    "get_courier",
    "kuaidi100_code",
    "normalize_number",
    "pick_waybill_number",
    "read_barcodes",
)

MIN_NUMBER_LEN = 6
MAX_NUMBER_LEN = 40

# Any plausible waybill number once normalised (dashes are dropped by normalisation, but
# "other" accepts them in case a caller matches an un-normalised value).
_PLAUSIBLE = re.compile(rf"^[A-Z0-9-]{{{MIN_NUMBER_LEN},{MAX_NUMBER_LEN}}}$")


def _p(*patterns: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in patterns)


@dataclass(frozen=True)
class Courier:
    """One domestic courier. ``patterns`` are matched against a normalised number."""

    code: str
    name_en: str
    name_zh: str
    patterns: tuple[re.Pattern[str], ...]
    example: str

    def matches(self, number: str) -> bool:
        """True when the (already normalised) number fits one of this courier's patterns."""
        return any(p.fullmatch(number) for p in self.patterns)

    def name(self, language: str | None) -> str:
        """Display name for a language code ("zh", "zh-hans", "zh_CN" → Chinese, else English)."""
        if language and language.lower().startswith("zh"):
            return self.name_zh
        return self.name_en


COURIERS: tuple[Courier, ...] = (
    Courier(
        "sf",
        "SF Express",
        "顺丰",
        # "SF" + 13 (courier-validation allows one letter after SF); legacy: 12 digits.
        _p(r"SF[A-Z0-9]\d{11,12}", r"\d{12}"),
        "SF1402938475612",
    ),
    Courier(
        "zto",
        "ZTO Express",
        "中通",
        _p(r"(7[3-8]|6[2-8]|5[4-6])\d{10,13}"),
        "75312345678901",
    ),
    Courier(
        "yto",
        "YTO Express",
        "圆通",
        _p(r"YT\d{13,15}"),
        "YT7512345678901",
    ),
    Courier(
        "yunda",
        "Yunda",
        "韵达",
        _p(r"[345]\d{12,14}"),
        "4312345678901",
    ),
    Courier(
        "sto",
        "STO Express",
        "申通",
        _p(r"(77|88|268|3)\d{10,13}"),
        "773012345678901",
    ),
    Courier(
        "jd",
        "JD Logistics",
        "京东",
        _p(r"JD[A-Z0-9]{2}\d{10,12}"),
        "JDVA12345678901",
    ),
    Courier(
        "ems",
        "EMS",
        "EMS",
        # UPU S10 (two letters, 8 digits + check digit, country) and 13-digit domestic EMS.
        _p(r"[A-Z]{2}\d{9}[A-Z]{2}", r"[195]\d{12}"),
        "EA123456785CN",
    ),
    Courier(
        "chinapost",
        "China Post",
        "中国邮政",
        _p(r"[A-Z]{2}\d{9}CN", r"\d{13}"),
        "RA123456785CN",
    ),
    Courier(
        "jt",
        "J&T Express",
        "极兔",
        _p(r"JT\d{12,13}"),
        "JT0001234567890",
    ),
    Courier(
        "other",
        "Other",
        "其他",
        (_PLAUSIBLE,),
        "ABC12345678",
    ),
)

_BY_CODE: Mapping[str, Courier] = MappingProxyType({c.code: c for c in COURIERS})


def get_courier(code: str | None) -> Courier | None:
    """The courier with this code (case-insensitive), or None."""
    if not code:
        return None
    return _BY_CODE.get(code.strip().lower())


# --------------------------------------------------------------------------- numbers

_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_DROP = re.compile(rf"[\s{re.escape(_DASHES)}]+")


def normalize_number(raw: str | None) -> str:
    """Canonical form of a typed or scanned waybill number.

    NFKC (full-width "ＳＦ１４" → "SF14"), invisible format characters (zero-width space,
    BOM…) removed, upper-cased, every whitespace and dash removed.
    """
    if not raw:
        return ""
    text = unicodedata.normalize("NFKC", str(raw))
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return _DROP.sub("", text.upper())


@dataclass(frozen=True)
class NumberCheck:
    """Result of :func:`check_number`.

    * ``valid_chars`` False: empty, shorter than 6 / longer than 40 characters, or characters
      other than A–Z, 0–9 → ask the user again.
    * ``matches_courier`` False (with ``valid_chars`` True): unusual for the chosen courier →
      ask the user to confirm; never reject silently.
    * ``likely_couriers``: codes of the specific couriers (never "other") whose patterns
      match, in display order.
    """

    number: str
    valid_chars: bool
    matches_courier: bool
    likely_couriers: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Valid and fits the chosen courier: can be used without asking."""
        return self.valid_chars and self.matches_courier


def _likely(number: str) -> tuple[str, ...]:
    return tuple(c.code for c in COURIERS if c.code != "other" and c.matches(number))


def _plausible(number: str) -> bool:
    return bool(_PLAUSIBLE.fullmatch(number))


def check_number(code: str, raw: str) -> NumberCheck:
    """Check a waybill number against a courier's formats.

    Raises ``ValueError`` for an unknown courier code (callers validate codes coming from
    buttons with :func:`get_courier` first).
    """
    courier = get_courier(code)
    if courier is None:
        raise ValueError(f"unknown courier code: {code!r}")
    number = normalize_number(raw)
    if not _plausible(number):
        return NumberCheck(number, False, False, ())
    return NumberCheck(number, True, courier.matches(number), _likely(number))


# --------------------------------------------------------------------------- barcodes

# Symbologies couriers print on waybills: 1D codes and QR. Matched on the zxing-cpp format
# name, which is stable across zxing-cpp 2.x and 3.x ("Code128", "EAN13", "QRCode", ...).
_ACCEPTED_FORMAT_PREFIXES = (
    "Code128",
    "Code39",
    "Code32",
    "Code93",
    "Codabar",
    "EAN",
    "UPC",
    "ISBN",
    "ITF",
    "DataBar",
    "PZN",
    "Telepen",
    "QRCode",
    "MicroQRCode",
    "RMQRCode",
)
_MAX_PIXELS = 40_000_000
_READS = threading.BoundedSemaphore(2)  # concurrent barcode reads (each in a worker thread)
_MIN_LONG_SIDE = 1600  # enhanced passes work on images with a long side in this range
_MAX_LONG_SIDE = 2048


def _format_accepted(barcode: object) -> bool:
    fmt = getattr(barcode, "format", None)
    name = getattr(fmt, "name", None) or str(fmt)
    return any(name.startswith(prefix) for prefix in _ACCEPTED_FORMAT_PREFIXES)


def _decode(image: Image.Image, **options: object) -> list[str]:
    try:
        found = zxingcpp.read_barcodes(image, **options)
    except Exception:  # a decoder failure means "nothing read"
        return []
    return [b.text for b in found if getattr(b, "valid", True) and b.text and _format_accepted(b)]


def _open_gray(image_bytes: bytes) -> Image.Image | None:
    try:
        with Image.open(io.BytesIO(image_bytes)) as opened:
            if opened.width * opened.height > _MAX_PIXELS:
                opened.draft("L", (opened.width // 4, opened.height // 4))  # JPEG: cheap shrink
            if opened.width * opened.height > _MAX_PIXELS:
                return None  # M7: still too big to decode (a PNG bomb is 650 KB that decode to 676 MB)
            opened.load()
            image = ImageOps.exif_transpose(opened) or opened
            if image.width * image.height > _MAX_PIXELS:
                image.thumbnail((6000, 6000))
            return image.convert("L")
    except Exception:  # anything that is not a readable image
        return None


def _threshold(image: Image.Image, level: int = 128) -> Image.Image:
    return image.point(lambda v: 255 if v >= level else 0)


def _attempts(gray: Image.Image) -> Iterator[tuple[Image.Image, dict[str, object]]]:
    yield gray, {}
    yield gray.rotate(90, expand=True), {}
    # Clean-up passes for soft, noisy, low-contrast or small photos: stretch contrast and
    # enlarge, then sharpen (or denoise) and threshold hard.
    enhanced = ImageOps.autocontrast(gray, cutoff=1)
    long_side = max(enhanced.size)
    if not _MIN_LONG_SIDE <= long_side <= _MAX_LONG_SIDE:
        factor = min(max(_MIN_LONG_SIDE / long_side, 1.0), _MAX_LONG_SIDE / long_side)
        enhanced = enhanced.resize(
            (round(enhanced.width * factor), round(enhanced.height * factor)), Image.Resampling.LANCZOS
        )
    yield _threshold(enhanced.filter(ImageFilter.UnsharpMask(radius=3, percent=250, threshold=0))), {}
    yield _threshold(enhanced.filter(ImageFilter.MedianFilter(3))), {}
    binarizer = getattr(zxingcpp, "Binarizer", None)
    if binarizer is not None and hasattr(binarizer, "GlobalHistogram"):
        yield enhanced, {"binarizer": binarizer.GlobalHistogram}


def _distinct_longest_first(texts: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for text in texts:
        number = normalize_number(text)
        if number and number not in seen:
            seen.append(number)
    return sorted(seen, key=len, reverse=True)  # stable: discovery order among equal lengths


def read_barcodes(image_bytes: bytes) -> list[str]:
    """Texts of the 1D barcodes and QR codes in a photo, normalised, distinct, longest first.

    Tries the image as is, rotated by 90°, then enhanced (contrast, upscale, sharpen or
    denoise, threshold), stopping at the first pass that finds anything.
    Never raises on bad input: anything that is not a decodable image gives ``[]``.
    CPU-bound (up to a few seconds for a large photo without barcodes): async callers should
    run it in a worker thread (``asyncio.to_thread``).
    """
    if not image_bytes:
        return []
    with _READS:  # M7: each read holds a decoded photo and its passes; a few at once, whatever arrives
        gray = _open_gray(bytes(image_bytes))
        if gray is None or gray.width < 8 or gray.height < 8:
            return []
        for image, options in _attempts(gray):
            texts = _decode(image, **options)
            if texts:
                return _distinct_longest_first(texts)
        return []


def pick_waybill_number(texts: Iterable[str], courier_code: str | None) -> str | None:
    """Choose the waybill number among decoded barcode texts.

    Preference: the longest text matching the chosen courier; else the longest matching any
    known courier; else the longest plausible one (6–40 of A–Z, 0–9). None if nothing fits.
    """
    candidates = _distinct_longest_first(texts)
    candidates = [n for n in candidates if _plausible(n)]
    if not candidates:
        return None
    courier = get_courier(courier_code)
    if courier is not None and courier.code != "other":
        matching = [n for n in candidates if courier.matches(n)]
        if matching:
            return matching[0]
    known = [n for n in candidates if _likely(n)]
    if known:
        return known[0]
    return candidates[0]


# Kuaidi100's courier codes (reference/peers.md Appendix C); "other" has none and is not watched
KUAIDI100_CODES: Mapping[str, str] = MappingProxyType({
    "sf": "shunfeng", "zto": "zhongtong", "yto": "yuantong", "yunda": "yunda", "sto": "shentong", "jd": "jd",
    "ems": "ems", "chinapost": "youzhengguonei", "jt": "jtexpress",
})


def kuaidi100_code(courier: str | None) -> str | None:
    """The Kuaidi100 code of one of our couriers, or None when Kuaidi100 cannot be asked about it."""
    return KUAIDI100_CODES.get(courier or "")
