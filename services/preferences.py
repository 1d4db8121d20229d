"""The desk's settings in chat: time zone, quiet hours, reminder leads, digest time and default courier.
Buttons offer common choices; `/settings <name> <value>` takes any valid value. Every duty reads the
seller's row each time it runs, so a change takes effect without a restart."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.actions import Action, ActionCodec
from services.cards import courier_name
from services.commands import spelled
from services.couriers import COURIERS, get_courier
from services.durations import clock_time, parse_leads, parse_quiet_hours
from services.i18n import N_, Catalogs, Translator
from services.storage.models import Member, Seller
from services.storage.states import PEOPLE, Role
from services.views import Answer, Button, View

NO_COURIER = "none"


@dataclass(frozen=True)
class Setting:
    name: str  # as typed after /settings, and the button argument
    title: str  # N_ marked
    column: str
    choices: tuple[str, ...]


SETTINGS = (
    Setting("tz", N_("🕒 Time zone"), "timezone",
            ("Asia/Shanghai", "Asia/Urumqi", "Europe/Moscow", "Asia/Yekaterinburg", "Asia/Novosibirsk",
             "Asia/Vladivostok", "Asia/Almaty", "UTC")),
    Setting("quiet", N_("🌙 Quiet hours"), "quiet_hours",
            ("off", "22:00-08:00", "23:00-07:00", "21:00-09:00", "00:00-08:00")),
    Setting("leads", N_("⏰ Reminders before ship-by"), "reminder_leads",
            ("24h,4h,1h", "12h,2h,30m", "4h,1h", "2h,30m")),
    Setting("digest", N_("☀️ Morning digest"), "digest_time", ("off", "07:00", "08:00", "09:00", "10:00")),
    Setting("courier", N_("🚚 Default courier"), "default_courier",
            (NO_COURIER, *(courier.code for courier in COURIERS))),
)
BY_NAME = {setting.name: setting for setting in SETTINGS}


class InvalidValue(ValueError):
    pass


def normalize(setting: Setting, raw: str) -> str | None:
    """The value to store, or InvalidValue. None means 'not set' (the operator's default applies)."""
    value = raw.strip()
    if setting.name == "tz":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidValue(value) from None
        return value
    if setting.name == "quiet":
        try:
            window = parse_quiet_hours(value)
        except ValueError:
            raise InvalidValue(value) from None
        return "off" if window is None else f"{window[0]:%H:%M}-{window[1]:%H:%M}"
    if setting.name == "leads":
        try:
            leads = parse_leads(value)
        except ValueError:
            raise InvalidValue(value) from None
        stored = ",".join(_short(lead.total_seconds()) for lead in leads)
        if len(stored) > 64 or parse_leads(stored) != leads:  # L1: what is stored must read back the same
            raise InvalidValue(value)
        return stored
    if setting.name == "digest":
        if value.lower() == "off":
            return "off"
        try:
            return clock_time(value).strftime("%H:%M")
        except ValueError:
            raise InvalidValue(value) from None
    if value.lower() in (NO_COURIER, "off", "-"):
        return None
    if get_courier(value.lower()) is None:
        raise InvalidValue(value)
    return value.lower()


def _short(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


class Preferences:
    def __init__(self, *, codec: ActionCodec, catalogs: Catalogs, default_leads: str):
        self._codec = codec
        self._catalogs = catalogs
        self._default_leads = default_leads

    async def view(self, member: Member) -> View:
        seller = await Seller.get(id=member.seller_id)
        tr = self._catalogs.for_member(member, seller)
        return self._main(tr, seller, member)

    async def press(self, member: Member | None, action: Action) -> Answer:
        """A settings button: open a list of choices, choose one, or go back."""
        if member is None or member.role not in PEOPLE:
            tr = self._catalogs.translator(member.locale if member else None)
            return Answer(toast=tr.gettext("This button is not for you: the order belongs to another desk."),
                          alert=True)
        seller = await Seller.get(id=member.seller_id)
        tr = self._catalogs.for_member(member, seller)
        name, _, index = action.arg.partition(":")
        setting = BY_NAME.get(name)
        if setting is None:
            return Answer(edit=self._main(tr, seller, member))
        if not index:
            return Answer(edit=self._choices(tr, seller, setting))
        if member.role != Role.OWNER:
            return Answer(toast=tr.gettext("Only the desk's owner can change its settings."), alert=True)
        if not index.isdigit() or int(index) >= len(setting.choices):
            return Answer(edit=self._main(tr, seller, member))
        return await self._store(member, seller, setting, setting.choices[int(index)])

    async def set_typed(self, member: Member, name: str, raw: str) -> Answer:
        """`/settings quiet 23:00-07:00` and the like."""
        seller = await Seller.get(id=member.seller_id)
        tr = self._catalogs.for_member(member, seller)
        setting = BY_NAME.get(name.lower())
        if setting is None or not raw.strip():
            return Answer(replies=[View(text=self._usage(tr, member))])
        if member.role != Role.OWNER:
            return Answer(toast=tr.gettext("Only the desk's owner can change its settings."))
        return await self._store(member, seller, setting, raw)

    async def _store(self, member: Member, seller: Seller, setting: Setting, raw: str) -> Answer:
        tr = self._catalogs.for_member(member, seller)
        try:
            value = normalize(setting, raw)
        except InvalidValue:
            return Answer(toast=self._invalid(tr, setting, raw), alert=True)
        await Seller.filter(id=seller.id).update(**{setting.column: value})
        await seller.refresh_from_db()
        tr = self._catalogs.for_member(member, seller)  # a new zone shows at once
        toast = tr.gettext("Saved: {setting} = {value}").format(
            setting=tr.gettext(setting.title), value=self._shown(tr, seller, setting))
        return Answer(toast=toast, edit=self._main(tr, seller, member))

    # ---- views -------------------------------------------------------------------------------------
    def _main(self, tr: Translator, seller: Seller, member: Member) -> View:
        lines = [tr.gettext("⚙️ Settings of seller {client_id}").format(client_id=seller.client_id), ""]
        lines += [f"{tr.gettext(s.title)}: {self._shown(tr, seller, s)}" for s in SETTINGS]
        lines += ["", tr.gettext("Language: {lang} zh|ru|en").format(**spelled(member.channel, tr.locale)),
                  self._usage(tr, member)]
        if member.role != Role.OWNER:
            lines.append(tr.gettext("Only the desk's owner can change its settings."))
            return View(text="\n".join(lines))
        buttons = [Button(tr.gettext(s.title), self._codec.encode("s", 0, s.name)) for s in SETTINGS]
        return View(text="\n".join(lines), buttons=tuple(tuple(buttons[i:i + 2]) for i in range(0, len(buttons), 2)))

    def _choices(self, tr: Translator, seller: Seller, setting: Setting) -> View:
        current = getattr(seller, setting.column) or (NO_COURIER if setting.name == "courier" else "")
        if setting.name == "leads":
            current = current or self._default_leads
        buttons = []
        for index, choice in enumerate(setting.choices):
            label = self._label(tr, setting, choice)
            buttons.append(Button(("• " if choice == current else "") + label,
                                  self._codec.encode("s", 0, f"{setting.name}:{index}")))
        rows = [tuple(buttons[i:i + 2]) for i in range(0, len(buttons), 2)]
        rows.append((Button(tr.gettext("⬅️ Back"), self._codec.encode("s", 0, "main")),))
        text = tr.gettext("{setting}: choose a value (now: {value})").format(
            setting=tr.gettext(setting.title), value=self._shown(tr, seller, setting))
        return View(text=text, buttons=tuple(rows))

    def _shown(self, tr: Translator, seller: Seller, setting: Setting) -> str:
        value = getattr(seller, setting.column)
        if setting.name == "leads" and not value:
            return self._label(tr, setting, self._default_leads)
        return self._label(tr, setting, value or NO_COURIER)

    @staticmethod
    def _label(tr: Translator, setting: Setting, value: str) -> str:
        if value == "off" or (setting.name == "courier" and value == NO_COURIER):
            return tr.gettext("off") if setting.name != "courier" else tr.gettext("none, choose each time")
        if setting.name == "courier":
            return courier_name(tr, value)
        if setting.name == "leads":
            return ", ".join(value.split(","))
        return value

    @staticmethod
    def _usage(tr: Translator, member: Member) -> str:
        return tr.gettext("Any value: {settings} tz Asia/Urumqi · quiet 23:00-07:00 · leads 12h,2h,30m · "
                          "digest 07:30 · courier sf").format(**spelled(member.channel, tr.locale))

    @staticmethod
    def _invalid(tr: Translator, setting: Setting, raw: str) -> str:
        hints = {
            "tz": N_("a time zone such as Asia/Shanghai, Asia/Urumqi or Europe/Moscow"),
            "quiet": N_("a window such as 22:00-08:00, or off"),
            "leads": N_("durations such as 24h,4h,1h (s, m, h and d work)"),
            "digest": N_("a time such as 08:00, or off"),
            "courier": N_("a courier code: sf, zto, yto, yunda, sto, jd, ems, chinapost, jt, other, or none"),
        }
        return tr.gettext("“{value}” is not valid here. Expected {hint}. Nothing was changed.").format(
            value=raw.strip()[:40], hint=tr.gettext(hints[setting.name]))
