"""Who is on the desk, and taking someone off it.

The owner sees every member with a Remove button (and a confirmation); a removed member keeps their row,
with the role `removed` and no chat, so every button, link and awaited input they held is refused at once:
each of those checks the role on every use. They can come back only with a new invite code.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from services.actions import Action, ActionCodec
from services.commands import spelled
from services.i18n import N_, Catalogs, Translator
from services.storage.models import Member, PendingInput, Seller
from services.storage.states import Role
from services.views import Answer, Button, View

log = logging.getLogger(__name__)
REMOVED = Role.REMOVED
ROLE_WORDS = {Role.OWNER: N_("owner"), Role.PACKER: N_("packer"), Role.GROUP: N_("group chat")}


class Roster:
    def __init__(self, *, codec: ActionCodec, catalogs: Catalogs, send: Callable[[Member, View], Awaitable[object]]):
        self._codec = codec
        self._catalogs = catalogs
        self._send = send

    async def view(self, member: Member) -> View:
        seller = await Seller.get(id=member.seller_id)
        tr = self._catalogs.for_member(member, seller)
        members = await Member.filter(seller_id=seller.id).exclude(role=REMOVED).order_by("id")
        lines = [tr.gettext("👥 Desk of seller {client_id}:").format(client_id=seller.client_id)]
        buttons = []
        for position, other in enumerate(members, 1):
            lines.append(f"{position}. {self._name(tr, other)}: {tr.gettext(ROLE_WORDS.get(other.role, other.role))}")
            if member.role == Role.OWNER and other.id != member.id:
                buttons.append((Button(tr.gettext("Remove {name}").format(name=self._name(tr, other))[:60],
                                       self._codec.encode("m", 0, str(other.id))),))
        if member.role == Role.OWNER:
            lines.append(tr.gettext("{invite} adds a packer; {members} remove <number> takes someone off the desk."
                                    ).format(**spelled(member.channel, tr.locale)))
        return View(text="\n".join(lines), buttons=tuple(buttons))

    async def remove_typed(self, member: Member, arg: str) -> Answer:
        """`members remove 2` (成员 移除 2): for surfaces without buttons, by the number in the list."""
        seller = await Seller.get(id=member.seller_id)
        tr = self._catalogs.for_member(member, seller)
        if member.role != Role.OWNER:
            return Answer(replies=[View(text=tr.gettext("Only the desk owner can remove members."))])
        members = await Member.filter(seller_id=seller.id).exclude(role=REMOVED).order_by("id")
        position = arg.split()[-1] if arg.split() else ""
        other = members[int(position) - 1] if position.isdigit() and 0 < int(position) <= len(members) else None
        if other is None or other.id == member.id:
            return Answer(replies=[View(text=tr.gettext("No such member to remove: send {members} for the list."
                                                        ).format(**spelled(member.channel, tr.locale)))])
        await self.remove(other, seller)
        return Answer(replies=[View(text=tr.gettext("{name} is no longer on the desk.").format(
            name=self._name(tr, other)))])

    async def press(self, member: Member | None, action: Action) -> Answer:
        """`m.0.<id>` asks to confirm, `m.0.<id>:yes` removes, `m.0.list` goes back to the list."""
        if member is None or member.role != Role.OWNER:
            tr = self._catalogs.translator(member.locale if member else None)
            return Answer(toast=tr.gettext("Only the desk owner can remove members."), alert=True)
        seller = await Seller.get(id=member.seller_id)
        tr = self._catalogs.for_member(member, seller)
        target_id, _, confirmed = action.arg.partition(":")
        other = await Member.get_or_none(id=int(target_id), seller_id=seller.id) if target_id.isdigit() else None
        if other is None or other.role == REMOVED or other.id == member.id:
            return Answer(edit=await self.view(member))
        if confirmed != "yes":
            question = tr.gettext("Remove {name} from the desk? Their buttons and links stop working at once; they "
                                  "can come back only with a new invite code.").format(name=self._name(tr, other))
            return Answer(edit=View(text=question, buttons=((
                Button(tr.gettext("Yes, remove"), self._codec.encode("m", 0, f"{other.id}:yes")),
                Button(tr.gettext("Cancel"), self._codec.encode("m", 0, "list"))),)))
        await self.remove(other, seller)
        return Answer(toast=tr.gettext("{name} is no longer on the desk.").format(name=self._name(tr, other)),
                      edit=await self.view(member))

    async def remove(self, other: Member, seller: Seller) -> None:
        """Tells them (while a chat is still known), then ends the membership: role and chat go together."""
        tr = self._catalogs.for_member(other, seller)
        if other.chat_id and other.role != Role.GROUP:
            try:
                await self._send(other, View(text=tr.gettext(
                    "You were removed from the desk of seller {client_id}.").format(client_id=seller.client_id)))
            except Exception as exc:  # they are removed whether or not the notice arrives
                log.info("removal notice to member %s not sent: %s", other.id, type(exc).__name__)
        await Member.filter(id=other.id).update(role=REMOVED, chat_id=None)
        await PendingInput.filter(member_id=other.id).delete()
        log.info("member %s removed from seller %s", other.id, seller.id)

    @staticmethod
    def _name(tr: Translator, member: Member) -> str:
        return member.name or member.external_id.rsplit(":", 1)[-1] or tr.gettext("(no name)")

