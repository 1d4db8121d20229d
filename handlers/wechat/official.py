"""Official Account (service account): the callback at /wechat/official (plain and safe mode), binding by
parametric QR code, a menu, text commands answered by passive reply inside WeChat's 5 seconds, and alerts
as template messages whose link opens the action page (customer-service messages are capped, wechat.md §4).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from aiohttp import web
from tortoise.exceptions import IntegrityError
from wechatpy.replies import TextReply

from handlers.bodies import read_body
from handlers.ports import WechatPort
from handlers.wechat import crypto
from handlers.wechat.api import WechatApiError, WechatHttp
from handlers.wechat.crypto import dedupe_key
from handlers.wechat.official_sender import CHANNEL, OfficialSender
from services.commands import MENU_KEYS, OFFICIAL, Verb
from services.conversation import Caller
from services.ratelimit import InboundLimiter
from services.storage.models import InboundCallback, Member
from services.views import View

QR_PER_MINUTE = 10  # binding QR pages a client address may ask for a minute: a person needs one or two

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024
REPLY_BUDGET = 4.0  # seconds of WeChat's 5 we spend before answering 'success' and replying later
# what the account offers, in WeChat's own menu: three top buttons, the desk's other commands under 更多
MENU = {"button": [
    {"type": "click", "name": "待打包", "key": "ORDERS"},
    {"type": "click", "name": "查询订单", "key": "QUERY"},
    {"name": "更多", "sub_button": [{"type": "click", "name": name, "key": key} for name, key in (
        ("设置", "SETTINGS"), ("邀请打包员", "INVITE"), ("成员", "MEMBERS"), ("连接店铺", "CONNECT"), ("帮助", "HELP"))]},
]}
BIND_PREFIX = "bind_"


class OfficialAccount(OfficialSender):
    def __init__(self, port: WechatPort, http: WechatHttp | None = None):
        super().__init__(port, http or WechatHttp(on_secret=port.redactor.add))
        self._token = port.official.token
        self._aes_key = port.official.aes_key
        self._tasks: set[asyncio.Task] = set()
        self._qr_limit = InboundLimiter(per_member=QR_PER_MINUTE, per_chat=0)  # per client address (H2)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/wechat/official", self.verify_url), web.post("/wechat/official", self.callback),
                web.get("/wechat/qr/{code}", self.qr_redirect)]

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.close()

    async def setup_menu(self) -> None:
        try:
            await self.call("menu/create", json=MENU)
        except WechatApiError as exc:
            log.warning("Official Account menu not created: %s %s", exc.errcode, exc.errmsg)

    # ---- inbound -------------------------------------------------------------------------------
    async def verify_url(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            crypto.check_signature(query.get("signature"), self._token, query.get("timestamp", ""),
                                   query.get("nonce", ""))
        except crypto.CallbackRejected:
            return web.Response(status=403)
        return web.Response(text=query.get("echostr", ""))

    async def callback(self, request: web.Request) -> web.Response:
        body = await read_body(request, MAX_BODY)
        if body is None:
            return web.Response(status=413)
        query = request.query
        safe = query.get("encrypt_type") == "aes"
        try:
            if self._aes_key and not safe:
                # in safe mode a plain body is a forgery: its signature would cover only timestamp and nonce
                raise crypto.CallbackRejected("plain callback while safe mode is configured")
            message = self._open(query, body, safe)
        except crypto.CallbackRejected as exc:
            log.warning("Official Account callback refused: %s", exc)
            return web.Response(status=403)
        if not await self._signature_unused(query) or not await self._first_time(message):
            return web.Response(text="success")  # a retry (already handled) or a replay (no effect)
        reply = await self._answer_in_time(message)
        if not reply:
            return web.Response(text="success")
        xml = TextReply(content=_cdata_safe(reply), message=message).render()
        if safe:
            xml = crypto.encrypt_reply(self._token, self._aes_key, self.app_id, xml, query.get("nonce", ""),
                                       corp=False)
        return web.Response(text=xml, content_type="application/xml")

    def _open(self, query, body: bytes, safe: bool):
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        crypto.check_fresh(timestamp, self.s.clock().timestamp())
        crypto.check_signature(query.get("signature"), self._token, timestamp, nonce)
        if not safe:
            crypto.outer_fields(body)  # refuses DTDs and non-XML before wechatpy parses it
            return crypto.parse(body.decode("utf-8", "replace"), corp=False)
        if not self._aes_key:
            raise crypto.CallbackRejected("safe mode without OZONBOT_WECHAT_AES_KEY")
        encrypted = crypto.outer_fields(body).get("Encrypt")
        if not isinstance(encrypted, str):
            raise crypto.CallbackRejected("no Encrypt field")
        crypto.check_signature(query.get("msg_signature"), self._token, timestamp, nonce, encrypted)
        return crypto.parse(crypto.decrypt(self._aes_key, encrypted, self.app_id, corp=False), corp=False)

    async def _signature_unused(self, query) -> bool:
        """Each signed (timestamp, nonce) is good once: a captured query cannot carry a second, forged body."""
        key = ":".join(["sig", query.get("timestamp", ""), query.get("nonce", ""),
                        query.get("msg_signature") or query.get("signature", "")])
        try:
            await InboundCallback.create(source=CHANNEL, key=dedupe_key(key))
        except IntegrityError:
            return False
        return True

    async def _first_time(self, message) -> bool:
        if message.type == "event":
            data = message._data
            key = ":".join(["evt", message.source, str(message.time), data.get("Event", ""),
                            str(data.get("EventKey") or "")])
        else:
            key = f"msg:{message.id}" if message.id else f"msg:{message.source}:{message.time}"
        try:
            await InboundCallback.create(source=CHANNEL, key=dedupe_key(key))
        except IntegrityError:
            return False
        return True

    async def _answer_in_time(self, message) -> str:
        """The reply if it is ready inside the budget; otherwise it follows as a customer-service message
        (the member has just written to us, so the 48-hour window is open)."""
        task = asyncio.create_task(self._reply_text(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        done, _ = await asyncio.wait({task}, timeout=REPLY_BUDGET)
        if task in done:
            return task.result() if not task.exception() else ""
        task.add_done_callback(lambda t: self._send_late(message.source, t))
        return ""

    def _send_late(self, openid: str, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() or not task.result():
            return
        late = asyncio.create_task(self._custom_text(openid, task.result()))
        self._tasks.add(late)
        late.add_done_callback(self._tasks.discard)

    async def _custom_text(self, openid: str, text: str) -> None:
        with suppress(WechatApiError):
            await self.call("message/custom/send", json={"touser": openid, "msgtype": "text",
                                                         "text": {"content": text}})

    async def _reply_text(self, message) -> str:
        try:
            views = await self._views_for(message)
        except Exception:  # answer something rather than make WeChat say the account is broken
            log.exception("Official Account %s failed", message.type)
            return ""
        member = await self._member(message.source)
        return "\n\n".join(self.as_text(member, view) for view in views)

    async def _member(self, openid: str) -> Member | None:
        return await self.s.desk.member(CHANNEL, openid)

    async def _views_for(self, message) -> list[View]:
        openid = message.source
        caller = await self.s.conversation.caller(OFFICIAL, openid, chat_id=openid)
        conversation = self.s.conversation
        if message.type == "text":
            return (await conversation.text(caller, message.content or "")).views()
        if message.type != "event":
            return []
        event = message.event
        if event in ("subscribe_scan", "scan") and str(message.scene_id or "").startswith(BIND_PREFIX):
            return (await conversation.join(caller, str(message.scene_id)[len(BIND_PREFIX):])).views()
        if event in ("subscribe", "subscribe_scan"):
            if caller.member is not None:  # back after unsubscribing: alerts resume
                await Member.filter(channel=CHANNEL, external_id=openid).update(chat_id=openid)
            return (await conversation.command(caller, Verb.START)).views()
        if event == "unsubscribe":
            await Member.filter(channel=CHANNEL, external_id=openid).update(chat_id=None)
            return []
        if event == "click":
            return await self._menu(message.key, caller)
        return []

    async def _menu(self, key: str, caller: Caller) -> list[View]:
        verb = MENU_KEYS.get(key)
        if verb is not None:
            return (await self.s.conversation.command(caller, verb)).views()
        if not caller.on_desk:
            return (await self.s.conversation.command(caller, Verb.ORDERS)).views()  # the refusal, in its words
        return [View(text=caller.tr.gettext("Send the posting, order or tracking number."))]

    # ---- binding QR ----------------------------------------------------------------------------
    async def qr_redirect(self, request: web.Request) -> web.Response:
        if not self._qr_limit.check(request.remote, None).allowed:
            return web.Response(status=429, text="too many requests")
        url = await self.binding_qr(request.match_info["code"])
        if url is None:
            return web.Response(status=404, text="invite code not valid")
        raise web.HTTPFound(url)


def _cdata_safe(text: str) -> str:
    return text.replace("]]>", "]]]]><![CDATA[>")  # wechatpy does not escape CDATA (wechat.md P6)
