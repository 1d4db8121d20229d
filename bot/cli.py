"""The `ozonbot` command line."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from aiohttp import web

from bot.app import PUSH_KEY, Services, build_services, build_web_app, tune_gc
from bot.config import Settings
from bot.logsetup import setup_logging
from services.desk import ConnectError
from services.security import InterruptedRotation
from services.storage import db
from services.storage.models import Seller

DEMO_CLIENT_ID = "100500"
DEMO_API_KEY = "demo-key-not-secret"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ozonbot", description="Ozon FBS/rFBS shipping desk in Telegram and "
                                     "WeChat. Configuration comes from OZONBOT_* environment variables and .env.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="run the service: Ozon sync, channels, web server, scheduler")
    demo = sub.add_parser("demo", help="try the bot: a seeded Ozon sandbox and a console chat, no credentials")
    demo.add_argument("--lang", default="zh_CN", choices=["zh_CN", "ru", "en"], help="language of the demo chat")
    demo.add_argument("--orders", type=int, default=5, help="how many sandbox orders to start with")
    sub.add_parser("migrate", help="apply database migrations")
    rotate = sub.add_parser("rotate-key", help="re-encrypt every stored secret under a new key (stop the service "
                            "first)")
    rotate.add_argument("--new-key", help="use this Fernet key instead of generating one")
    sandbox = sub.add_parser("sandbox", help="serve the Ozon sandbox alone (for trying things by hand)")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8081)
    sandbox.add_argument("--seed", type=int, default=7)
    sandbox.add_argument("--client-id", default=DEMO_CLIENT_ID)
    sandbox.add_argument("--api-key", default=DEMO_API_KEY)
    sandbox.add_argument("--orders", type=int, default=5)
    sandbox.add_argument("--label-delay", type=float, default=2.0)
    seller = sub.add_parser("seller", help="manage connected Ozon sellers")
    seller_sub = seller.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = seller_sub.add_parser("add", help="check an Ozon key and store it encrypted")
    add.add_argument("--client-id", required=True)
    add.add_argument("--api-key", required=True)
    add.add_argument("--name", default="")
    seller_sub.add_parser("list", help="list sellers, key expiry and push URLs")
    remove = seller_sub.add_parser("remove", help="remove a seller and everything stored for it")
    remove.add_argument("client_id")
    wecom = seller_sub.add_parser("wecom", help="connect the seller's WeCom self-built app (buttons in 企业微信); "
                                  "prints the callback URL to enter in the WeCom admin console")
    wecom.add_argument("client_id", metavar="seller", help="the seller's Ozon Client-Id")
    wecom.add_argument("--corp-id", required=True, help="企业ID (My company → Company info)")
    wecom.add_argument("--agent-id", required=True, help="the app's AgentId")
    wecom.add_argument("--secret", required=True, help="the app's Secret")
    wecom.add_argument("--token", required=True, help="API receive (接收消息) Token")
    wecom.add_argument("--aes-key", required=True, help="API receive EncodingAESKey (43 characters)")
    wecom.add_argument("--owner", action="append", default=[], metavar="USERID",
                       help="WeCom UserID of a desk owner (repeatable); other app members are packers")
    invite = seller_sub.add_parser("invite", help="a one-time code (and the WeChat binding QR code) for the desk")
    invite.add_argument("client_id", metavar="seller", help="the seller's Ozon Client-Id")
    invite.add_argument("--role", choices=["owner", "packer"], default="packer")
    robot = seller_sub.add_parser("robot", help="send the seller's alerts to a WeCom group robot too (push only)")
    robot.add_argument("client_id", metavar="seller", help="the seller's Ozon Client-Id")
    robot.add_argument("--key", required=True, help="the robot's webhook URL or its key=… part")
    robot.add_argument("--name", default="", help="a name for the group")
    bench = sub.add_parser("bench", help="measure alert latency, poll cost at scale, button throughput and Ozon "
                           "calls on loopback; writes bench/results/")
    bench.add_argument("--quick", action="store_true", help="smaller sizes, for a first look (about a minute)")
    bench.add_argument("--scenario", action="append", choices=["push", "poll", "scale", "buttons", "calls"],
                       help="run only this scenario (repeatable); default: all")
    bench.add_argument("--sellers", type=int, action="append", help="seller counts for the scale scenario "
                       "(repeatable); default 1000 and 10000")
    bench.add_argument("--database", choices=["sqlite", "postgres", "both"],
                       help="default: SQLite, plus PostgreSQL when OZONBOT_BENCH_DATABASE_URL is set or "
                       "127.0.0.1:5432 answers (database ozonbot_bench, emptied by the bench)")
    bench.add_argument("--poll-interval", type=float, default=5.0, help="interval of the poll → alert scenario")
    bench.add_argument("--out", default="bench/results", help="where results are written")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "sandbox":
        from sandbox.ozon import serve

        return _run(serve(args.host, args.port, args.seed, args.client_id, args.api_key, args.orders,
                          args.label_delay))
    if args.command == "bench":
        return _run(_bench(args))
    if args.command == "demo":
        from bot.demo import run_demo

        return _run(run_demo(lang=args.lang, orders=args.orders))
    try:
        settings = Settings()
    except Exception as exc:  # pydantic's message names the variable at fault
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    from bot.rotate import rotate_key_command

    commands = {"run": run_service, "migrate": migrate_command, "seller": seller_command,
                "rotate-key": rotate_key_command}
    return _run(commands[args.command](settings, args))


def _run(coro) -> int:
    try:
        return asyncio.run(coro) or 0
    except KeyboardInterrupt:
        return 130
    except InterruptedRotation as exc:
        print(str(exc), file=sys.stderr)
        return 2


async def _bench(args) -> int:
    from pathlib import Path

    from bench.options import Options
    from bench.runner import run_bench

    opts = Options(quick=args.quick, sellers=args.sellers or [], poll_interval=args.poll_interval, out=Path(args.out))
    return await run_bench(opts, args.scenario, args.database)


async def migrate_command(settings: Settings, args) -> int:
    await db.migrate(settings.db_url)
    print("database is up to date")
    return 0


async def seller_command(settings: Settings, args) -> int:
    services = build_services(settings)
    setup_logging("WARNING", services.redactor)
    for name in ("api_key", "secret", "aes_key", "token", "key"):
        services.redactor.add(getattr(args, name, None))
    await services.start(schedule=False)
    try:
        if args.action == "add":
            return await _seller_add(services, args)
        if args.action in ("wecom", "robot", "invite"):
            from bot.wechat_cli import seller_invite, seller_robot, seller_wecom

            command = {"wecom": seller_wecom, "robot": seller_robot, "invite": seller_invite}[args.action]
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


async def run_service(settings: Settings, args=None, *, stop: asyncio.Event | None = None,
                      ready: asyncio.Event | None = None) -> int:
    """`ready` is set once every channel is up (the port listens earlier: a webhook must be reachable
    before Telegram is told about it)."""
    stop = stop or _stop_on_signals()  # first: a SIGTERM during start-up is a clean stop too
    services = build_services(settings)
    setup_logging(settings.log_level, services.redactor)
    await services.start()
    web_app = build_web_app(services)
    telegram = None
    if settings.telegram_token:
        from handlers.telegram import TelegramChannel

        telegram = TelegramChannel(services)
        services.channels.register(telegram)
        web_app.add_routes(telegram.webhook_routes())
    from bot.wechat_cli import start_wechat

    wechat = await start_wechat(services, web_app)
    runner = web.AppRunner(web_app)
    await runner.setup()
    await web.TCPSite(runner, settings.http_host, settings.http_port).start()
    if telegram is not None:
        await telegram.start()
    await services.resume()
    tune_gc()
    print(f"ozonbot listening on {settings.http_host}:{settings.http_port}", flush=True)
    if ready is not None:
        ready.set()
    await stop.wait()
    if telegram is not None:
        await telegram.stop()
    await wechat.close()
    await web_app[PUSH_KEY].close()
    await runner.cleanup()
    await services.stop()
    return 0


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


if __name__ == "__main__":
    raise SystemExit(main())
