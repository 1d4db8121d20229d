"""WeChat wiring for `ozonbot run` and the `ozonbot seller wecom|robot` commands."""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass, field

from aiohttp import web

from bot.app import Services
from handlers.wechat.api import WechatApiError, WechatHttp
from handlers.wechat.robot import RobotSender
from handlers.wechat.work import WecomChannel
from services.storage.models import Seller
from services.wechat_apps import SetupError

log = logging.getLogger(__name__)
SETUP_HINTS = {
    "corp-id": "the corp ID is letters and digits (企业ID, e.g. ww1436e0e65a779aee)",
    "agent-id": "the AgentId is a number, and one app belongs to one seller",
    "secret": "the Secret looks wrong (copy it from the app's page)",
    "token": "the Token is 3 to 32 letters and digits",
    "aes-key": "the EncodingAESKey is exactly 43 characters",
    "key": "the robot key looks wrong (copy the webhook URL)",
}


@dataclass
class WechatRuntime:
    closers: list = field(default_factory=list)

    async def close(self) -> None:
        for close in self.closers:
            await close()


async def start_wechat(services: Services, web_app: web.Application) -> WechatRuntime:
    """The WeCom app route and sender (per-seller settings live in the database), the group robot
    sender, and the Official Account when its environment is set."""
    runtime = WechatRuntime()
    http = WechatHttp(on_secret=services.redactor.add)
    wecom = WecomChannel(services, http)
    services.channels.register(wecom)
    web_app.add_routes(wecom.routes())
    services.channels.register(RobotSender(services, http))
    runtime.closers.append(wecom.close)
    if services.settings.official_account:
        from handlers.wechat.official import OfficialAccount

        official = OfficialAccount(services, http)
        services.channels.register(official)
        web_app.add_routes(official.routes())
        runtime.closers.insert(0, official.close)
        runtime.closers.append(_in_background(official.setup_menu()))
    return runtime


def _in_background(coro):
    task = asyncio.create_task(coro)

    async def close() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return close


async def _seller(client_id: str) -> Seller | None:
    seller = await Seller.get_or_none(client_id=client_id)
    if seller is None:
        print(f"no seller {client_id}: add it first with `ozonbot seller add`", file=sys.stderr)
    return seller


async def seller_wecom(services: Services, args) -> int:
    seller = await _seller(args.client_id)
    if seller is None:
        return 1
    try:
        app = await services.apps.configure_wecom(seller, corp_id=args.corp_id, agent_id=args.agent_id,
                                                  secret=args.secret, token=args.token, aes_key=args.aes_key)
    except SetupError as exc:
        print(f"not saved: {SETUP_HINTS[exc.field]}. Nothing was stored.", file=sys.stderr)
        return 1
    channel = WecomChannel(services)
    try:
        for owner in args.owner:
            await channel.join(app, owner, role="owner")
        users = await channel.sync_members(app)
        print(f"app members on the desk: {', '.join(users) or '-'}")
    except WechatApiError as exc:
        # not fatal: members join when they first write to the app
        print(f"warning: WeCom did not list the app's members ({exc.errcode} {exc.errmsg}); they join the desk "
              "when they first message the app", file=sys.stderr)
    finally:
        await channel.close()
    print(f"saved the WeCom app {app.corp_id}/{app.agent_id} for seller {seller.client_id} (secrets encrypted)")
    print(f"callback URL: {services.settings.base_url}/wechat/work/{app.tenant}")
    print("In the WeCom admin console: the app → 接收消息 → 设置API接收: enter this URL with the same Token and "
          "EncodingAESKey; add this server's IP to 企业可信IP.")
    return 0


async def seller_robot(services: Services, args) -> int:
    seller = await _seller(args.client_id)
    if seller is None:
        return 1
    try:
        member = await services.apps.add_robot(seller, args.key, name=args.name)
    except SetupError as exc:
        print(f"not saved: {SETUP_HINTS[exc.field]}. Nothing was stored.", file=sys.stderr)
        return 1
    print(f"group robot {member.name} receives the alerts of seller {seller.client_id} (key encrypted)")
    return 0



async def seller_invite(services: Services, args) -> int:
    """An invite code for any channel; with the Official Account on, also its binding QR code."""
    seller = await _seller(args.client_id)
    if seller is None:
        return 1
    invite = await services.desk.seller_invite(seller.id, args.role)
    print(f"invite code: {invite.code} (role {invite.role}, valid until {invite.expires_at:%Y-%m-%d %H:%M} UTC)")
    print(f"Telegram: /join {invite.code}    WeChat: send 加入 {invite.code}")
    if services.settings.official_account:
        from handlers.wechat.official_sender import OfficialSender

        sender = OfficialSender(services, WechatHttp(on_secret=services.redactor.add))
        try:
            print(f"WeChat binding QR code: {await sender.binding_qr(invite.code)}")
        except WechatApiError as exc:
            print(f"warning: no QR code ({exc.errcode} {exc.errmsg}); the code works by text", file=sys.stderr)
        finally:
            await sender.http.close()
    return 0
