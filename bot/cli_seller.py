"""`ozonbot seller add|list|remove|wecom|robot|invite|kuaidi100`: connecting sellers and their channels by hand."""

from __future__ import annotations

import sys

from bot.app import Services, build_services
from bot.config import Settings
from bot.logsetup import setup_logging
from handlers.wechat.api import WechatApiError, WechatHttp
from handlers.wechat.work import WecomChannel
from services.desk import ConnectError
from services.firstmile import AccountError
from services.security import new_token
from services.storage.models import Seller
from services.storage.states import Role
from services.wechat_apps import SetupError

SETUP_HINTS = {
    "corp-id": "the corp ID is letters and digits (企业ID, e.g. ww1436e0e65a779aee)",
    "agent-id": "the AgentId is a number, and one app belongs to one seller",
    "secret": "the Secret looks wrong (copy it from the app's page)",
    "token": "the Token is 3 to 32 letters and digits",
    "aes-key": "the EncodingAESKey is exactly 43 characters",
    "key": "the robot key looks wrong (copy the webhook URL)",
}


async def seller_command(settings: Settings, args) -> int:
    services = build_services(settings)
    setup_logging("WARNING", services.redactor)
    for name in ("api_key", "secret", "aes_key", "token", "key"):
        services.redactor.add(getattr(args, name, None))
    await services.start(schedule=False, claims=False)  # the live service's claims are not ours (M3)
    try:
        if args.action == "add":
            return await _seller_add(services, args)
        if args.action in ("wecom", "robot", "invite", "kuaidi100", "push-token"):
            command = {"wecom": seller_wecom, "robot": seller_robot, "invite": seller_invite,
                       "kuaidi100": seller_kuaidi100, "push-token": seller_push_token}[args.action]
            return await command(services, args)
        if args.action == "list":
            for seller in await Seller.all().order_by("id"):
                print(f"{seller.client_id}\t{seller.name}\tkey={seller.key_state}\texpires={seller.key_expires_at}"
                      f"\tpush={settings.base_url}/ozon/push/{seller.push_token}")
            return 0
        deleted = await Seller.filter(client_id=args.client_id).delete()
        print("removed" if deleted else f"no seller {args.client_id}")
        return 0 if deleted else 1
    finally:
        await services.stop()


async def _seller_add(services: Services, args) -> int:
    try:
        connected = await services.desk.connect_seller(args.client_id, args.api_key, name=args.name)
    except ConnectError as exc:
        reasons = {
            "bad_client_id": "the Client-Id must be a number",
            "bad_key": "the API key is empty or malformed",
            "unavailable": "Ozon did not answer; try again later",
            "rejected": f"Ozon refused the key ({exc.detail})",
        }
        print(f"not added: {reasons.get(exc.reason, exc.reason)}. Nothing was stored.", file=sys.stderr)
        return 1
    seller = connected.seller
    print(f"{'added' if connected.created else 'updated'} seller {seller.client_id}")
    print(f"key expires: {connected.roles.expires_at or 'unknown'}")
    print(f"warehouses: {', '.join(w.name or str(w.warehouse_id) for w in connected.warehouses) or '-'}")
    print(f"Ozon push URL: {services.settings.base_url}/ozon/push/{seller.push_token}")
    return 0


async def _seller(client_id: str) -> Seller | None:
    seller = await Seller.get_or_none(client_id=client_id)
    if seller is None:
        print(f"no seller {client_id}: add it first with `ozonbot seller add`", file=sys.stderr)
    return seller


async def seller_push_token(services: Services, args) -> int:
    """L8: the push URL is a bearer credential; --rotate replaces it (a leaked URL then stops working)."""
    seller = await _seller(args.client_id)
    if seller is None:
        return 1
    if args.rotate:
        seller.push_token = new_token()
        await seller.save(update_fields=["push_token"])
        print("new push URL (the old one is refused from now on; paste this one in the Ozon cabinet):")
    print(f"{services.settings.base_url}/ozon/push/{seller.push_token}")
    return 0


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
    channel = WecomChannel(services.wechat_port())
    try:
        for owner in args.owner:
            await channel.join(app, owner, role=Role.OWNER)
        users = await channel.sync_members(app)
        print(f"app members on the desk: {', '.join(users) or '-'}")
        await channel.setup_menu(app)
        print("app menu: 待打包 · 查询订单 · 更多 (设置, 成员, 连接店铺, 帮助)")
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

        sender = OfficialSender(services.wechat_port(), WechatHttp(on_secret=services.redactor.add))
        try:
            print(f"WeChat binding QR code: {await sender.binding_qr(invite.code)}")
        except WechatApiError as exc:
            print(f"warning: no QR code ({exc.errcode} {exc.errmsg}); the code works by text", file=sys.stderr)
        finally:
            await sender.http.close()
    return 0


async def seller_kuaidi100(services: Services, args) -> int:
    seller = await _seller(args.client_id)
    if seller is None:
        return 1
    if args.remove:
        removed = await services.first_mile.remove_account(seller)
        print("removed: waybills are no longer watched" if removed else f"seller {seller.client_id} has no Kuaidi100 account")
        return 0 if removed else 1
    if not args.key or not args.customer:
        print("not connected: give --key and --customer (or --remove)", file=sys.stderr)
        return 2
    try:
        account = await services.first_mile.connect_account(seller, args.key, args.customer, phone_tail=args.phone)
    except AccountError as exc:
        reasons = {"bad_input": "the key or customer id looks wrong (letters and digits), or the phone tail is "
                                "not 4+ digits",
                   "rejected": f"Kuaidi100 refused the key or customer id ({exc.detail})",
                   "unavailable": f"Kuaidi100 did not answer ({exc.detail}); try again later"}
        print(f"not connected: {reasons.get(exc.reason, exc.reason)}. Nothing was stored.", file=sys.stderr)
        return 1
    print(f"connected Kuaidi100 for seller {seller.client_id}: every waybill the desk records is now watched")
    print(f"push callback: {services.first_mile.callback_url(account)}")
    return 0
