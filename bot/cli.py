"""The `ozonbot` command line: arguments and dispatch. The running service is bot/service.py, the seller
commands bot/cli_seller.py."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot.config import Settings
from services.security import InterruptedRotation
from services.storage import db
from services.storage.states import Role

DEMO_CLIENT_ID = "100500"
DEMO_API_KEY = "demo-key-not-secret"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ozonbot", description="Ozon FBS/rFBS shipping desk in Telegram and "
                                     "WeChat. Configuration comes from OZONBOT_* environment variables and .env.")
    parser.add_argument("--version", action="version", version=f"ozonbot {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="run the service: Ozon sync, channels, web server, scheduler")
    demo = sub.add_parser("demo", help="try the bot: a seeded Ozon sandbox and a console chat, no credentials")
    demo.add_argument("--lang", default="zh_CN", choices=["zh_CN", "ru", "en"], help="language of the demo chat")
    demo.add_argument("--orders", type=int, default=5, help="how many sandbox orders to start with")
    sub.add_parser("migrate", help="apply database migrations")
    doctor = sub.add_parser("doctor", help="check the installation: database, key, channels, Ozon keys, clock; "
                            "exit 0 only when every check passes")
    doctor.add_argument("--json", action="store_true", help="the report as JSON, for scripts")
    backup = sub.add_parser("backup", help="a consistent copy of the SQLite database, safe while the service "
                            "runs (PostgreSQL: pg_dump)")
    backup.add_argument("file", help="where the copy goes (never overwritten)")
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
    push_token = seller_sub.add_parser("push-token", help="show the seller's push URL; --rotate makes a new one "
                                                          "(the old URL stops working: paste the new one in Ozon)")
    push_token.add_argument("client_id")
    push_token.add_argument("--rotate", action="store_true")
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
    invite.add_argument("--role", choices=[Role.OWNER, Role.PACKER], default=Role.PACKER)
    robot = seller_sub.add_parser("robot", help="send the seller's alerts to a WeCom group robot too (push only)")
    robot.add_argument("client_id", metavar="seller", help="the seller's Ozon Client-Id")
    robot.add_argument("--key", required=True, help="the robot's webhook URL or its key=… part")
    robot.add_argument("--name", default="", help="a name for the group")
    kd100 = seller_sub.add_parser("kuaidi100", help="watch the seller's first mile through a Kuaidi100 account "
                                  "(checked with a real call, the key stored encrypted); --remove forgets it")
    kd100.add_argument("client_id", metavar="seller", help="the seller's Ozon Client-Id")
    kd100.add_argument("--key", help="the account's 授权key")
    kd100.add_argument("--customer", help="the account's customer id")
    kd100.add_argument("--phone", default="", help="the last 4 digits of the phone on the seller's waybills "
                       "(SF and ZTO show a trace only with it)")
    kd100.add_argument("--remove", action="store_true", help="forget the account; waybills stop being watched")
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
    from bot.backup import backup_command
    from bot.cli_seller import seller_command
    from bot.doctor import doctor_command
    from bot.rotate import rotate_key_command
    from bot.service import run_service

    commands = {"run": lambda settings, args: run_service(settings), "migrate": migrate_command,
                "seller": seller_command, "rotate-key": rotate_key_command, "doctor": doctor_command,
                "backup": backup_command}
    return _run(commands[args.command](settings, args))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ozonbot")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


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


if __name__ == "__main__":
    raise SystemExit(main())
