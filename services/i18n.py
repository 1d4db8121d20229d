"""gettext catalogues (zh_CN default, ru, en), loaded from .po at start-up so no build step is needed."""

from __future__ import annotations

import gettext
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

if TYPE_CHECKING:
    from services.storage.models import Member, Seller

LOCALES = ("zh_CN", "ru", "en")
DEFAULT_LOCALE = "zh_CN"
DOMAIN = "messages"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locales"


def N_(message: str) -> str:
    """Marks a string for extraction where it is translated later (e.g. in a table)."""
    return message


def pick_locale(stored: str | None, client_code: str | None = None) -> str:
    """Stored preference first, then the chat client's language: zh* -> zh_CN, ru -> ru, else en."""
    code = (stored or client_code or "").lower().replace("_", "-")
    if not code or code.startswith("zh"):
        return DEFAULT_LOCALE
    if code.split("-")[0] == "ru":
        return "ru"
    return "en"


def normalize_locale(text: str) -> str | None:
    """User input such as 'zh', '中文', 'ru', 'en' -> a shipped locale, or None."""
    value = text.strip().lower()
    aliases = {"zh": "zh_CN", "cn": "zh_CN", "zh_cn": "zh_CN", "zh-cn": "zh_CN", "中文": "zh_CN",
               "ru": "ru", "рус": "ru", "русский": "ru", "en": "en", "english": "en"}
    return aliases.get(value)


def _load(locale: str, localedir: Path) -> gettext.NullTranslations:
    po_path = localedir / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po_path.exists():
        return gettext.NullTranslations()
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


@dataclass
class Translator:
    """One member's language and time zone: every user-facing string and time goes through here."""

    locale: str
    zone: ZoneInfo
    _tr: gettext.NullTranslations = field(repr=False)

    def gettext(self, message: str) -> str:
        return self._tr.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._tr.ngettext(singular, plural, n)

    def pgettext(self, context: str, message: str) -> str:
        return self._tr.pgettext(context, message)

    def local_time(self, moment: datetime | None) -> str:
        if moment is None:
            return "—"
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")

    def time_left(self, deadline: datetime | None, now: datetime) -> str:
        """'3 h 20 min left' or 'overdue by 2 h', with real plurals."""
        if deadline is None:
            return ""
        delta = deadline - now
        overdue = delta < timedelta(0)
        text = self.duration(abs(delta))
        if overdue:
            return self.gettext("overdue by {duration}").format(duration=text)
        return self.gettext("{duration} left").format(duration=text)

    def duration(self, delta: timedelta) -> str:
        minutes = int(delta.total_seconds() // 60)
        days, rest = divmod(minutes, 1440)
        hours, mins = divmod(rest, 60)
        parts = []
        if days:
            parts.append(self.ngettext("{n} day", "{n} days", days).format(n=days))
        if hours:
            parts.append(self.ngettext("{n} hour", "{n} hours", hours).format(n=hours))
        if mins and not days:
            parts.append(self.ngettext("{n} minute", "{n} minutes", mins).format(n=mins))
        if not parts:
            parts.append(self.ngettext("{n} minute", "{n} minutes", 0).format(n=0))
        return " ".join(parts)


class Catalogs:
    """Loads each catalogue once; hands out Translators per (locale, zone)."""

    def __init__(self, localedir: Path = LOCALE_DIR):
        self._localedir = localedir
        self._loaded: dict[str, gettext.NullTranslations] = {}

    def translations(self, locale: str) -> gettext.NullTranslations:
        locale = locale if locale in LOCALES else DEFAULT_LOCALE
        if locale not in self._loaded:
            self._loaded[locale] = _load(locale, self._localedir)
        return self._loaded[locale]

    def translator(self, locale: str | None, zone: str | None = None) -> Translator:
        locale = locale if locale in LOCALES else DEFAULT_LOCALE
        return Translator(locale, ZoneInfo(zone or "Asia/Shanghai"), self.translations(locale))

    def for_member(self, member: Member, seller: Seller) -> Translator:
        """The member's language, and their zone or else the seller's."""
        return self.translator(member.locale, member.timezone or seller.timezone)
