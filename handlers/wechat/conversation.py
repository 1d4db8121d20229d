"""What a WeChat member's text means, the same on the WeCom app and the Official Account: a command,
the waybill number the bot asked for, or a number to look up. Returns views; the surface delivers them."""

from __future__ import annotations

from bot.app import Services
from handlers.wechat.commands import help_text, parse_command
from services.i18n import Translator, normalize_locale
from services.storage.models import Member, Seller
from services.views import Answer, View

PERSON_ROLES = ("owner", "packer")


async def translator(s: Services, channel: str, external_id: str, member: Member | None) -> Translator:
    """The member's language, else the person's stored choice, else Chinese (WeChat's default)."""
    if member is not None:
        return s.catalogs.for_member(member, await Seller.get(id=member.seller_id))
    return s.catalogs.translator(await s.desk.stored_locale(channel, external_id), s.settings.timezone)


def answer_views(answer: Answer) -> list[View]:
    return ([View(text=answer.toast)] if answer.toast else []) + list(answer.replies)


def not_on_desk(tr: Translator) -> View:
    return View(text=tr.gettext("You are not on a desk yet. Ask the desk owner for an invite code and send "
                                "加入 <code>, or scan the binding QR code."))


async def text_replies(s: Services, *, channel: str, external_id: str, member: Member | None, text: str,
                       chat_id: str | None = None, name: str = "") -> list[View]:
    tr = await translator(s, channel, external_id, member)
    command = parse_command(text)
    if command is None:
        if member is None or member.role not in PERSON_ROLES:
            return [not_on_desk(tr)]
        answer = await s.shipping.submit_waybill(member, text)
        if answer is not None:
            return answer_views(answer)
        return [await s.desk.status_view(member, text)]
    if command.name == "help":
        return [View(text=help_text(tr))]
    if command.name == "lang":
        return [await _set_language(s, channel, external_id, member, command.arg)]
    if command.name == "join":
        return [await _join(s, channel, external_id, command.arg, chat_id, name, tr)]
    if member is None or member.role not in PERSON_ROLES:
        return [not_on_desk(tr)]
    if command.name == "orders":
        return [await s.desk.orders_view(member)]
    if not command.arg:
        return [View(text=tr.gettext("Usage: 状态 <posting, order or tracking number>"))]
    return [await s.desk.status_view(member, command.arg)]


async def _set_language(s: Services, channel: str, external_id: str, member: Member | None, arg: str) -> View:
    locale = normalize_locale(arg) if arg else None
    if locale is None:
        tr = await translator(s, channel, external_id, member)
        return View(text=tr.gettext("Usage: 语言 zh | ru | en"))
    await s.desk.set_locale(channel, external_id, locale)
    if member is not None:
        member.locale = locale
    tr = await translator(s, channel, external_id, member)
    return View(text=tr.gettext("Language set: English"))


async def _join(s: Services, channel: str, external_id: str, code: str, chat_id: str | None, name: str,
                tr: Translator) -> View:
    member = None
    if code:
        member = await s.desk.redeem_invite(code, channel=channel, external_id=external_id, chat_id=chat_id,
                                            name=name, locale=tr.locale)
    if member is None:
        return View(text=tr.gettext("That code is not valid (wrong, used or expired). Ask the owner for a new "
                                    "invite code."))
    tr = await translator(s, channel, external_id, member)
    return View(text=tr.gettext("✅ You are on the desk. New orders will appear here."))
