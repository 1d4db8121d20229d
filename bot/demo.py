"""`ozonbot demo`: a seeded Ozon sandbox, the real services and a console chat, no credentials needed."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet
from pydantic import SecretStr

from bot.app import build_services
from bot.config import Settings
from bot.logsetup import setup_logging
from handlers.console import ConsoleChannel
from sandbox.ozon import OzonSandbox
from services.storage.states import Role

CLIENT_ID = "100500"
API_KEY = "demo-key-not-secret"


async def run_demo(*, lang: str = "zh_CN", orders: int = 5, stream=None) -> int:
    sandbox = OzonSandbox(seed=7, label_delay=1.0, registration_delay=1.0)
    sandbox.add_seller(CLIENT_ID, API_KEY)
    sandbox.generate_orders(CLIENT_ID, orders)
    base_url = await sandbox.start()
    data_dir = Path(tempfile.mkdtemp(prefix="ozonbot-demo-"))
    settings = Settings(_env_file=None, data_dir=data_dir, ozon_api_url=base_url, label_delay=2.0,
                        secret_key=SecretStr(Fernet.generate_key().decode()), telegram_token=None,
                        database_url=f"sqlite://{data_dir}/demo.sqlite3", quiet_hours="off")
    services = build_services(settings)
    setup_logging("WARNING", services.redactor)
    try:
        await services.start(schedule=False)
        connected = await services.desk.connect_seller(CLIENT_ID, API_KEY, name="Urumqi demo seller")
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
        await services.stop()
        await sandbox.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0

