"""Sending to Official Account followers: alerts as template messages that open the action page,
other texts as customer-service messages (only inside the window a follower's own message opens)."""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import timedelta
from urllib.parse import quote

from handlers.action_page import write_flash
from handlers.ports import WechatPort
from handlers.wechat.api import AppAuth, WechatApiError, WechatHttp, refusal
from handlers.wechat.render import cut_bytes
from services.cards import status_words
from services.desk import normalize_code
from services.ozon.models import Posting as OzonPosting
from services.storage.models import Invite, Member, Posting, Seller, WechatQrCode
from services.views import Answer, View

log = logging.getLogger(__name__)
WINDOW_CLOSED = (45015, 45047)  # out of the 48-hour window; its 5 messages used up (wechat.md §4)
CHANNEL = "wechat"
QR_IMAGE = "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket="
MAX_QR_SECONDS = 2592000  # temporary QR codes live at most 30 days


class OfficialSender:
    channel = CHANNEL
    refusal = staticmethod(refusal)  # what the outbox stops retrying

    def __init__(self, port: WechatPort, http: WechatHttp):
        self.s = port
        self.http = http
        config = port.official
        self.app_id = config.app_id
        self.template_id = config.template_id
        self.auth = AppAuth(cache_key=f"oa:{self.app_id}", base_url=config.api_url.rstrip("/") + "/cgi-bin/",
                            token_path="stable_token", token_post=True,
                            token_params={"grant_type": "client_credential", "appid": self.app_id,
                                          "secret": config.app_secret, "force_refresh": False})

    async def call(self, path: str, **kwargs):
        return await self.http.call(self.auth, path, **kwargs)

    # ---- ChannelSender -------------------------------------------------------------------------
    async def send(self, member: Member, view: View) -> str | None:
        posting_id = self._posting_id(view)
        if posting_id is not None and self.template_id:
            return await self._template(member, view, posting_id)
        try:
            await self.call("message/custom/send", json={"touser": member.chat_id, "msgtype": "text",
                                                         "text": {"content": self.as_text(member, view)}})
        except WechatApiError as exc:
            if exc.errcode not in WINDOW_CLOSED or not self.template_id:
                raise
            return await self._notice(member, view)  # outside the 48 hours: a template message still arrives
        return None

    async def _notice(self, member: Member, view: View) -> str:
        """A text (digest, key expiry, a connected key) as a template message whose link opens the action page
        with the whole text on it; the template's fields carry the seller, the headline and the time."""
        seller = await Seller.get(id=member.seller_id)
        tr = self.s.catalogs.for_member(member, seller)
        token = self.s.links.token(member.id)
        url = f"{self.s.links.url_of(token)}?f={write_flash(self.s.box, token, Answer(toast=view.text))}"
        lines = [line for line in (view.text or "—").splitlines() if line.strip()] or ["—"]
        body = {"touser": member.chat_id, "template_id": self.template_id, "url": url, "data": {
            "character_string1": {"value": seller.client_id[:32]},
            "thing2": {"value": _thing(re.sub(r"^\W+", "", lines[0]))},
            "time3": {"value": self.s.clock().astimezone(tr.zone).strftime("%Y年%m月%d日 %H:%M")},
            "thing4": {"value": _thing(lines[1] if len(lines) > 1 else tr.gettext("Open for details"))},
        }}
        answer = await self.call("message/template/send", json=body)
        return f"tpl:{answer.get('msgid', '')}"

    async def edit(self, member: Member, message_ref: str, view: View) -> None:
        return None  # sent WeChat messages cannot be changed; the action page always shows the current state

    async def _template(self, member: Member, view: View, posting_id: int) -> str:
        posting = await Posting.get(id=posting_id)
        tr = self.s.catalogs.for_member(member, await Seller.get(id=member.seller_id))
        remote = OzonPosting.from_api(posting.snapshot or {"posting_number": posting.posting_number})
        product = remote.products[0].name if remote.products and remote.products[0].name else "—"
        deadline = posting.shipment_date.astimezone(tr.zone).strftime("%Y年%m月%d日 %H:%M") \
            if posting.shipment_date else "—"
        headline = (view.text or "—").splitlines()[0]
        digest = hashlib.sha1(view.text.encode()).hexdigest()[:12]
        body = {
            "touser": member.chat_id, "template_id": self.template_id,
            "url": self.s.links.url(member.id, posting_id),
            "client_msg_id": f"oz-{member.id}-{posting_id}-{digest}",  # WeChat's own 10-minute dedupe
            "data": {  # category-template keywords (README: which template to pick)
                "character_string1": {"value": posting.posting_number[:32]},
                "thing2": {"value": _thing(product)},
                "time3": {"value": deadline},
                "thing4": {"value": _thing(headline.lstrip("🆕📦⏰🚨❌ ") or status_words(tr, posting.status))},
            },
        }
        answer = await self.call("message/template/send", json=body)
        return f"tpl:{answer.get('msgid', '')}"

    def as_text(self, member: Member | None, view: View) -> str:
        """A view as a text message: its buttons become one link to the action page."""
        text = view.text or ""
        if view.buttons and member is not None:
            tr = self.s.catalogs.translator(member.locale)
            url = self.s.links.url(member.id, self._posting_id(view))
            label = tr.gettext("Open the action page")
            text += f'\n<a href="{url}">{label}</a>'
        return cut_bytes(text, 2000)

    def _posting_id(self, view: View) -> int | None:
        ids = {a.posting_id for a in (self.s.codec.decode(b.action) for b in view.flat_buttons) if a and a.posting_id}
        return ids.pop() if len(ids) == 1 else None

    # ---- binding QR ----------------------------------------------------------------------------
    async def binding_qr(self, code: str) -> str | None:
        """The image URL of a QR code that binds the scanner to the invite's desk (made once per invite)."""
        invite = await Invite.get_or_none(code=normalize_code(code))
        now = self.s.clock()
        if invite is None or invite.used_at is not None or invite.expires_at <= now:
            return None
        stored = await WechatQrCode.get_or_none(invite=invite)
        if stored is not None and stored.expires_at > now:
            return stored.url
        seconds = min(MAX_QR_SECONDS, int((invite.expires_at - now).total_seconds()))
        answer = await self.call("qrcode/create", json={
            "expire_seconds": seconds, "action_name": "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": f"bind_{invite.code}"}}})
        url = QR_IMAGE + quote(answer["ticket"])
        await WechatQrCode.update_or_create(defaults={"ticket": answer["ticket"], "url": url,
                                                      "expires_at": now + timedelta(seconds=seconds)}, invite=invite)
        return url


def _thing(value: str) -> str:
    return value[:20] or "—"  # template 'thing' values: at most 20 characters (47003 otherwise)
