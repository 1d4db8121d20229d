"""The action page: a small mobile web page behind a signed, expiring, per-member link (`/a/<token>`).

WeChat alerts link here. The page shows the same View the chat shows (services/cards.py) and acts through
the same Shipping calls as Telegram. It needs no JS: every button is a form that POSTs, and the answer
comes back through a redirect (POST-redirect-GET), so a reload never repeats an action. Every URL in the
page is relative, so the app may sit behind a proxy under any prefix. The token in the URL is the
credential: hence no-referrer, no-store and no framing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import json
import logging
import zlib
from dataclasses import dataclass
from urllib.parse import parse_qs

from aiohttp import BodyPartReader, web

from handlers.bodies import read_body
from handlers.ports import PagePort
from services.i18n import Translator, normalize_locale, pick_locale
from services.links import LinkClaim
from services.security import SecretBox
from services.storage.models import Member, Posting, Seller
from services.storage.states import AFTER_PACKING, PEOPLE
from services.views import Answer, Button, View

log = logging.getLogger(__name__)
FORM_LIMIT = 8 * 1024  # a press or a number is a few hundred bytes
PHOTO_LIMIT = 10 * 1024 * 1024  # a phone camera JPEG is 1-6 MB
FLASH_LIMIT = 6000
LANGUAGES = (("zh_CN", "中文"), ("ru", "Русский"), ("en", "English"))
HTML_LANG = {"zh_CN": "zh-CN", "ru": "ru", "en": "en"}

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f2f3f5;color:#1d2129;font:16px/1.45 -apple-system,"PingFang SC","Microsoft YaHei",
"Noto Sans CJK SC",Roboto,sans-serif;-webkit-text-size-adjust:100%}
main{max-width:540px;margin:0 auto;padding:10px 12px 28px}
nav{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin-bottom:10px}
nav a{color:#0b6bcb;padding:8px 4px;text-decoration:none}
nav .langs{margin-left:auto;display:flex;gap:4px}
nav .langs button{min-height:36px;padding:4px 8px;font-size:14px;width:auto;background:#fff;color:#1d2129;
border:1px solid #c9cdd4}
nav .langs button[aria-pressed=true]{background:#1d2129;color:#fff}
.text{white-space:pre-wrap;word-break:break-word;margin:0}
.card,.reply,.toast,.entry{background:#fff;border-radius:12px;padding:14px;margin:0 0 12px}
.toast{background:#e8f3ff;font-weight:600}
.toast.alert{background:#ffece8;color:#a1151e}
.row{display:flex;gap:8px;margin-top:8px}
.row>*{flex:1;margin:0}
button,.btn{display:block;width:100%;min-height:52px;padding:12px 10px;border:0;border-radius:10px;
font:inherit;font-size:17px;text-align:center;text-decoration:none;background:#fff;color:#1d2129;
box-shadow:inset 0 0 0 1px #c9cdd4}
.v-p,.send{background:#07c160;color:#fff;box-shadow:none;font-weight:600}
button:disabled{opacity:.5}
label{display:block;font-weight:600;margin:0 0 6px}
input[type=text],input[type=password]{width:100%;min-height:52px;font-size:20px;padding:8px 10px;border:1px solid #c9cdd4;
border-radius:10px;letter-spacing:.04em}
input[type=file]{width:100%;margin:6px 0 8px;font-size:16px}
.entry form+form{margin-top:16px}
h1{font-size:20px;margin:4px 0 12px}
"""
# progressive only: after a tap, grey the form's buttons out so a double tap is seen as one
SCRIPT = ('document.addEventListener("submit",function(e){var b=e.target.querySelectorAll("button");'
          'setTimeout(function(){for(var i=0;i<b.length;i++)b[i].disabled=true},0)});')


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


HEADERS = {
    "Content-Security-Policy": (f"default-src 'self'; style-src 'self' {_csp_hash(CSS)}; script-src 'self' "
                                f"{_csp_hash(SCRIPT)}; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                                "form-action 'self'; frame-ancestors 'none'"),
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def esc(text: str) -> str:
    return html.escape(text, quote=True)


@dataclass
class Visit:
    """A verified link: who acts (still a person on the desk) and, if named, a posting of their seller."""

    token: str
    claim: LinkClaim
    member: Member
    seller: Seller
    posting: Posting | None
    tr: Translator


class ActionPage:
    def __init__(self, port: PagePort):
        self.s = port

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/a/{token}", self.show), web.post("/a/{token}/press", self.press),
                web.post("/a/{token}/waybill", self.waybill), web.post("/a/{token}/photo", self.photo),
                web.post("/a/{token}/lang", self.language), web.get("/a/{token}/label", self.label),
                web.get("/a/{token}/picklist", self.picklist), web.get("/a/{token}/labels/{task}", self.labels)]

    # ---- routes --------------------------------------------------------------------------------
    async def show(self, request: web.Request) -> web.Response:
        visit = await self._visit(request)
        flash = self._read_flash(visit.token, request.query.get("f", ""))
        if visit.posting is None:
            view = await self.s.desk.orders_view(visit.member)
            title = visit.tr.gettext("Open orders")
        else:
            view = await self.s.cards.render(visit.posting, visit.member, visit.seller)
            title = visit.tr.gettext("📦 {number}").format(number=visit.posting.posting_number)
        body = [self._nav(visit), self._flash_html(visit, flash),
                f'<div class="card"><p class="text">{esc(view.text)}</p>{self._rows(visit, view)}</div>']
        if visit.posting is not None and visit.posting.stage in AFTER_PACKING:
            label = visit.tr.gettext("🏷 Download the label (PDF)")
            body.append(f'<p><a class="btn" href="{esc(visit.token)}/label">{esc(label)}</a></p>')
            body.append(self._entry(visit))
        return _page(visit.tr, title, "".join(body))

    async def press(self, request: web.Request) -> web.Response:
        visit, form = await self._posted_form(request)
        action = self.s.codec.decode(form.get("action"))
        if action is not None and (visit.posting is None or action.posting_id != visit.posting.id):
            action = None  # a link acts on its own posting only: anything else is refused like a forgery
        if action is not None and self.s.buttons is not None:  # the same router as a chat's button press
            raise self._back(visit, await self.s.buttons.press(visit.member, form.get("action")))
        raise self._back(visit, await self.s.shipping.press(visit.member, action))

    async def waybill(self, request: web.Request) -> web.Response:
        visit, form = await self._posted_form(request)
        answer = await self._expect_waybill(visit)
        if answer is None:
            answer = await self.s.shipping.submit_waybill(visit.member, form.get("number", "")[:64]) or Answer()
        raise self._back(visit, answer)

    async def photo(self, request: web.Request) -> web.Response:
        visit = await self._visit(request)
        if (request.content_length or 0) > PHOTO_LIMIT:
            raise self._too_large(visit.tr)
        fields = await _read_multipart(request, PHOTO_LIMIT)
        if fields is None:
            raise self._too_large(visit.tr)
        self._check_csrf(visit, fields.get("csrf", b"").decode("ascii", "replace"))
        answer = await self._expect_waybill(visit)
        if answer is None:
            answer = await self.s.shipping.submit_photo(visit.member, fields.get("photo", b"")) or Answer()
        raise self._back(visit, answer)

    async def label(self, request: web.Request) -> web.Response:
        """The Ozon label as a PDF: the way to it for members whose chat cannot carry files (Official Account)."""
        visit = await self._visit(request)
        pdf = await self.s.shipping.label_pdf(visit.member, visit.posting.id) if visit.posting else None
        if pdf is None:
            raise self._back(visit, Answer(toast=visit.tr.gettext(
                "Ozon has not prepared the label yet. Try again in a minute.")))
        name = f"label-{visit.posting.posting_number}.pdf"
        return web.Response(body=pdf, content_type="application/pdf", headers={
            **HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})

    async def picklist(self, request: web.Request) -> web.Response:
        """Today's pick list as a PDF to print, for a chat that cannot carry files (the Official Account)."""
        visit = await self._visit(request)
        pdf = await self.s.picklists.pdf_of(visit.member)
        return web.Response(body=pdf, content_type="application/pdf", headers={
            **HEADERS, "Content-Disposition": f'attachment; filename="{self.s.picklists.filename()}"'})

    async def labels(self, request: web.Request) -> web.Response:
        """A /labels batch's PDF, for a chat that cannot carry files: only a task the member's desk printed."""
        visit = await self._visit(request)
        task = request.match_info["task"]
        pdf = await self.s.labels.file_of(visit.member, int(task)) if task.isdigit() and len(task) < 20 else None
        if pdf is None:
            raise self._back(visit, Answer(toast=visit.tr.gettext(
                "Ozon has not prepared the label yet. Try again in a minute.")))
        return web.Response(body=pdf, content_type="application/pdf", headers={
            **HEADERS, "Content-Disposition": f'attachment; filename="labels-{task}.pdf"'})

    async def language(self, request: web.Request) -> web.Response:
        visit, form = await self._posted_form(request)
        locale = normalize_locale(form.get("locale", ""))
        if locale is not None:
            await self.s.desk.set_locale(visit.member.channel, visit.member.external_id, locale)
        raise self._back(visit, Answer())

    # ---- checks --------------------------------------------------------------------------------
    async def _visit(self, request: web.Request) -> Visit:
        """The link's member and posting, or a 403 page: expired, forged, member gone, posting not theirs."""
        token = request.match_info["token"]
        claim = self.s.links.verify(token)
        member = await Member.get_or_none(id=claim.member_id) if claim else None
        posting = None
        if member is not None and claim.posting_id is not None:
            posting = await self.s.shipping.authorize(member, claim.posting_id)
        if member is None or member.role not in PEOPLE or (claim.posting_id and posting is None):
            log.info("refused action page link (claim %s)", claim)
            raise self._refused(request)
        seller = await Seller.get(id=member.seller_id)
        return Visit(token, claim, member, seller, posting, self.s.catalogs.for_member(member, seller))

    async def _posted_form(self, request: web.Request) -> tuple[Visit, dict[str, str]]:
        visit = await self._visit(request)
        raw = await read_body(request, FORM_LIMIT)
        if raw is None:
            raise self._too_large(visit.tr, photo=False)
        form = {key: values[0] for key, values in parse_qs(raw.decode("utf-8", "replace")).items()}
        self._check_csrf(visit, form.get("csrf", ""))
        return visit, form

    def _csrf(self, token: str) -> str:
        return self.s.box.sign("page-form:" + token, 22)

    def _check_csrf(self, visit: Visit, given: str) -> None:
        if not self.s.box.verify("page-form:" + visit.token, given, 22):
            log.info("refused a page form without its CSRF field (member %s)", visit.member.id)
            raise _error(web.HTTPForbidden, visit.tr, visit.tr.gettext(
                "This page was out of date, so nothing was changed. Open the link again and repeat."))

    async def _expect_waybill(self, visit: Visit) -> Answer | None:
        if visit.posting is None:
            return await self.s.shipping.press(visit.member, None)  # the refusal, in the member's words
        return await self.s.shipping.expect_waybill(visit.member, visit.posting.id)

    def _refused(self, request: web.Request) -> web.HTTPException:
        first = request.headers.get("Accept-Language", "").split(",")[0].split(";")[0].strip()
        tr = self.s.catalogs.translator(pick_locale(None, first))
        return _error(web.HTTPForbidden, tr, tr.gettext(
            "This link has expired or is not yours. Open the order again from the latest message of the bot."))

    def _too_large(self, tr: Translator, *, photo: bool = True) -> web.HTTPException:
        message = tr.gettext(
            "That was too large (at most {size} MB), so nothing was changed. Take the photo again at a lower "
            "resolution, or type the number.").format(size=PHOTO_LIMIT // (1024 * 1024)) if photo else \
            tr.gettext("That was too much data for this form, so nothing was changed.")
        return _error(web.HTTPRequestEntityTooLarge, tr, message, max_size=PHOTO_LIMIT if photo else FORM_LIMIT,
                      actual_size=0)

    # ---- answers across the redirect -----------------------------------------------------------
    def _back(self, visit: Visit, answer: Answer) -> web.HTTPException:
        """303 to the page itself; the answer rides along signed, so a refresh cannot act again."""
        flash = self._write_flash(visit.token, answer)
        location = f"../{visit.token}" + (f"?f={flash}" if flash else "")
        return web.HTTPSeeOther(location=location, headers=HEADERS)

    def _write_flash(self, token: str, answer: Answer) -> str:
        return write_flash(self.s.box, token, answer)

    def _read_flash(self, token: str, value: str) -> Answer | None:
        body, _, signature = value.rpartition(".")
        if not body or len(value) > FLASH_LIMIT or not self.s.box.verify(f"flash:{token}:{body}", signature, 16):
            return None
        try:
            data = json.loads(zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))
            replies = [View(text=text, buttons=tuple(tuple(Button(label, action) for label, action in row)
                                                     for row in rows)) for text, rows in data["r"]]
            return Answer(toast=data["t"], alert=bool(data["a"]), replies=replies)
        except (ValueError, KeyError, TypeError, zlib.error, binascii.Error):
            return None

    # ---- rendering -----------------------------------------------------------------------------
    def _nav(self, visit: Visit) -> str:
        _ = visit.tr.gettext  # strings stay out of the f-strings below, where extraction cannot see them
        refresh, everything, language = _("Refresh"), _("All open orders"), _("Language")
        links = [f'<a href="{esc(visit.token)}">{esc(refresh)}</a>']
        if visit.posting is not None:
            links.insert(0, f'<a href="{esc(self._link(visit, None))}">{esc(everything)}</a>')
        csrf = self._csrf(visit.token)
        switches = "".join(
            f'<form method="post" action="{esc(visit.token)}/lang"><input type="hidden" name="csrf" value="{csrf}">'
            f'<input type="hidden" name="locale" value="{code}"><button type="submit" lang="{HTML_LANG[code]}" '
            f'aria-pressed="{str(code == visit.tr.locale).lower()}">{name}</button></form>'
            for code, name in LANGUAGES)
        return f'<nav>{"".join(links)}<div class="langs" aria-label="{esc(language)}">{switches}</div></nav>'

    def _link(self, visit: Visit, posting_id: int | None) -> str:
        """A sibling link for the same member that never outlives the one being used."""
        return self.s.links.token(visit.member.id, posting_id, expires_at=visit.claim.expires_at)

    def _flash_html(self, visit: Visit, flash: Answer | None) -> str:
        if flash is None:
            return ""
        parts = []
        if flash.toast:
            role = "alert" if flash.alert else "status"
            parts.append(f'<p class="toast{" alert" if flash.alert else ""}" role="{role}">{esc(flash.toast)}</p>')
        for view in flash.replies:
            parts.append(f'<div class="reply"><p class="text">{esc(view.text)}</p>{self._rows(visit, view)}</div>')
        return "".join(parts)

    def _rows(self, visit: Visit, view: View) -> str:
        return "".join('<div class="row">' + "".join(self._button(visit, b) for b in row) + "</div>"
                       for row in view.buttons)

    def _button(self, visit: Visit, button: Button) -> str:
        action = self.s.codec.decode(button.action)
        label = esc(button.label)
        if action is not None and action.verb == "o":  # open a card: here that is another page
            return f'<a class="btn" href="{esc(self._link(visit, action.posting_id))}">{label}</a>'
        if action is not None and action.verb == "w":  # the chat asks for a reply: the field is on the page
            return f'<a class="btn" href="#waybill">{label}</a>'
        verb = action.verb if action else "none"
        return (f'<form method="post" action="{esc(visit.token)}/press">'
                f'<input type="hidden" name="csrf" value="{self._csrf(visit.token)}">'
                f'<input type="hidden" name="action" value="{esc(button.action)}">'
                f'<button type="submit" class="v-{verb}">{label}</button></form>')

    def _entry(self, visit: Visit) -> str:
        _ = visit.tr.gettext
        token, csrf = esc(visit.token), self._csrf(visit.token)
        number_label, send = esc(_("Waybill or tracking number")), esc(_("Send the number"))
        photo_label, read = esc(_("Or a photo of the waybill: the barcode is read")), esc(_("Read the barcode"))
        typed = (f'<form method="post" action="{token}/waybill"><input type="hidden" name="csrf" value="{csrf}">'
                 f'<label for="number">{number_label}</label>'
                 f'<input type="text" id="number" name="number" maxlength="64" autocomplete="off" '
                 f'autocapitalize="characters" spellcheck="false" required>'
                 f'<div class="row"><button type="submit" class="send">{send}</button></div>'
                 f'</form>')
        photo = (f'<form method="post" action="{token}/photo" enctype="multipart/form-data">'
                 f'<input type="hidden" name="csrf" value="{csrf}">'
                 f'<label for="photo">{photo_label}</label>'
                 f'<input type="file" id="photo" name="photo" accept="image/*" capture="environment" required>'
                 f'<div class="row"><button type="submit">{read}</button></div></form>')
        return f'<section class="entry" id="waybill">{typed}{photo}</section>'


def write_flash(box: SecretBox, token: str, answer: Answer) -> str:
    """The answer, compressed and signed for the page at `token` (`?f=`): a redirect, or a message's link, shows it
    once on that page; a changed or foreign flash is simply not shown."""
    replies = [[view.text, [[[b.label, b.action] for b in row] for row in view.buttons]] for view in answer.replies]
    if not answer.toast and not replies:
        return ""
    data = json.dumps({"t": answer.toast, "a": answer.alert, "r": replies}, ensure_ascii=False)
    body = base64.urlsafe_b64encode(zlib.compress(data.encode())).decode().rstrip("=")
    return f"{body}.{box.sign(f'flash:{token}:{body}', 16)}"


async def _read_multipart(request: web.Request, limit: int) -> dict[str, bytes] | None:
    """The form's fields, read in chunks so an oversized upload stops at `limit` (None) instead of in memory."""
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):  # not multipart at all
        return {}
    fields: dict[str, bytes] = {}
    total = 0
    async for part in reader:
        if not isinstance(part, BodyPartReader):  # a nested multipart is nothing a browser sends
            return {}
        chunks = []
        while chunk := await part.read_chunk(64 * 1024):
            total += len(chunk)
            if total > limit:
                return None
            chunks.append(chunk)
        if part.name in ("csrf", "photo"):
            fields[part.name] = b"".join(chunks)
    return fields


def _document(tr: Translator, title: str, body: str) -> str:
    return (f'<!doctype html><html lang="{HTML_LANG.get(tr.locale, "zh-CN")}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            '<meta name="referrer" content="no-referrer"><link rel="icon" href="data:,">'  # no favicon fetch
            f"<title>{esc(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main><script>{SCRIPT}</script></body></html>")


def _page(tr: Translator, title: str, body: str) -> web.Response:
    return web.Response(text=_document(tr, title, body), content_type="text/html", headers=HEADERS)


def _error(kind: type[web.HTTPException], tr: Translator, message: str, **extra) -> web.HTTPException:
    heading = tr.gettext("Nothing was changed")
    body = f'<h1>{esc(heading)}</h1><p class="toast alert" role="alert">{esc(message)}</p>'
    return kind(text=_document(tr, heading, body), content_type="text/html", headers=HEADERS, **extra)
