"""Text commands shared by the WeCom app and the Official Account: Chinese words first (订单, 状态, 帮助,
语言, 加入), their English forms and Telegram's slash forms too, so nobody has to remember which."""

from __future__ import annotations

from dataclasses import dataclass

from services.i18n import Translator

WORDS = {
    "订单": "orders", "待打包": "orders", "orders": "orders",
    "状态": "status", "查询": "status", "查询订单": "status", "status": "status",
    "帮助": "help", "help": "help", "?": "help", "？": "help",
    "语言": "lang", "lang": "lang",
    "加入": "join", "join": "join",
}
CHINESE_WORDS = sorted((w for w in WORDS if not w.isascii()), key=len, reverse=True)


@dataclass(frozen=True)
class Command:
    name: str
    arg: str = ""


def parse_command(text: str) -> Command | None:
    """'状态 123', '状态123', 'status 123', '/status 123' -> Command('status', '123'); other text -> None."""
    stripped = text.strip()
    head, _, rest = stripped.partition(" ")
    name = WORDS.get(head.lstrip("/").lower())
    if name:
        return Command(name, rest.strip())
    for word in CHINESE_WORDS:  # Chinese needs no space between the word and the number
        if stripped.startswith(word):
            return Command(WORDS[word], stripped[len(word):].strip())
    return None


def help_text(tr: Translator) -> str:
    return tr.gettext(
        "Commands:\n订单: open orders, most urgent first\n状态 <number>: status of a posting, order or "
        "tracking number (or just send the number)\n语言 zh|ru|en: language\nWhen I ask for a waybill number, "
        "type it or send a photo of the waybill.")
