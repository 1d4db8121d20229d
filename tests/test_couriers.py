"""Courier registry, number checks and barcode reading on generated waybill photos.

Run as a script to regenerate the end-to-end fixture ``tests/fixtures/waybill_sf.jpg``:
``.venv/bin/python -m tests.test_couriers``.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from services.couriers import (
    COURIERS,
    Courier,
    NumberCheck,
    check_number,
    get_courier,
    normalize_number,
    pick_waybill_number,
    read_barcodes,
)

FIXTURE = Path(__file__).parent / "fixtures" / "waybill_sf.jpg"
FIXTURE_NUMBER = "SF1402938475612"


# --------------------------------------------------------------------------- image helpers


def barcode_image(text: str, fmt: zxingcpp.BarcodeFormat = zxingcpp.BarcodeFormat.Code128, scale: int = 3):
    """A black-on-white barcode as a PIL "L" image, rendered by zxing-cpp's writer."""
    if hasattr(zxingcpp, "create_barcode"):  # zxing-cpp >= 2.3 / 3.x
        img = zxingcpp.create_barcode(text, fmt).to_image(scale=scale)
    else:  # pragma: no cover - zxing-cpp 2.2
        img = zxingcpp.write_barcode(fmt, text, width=0, height=0, quiet_zone=10)
    height, width = img.shape[:2]
    bar = Image.frombytes("L", (width, height), bytes(memoryview(img)))
    if fmt in (zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.DataMatrix):
        return bar
    # 1D codes come out 50 module rows tall at most; make them waybill-like (tall bars).
    return bar.resize((width, max(height, 110)), Image.Resampling.NEAREST)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - Pillow < 10.1
        return ImageFont.load_default()


def waybill(
    number: str,
    *,
    extra_codes: tuple[tuple[str, zxingcpp.BarcodeFormat], ...] = (),
    size: tuple[int, int] = (900, 620),
) -> Image.Image:
    """A white "waybill" with a frame, printed text, the main barcode and optional others."""
    canvas = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((10, 10, size[0] - 11, size[1] - 11), outline="black", width=3)
    draw.text((30, 24), "EXPRESS WAYBILL  /  ELECTRONIC ORDER", fill="black", font=_font(28))
    draw.text((30, 64), "FROM: Urumqi, Xinjiang  TEL 138****0000", fill="black", font=_font(18))
    draw.line((10, 100, size[0] - 11, 100), fill="black", width=2)
    main = barcode_image(number, scale=3)
    x = (size[0] - main.width) // 2
    canvas.paste(main, (x, 120))
    draw.text((x + 20, 120 + main.height + 6), " ".join(number), fill="black", font=_font(22))
    y = 120 + main.height + 50
    draw.line((10, y, size[0] - 11, y), fill="black", width=2)
    draw.text((30, y + 14), "TO: Ozon warehouse (consolidation), Yiwu", fill="black", font=_font(18))
    draw.text((30, y + 40), "Goods: phone case x2   Weight 0.4 kg", fill="black", font=_font(18))
    x_extra = 30
    for text, fmt in extra_codes:
        code = barcode_image(text, fmt, scale=2)
        canvas.paste(code, (x_extra, y + 80))
        x_extra += code.width + 40
    return canvas


def add_noise(image: Image.Image, sigma: float = 40, alpha: float = 0.18) -> Image.Image:
    """Gaussian sensor noise (Image.effect_noise cannot be seeded; mild enough to decode every time)."""
    noise = Image.effect_noise(image.size, sigma).convert(image.mode)
    return Image.blend(image, noise, alpha)


def photo_like(image: Image.Image, *, angle: float = 3.0) -> Image.Image:
    """The waybill as a slightly skewed phone photo on a grey table with uneven light."""
    skewed = image.convert("RGB").rotate(angle, expand=True, fillcolor=(128, 124, 118))
    table = Image.new("RGB", (skewed.width + 80, skewed.height + 60), (128, 124, 118))
    table.paste(skewed, (40, 30))
    shade = Image.linear_gradient("L").resize(table.size).point(lambda v: 205 + v // 5)
    shaded = Image.composite(table, Image.new("RGB", table.size, (40, 40, 40)), shade)
    return shaded.filter(ImageFilter.GaussianBlur(0.6))


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def make_fixture_photo() -> bytes:
    """The end-to-end fixture: an SF waybill photo carrying FIXTURE_NUMBER (JPEG, < 60 KB)."""
    image = photo_like(
        waybill(
            FIXTURE_NUMBER,
            extra_codes=(("https://sf-express.com/w?no=" + FIXTURE_NUMBER, zxingcpp.BarcodeFormat.QRCode),),
        ),
        angle=2.5,
    )
    image.thumbnail((860, 860))
    return encode(image.convert("L"), "JPEG", quality=72, optimize=True)


# --------------------------------------------------------------------------- registry


def test_registry_order_and_names():
    assert [c.code for c in COURIERS] == [
        "sf",
        "zto",
        "yto",
        "yunda",
        "sto",
        "jd",
        "ems",
        "chinapost",
        "jt",
        "other",
    ]
    assert [c.name_en for c in COURIERS] == [
        "SF Express",
        "ZTO Express",
        "YTO Express",
        "Yunda",
        "STO Express",
        "JD Logistics",
        "EMS",
        "China Post",
        "J&T Express",
        "Other",
    ]
    assert [c.name_zh for c in COURIERS] == [
        "顺丰",
        "中通",
        "圆通",
        "韵达",
        "申通",
        "京东",
        "EMS",
        "中国邮政",
        "极兔",
        "其他",
    ]
    assert isinstance(COURIERS, tuple)
    for c in COURIERS:
        assert isinstance(c, Courier)
        assert c.patterns and all(hasattr(p, "fullmatch") for p in c.patterns)
        with pytest.raises(AttributeError):
            c.code = "x"  # type: ignore[misc]  # frozen


def test_get_courier():
    assert get_courier("sf") is COURIERS[0]
    assert get_courier("JT").code == "jt"
    assert get_courier("nope") is None
    assert get_courier("") is None
    assert get_courier(None) is None
    assert get_courier("zto").name("zh-hans") == "中通"
    assert get_courier("zto").name("ru") == "ZTO Express"


@pytest.mark.parametrize("courier", COURIERS, ids=lambda c: c.code)
def test_example_matches_itself(courier: Courier):
    result = check_number(courier.code, courier.example)
    assert result.valid_chars and result.matches_courier and result.ok
    assert result.number == courier.example
    if courier.code != "other":
        assert courier.code in result.likely_couriers
    assert "other" not in result.likely_couriers


@pytest.mark.parametrize(
    "code, number",
    [
        ("sf", "SF1402938475612"),
        ("sf", "SF140293847561"),  # SF + 12
        ("sf", "140293847561"),  # legacy: 12 digits
        ("zto", "731234567890"),  # 12 digits
        ("zto", "780123456789012"),  # 15 digits
        ("zto", "5512345678901"),
        ("yto", "YT1234567890123"),
        ("yto", "YT123456789012345"),
        ("yunda", "312345678901234"),
        ("yunda", "5123456789012"),
        ("sto", "880123456789012"),
        ("sto", "2680123456789"),
        ("jd", "JDX012345678901"),
        ("jd", "JDVA0123456789"),
        ("ems", "EA123456789CN"),
        ("ems", "1123456789012"),
        ("ems", "9876543210123"),
        ("chinapost", "RR123456789CN"),
        ("chinapost", "1234567890123"),
        ("jt", "JT012345678901"),
        ("jt", "JT0123456789012"),
        ("other", "ANY-THING-42"),
    ],
)
def test_known_formats(code: str, number: str):
    result = check_number(code, number)
    assert result.valid_chars
    assert result.matches_courier, (code, number, result)


def test_mismatch_is_flagged_not_rejected():
    result = check_number("yto", "SF1402938475612")
    assert result == NumberCheck("SF1402938475612", True, False, ("sf",))
    assert not result.ok
    result = check_number("sf", "YT1234567890123")
    assert result.valid_chars and not result.matches_courier
    assert result.likely_couriers == ("yto",)
    # plausible but nobody's format: still valid, just unusual
    odd = check_number("jd", "ABCDEF")
    assert odd.valid_chars and not odd.matches_courier and odd.likely_couriers == ()
    # "other" takes anything plausible
    assert check_number("other", "SF1402938475612").matches_courier


def test_ambiguous_digit_numbers_list_several_couriers():
    result = check_number("sto", "773012345678901")
    assert result.matches_courier
    assert set(result.likely_couriers) >= {"zto", "sto"}
    assert list(result.likely_couriers) == [c.code for c in COURIERS if c.code in result.likely_couriers]


@pytest.mark.parametrize(
    "raw",
    [
        "ＳＦ１４０２９３８４７５６１２",
        "  sf 1402 9384 7561 2 ",
        "SF-1402-9384-75612",
        "sf1402938475612\n",
        "ＳＦ　１４０２－９３８４－７５６１２",  # ideographic space, full-width hyphen
        "SF\u200b1402938475612",  # zero-width space from copy-paste
        "SF\u20141402938475612",  # em dash
    ],
)
def test_normalisation(raw: str):
    assert normalize_number(raw) == "SF1402938475612"
    assert check_number("sf", raw).ok


def test_normalize_edge_cases():
    assert normalize_number("") == ""
    assert normalize_number(None) == ""  # type: ignore[arg-type]
    assert normalize_number(" \t ") == ""
    assert normalize_number("ea123456789cn") == "EA123456789CN"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "SF12",
        "12345",
        "SF1402#938475612",
        "顺丰1402938475612",
        "SF1402938475612!",
        "A" * 41,
        "SF14029384.75612",
        "SF_1402938475612",
    ],
)
def test_invalid_chars(raw: str):
    result = check_number("sf", raw)
    assert not result.valid_chars
    assert not result.matches_courier
    assert result.likely_couriers == ()


def test_length_bounds():
    assert check_number("other", "A" * 6).valid_chars
    assert check_number("other", "A" * 40).valid_chars
    assert not check_number("other", "A" * 5).valid_chars


def test_unknown_courier_code():
    with pytest.raises(ValueError):
        check_number("dhl", "SF1402938475612")


# --------------------------------------------------------------------------- barcode reading


def test_reads_plain_png_barcode():
    assert read_barcodes(encode(barcode_image("SF1402938475612"))) == ["SF1402938475612"]


def test_reads_waybill_jpeg_with_text():
    data = encode(waybill("YT7512345678901"), "JPEG", quality=80)
    assert read_barcodes(data) == ["YT7512345678901"]


def test_reads_rotated_waybill():
    image = waybill("JDVA12345678901").rotate(90, expand=True)
    assert read_barcodes(encode(image, "PNG")) == ["JDVA12345678901"]


def test_reads_noisy_blurred_photo():
    image = add_noise(photo_like(waybill("773012345678901"), angle=-4)).filter(ImageFilter.GaussianBlur(1.0))
    assert read_barcodes(encode(image, "JPEG", quality=60)) == ["773012345678901"]


@pytest.mark.parametrize("blur, contrast, scale", [(2.0, 0.4, 1.0), (2.0, 0.4, 0.5), (1.5, 0.3, 0.4)])
def test_soft_low_contrast_photo_needs_the_enhancement_pass(blur: float, contrast: float, scale: float):
    image = ImageEnhance.Contrast(waybill("YT7512345678901")).enhance(contrast)
    image = image.filter(ImageFilter.GaussianBlur(blur))
    image = image.resize((int(image.width * scale), int(image.height * scale)))
    data = encode(image, "JPEG", quality=60)
    # zxing-cpp alone gives up on this one ...
    assert zxingcpp.read_barcodes(Image.open(io.BytesIO(data))) == []
    # ... the contrast/upscale/sharpen/threshold pass recovers it
    assert read_barcodes(data) == ["YT7512345678901"]


def test_reads_small_low_resolution_photo():
    image = photo_like(waybill("JT0001234567890"))
    image.thumbnail((560, 560))
    assert "JT0001234567890" in read_barcodes(encode(image, "JPEG", quality=70))


def test_multiple_codes_distinct_longest_first_and_qr():
    image = waybill(
        "SF1402938475612",
        extra_codes=(
            ("755WF", zxingcpp.BarcodeFormat.Code39),  # sorting code
            ("https://sf.example/q?SF1402938475612", zxingcpp.BarcodeFormat.QRCode),
        ),
    )
    texts = read_barcodes(encode(image, "PNG"))
    assert texts == ["HTTPS://SF.EXAMPLE/Q?SF1402938475612", "SF1402938475612", "755WF"]
    assert pick_waybill_number(texts, "sf") == "SF1402938475612"
    assert pick_waybill_number(texts, None) == "SF1402938475612"


def test_duplicate_barcodes_reported_once():
    image = waybill("JT0001234567890", extra_codes=(("JT0001234567890", zxingcpp.BarcodeFormat.Code128),))
    assert read_barcodes(encode(image, "PNG")) == ["JT0001234567890"]


def test_matrix_codes_other_than_qr_are_ignored():
    canvas = Image.new("L", (400, 400), 255)
    canvas.paste(barcode_image("SF1402938475612", zxingcpp.BarcodeFormat.DataMatrix, scale=6), (100, 100))
    assert read_barcodes(encode(canvas)) == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,  # truncated PNG
        b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4,  # JPEG header then junk
        bytes(random.Random(3).getrandbits(8) for _ in range(4096)),
    ],
)
def test_garbage_gives_empty_list(data: bytes):
    assert read_barcodes(data) == []


def test_truncated_real_jpeg_does_not_raise():
    data = encode(waybill("SF1402938475612"), "JPEG", quality=80)
    assert isinstance(read_barcodes(data[: len(data) // 3]), list)


def test_blank_and_tiny_images():
    assert read_barcodes(encode(Image.new("RGB", (640, 480), "white"))) == []
    assert read_barcodes(encode(Image.new("RGB", (1, 1), "white"))) == []


def test_image_modes_are_converted():
    image = waybill("4312345678901")
    for mode, fmt in (("RGBA", "PNG"), ("P", "PNG"), ("L", "PNG"), ("CMYK", "JPEG")):
        assert read_barcodes(encode(image.convert(mode), fmt)) == ["4312345678901"], mode


# --------------------------------------------------------------------------- picking


def test_pick_waybill_number():
    texts = ["HTTPS://X.CN/A", "123456789012345678", "SF1402938475612", "755WF"]
    assert pick_waybill_number(texts, "sf") == "SF1402938475612"
    # no courier-specific match: prefer a known format over a longer unknown one
    assert pick_waybill_number(["ABCDEFGHIJKLMNOPQRS", "YT7512345678901"], "sf") == "YT7512345678901"
    # nothing known: the longest plausible
    assert pick_waybill_number(["ABCDEFGH", "ABCDEFGHIJKL", "HTTPS://X"], "zto") == "ABCDEFGHIJKL"
    assert pick_waybill_number(["sf 1402 9384 75612"], "sf") == "SF1402938475612"
    assert pick_waybill_number([], "sf") is None
    assert pick_waybill_number(["HTTPS://X.CN/A?B", "12"], "sf") is None
    assert pick_waybill_number(["SF1402938475612"], "unknown-code") == "SF1402938475612"
    assert pick_waybill_number(["ABCDEFGH", "SF1402938475612"], "other") == "SF1402938475612"


# --------------------------------------------------------------------------- e2e fixture


def test_fixture_photo_is_readable_and_small():
    assert FIXTURE.exists(), "regenerate with: .venv/bin/python -m tests.test_couriers"
    data = FIXTURE.read_bytes()
    assert len(data) < 60_000
    assert data[:2] == b"\xff\xd8"  # JPEG
    texts = read_barcodes(data)
    assert FIXTURE_NUMBER in texts
    assert pick_waybill_number(texts, "sf") == FIXTURE_NUMBER
    assert pick_waybill_number(texts, "yto") == FIXTURE_NUMBER


def test_fixture_generator_is_reproducible_enough():
    data = make_fixture_photo()
    assert len(data) < 60_000
    assert pick_waybill_number(read_barcodes(data), "sf") == FIXTURE_NUMBER


if __name__ == "__main__":  # pragma: no cover
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_bytes(make_fixture_photo())
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")


def test_a_decompression_bomb_is_refused_before_it_is_decoded(monkeypatch):
    """M7: a PNG of 13000 × 13000 pixels is a few kilobytes and would decode to hundreds of megabytes (Pillow
    only raises above twice its own limit); it is refused from its header."""
    from PIL import ImageFile

    buffer = io.BytesIO()
    Image.new("1", (13_000, 13_000), 1).save(buffer, format="PNG")
    assert len(buffer.getvalue()) < 1_000_000
    decoded = []
    original = ImageFile.ImageFile.load

    def spy(self):
        decoded.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    assert read_barcodes(buffer.getvalue()) == []
    assert all(w * h <= 40_000_000 for w, h in decoded), decoded
    photo = encode(waybill("SF1402938475612"), "JPEG", quality=90)  # an ordinary photo still reads
    assert read_barcodes(photo) == ["SF1402938475612"]


def test_barcode_reads_run_a_few_at_a_time(monkeypatch):
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from services import couriers

    active, peak, lock = [0], [0], threading.Lock()

    def slow_open(data):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1

    monkeypatch.setattr(couriers, "_open_gray", slow_open)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(read_barcodes, [b"x"] * 16))
    assert peak[0] == 2
