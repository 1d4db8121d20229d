"""`ozonbot demo`: a seeded Ozon sandbox, the real services and a console chat, no credentials needed."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from aiohttp import web
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bot.app import build_services
from bot.config import Settings
from bot.logsetup import setup_logging
from bot.service import build_web_app
from handlers.console import ConsoleChannel
from sandbox.kuaidi100 import Kuaidi100Sandbox
from sandbox.ozon import OzonSandbox
from services.storage.states import Role

CLIENT_ID = "100500"
API_KEY = "demo-key-not-secret"
KD100_KEY, KD100_CUSTOMER = "demokuaidi100key", "DEMOCUSTOMER"
# what the demo courier scans after a waybill is subscribed (seconds after it, text, Kuaidi100 state)
DEMO_COURIER = [(3.0, "【乌鲁木齐市】快件已揽收", 1), (8.0, "【乌鲁木齐转运中心】快件已发往 义乌", 0)]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def run_demo(*, lang: str = "zh_CN", orders: int = 5, stream=None) -> int:
    sandbox = OzonSandbox(seed=7, label_delay=1.0, registration_delay=1.0)
    sandbox.add_seller(CLIENT_ID, API_KEY)
    sandbox.generate_orders(CLIENT_ID, orders)
    base_url = await sandbox.start()
    kuaidi100 = Kuaidi100Sandbox(courier_script=DEMO_COURIER)  # a typed waybill moves: the first mile
    kuaidi100.add_account(KD100_KEY, KD100_CUSTOMER)
    kuaidi100_url = await kuaidi100.start()
    data_dir = Path(tempfile.mkdtemp(prefix="ozonbot-demo-"))
    settings = Settings(_env_file=None, data_dir=data_dir, ozon_api_url=base_url, label_delay=2.0,
                        secret_key=SecretStr(Fernet.generate_key().decode()), telegram_token=None,
                        database_url=f"sqlite://{data_dir}/demo.sqlite3", quiet_hours="off",
                        kuaidi100_api_url=kuaidi100_url, http_port=_free_port())
    services = build_services(settings)
    setup_logging("WARNING", services.redactor)
    runner = web.AppRunner(build_web_app(services), access_log=None)  # Kuaidi100's pushes come in here
    try:
        await services.start(schedule=False)
        await runner.setup()
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
        connected = await services.desk.connect_seller(CLIENT_ID, API_KEY, name="Urumqi demo seller")
        await services.first_mile.connect_account(connected.seller, KD100_KEY, KD100_CUSTOMER)
        member = await services.desk.join_as(connected.seller, channel="console", external_id="demo",
                                             chat_id="console", name="Demo packer", locale=lang, role=Role.OWNER)
        console = ConsoleChannel(services.conversation, member)
        services.channels.register(console)
        tr = services.catalogs.for_member(member, connected.seller)
        print(tr.gettext("ozonbot demo: a sandbox Ozon seller with {n} new orders. Type /orders, /status <number>,"
                         " or the number of an option; /help for more.").format(n=orders), flush=True)
        await services.sync.poll(connected.seller)
        await console.run(stream or sys.stdin)
        await services.shipping.drain(timeout=8.0)
    finally:
        await runner.cleanup()
        await services.stop()
        await kuaidi100.stop()
        await sandbox.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0

