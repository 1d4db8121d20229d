"""Sending to WeCom app members: views as template cards or text, labels as files, card updates paid for
with the single-use response codes clicks bring, within 30 messages a minute per member."""

from __future__ import annotations

import contextvars
import hashlib
import logging
from dataclasses import dataclass, field

import aiohttp

from handlers.ports import WechatPort
from handlers.wechat import render
from handlers.wechat.api import AppAuth, WechatApiError, WechatHttp, refusal
from services.pacing import SlidingWindow
from services.storage.models import Member, Seller, WecomApp, WecomCard
from services.views import Button, View
from services.wechat_apps import WecomCredentials

log = logging.getLogger(__name__)
CHANNEL = "wecom"
MEMBER_LIMIT = 30  # WeCom: per app and member a minute, the excess is dropped silently


@dataclass
class _EditBatch:
    """Card edits made while one click is handled: applied once at the end, with that click's code."""

    open: bool = True
    views: dict[str, tuple[Member, View]] = field(default_factory=dict)


_BATCH: contextvars.ContextVar[_EditBatch | None] = contextvars.ContextVar("wecom_edit_batch", default=None)


class WecomSender:
    channel = CHANNEL
    refusal = staticmethod(refusal)  # what the outbox stops retrying

    def __init__(self, port: WechatPort, http: WechatHttp, *, member_limit: int = MEMBER_LIMIT):
        self.s = port
        self.http = http
        self.limiter = SlidingWindow(member_limit, 60.0)

    # ---- apps ----------------------------------------------------------------------------------
    def auth(self, creds: WecomCredentials) -> AppAuth:
        digest = hashlib.sha256(creds.secret.encode()).hexdigest()[:12]
        return AppAuth(cache_key=f"wecom:{creds.corp_id}:{creds.agent_id}:{digest}",
                       base_url=self.s.wecom_api_url.rstrip("/") + "/cgi-bin/",
                       token_path="gettoken", token_params={"corpid": creds.corp_id, "corpsecret": creds.secret})

    def credentials(self, app: WecomApp) -> WecomCredentials:
        creds = self.s.apps.credentials(app)
        self.s.redactor.add(creds.secret, creds.aes_key)
        return creds

    async def _app_of(self, member: Member) -> tuple[WecomApp, WecomCredentials]:
        app = await WecomApp.get(seller_id=member.seller_id)
        return app, self.credentials(app)

    async def call(self, creds: WecomCredentials, path: str, **kwargs):
        return await self.http.call(self.auth(creds), path, **kwargs)

    # ---- ChannelSender -------------------------------------------------------------------------
    async def send(self, member: Member, view: View, *, wait: bool = False) -> str | None:
        """`wait` for a free send slot (a reply to someone who just acted); the outbox does not wait."""
        app, creds = await self._app_of(member)
        if view.attachment is not None:
            await self._send_file(creds, member, view)  # labels come from a background task: it may wait
            return None
        if not view.buttons:
            answer = await self._message(creds, member, render.text_message(view), wait=wait)
            return f"text:{answer.get('msgid', '')}"
        tr = await self._tr(member)
        task_id = render.new_task_id()
        card = render.template_card(tr, view, task_id, courier_choice=self._is_courier_choice(view))
        answer = await self._message(creds, member, {"msgtype": "template_card", "template_card": card}, wait=wait)
        await WecomCard.create(app=app, member=member, posting_id=self._posting_id(view), task_id=task_id,
                               response_code=answer.get("response_code"))
        return task_id

    async def edit(self, member: Member, message_ref: str, view: View) -> None:
        if message_ref.startswith("text:"):
            return  # WeCom cannot edit a text message
        batch = _BATCH.get()
        if batch is not None and batch.open:
            batch.views[message_ref] = (member, view)
            return
        await self.apply_edit(member, message_ref, view)

    async def apply_edit(self, member: Member, task_id: str, view: View) -> bool:
        """Replaces the card if an unspent response code is at hand; a card without one stays as it is
        until its next click (which refreshes it). The conditional update spends each code once."""
        card = await WecomCard.get_or_none(task_id=task_id, member=member)
        if card is None or not card.response_code:
            return False
        code = card.response_code
        if not await WecomCard.filter(id=card.id, response_code=code).update(response_code=None):
            return False
        app, creds = await self._app_of(member)
        tr = await self._tr(member)
        fallback = Button(tr.gettext("🔄 Refresh"), self.s.codec.encode("o", card.posting_id)) \
            if card.posting_id else None
        body = {"userids": [member.chat_id], "agentid": creds.agent_id, "response_code": code,
                "template_card": render.template_card(tr, view, task_id, fallback=fallback,
                                                      courier_choice=self._is_courier_choice(view))}
        if not view.buttons and fallback is None:
            body.pop("template_card")
            body["button"] = {"replace_name": (view.text or "—").splitlines()[0][:16]}
        try:
            await self.call(creds, "message/update_template_card", json=body)
        except WechatApiError as exc:
            log.info("card %s for member %s not updated: %s", task_id, member.id, exc.errcode)
            return False
        return True

    # ---- click batches -------------------------------------------------------------------------
    def open_batch(self) -> tuple[_EditBatch, contextvars.Token]:
        batch = _EditBatch()
        return batch, _BATCH.set(batch)

    async def close_batch(self, batch: _EditBatch, token: contextvars.Token) -> set[str]:
        """Applies the last view of every card edited during the click; returns the task ids updated.
        Work the click left running (the label) edits directly afterwards."""
        batch.open = False
        _BATCH.reset(token)
        updated = set()
        for task_id, (member, view) in batch.views.items():
            if await self.apply_edit(member, task_id, view):
                updated.add(task_id)
        return updated

    # ---- plumbing ------------------------------------------------------------------------------
    async def _message(self, creds: WecomCredentials, member: Member, message: dict, *, wait: bool = True) -> dict:
        await self.limiter.acquire(f"{creds.corp_id}:{creds.agent_id}:{member.chat_id}", wait=wait)
        body = {"touser": member.chat_id, "agentid": creds.agent_id, **message}
        answer = await self.call(creds, "message/send", json=body)
        if answer.get("invaliduser"):
            raise WechatApiError(None, "member is not in the app's visible range", "message/send")
        return answer

    async def _send_file(self, creds: WecomCredentials, member: Member, view: View) -> None:
        attachment = view.attachment

        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("media", attachment.data, filename=attachment.filename, content_type=attachment.mime)
            return data

        uploaded = await self.call(creds, "media/upload", params={"type": "file"}, form=form)
        if view.text:
            await self._message(creds, member, render.text_message(view))
        await self._message(creds, member, {"msgtype": "file", "file": {"media_id": uploaded["media_id"]}})

    async def download(self, creds: WecomCredentials, media_id: str) -> bytes:
        data = await self.call(creds, "media/get", params={"media_id": media_id}, raw=True)
        if not isinstance(data, bytes):
            raise WechatApiError(None, "media/get answered JSON", "media/get")
        return data

    async def _tr(self, member: Member):
        return self.s.catalogs.for_member(member, await Seller.get(id=member.seller_id))

    def _posting_id(self, view: View) -> int | None:
        """The posting a view is about, when all its buttons are about one (not a list of orders)."""
        ids = {a.posting_id for a in (self.s.codec.decode(b.action) for b in view.flat_buttons) if a and a.posting_id}
        return ids.pop() if len(ids) == 1 else None

    def _is_courier_choice(self, view: View) -> bool:
        actions = [self.s.codec.decode(b.action) for b in view.flat_buttons]
        return bool(actions) and all(a is not None and a.verb == "c" for a in actions)
