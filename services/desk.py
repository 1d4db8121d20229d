"""The desk: sellers, members, invites, languages, and the answers to 'what is the status of X'."""

from __future__ import annotations

import base64
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError

from services.cards import CardRenderer, courier_name, status_words
from services.channels import Channels
from services.i18n import N_, Catalogs
from services.ozon.errors import OzonAuthError, OzonError, OzonUnavailable
from services.ozon.models import RoleInfo, Warehouse
from services.ratelimit import InboundLimiter
from services.security import SecretBox, new_token
from services.sellers import OzonGateway
from services.storage.models import Invite, LanguagePref, Member, Posting, Seller, TraceEvent
from services.storage.states import FINAL_STATUSES, OPEN_STAGES, KeyState, Role, Stage
from services.views import Button, View

log = logging.getLogger(__name__)

INVITE_TTL = timedelta(days=2)
NAME_LENGTH = 128  # Member.name
# H2: 16 base32 characters are 80 bits; a source (a chat account) gets a few tries per window
INVITE_BYTES = 10
JOIN_ATTEMPTS, JOIN_WINDOW = 5, 15 * 60.0
TRACE_SHOWN = 12  # scans of the first-mile trace in /status (a chat message, not a report)
NUMBER_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z\-]{5,63}$")
STAGE_TODO = {
    Stage.NEW: N_("choose the courier"),
    Stage.COURIER: N_("pack it and press Packed"),
    Stage.PACKING: N_("wait: Ozon is packing it"),
    Stage.PACKED: N_("hand it over and send the waybill number"),
    Stage.HANDED_OVER: N_("nothing: it is handed over"),
    Stage.CANCELLED: N_("nothing: it was cancelled"),
}

# Telegram's shared senders: GroupAnonymousBot (every anonymous group admin, in every group), Channel_Bot
# ("send as channel") and 777000 (automatic forwards). Whoever uses one is nobody in particular.
SHARED_SENDERS = frozenset({"1087968824", "136817688", "777000"})


def new_invite_code() -> str:
    return base64.b32encode(secrets.token_bytes(INVITE_BYTES)).decode()


def normalize_code(code: str) -> str:
    """What a person types, as stored: case, spaces and dashes do not matter."""
    return re.sub(r"[\s-]", "", code).upper()


def is_person(external_id: str | None, *, is_bot: bool = False, as_chat: bool = False) -> bool:
    """A sender a desk can know: one person, not a bot, not a message sent on behalf of a chat (a channel or
    an anonymous admin) and not one of the platform's shared ids. Only people connect, join, invite, change
    settings or read a desk."""
    return bool(external_id) and not is_bot and not as_chat and external_id not in SHARED_SENDERS


class ConnectError(Exception):
    """A key Ozon refused or could not check; `reason` is a stable code, never the key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# what the bot calls with a key: a key whose roles list methods must cover these (M1)
NEEDED_METHODS = ("/v4/posting/fbs/unfulfilled/list", "/v3/posting/fbs/get", "/v4/posting/fbs/ship",
                  "/v2/fbs/posting/tracking-number/set")


def missing_methods(roles: RoleInfo) -> list[str]:
    """The calls the key may not make; nothing when Ozon lists no methods for its roles (nothing to judge)."""
    allowed = {str(m) for role in roles.roles for m in (role.get("methods") or [])}
    return [m for m in NEEDED_METHODS if m not in allowed] if allowed else []


@dataclass
class Connected:
    seller: Seller
    roles: RoleInfo
    warehouses: list[Warehouse]
    created: bool


class Desk:
    def __init__(self, *, gateway: OzonGateway, box: SecretBox, catalogs: Catalogs, cards: CardRenderer,
                 channels: Channels,
                 clock: Callable[[], datetime], default_timezone: str = "Asia/Shanghai",
                 default_quiet_hours: str = "22:00-08:00"):
        self._gateway = gateway
        self._box = box
        self._catalogs = catalogs
        self._channels = channels
        self._cards = cards
        self._clock = clock
        self._zone = default_timezone
        self._quiet = default_quiet_hours
        self._join_attempts = InboundLimiter(per_member=JOIN_ATTEMPTS, per_chat=0, period=JOIN_WINDOW)

    # ---- sellers -------------------------------------------------------------------------------
    async def connect_seller(self, client_id: str, api_key: str, *, name: str = "",
                             by: tuple[str, str] | None = None, exposed: bool = False) -> Connected:
        """Checks the key with Ozon and stores it encrypted; a refused key stores nothing.

        `by` is the person connecting from a chat ((channel, external_id); None from the command line). A
        Client-Id that already has owners is theirs: anyone else is refused, whatever key they hold, and the
        owners hear of the attempt; an owner's new key is announced to the other owners. `exposed`: the key
        stayed readable where it was sent (a group the bot cannot delete from), so it is refused unused."""
        client_id, api_key = client_id.strip(), api_key.strip()
        if exposed:
            raise ConnectError("exposed")
        if not client_id.isdigit():
            raise ConnectError("bad_client_id")
        if not api_key or len(api_key) > 200:
            raise ConnectError("bad_key")
        client = self._gateway.client(client_id, api_key)
        try:
            roles = await client.roles()
            warehouses = await client.warehouses()
        except OzonAuthError as exc:
            raise ConnectError("rejected", exc.reason) from None
        except OzonUnavailable:
            raise ConnectError("unavailable") from None
        except OzonError as exc:
            raise ConnectError("rejected", exc.token) from None
        missing = missing_methods(roles)
        if missing:
            raise ConnectError("missing_methods", ", ".join(missing))
        seller = await Seller.get_or_none(client_id=client_id)
        if seller is not None and by is not None:
            owners = await Member.filter(seller=seller, role=Role.OWNER)
            if owners and not any((o.channel, o.external_id) == by for o in owners):
                await self._tell_owners(owners, seller, N_(
                    "⚠️ Someone who is not an owner of this desk tried to connect Ozon seller {client_id} with a "
                    "valid API key. Nothing changed. If it was not one of you, revoke that key in the Ozon cabinet "
                    "(Settings → Seller API)."))
                raise ConnectError("taken")
        fields = {"api_key_enc": self._box.encrypt(api_key), "key_expires_at": roles.expires_at,
                  "key_state": KeyState.OK, "warehouses": [w.model_dump(mode="json") for w in warehouses]}
        if seller is None:
            seller = await Seller.create(client_id=client_id, name=name or client_id, push_token=new_token(),
                                         timezone=self._zone, quiet_hours=self._quiet, **fields)
            return Connected(seller, roles, warehouses, True)
        await Seller.filter(id=seller.id).update(**fields)
        await seller.refresh_from_db()
        if by is not None:
            others = await Member.filter(seller=seller, role=Role.OWNER).exclude(channel=by[0], external_id=by[1])
            await self._tell_owners(others, seller, N_(
                "🔑 Another owner connected a new API key for Ozon seller {client_id}; the bot uses it from now on."))
        return Connected(seller, roles, warehouses, False)

    async def _tell_owners(self, owners: list[Member], seller: Seller, message: str) -> None:
        for owner in owners:
            tr = self._catalogs.for_member(owner, seller)
            try:
                await self._channels.send(owner, View(text=tr.gettext(message).format(client_id=seller.client_id)))
            except Exception as exc:  # best effort: the refusal or the change stands either way
                log.warning("owner %s could not be told about seller %s: %s", owner.id, seller.id,
                            type(exc).__name__)

    async def join_as(self, seller: Seller, *, channel: str, external_id: str, chat_id: str | None, name: str,
                      locale: str, role: str) -> Member:
        name = (name or "")[:NAME_LENGTH]  # L11: Telegram's first + last name reach 129 characters
        member = await Member.get_or_none(seller=seller, channel=channel, external_id=external_id)
        if member is None:
            try:
                return await Member.create(seller=seller, channel=channel, external_id=external_id,
                                           chat_id=chat_id, name=name, locale=locale, role=role)
            except IntegrityError:
                member = await Member.get(seller=seller, channel=channel, external_id=external_id)
        if role == Role.OWNER or member.role != Role.OWNER:
            member.role = role
        member.chat_id = chat_id or member.chat_id
        member.name = name or member.name
        await member.save()
        return member

    async def member(self, channel: str, external_id: str) -> Member | None:
        """The person's desk membership (the most recent if they sit on several desks)."""
        return await Member.filter(channel=channel, external_id=external_id).order_by("-id").first()

    async def create_invite(self, owner: Member, role: str = Role.PACKER) -> Invite | None:
        if owner.role != Role.OWNER:
            return None
        return await self.seller_invite(owner.seller_id, role, created_by=owner)

    async def seller_invite(self, seller_id: int, role: str = Role.PACKER, *,
                            created_by: Member | None = None) -> Invite:
        """A one-time code for the seller's desk (the command line has no owner member to ask). An owner's
        new code revokes their earlier unused ones of the same role: only the latest can be used."""
        now = self._clock()
        if created_by is not None:
            await Invite.filter(seller_id=seller_id, created_by=created_by, role=role, used_at__isnull=True,
                                expires_at__gt=now).update(expires_at=now)
        code = new_invite_code()
        return await Invite.create(seller_id=seller_id, code=code, role=role, created_by=created_by,
                                   expires_at=self._clock() + INVITE_TTL)

    async def redeem_invite(self, code: str, *, channel: str, external_id: str, chat_id: str | None, name: str,
                            locale: str) -> Member | None:
        """One use per code, before it expires: the conditional update makes a race lose cleanly."""
        source = f"{channel}:{external_id}"
        if not self._join_attempts.check(source, None).allowed:
            log.warning("join refused: too many invite codes tried from %s", source)
            return None  # a guesser learns nothing more, whatever it sends in this window
        invite = await Invite.get_or_none(code=normalize_code(code))
        if invite is None or invite.used_at is not None or invite.expires_at < self._clock():
            return None
        claimed = await Invite.filter(id=invite.id, used_at__isnull=True).update(used_at=self._clock())
        if not claimed:
            return None
        seller = await Seller.get(id=invite.seller_id)
        try:
            member = await self.join_as(seller, channel=channel, external_id=external_id, chat_id=chat_id,
                                        name=name, locale=locale, role=invite.role)
        except Exception:  # L11: a join that failed gives the code back instead of burning it
            await Invite.filter(id=invite.id, used_by_id__isnull=True).update(used_at=None)
            raise
        await Invite.filter(id=invite.id).update(used_by_id=member.id)
        return member

    async def set_locale(self, channel: str, external_id: str, locale: str) -> None:
        await LanguagePref.update_or_create(defaults={"locale": locale}, channel=channel, external_id=external_id)
        await Member.filter(channel=channel, external_id=external_id).update(locale=locale)

    async def stored_locale(self, channel: str, external_id: str) -> str | None:
        pref = await LanguagePref.get_or_none(channel=channel, external_id=external_id)
        return pref.locale if pref else None

    # ---- queries -------------------------------------------------------------------------------
    async def find(self, seller_id: int, text: str) -> Posting | None:
        number = text.strip().upper().replace(" ", "")
        if not NUMBER_RE.match(number):
            return None
        query = Posting.filter(seller_id=seller_id)
        for field in ("posting_number", "tracking_number", "waybill"):
            found = await query.filter(**{field: number}).first()
            if found:
                return found
        return await query.filter(order_number=number).order_by("posting_number").first()

    async def status_view(self, member: Member, text: str) -> View:
        seller = await Seller.get(id=member.seller_id)
        tr = self._catalogs.for_member(member, seller)
        _ = tr.gettext
        posting = await self.find(member.seller_id, text)
        if posting is None:
            return View(text=_("No order {number} on your desk. Send a posting, order or tracking number."
                               ).format(number=text.strip()[:64] or "—"))
        lines = [
            _("📦 {number}").format(number=posting.posting_number),
            _("Status: {status}").format(status=status_words(tr, posting.status)),
            _("Courier: {courier}").format(courier=courier_name(tr, posting.courier)),
            _("Waybill: {number}").format(number=posting.waybill or "—"),
            _("Ozon tracking: {number}").format(number=posting.tracking_number or "—"),
        ]
        if posting.last_scan_at is not None:  # the first mile, watched through Kuaidi100: the trace, newest first
            lines.append(_("📍 Last scan {time}: {scan}").format(time=tr.local_time(posting.last_scan_at),
                                                                 scan=posting.last_scan))
            trace = await TraceEvent.filter(waybill__posting_id=posting.id).order_by("-at", "-id") \
                .limit(TRACE_SHOWN).prefetch_related("waybill")
            lines += [f"   • {tr.local_time(event.at)} {event.waybill.number}: {event.context}" for event in trace]
        if posting.status not in FINAL_STATUSES:
            lines.append(_("Ship by: {deadline} ({left})").format(
                deadline=tr.local_time(posting.shipment_date), left=tr.time_left(posting.shipment_date, self._clock())))
        lines.append(_("To do: {todo}").format(todo=_(STAGE_TODO.get(posting.stage, "—"))))
        buttons = ((Button(_("Open the order card"), self._cards.action("o", posting)),),)
        return View(text="\n".join(lines), buttons=buttons)

    async def open_postings(self, seller_id: int, limit: int = 30) -> list[Posting]:
        return await Posting.filter(seller_id=seller_id, stage__in=OPEN_STAGES) \
            .exclude(status__in=FINAL_STATUSES).order_by("shipment_date", "posting_number").limit(limit)

    async def orders_view(self, member: Member) -> View:
        seller = await Seller.get(id=member.seller_id)
        tr = self._catalogs.for_member(member, seller)
        postings = await self.open_postings(member.seller_id)
        if not postings:
            return View(text=tr.gettext("No open orders. 🎉"))
        now = self._clock()
        lines = [tr.ngettext("{n} open order, most urgent first:", "{n} open orders, most urgent first:",
                             len(postings)).format(n=len(postings))]
        buttons = []
        for posting in postings:
            lines.append(f"• {posting.posting_number}: {status_words(tr, posting.status)}, "
                         f"{tr.time_left(posting.shipment_date, now)}")
            buttons.append((Button(posting.posting_number, self._cards.action("o", posting)),))
        return View(text="\n".join(lines), buttons=tuple(buttons))
