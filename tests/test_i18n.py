"""The catalogues are complete: every string in the code is in the template, translated in zh_CN and ru,
with the same placeholders, and Russian plurals have their three real forms."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from services.i18n import LOCALE_DIR, Catalogs, pick_locale

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2), "N_": None}
PLACEHOLDER = re.compile(r"\{[a-z_]*\}")


def _code_msgids() -> set[str]:
    found = set()
    for package in ("bot", "handlers", "services"):
        for _, _, message, _, _ in extract_from_dir(ROOT / package, keywords=KEYWORDS):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


def _catalog(locale: str):
    path = LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    return read_po(BytesIO(path.read_bytes()), locale=locale)


def test_every_string_in_the_code_is_in_every_catalogue():
    code = _code_msgids()
    assert len(code) > 50
    for locale in ("zh_CN", "ru", "en"):
        ids = {m.id[0] if isinstance(m.id, tuple) else m.id for m in _catalog(locale) if m.id}
        missing = sorted(code - ids)
        assert not missing, f"{locale} lacks {len(missing)} strings, run `make catalog`: {missing[:5]}"


@pytest.mark.parametrize("locale", ["zh_CN", "ru"])
def test_translations_are_complete_and_keep_placeholders(locale):
    for message in _catalog(locale):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), f"{locale}: untranslated {ids[0]!r}"
        assert not message.fuzzy, f"{locale}: fuzzy {ids[0]!r}"
        wanted = set(PLACEHOLDER.findall(ids[0]))
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) == wanted, f"{locale}: placeholders differ in {ids[0]!r}"
        if locale == "ru" and isinstance(message.id, tuple):
            assert len(strings) == 3, f"ru plural needs 3 forms: {ids[0]!r}"


def test_russian_plurals_are_real_plurals():
    tr = Catalogs().translator("ru", "Europe/Moscow")
    assert tr.duration(timedelta(hours=1)) != tr.duration(timedelta(hours=2)).replace("2", "1")
    forms = {n: tr.ngettext("{n} hour", "{n} hours", n).format(n=n) for n in (1, 2, 5, 11, 21, 22)}
    assert forms[1].split()[1] == forms[21].split()[1]
    assert forms[2].split()[1] == forms[22].split()[1]
    assert forms[5].split()[1] == forms[11].split()[1]
    assert len({forms[1].split()[1], forms[2].split()[1], forms[5].split()[1]}) == 3


def test_chinese_is_the_default_and_times_are_local():
    catalogs = Catalogs()
    assert pick_locale(None, None) == "zh_CN"
    assert pick_locale(None, "zh-hans") == "zh_CN"
    assert pick_locale(None, "ru") == "ru"
    assert pick_locale(None, "de") == "en"
    tr = catalogs.translator(None, "Asia/Urumqi")
    assert tr.locale == "zh_CN"
    assert tr.local_time(datetime(2026, 10, 2, 9, 0, tzinfo=UTC)) == "2026-10-02 15:00"
    assert tr.gettext("✅ Packed") != "✅ Packed"
