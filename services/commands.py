"""The command vocabulary, once for every channel, and what each surface can carry.

A member may type a command as Telegram's slash form, or as a word in Chinese, Russian or English, on any
channel where free text reaches us (订单, заказы, orders, /orders): nobody has to remember which. How a
hint *names* a command depends on the surface: Telegram and the console show `/orders`, WeChat shows the
word in the member's language, because WeChat has no slash commands and its keyboards are Chinese.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.i18n import N_, Translator


class Verb(StrEnum):
    START = "start"
    HELP = "help"
    ORDERS = "orders"
    STATUS = "status"
    LANG = "lang"
    JOIN = "join"
    CONNECT = "connect"
    SETTINGS = "settings"
    INVITE = "invite"
    MEMBERS = "members"
    STOCK = "stock"
    INDEX = "index"
    PICKLIST = "picklist"
    LABELS = "labels"


# every spelling a person may type, lower case; the first Chinese/Russian word of a verb is how it is shown
WORDS: dict[Verb, tuple[str, ...]] = {
    Verb.START: ("start", "开始", "старт"),
    Verb.HELP: ("help", "帮助", "помощь", "?", "？"),
    Verb.ORDERS: ("orders", "订单", "待打包", "заказы"),
    Verb.STATUS: ("status", "状态", "查询", "查询订单", "статус"),
    Verb.LANG: ("lang", "language", "语言", "язык"),
    Verb.JOIN: ("join", "加入", "вступить"),
    Verb.CONNECT: ("connect", "连接", "绑定店铺", "подключить"),
    Verb.SETTINGS: ("settings", "设置", "настройки"),
    Verb.INVITE: ("invite", "邀请", "пригласить"),
    Verb.MEMBERS: ("members", "成员", "участники"),
    Verb.LABELS: ("labels", "面单", "打印面单", "этикетки", "label"),
    Verb.STOCK: ("stock", "库存", "остатки", "склад"),
    Verb.INDEX: ("index", "指数", "错误指数", "индекс"),
    Verb.PICKLIST: ("picklist", "拣货", "拣货单", "сборка", "подбор", "picks"),
}
_LOOKUP = {word: verb for verb, words in WORDS.items() for word in words}
def _cjk(word: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in word)


# Chinese needs no space between the word and the number ('状态123'); longest first so 查询订单 beats 查询
UNSPACED = sorted((w for w in _LOOKUP if _cjk(w)), key=len, reverse=True)


@dataclass(frozen=True)
class Command:
    verb: Verb
    arg: str = ""


def parse_command(text: str) -> Command | None:
    """'状态 123', '状态123', 'status 123', '/status 123', '/status@ozonbot 123', 'Статус 123' -> STATUS '123';
    any other text -> None (a waybill number, or a number to look up)."""
    stripped = text.strip()
    head, _, rest = stripped.partition(" ")
    head = head.lstrip("/").split("@", 1)[0].lower()
    verb = _LOOKUP.get(head)
    if verb is not None:
        return Command(verb, rest.strip())
    for word in UNSPACED:
        if stripped.startswith(word):
            return Command(_LOOKUP[word], stripped[len(word):].strip())
    return None


@dataclass(frozen=True)
class Surface:
    """What one channel can carry. The conversation shapes its answers to it: where there are no buttons, a
    link to the action page; where a typed message cannot be deleted, no secret is ever asked for in it."""

    channel: str
    slash_commands: bool  # commands are shown as /orders (Telegram, console) or as words (WeChat)
    buttons: bool  # a View's buttons can be pressed in the chat itself
    deletes_messages: bool  # the bot can delete a message a person sent (a /connect with a key)
    files: bool = True  # a label PDF can be sent into the chat
    action_page: bool = False  # the action page is how this surface acts where it has no buttons
    groups: bool = False  # a chat may hold several people (a Telegram group)

    def spell(self, verb: Verb, locale: str) -> str:
        """How a hint names the command on this surface, in the reader's language."""
        if self.slash_commands:
            return f"/{verb.value}"
        words = WORDS[verb]
        if locale.startswith("zh"):
            return next(w for w in words if _cjk(w))
        if locale.startswith("ru"):
            return next((w for w in words if any("а" <= ch.lower() <= "я" for ch in w)), words[0])
        return words[0]


TELEGRAM = Surface("telegram", slash_commands=True, buttons=True, deletes_messages=True, groups=True)
CONSOLE = Surface("console", slash_commands=True, buttons=True, deletes_messages=False)
WECOM = Surface("wecom", slash_commands=False, buttons=True, deletes_messages=False, action_page=True)
OFFICIAL = Surface("wechat", slash_commands=False, buttons=False, deletes_messages=False, files=False,
                   action_page=True)
SURFACES = {surface.channel: surface for surface in (TELEGRAM, CONSOLE, WECOM, OFFICIAL)}


def spelled(channel: str, locale: str) -> dict[str, str]:
    """Every command as the member's own surface names it, for hints: {"orders": "订单", …} or {"orders": "/orders"}."""
    surface = SURFACES.get(channel, TELEGRAM)
    return {verb.value: surface.spell(verb, locale) for verb in Verb}

# What a surface cannot carry, and what it gets instead: the one list (the parity test reads it too).
INSTEAD: dict[tuple[str, str], str] = {
    ("wecom", "join"): "members of the seller's WeCom app are its desk: whoever the app is visible to joins on first "
                       "use (the owner is named by `ozonbot seller wecom --owner`)",
    ("wechat", "buttons"): "a View's buttons become one link to the action page, which shows the same card and acts "
                           "through the same calls; settings are typed (设置 courier sf)",
    ("wechat", "files"): "the label PDF, the pick-list PDF and the /labels batch PDF are downloaded from the "
                         "action page (the reply carries the link)",
    ("console", "connect"): "the demo connects its sandbox seller at start",
    ("console", "join"): "the demo has one member, its owner",
    ("console", "photo"): "a terminal sends no photos: the waybill number is typed",
    ("wechat", "stock"): "the stock is set by typing the number (库存 <SKU> 12); the action page shows orders only",
}

# The command menus a surface shows (Telegram's per-scope command lists): what each kind of chat can do.
DESCRIPTIONS = {
    Verb.START: N_("start here"),
    Verb.HELP: N_("every command, explained"),
    Verb.ORDERS: N_("open orders, most urgent first"),
    Verb.STATUS: N_("status of a posting, order or tracking number"),
    Verb.LANG: N_("language: zh, ru or en"),
    Verb.JOIN: N_("join a desk with the owner's code"),
    Verb.CONNECT: N_("connect your Ozon account"),
    Verb.SETTINGS: N_("quiet hours, reminders, default courier"),
    Verb.INVITE: N_("a one-time code for a packer"),
    Verb.MEMBERS: N_("who is on the desk"),
    Verb.STOCK: N_("FBS stock of an item; set the free stock"),
    Verb.INDEX: N_("Ozon's error index and this week's fines"),
    Verb.PICKLIST: N_("today's pick list by SKU, with a PDF to print"),
    Verb.LABELS: N_("one PDF with the labels of every packed posting"),
}
MENUS = {
    "private": (Verb.ORDERS, Verb.PICKLIST, Verb.LABELS, Verb.STATUS, Verb.STOCK, Verb.SETTINGS, Verb.JOIN,
                Verb.CONNECT, Verb.LANG, Verb.HELP),
    "owner": (Verb.ORDERS, Verb.PICKLIST, Verb.LABELS, Verb.STATUS, Verb.STOCK, Verb.INDEX, Verb.INVITE,
              Verb.MEMBERS, Verb.SETTINGS, Verb.CONNECT, Verb.LANG, Verb.HELP),
    "group": (Verb.ORDERS, Verb.PICKLIST, Verb.LABELS, Verb.STATUS, Verb.STOCK, Verb.HELP),
}


def menu(kind: str, tr: Translator) -> list[tuple[str, str]]:
    """(command, description) pairs of one menu, in the reader's language."""
    return [(verb.value, tr.gettext(DESCRIPTIONS[verb])) for verb in MENUS[kind]]

# A chat app's own menu (the Official Account's, the WeCom app's): each click key is a verb of the
# conversation, except QUERY, which asks for the number to look up.
MENU_KEYS = {"ORDERS": Verb.ORDERS, "SETTINGS": Verb.SETTINGS, "INVITE": Verb.INVITE, "MEMBERS": Verb.MEMBERS,
             "CONNECT": Verb.CONNECT, "HELP": Verb.HELP}
