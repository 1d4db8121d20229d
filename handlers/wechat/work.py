"""WeCom self-built app: the callback route at /wechat/work/<tenant> and what members do there.

Every callback is signature-checked (constant time) before anything is decrypted, must be fresh, is
taken in once (a unique row per message id or event key: WeChat's retries are dropped) and is answered
at once; the work (Ozon calls, replies) runs in the background, well clear of WeChat's 5 seconds.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from aiohttp import web
from tortoise.exceptions import IntegrityError

from handlers.bodies import read_body
from handlers.ports import WechatPort
from handlers.wechat import crypto, render
from handlers.wechat.api import WechatApiError, WechatHttp
from handlers.wechat.crypto import dedupe_key
from handlers.wechat.work_sender import CHANNEL, WecomSender
from services.commands import MENU_KEYS, WECOM, Verb
from services.conversation import Caller
from services.members import REMOVED
from services.storage.models import InboundCallback, Member, WecomApp, WecomCard
from services.storage.states import Role
from services.views import Answer, View

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024
MENU = {"button": [
    {"type": "click", "name": "待打包", "key": "ORDERS"},
    {"type": "click", "name": "查询订单", "key": "QUERY"},
    {"name": "更多", "sub_button": [{"type": "click", "name": name, "key": key} for name, key in (
        ("设置", "SETTINGS"), ("成员", "MEMBERS"), ("连接店铺", "CONNECT"), ("帮助", "HELP"))]},
]}


class WecomChannel(WecomSender):
    """The WeCom surface: inbound callbacks for every seller's app and the sender the Notifier uses."""

    def __init__(self, port: WechatPort, http: WechatHttp | None = None):
        super().__init__(port, http or WechatHttp(on_secret=port.redactor.add))
        self._tasks: set[asyncio.Task] = set()

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/wechat/work/{tenant}", self.verify_url), web.post("/wechat/work/{tenant}", self.callback)]

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.close()

    # ---- inbound -------------------------------------------------------------------------------
    async def verify_url(self, request: web.Request) -> web.Response:
        """URL verification when the admin saves the callback: the echostr is encrypted in WeCom."""
        app = await WecomApp.get_or_none(tenant=request.match_info["tenant"])
        if app is None:
            return web.Response(status=404)
        creds, query = self.credentials(app), request.query
        try:
            crypto.check_fresh(query.get("timestamp"), self.s.clock().timestamp())
            echo = query.get("echostr", "")
            crypto.check_signature(query.get("msg_signature"), creds.token, query["timestamp"],
                                   query.get("nonce", ""), echo)
            plain = crypto.decrypt(creds.aes_key, echo, creds.corp_id, corp=True)
        except crypto.CallbackRejected as exc:
            log.warning("WeCom URL verification for %s refused: %s", app.tenant, exc)
            return web.Response(status=403)
        return web.Response(text=plain)

    async def callback(self, request: web.Request) -> web.Response:
        app = await WecomApp.get_or_none(tenant=request.match_info["tenant"])
        if app is None:
            return web.Response(status=404)
        body = await read_body(request, MAX_BODY)
        if body is None:
            return web.Response(status=413)
        creds, query = self.credentials(app), request.query
        try:
            crypto.check_fresh(query.get("timestamp"), self.s.clock().timestamp())
            encrypted = crypto.outer_fields(body).get("Encrypt")
            if not isinstance(encrypted, str):
                raise crypto.CallbackRejected("no Encrypt field")
            crypto.check_signature(query.get("msg_signature"), creds.token, query["timestamp"],
                                   query.get("nonce", ""), encrypted)
            message = crypto.parse(crypto.decrypt(creds.aes_key, encrypted, creds.corp_id, corp=True), corp=True)
        except crypto.CallbackRejected as exc:
            log.warning("WeCom callback for %s refused: %s", app.tenant, exc)
            return web.Response(status=403)
        if await self._first_time(app, message):
            task = asyncio.create_task(self._handle(app.id, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.Response(text="success")

    async def _first_time(self, app: WecomApp, message) -> bool:
        if message.type == "event":
            data = message._data
            key = ":".join(["evt", message.source, str(message.time), data.get("Event", ""),
                            str(data.get("EventKey") or ""), str(data.get("TaskId") or ""),
                            str(data.get("ResponseCode") or "")])  # two real clicks differ in their code
        else:
            key = f"msg:{message.id}" if message.id else f"msg:{message.source}:{message.time}"
        try:
            await InboundCallback.create(source=f"wecom:{app.tenant}", key=dedupe_key(key))
        except IntegrityError:
            log.info("WeCom retry of %s dropped", key)
            return False
        return True

    async def _handle(self, app_id: int, message) -> None:
        try:
            app = await WecomApp.get(id=app_id)
            member = await self.join(app, message.source)
            caller = await self.s.conversation.caller(WECOM, member.external_id, chat_id=member.chat_id,
                                                      name=member.name, member=member)
            if message.type == "event":
                await self._on_event(app, caller, message)
            elif message.type == "text":
                answer = await self.s.conversation.text(caller, message.content or "")
                await self._reply(member, answer.views())
            elif message.type == "image":
                await self._on_image(app, caller, message)
        except Exception:  # a background job must never die silently
            log.exception("WeCom %s from a member of app %s failed", message.type, app_id)

    async def join(self, app: WecomApp, user_id: str, role: str = Role.PACKER) -> Member:
        """Members of the seller's app are the seller's desk: whoever WeCom lets reach us joins it."""
        external_id = f"{app.corp_id}:{user_id}"
        member = await Member.get_or_none(seller_id=app.seller_id, channel=CHANNEL, external_id=external_id)
        if member is not None and member.chat_id == user_id and (role != Role.OWNER or member.role == Role.OWNER):
            return member
        if member is not None and member.role == REMOVED and role != Role.OWNER:
            return member  # the owner took them off the desk: being in the app does not bring them back
        seller = await app.seller
        locale = await self.s.desk.stored_locale(CHANNEL, external_id) or "zh_CN"
        return await self.s.desk.join_as(seller, channel=CHANNEL, external_id=external_id, chat_id=user_id,
                                         name=user_id, locale=locale, role=role)

    async def _on_event(self, app: WecomApp, caller: Caller, event) -> None:
        member = caller.member
        if event.event == "template_card_event":
            await self._on_click(app, caller, event)
        elif event.event == "click":  # the app's own menu (setup_menu)
            verb = MENU_KEYS.get(event.key or "")
            answer = await self.s.conversation.command(caller, verb) if verb is not None else Answer(
                replies=[View(text=caller.tr.gettext("Send the posting, order or tracking number."))])
            await self._reply(member, answer.views())
        elif event.event == "subscribe":
            await self._reply(member, (await self.s.conversation.command(caller, Verb.HELP)).views())
        elif event.event == "unsubscribe":
            await Member.filter(id=member.id).update(chat_id=None)  # left the app: no more alerts

    async def _on_click(self, app: WecomApp, caller: Caller, event) -> None:
        member = caller.member
        key = event.key or ""
        if key == render.PICK_KEY:  # the dropdown's confirm button: the chosen option is the action
            chosen = crypto.selected_options(event)
            key = chosen[0] if chosen else ""
        await WecomCard.filter(task_id=event.task_id, member=member).update(response_code=event.response_code)
        batch, token = self.open_batch()
        try:
            answer = await self.s.conversation.press(caller, key)
        finally:
            updated = await self.close_batch(batch, token)
        if answer.edit is not None and await self.apply_edit(member, event.task_id, answer.edit):
            updated.add(event.task_id)  # a menu that changes in place (settings): the click's code pays for it
            answer = replace(answer, edit=None)
        if event.task_id not in updated and not answer.toast and not answer.replies:
            return
        # a toast confirms what the updated card already shows; refusals and news are sent as text
        views = answer.views() if answer.alert or event.task_id not in updated else list(answer.replies)
        await self._reply(member, views)

    async def _on_image(self, app: WecomApp, caller: Caller, message) -> None:
        data = await self.download(self.credentials(app), message._data.get("MediaId", ""))
        await self._reply(caller.member, (await self.s.conversation.photo(caller, data)).views())

    async def _reply(self, member: Member, views: list[View]) -> None:
        for view in views:
            try:
                await self.send(member, view, wait=True)  # they just acted: worth a short wait for a slot
            except WechatApiError as exc:
                log.warning("reply to WeCom member %s failed: %s", member.id, exc.errcode)

    # ---- setup ---------------------------------------------------------------------------------
    async def setup_menu(self, app: WecomApp) -> None:
        """The app's menu lists what the desk offers here (members join by the app's visibility: no invite)."""
        await self.call(self.credentials(app), "menu/create", params={"agentid": str(app.agent_id)}, json=MENU)

    async def sync_members(self, app: WecomApp) -> list[str]:
        """Joins the users the app is visible to (agent/get); departments and tags join on first use."""
        answer = await self.call(self.credentials(app), "agent/get", params={"agentid": str(app.agent_id)})
        users = [u.get("userid") for u in (answer.get("allow_userinfos") or {}).get("user", []) if u.get("userid")]
        for user in users:
            await self.join(app, user)
        return users
