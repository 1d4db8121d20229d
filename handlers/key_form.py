"""The key form (`/k/<token>`): where an owner on a surface that cannot delete a message (WeChat) connects an
Ozon key. The link is one-time, signed, short-lived and made for one person; the key is checked against Ozon
before anything is stored, exactly as `/connect` in Telegram does, because both are `Conversation.connect`.
The key travels only in the POST body, never in a URL, and the page asks for HTTPS on a public address.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from tortoise.exceptions import IntegrityError

from handlers.action_page import HEADERS, _document, _error, esc
from services.commands import SURFACES
from services.conversation import Conversation
from services.i18n import Catalogs, Translator, pick_locale
from services.links import ConnectClaim, ConnectLinks
from services.security import SecretBox
from services.storage.models import InboundCallback, Member
from services.views import Answer, View

log = logging.getLogger(__name__)
FORM_LIMIT = 4 * 1024  # a Client-Id and a key are well under a kilobyte
SPENT = "connect-link"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class KeyForm:
    def __init__(self, *, links: ConnectLinks, conversation: Conversation, catalogs: Catalogs, box: SecretBox,
                 base_url: str, member: Callable[[str, str], Awaitable[Member | None]],
                 send: Callable[[Member, View], Awaitable[object]]):
        self._links = links
        self._conversation = conversation
        self._catalogs = catalogs
        self._box = box
        self._secure = base_url.startswith("https://") or urlsplit(base_url).hostname in LOOPBACK
        self._member = member
        self._send = send

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/k/{token}", self.show), web.post("/k/{token}", self.submit)]

    async def show(self, request: web.Request) -> web.Response:
        token, claim, tr = await self._claim(request)
        return self._form(token, tr, "")

    async def submit(self, request: web.Request) -> web.Response:
        token, claim, tr = await self._claim(request)
        if not self._secure:
            raise _error(web.HTTPForbidden, tr, tr.gettext(
                "This server is not reached over HTTPS, so a key sent from here could be read on the way. Nothing "
                "was sent. Ask the operator to serve the bot over HTTPS (OZONBOT_PUBLIC_URL)."))
        form = await _read_form(request, FORM_LIMIT)
        if form is None:
            raise _error(web.HTTPRequestEntityTooLarge, tr, tr.gettext(
                "That was too much data for this form, so nothing was changed."), max_size=FORM_LIMIT, actual_size=0)
        if not self._box.verify("key-form:" + token, form.get("csrf", ""), 22):
            raise _error(web.HTTPForbidden, tr, tr.gettext(
                "This page was out of date, so nothing was changed. Open the link again and repeat."))
        if not await self._spend(claim):
            raise self._gone(tr)
        surface = SURFACES[claim.channel]
        caller = await self._conversation.caller(surface, claim.external_id, chat_id=claim.chat_id,
                                                 language_hint=claim.locale)
        answer = await self._conversation.connect(caller, form.get("client_id", ""), form.get("api_key", ""))
        if answer.alert:  # refused: nothing stored, and the link may be used again until it expires
            await InboundCallback.filter(source=SPENT, key=claim.nonce).delete()
            return self._form(token, caller.tr, "\n".join(v.text for v in answer.views()))
        await self._tell_chat(claim, answer)
        text = "\n".join(v.text for v in answer.views())
        body = f'<h1>{esc(caller.tr.gettext("Connected"))}</h1><div class="card"><p class="text">{esc(text)}</p></div>'
        return web.Response(text=_document(caller.tr, caller.tr.gettext("Connected"), body),
                            content_type="text/html", headers=HEADERS)

    # ---- checks --------------------------------------------------------------------------------
    async def _claim(self, request: web.Request) -> tuple[str, ConnectClaim, Translator]:
        token = request.match_info["token"]
        claim = self._links.verify(token)
        first = request.headers.get("Accept-Language", "").split(",")[0].split(";")[0].strip()
        tr = self._catalogs.translator(claim.locale if claim else pick_locale(None, first))
        if claim is None or claim.channel not in SURFACES:
            log.info("refused a key-form link")
            raise _error(web.HTTPForbidden, tr, tr.gettext(
                "This link has expired or is not yours. Ask the bot for a new one (connect)."))
        if await InboundCallback.exists(source=SPENT, key=claim.nonce):
            raise self._gone(tr)
        return token, claim, tr

    @staticmethod
    async def _spend(claim: ConnectClaim) -> bool:
        try:
            await InboundCallback.create(source=SPENT, key=claim.nonce)
        except IntegrityError:
            return False  # two submits at once: one wins
        return True

    @staticmethod
    def _gone(tr: Translator) -> web.HTTPException:
        return _error(web.HTTPGone, tr, tr.gettext(
            "This link was already used to connect a key. Ask the bot for a new one (connect) to change the key."))

    async def _tell_chat(self, claim: ConnectClaim, answer: Answer) -> None:
        """The chat hears of it too: that is where orders will arrive."""
        member = await self._member(claim.channel, claim.external_id)
        if member is None or not member.chat_id:
            return
        for view in answer.views():
            try:
                await self._send(member, view)
            except Exception as exc:  # the page already says it; the chat is a courtesy
                log.warning("could not tell member %s of the connected key: %s", member.id, type(exc).__name__)

    # ---- page ----------------------------------------------------------------------------------
    def _form(self, token: str, tr: Translator, error: str) -> web.Response:
        _ = tr.gettext
        title, client_label, key_label = _("Connect your Ozon account"), _("Client-Id"), _("API key")
        hint = _("Ozon cabinet → Settings → Seller API: copy the Client-Id and create an API key with the roles "
                 "for postings (FBS). The key is checked with Ozon before it is stored, encrypted.")
        send = _("Check and connect")
        warning = "" if self._secure else (
            '<p class="toast alert" role="alert">' + esc(_("This server is not reached over HTTPS: do not send a "
                                                           "key from here.")) + "</p>")
        flash = f'<p class="toast alert" role="alert">{esc(error)}</p>' if error else ""
        csrf = self._box.sign("key-form:" + token, 22)
        body = (f"<h1>{esc(title)}</h1>{warning}{flash}<p>{esc(hint)}</p>"
                f'<form class="entry" method="post" action="{esc(token)}" autocomplete="off">'
                f'<input type="hidden" name="csrf" value="{csrf}">'
                f'<label for="client_id">{esc(client_label)}</label>'
                f'<input type="text" id="client_id" name="client_id" inputmode="numeric" maxlength="20" required>'
                f'<label for="api_key">{esc(key_label)}</label>'
                f'<input type="password" id="api_key" name="api_key" maxlength="200" required>'
                f'<div class="row"><button type="submit" class="send">{esc(send)}</button></div></form>')
        return web.Response(text=_document(tr, title, body), content_type="text/html", headers=HEADERS)


async def _read_form(request: web.Request, limit: int) -> dict[str, str] | None:
    """The whole urlencoded body however it arrives in pieces; None past `limit`."""
    if (request.content_length or 0) > limit:
        return None
    raw = bytearray()
    async for chunk in request.content.iter_any():
        raw += chunk
        if len(raw) > limit:
            return None
    return {key: values[0] for key, values in parse_qs(raw.decode("utf-8", "replace")).items()}
