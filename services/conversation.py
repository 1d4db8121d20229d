"""What a person's message or tap means, once for every channel.

An adapter (Telegram, the WeCom app, the Official Account, the console) resolves who is speaking once per
update (`Conversation.caller`), calls one verb (`command`, `text`, `press`, `photo`), and renders the
channel-neutral `Answer` it gets back. Nothing here knows a chat platform: the adapter passes its
`Surface`, and the answers are shaped to what that surface can carry (slash commands or words, buttons or
a link to the action page, whether a message with a key in it can be deleted).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from services.background import Background
from services.buttons import ButtonRouter
from services.commands import Surface, Verb, parse_command
from services.desk import ConnectError, Desk
from services.error_index import ErrorIndexDesk
from services.i18n import N_, Catalogs, Translator, normalize_locale, pick_locale
from services.labels import LabelBatches
from services.members import Roster
from services.picklist import PickLists
from services.preferences import Preferences
from services.shipping import Shipping
from services.stock import StockDesk
from services.storage.models import Member, Seller
from services.storage.states import PEOPLE, Role
from services.views import Answer, View

log = logging.getLogger(__name__)
REMOVE_WORDS = ("remove", "移除", "删除", "удалить")


@dataclass(frozen=True)
class Caller:
    """Who is speaking, resolved once per update: the person, where they speak, and how to talk to them."""

    surface: Surface
    external_id: str
    chat_id: str | None  # where a direct answer goes; None when the person spoke in a group
    name: str
    private: bool
    member: Member | None
    seller: Seller | None
    tr: Translator
    person: bool = True  # False for a platform's shared sender (an anonymous group admin, a channel)

    @property
    def on_desk(self) -> bool:
        return self.person and self.member is not None and self.member.role in PEOPLE

    @property
    def owner(self) -> bool:
        return self.on_desk and self.member.role == Role.OWNER

    def say(self, message: str, **names: str) -> Answer:
        """A reply in the caller's language; {orders}, {join} … name the commands of the caller's surface."""
        return Answer(replies=[View(text=self.tr.gettext(message).format(**self.spelled(), **names))])

    def spelled(self) -> dict[str, str]:
        return {verb.value: self.surface.spell(verb, self.tr.locale) for verb in Verb}



class Conversation:
    def __init__(self, *, desk: Desk, shipping: Shipping, buttons: ButtonRouter, preferences: Preferences, roster: Roster,
                 catalogs: Catalogs, first_poll: Callable[[Seller], Awaitable[object]], background: Background,
                 default_zone: str, on_secret: Callable[[str], None], key_form_url: Callable[[Caller], str] | None,
                 picklists: PickLists, labels: LabelBatches, invite_qr_url: Callable[[str], str] | None = None,
                 file_url: Callable[[Member, str], str] | None = None,
                 inbound: Callable[[Member, str, Translator], Awaitable[View | None]] | None = None,
                 stock: StockDesk | None = None, error_index: ErrorIndexDesk | None = None):
        """`inbound(member, text, tr)`: `<posting number> <waybill>`, a supplier's parcel (services.firstmile)."""
        self._desk = desk
        self._shipping = shipping
        self._buttons = buttons
        self._preferences = preferences
        self._roster = roster
        self._catalogs = catalogs
        self._first_poll = first_poll
        self._background = background
        self._zone = default_zone
        self._on_secret = on_secret
        self._key_form_url = key_form_url
        self._invite_qr_url = invite_qr_url
        self._stock = stock
        self._error_index = error_index
        self._picklists = picklists
        self._labels = labels
        self._file_url = file_url  # the action page's download of a file, for a chat that cannot carry one
        self._inbound = inbound

    # ---- who is speaking -----------------------------------------------------------------------
    async def caller(self, surface: Surface, external_id: str, *, chat_id: str | None, name: str = "",
                     private: bool = True, language_hint: str | None = None, person: bool = True,
                     member: Member | None = None) -> Caller:
        """`member` when the adapter already knows the membership (a WeCom app belongs to one seller)."""
        if member is None and person:
            member = await self._desk.member(surface.channel, external_id)
        seller = await Seller.get(id=member.seller_id) if member is not None else None
        return Caller(surface=surface, external_id=external_id, chat_id=chat_id, name=name, private=private,
                      member=member, seller=seller, tr=await self._translator(surface, external_id, member, seller,
                                                                            language_hint), person=person)

    async def _translator(self, surface: Surface, external_id: str, member: Member | None, seller: Seller | None,
                          hint: str | None) -> Translator:
        if member is not None:
            return self._catalogs.translator(member.locale, member.timezone or seller.timezone)
        stored = await self._desk.stored_locale(surface.channel, external_id)
        return self._catalogs.translator(pick_locale(stored, hint), self._zone)

    async def refreshed(self, caller: Caller) -> Caller:
        return await self.caller(caller.surface, caller.external_id, chat_id=caller.chat_id, name=caller.name,
                                 private=caller.private, person=caller.person)

    # ---- verbs ---------------------------------------------------------------------------------
    async def text(self, caller: Caller, text: str) -> Answer:
        """Free text: a command word, else the waybill number the bot asked for, else a number to look up."""
        command = parse_command(text)
        if command is not None:
            return await self.command(caller, command.verb, command.arg)
        if not caller.on_desk:
            return self._not_on_desk(caller) if caller.private else Answer()
        answer = await self._buttons.submit_reason(caller.member, text)  # a reason to refuse a cancellation
        if answer is None:
            answer = await self._shipping.submit_waybill(caller.member, text)
        if answer is None and self._inbound is not None:
            view = await self._inbound(caller.member, text, caller.tr)
            answer = Answer(replies=[view]) if view is not None else None
        if answer is not None:
            return answer
        if caller.private or _looks_like_number(text):
            return Answer(replies=[await self._desk.status_view(caller.member, text)])
        return Answer()

    async def command(self, caller: Caller, verb: Verb | str, arg: str = "") -> Answer:
        verb = Verb(verb)
        if not caller.person:
            return self._as_yourself(caller)
        if verb in _ANYONE:
            return await _ANYONE[verb](self, caller, arg)
        if verb is Verb.CONNECT:
            return await self._connect_command(caller, arg)
        if not caller.on_desk:
            return self._not_on_desk(caller)
        return await _DESK[verb](self, caller, arg)

    async def press(self, caller: Caller, data: str | None) -> Answer:
        member = caller.member if caller.person else None
        return await self._buttons.press(member, data, locale=caller.tr.locale)

    async def photo(self, caller: Caller, data: bytes) -> Answer:
        if not caller.on_desk:
            return self._not_on_desk(caller) if caller.private else Answer()
        answer = await self._shipping.submit_photo(caller.member, data)
        if answer is not None:
            return answer
        if not caller.private:
            return Answer()  # a group shares photos of all kinds: only an awaited waybill is ours
        return caller.say(N_("I read waybill photos when I ask for a waybill number: press Packed first, or type the "
                          "number."))

    async def join(self, caller: Caller, code: str) -> Answer:
        if not caller.person:
            return self._as_yourself(caller)
        member = None
        if code:
            member = await self._desk.redeem_invite(code, channel=caller.surface.channel,
                                                    external_id=caller.external_id,
                                                    chat_id=caller.chat_id if caller.private else None,
                                                    name=caller.name, locale=caller.tr.locale)
        if member is None:
            return caller.say(N_("That code is not valid (wrong, used or expired). Ask the owner for a new code "
                              "({invite})."))
        joined = await self.refreshed(caller)
        return joined.say(N_("✅ You are on the desk. New orders will appear here. {help} lists what you can do."))

    async def connect(self, caller: Caller, client_id: str, api_key: str, *, group_title: str = "") -> Answer:
        """Checks the key with Ozon and makes the caller the desk's owner; the key reaches nothing but storage."""
        if not caller.person:
            return replace(self._as_yourself(caller), alert=True)
        if caller.member is not None and caller.member.role != Role.OWNER:
            return replace(caller.say(N_("Only the desk owner can connect an Ozon account.")), alert=True)
        self._on_secret(api_key)
        try:
            connected = await self._desk.connect_seller(client_id, api_key,
                                                        by=(caller.surface.channel, caller.external_id))
        except ConnectError as exc:
            return Answer(replies=[View(text=connect_error(caller, exc))], alert=True)
        owner = await self._desk.join_as(
            connected.seller, channel=caller.surface.channel, external_id=caller.external_id,
            chat_id=caller.chat_id if caller.private else None, name=caller.name, locale=caller.tr.locale,
            role=Role.OWNER)
        if not caller.private and caller.chat_id:  # the group itself gets the desk's alerts
            await self._desk.join_as(connected.seller, channel=caller.surface.channel,
                                     external_id=f"chat:{caller.chat_id}", chat_id=caller.chat_id,
                                     name=group_title, locale=caller.tr.locale, role=Role.GROUP)
        self._background.spawn(self._first_poll(connected.seller), name=f"first poll of seller {connected.seller.id}")
        tr = self._catalogs.translator(owner.locale, owner.timezone or connected.seller.timezone)
        warehouses = ", ".join(w.name or str(w.warehouse_id) for w in connected.warehouses) or "—"
        return Answer(replies=[View(text=tr.gettext(
            "✅ Connected Ozon seller {client_id}.\nWarehouses: {warehouses}\nKey valid until: {expiry}\n"
            "New orders will appear here. {invite} adds a packer.").format(
            client_id=connected.seller.client_id, warehouses=warehouses,
            expiry=tr.local_time(connected.roles.expires_at), invite=caller.surface.spell(Verb.INVITE, tr.locale)))])

    # ---- commands anyone may send --------------------------------------------------------------
    async def _start(self, caller: Caller, arg: str) -> Answer:
        if arg and not caller.on_desk:  # a deep link /start <code> is a join
            return await self.join(caller, arg)
        if caller.on_desk:
            return caller.say(N_("👋 Welcome back. {orders} shows what is open, {help} lists every command."))
        return caller.say(N_("👋 I run your Ozon shipping desk: new orders, couriers, packing, labels and tracking."
                          "\n\nOwner: send {connect} to connect your Ozon account.\nPacker: send {join} <code> "
                          "(the owner gets the code with {invite})."))

    async def _help(self, caller: Caller, arg: str) -> Answer:
        return caller.say(
            N_("{orders}: open orders, most urgent first\n{picklist}: today's pick list by SKU, with a PDF to print"
               "\n{labels}: one PDF with the labels of every packed posting ({labels} all: print them again)"
               "\n{status} <number>: status of a posting, order or tracking "
               "number (or just send the number)\n{settings}: your settings\n{invite}: a one-time code for a "
               "packer (owner)\n{members}: who is on the desk; the owner removes members there\n{join} <code>: join "
               "a desk\n{connect}: connect your Ozon account (owner)\n{lang} zh|ru|en: language\nWhen I ask for a "
               "waybill number, type it or send a photo of the waybill."))

    async def _lang(self, caller: Caller, arg: str) -> Answer:
        locale = normalize_locale(arg) if arg else None
        if locale is None:
            return caller.say(N_("Usage: {lang} zh | ru | en"))
        await self._desk.set_locale(caller.surface.channel, caller.external_id, locale)
        if caller.member is not None:
            caller.member.locale = locale
        changed = await self._translator(caller.surface, caller.external_id, caller.member, caller.seller, None)
        return Answer(replies=[View(text=changed.gettext("Language set: English"))])

    async def _join(self, caller: Caller, arg: str) -> Answer:
        return await self.join(caller, arg.split()[0] if arg.split() else "")

    # ---- commands of the desk ------------------------------------------------------------------
    async def _orders(self, caller: Caller, arg: str) -> Answer:
        return Answer(replies=[await self._desk.orders_view(caller.member)])

    async def _status(self, caller: Caller, arg: str) -> Answer:
        if not arg:
            return caller.say(N_("Usage: {status} <posting, order or tracking number>"))
        return Answer(replies=[await self._desk.status_view(caller.member, arg.split()[0])])

    async def _settings(self, caller: Caller, arg: str) -> Answer:
        name, _, value = arg.strip().partition(" ")
        if name:
            return await self._preferences.set_typed(caller.member, name, value.strip())
        return Answer(replies=[await self._preferences.view(caller.member)])

    async def _members(self, caller: Caller, arg: str) -> Answer:
        if arg.split() and arg.split()[0].lower() in REMOVE_WORDS:
            return await self._roster.remove_typed(caller.member, arg)
        return Answer(replies=[await self._roster.view(caller.member)])

    async def _stock_command(self, caller: Caller, arg: str) -> Answer:
        usage = caller.tr.gettext("Usage: {stock} <offer_id or SKU> shows the stock; {stock} <offer_id or SKU> "
                                  "<number> sets the free stock").format(**caller.spelled())
        if self._stock is None:
            return Answer(replies=[View(text=usage)])
        return await self._stock.command(caller.member, arg, buttons=caller.surface.buttons, usage=usage)

    async def _index(self, caller: Caller, arg: str) -> Answer:
        if self._error_index is None:
            return self._not_on_desk(caller)
        return Answer(replies=[await self._error_index.view(caller.member)])

    async def _picklist(self, caller: Caller, arg: str) -> Answer:
        views = await self._picklists.views(caller.member)
        return Answer(replies=[self._carried(caller, view, "picklist") for view in views])

    async def _labels_command(self, caller: Caller, arg: str) -> Answer:
        file_url = None
        if not caller.surface.files and self._file_url is not None:
            def file_url(name: str) -> str:
                return self._file_url(caller.member, name)
        views = await self._labels.views(caller.member, arg, command=caller.surface.spell(Verb.LABELS, caller.tr.locale),
                                         file_url=file_url)
        return Answer(replies=[self._carried(caller, view, "labels") for view in views])

    def _carried(self, caller: Caller, view: View, name: str) -> View:
        """A view with a file, as the caller's surface can take it: where files cannot go into the chat, the
        text carries the action page's link to the file instead."""
        if view.attachment is None or caller.surface.files:
            return view
        if self._file_url is None:
            return replace(view, attachment=None)
        link = caller.tr.gettext("PDF to print: {url}").format(url=self._file_url(caller.member, name))
        return replace(view, text=f"{view.text}\n{link}", attachment=None)

    async def _invite(self, caller: Caller, arg: str) -> Answer:
        invite = await self._desk.create_invite(caller.member)
        if invite is None:
            return caller.say(N_("Only the desk owner can invite packers."))
        text = caller.tr.gettext("One-time code for a packer: {code}\nThey send {join} {code} to this bot within 48 "
                                 "hours.").format(code=invite.code, join=caller.surface.spell(Verb.JOIN,
                                                                                            caller.tr.locale))
        if self._invite_qr_url is not None:  # the same code binds a WeChat follower by QR code
            text += "\n" + caller.tr.gettext("WeChat: scan the QR code at {url}").format(
                url=self._invite_qr_url(invite.code))
        return Answer(replies=[View(text=text)])

    async def _connect_command(self, caller: Caller, arg: str) -> Answer:
        """Where the chat can delete the message, the key may come in it; elsewhere only through the form."""
        if caller.member is not None and caller.member.role != Role.OWNER:
            return caller.say(N_("Only the desk owner can connect an Ozon account."))
        parts = arg.split()
        if caller.surface.deletes_messages and len(parts) == 2:
            return await self.connect(caller, parts[0], parts[1])
        if parts and not caller.surface.deletes_messages:
            for part in parts:
                self._on_secret(part)
            if not caller.private:  # a group the bot may not delete from (M2): a private chat is the way
                return Answer(replies=[View(text=connect_error(caller, ConnectError("exposed")))], alert=True)
            warning = caller.tr.gettext(
                "⚠️ A key typed here stays in this chat: I cannot delete it. Revoke that key in the Ozon cabinet "
                "(Settings → Seller API) and make a new one. Nothing was stored.")
            return Answer(replies=[View(text=warning), *self._key_form(caller).replies])
        if self._key_form_url is not None and not caller.surface.deletes_messages:
            return self._key_form(caller)
        return caller.say(N_("Usage: {connect} <client_id> <api_key> (Ozon cabinet → Settings → Seller API). I delete "
                          "the message with the key at once."))

    def _key_form(self, caller: Caller) -> Answer:
        if self._key_form_url is None:
            return caller.say(N_("Connecting a key needs the action page, which this server does not serve. Ask the "
                              "operator to set OZONBOT_PUBLIC_URL."))
        return caller.say(N_("Open this one-time link to connect your Ozon account (Client-Id and API key from the Ozon "
                          "cabinet → Settings → Seller API). It works for 30 minutes and only for you:\n{url}"),
                          url=self._key_form_url(caller))

    # ---- refusals ------------------------------------------------------------------------------
    def _not_on_desk(self, caller: Caller) -> Answer:
        return caller.say(N_("You are not on a desk yet. Owner: send {connect}. Packer: ask the owner for a code and "
                          "send {join} <code>."))

    def _as_yourself(self, caller: Caller) -> Answer:
        return caller.say(N_("I cannot tell who you are: this was sent on behalf of a group or channel. Send it as "
                          "yourself (turn off \"Remain anonymous\" in the group's admin rights)."))


_ANYONE = {Verb.START: Conversation._start, Verb.HELP: Conversation._help, Verb.LANG: Conversation._lang,
           Verb.JOIN: Conversation._join}
_DESK = {Verb.ORDERS: Conversation._orders, Verb.STATUS: Conversation._status,
         Verb.SETTINGS: Conversation._settings, Verb.INVITE: Conversation._invite, Verb.MEMBERS: Conversation._members,
         Verb.STOCK: Conversation._stock_command, Verb.PICKLIST: Conversation._picklist,
         Verb.LABELS: Conversation._labels_command, Verb.INDEX: Conversation._index}


def connect_error(caller: Caller, exc: ConnectError) -> str:
    """What a refused key means, in one place for every channel and the key form."""
    _ = caller.tr.gettext
    connect = caller.surface.spell(Verb.CONNECT, caller.tr.locale)
    if exc.reason == "bad_client_id":
        return _("The Client-Id is a number, for example 123456.")
    if exc.reason == "bad_key":
        return _("That API key is empty or too long. Copy it again from the Ozon cabinet (Settings → Seller API).")
    if exc.reason == "unavailable":
        return _("Ozon is not answering right now, so the key could not be checked. Nothing was stored; try again "
                 "in a few minutes.")
    if exc.reason == "exposed":
        return _("I could not delete your message with the API key, so everyone in this group can read it. "
                 "Nothing was stored: revoke that key in the Ozon cabinet (Settings → Seller API), then send "
                 "/connect with a new key to me in a private chat (or make me an admin who may delete messages).")
    if exc.reason == "taken":
        return _("This Ozon seller already has a desk, and you are not its owner. Nothing changed; its owners "
                 "were told. Ask an owner for an invite.")
    if exc.reason == "missing_methods":
        return _("This API key may not do what the bot needs ({methods}). Nothing was stored. Create a key with "
                 "the “Posting FBS” or “Admin” role in the Ozon cabinet (Settings → Seller API) and send {connect} "
                 "again.").format(methods=exc.detail, connect=connect)
    if exc.detail == "deactivated":
        return _("Ozon says this API key is deactivated. Create a new one in the Ozon cabinet (Settings → Seller "
                 "API) and send {connect} again. Nothing was stored.").format(connect=connect)
    return _("Ozon refused this Client-Id and API key ({reason}). Check both in the Ozon cabinet (Settings → Seller "
             "API) and send {connect} again. Nothing was stored.").format(reason=exc.detail or exc.reason,
                                                                        connect=connect)


def _looks_like_number(text: str) -> bool:
    stripped = text.strip()
    return 6 <= len(stripped) <= 64 and " " not in stripped and any(ch.isdigit() for ch in stripped)


