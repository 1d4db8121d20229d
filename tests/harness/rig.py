"""The stage for a fault run: sandbox and fake Bot API in this process, `ozonbot run` as children, a desk
(owner, packer), another seller's owner and a stranger, all talking through the bot itself."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cryptography.fernet import Fernet

from sandbox.ozon import Faults, OzonSandbox
from sandbox.telegram import DEFAULT_TOKEN, FakeBotAPI
from services.storage.models import Event, Intent, Notification, Seller
from tests.harness.processes import BotProcess
from tests.harness.users import Person, member_ids

CLIENT_A, KEY_A = "424242", "sandbox-key-0123456789"
CLIENT_B, KEY_B = "515151", "other-seller-key-987654"
TG_FAULT_METHODS = ("sendMessage", "editMessageText", "sendDocument", "answerCallbackQuery")


class Rig:
    def __init__(self, workdir: Path, db_url: str, sandbox: OzonSandbox, tg: FakeBotAPI, *, poll_interval: float = 2):
        self.workdir = workdir
        self.db_url = db_url
        self.sandbox = sandbox
        self.tg = tg
        self.secret_key = Fernet.generate_key().decode()
        self.poll_interval = poll_interval
        self.processes: list[BotProcess] = []
        self.owner = Person(1001, "owner")
        self.packer = Person(1002, "packer")
        self.other_owner = Person(2001, "other-owner")
        self.stranger = Person(6666, "stranger")
        sandbox.add_seller(CLIENT_A, KEY_A)
        sandbox.add_seller(CLIENT_B, KEY_B)

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "OZONBOT_DATA_DIR": str(self.workdir / "data"),
            "OZONBOT_DATABASE_URL": self.db_url,
            "OZONBOT_SECRET_KEY": self.secret_key,
            "OZONBOT_OZON_API_URL": self.sandbox.base_url,
            "OZONBOT_OZON_TIMEOUT": "1.5",
            "OZONBOT_TELEGRAM_TOKEN": DEFAULT_TOKEN,
            "OZONBOT_TELEGRAM_API_URL": f"{self.tg.base_url}/bot",
            "OZONBOT_TELEGRAM_FILE_URL": f"{self.tg.base_url}/file/bot",
            "OZONBOT_POLL_INTERVAL": str(self.poll_interval),
            "OZONBOT_LABEL_DELAY": "0.5",
            "OZONBOT_QUIET_HOURS": "off",
            "OZONBOT_LOG_LEVEL": "INFO",
            "OZONBOT_INBOUND_PER_MEMBER": "1000",  # the intruders press far faster than any person
            "OZONBOT_INBOUND_PER_CHAT": "1000",  # … and a flood answer ("too many") is no authorisation verdict
            "OZONBOT_TELEGRAM_CHAT_RATE": "1000",  # pacing per chat is test_flood.py's subject, not crashes
        }
        env.update(extra)
        return env

    def process(self, name: str, **extra: str) -> BotProcess:
        bot = BotProcess(name, self.env(**extra), self.workdir)
        self.processes.append(bot)
        return bot

    def kill_all(self) -> None:
        """Teardown: no child may outlive its test (it would work on the next test's database)."""
        for bot in self.processes:
            bot.kill()

    # ---- the desk, set up through the bot like a new user does -------------------------------------
    async def set_up_desks(self) -> None:
        tg = self.tg
        for person in (self.owner, self.packer, self.other_owner, self.stranger):
            tg.push_message(person.user_id, "/lang en", language_code="en", first_name=person.name)
            await tg.wait_for_message(person.user_id, "Language set", timeout=20)
        for person, client, key in ((self.owner, CLIENT_A, KEY_A), (self.other_owner, CLIENT_B, KEY_B)):
            tg.push_message(person.user_id, f"/connect {client} {key}", language_code="en")
            await tg.wait_for_message(person.user_id, f"Connected Ozon seller {client}", timeout=20)
        tg.push_message(self.owner.user_id, "/invite", language_code="en")
        invite = await tg.wait_for_message(self.owner.user_id, "One-time code", timeout=10)
        code = invite.text.split("One-time code for a packer: ")[1].split()[0]
        tg.push_message(self.packer.user_id, f"/join {code}", language_code="en", first_name="packer")
        await tg.wait_for_message(self.packer.user_id, "You are on the desk", timeout=10)
        await member_ids([self.owner, self.packer, self.other_owner, self.stranger])

    async def push_url(self, bot: BotProcess, client_id: str) -> str:
        seller = await Seller.get(client_id=client_id)
        return f"{bot.url}/ozon/push/{seller.push_token}"

    # ---- faults ------------------------------------------------------------------------------------
    def faults_on(self, rate: float = 0.15) -> None:
        """Ozon: `rate` of calls fail (429 with Retry-After, 500, timeouts); Telegram: 429 and 502."""
        third = rate / 3
        self.sandbox.faults = Faults(rate_429=third, rate_500=third, rate_timeout=third, timeout_seconds=3,
                                     retry_after=1)
        self.tg.fail_rate(rate, statuses=(429, 502), seed=9, retry_after=1, methods=TG_FAULT_METHODS)

    def faults_off(self) -> None:
        self.sandbox.faults = Faults()
        self.tg.clear_faults()

    async def settle(self, timeout: float = 60) -> dict:
        """Waits until nothing is owed: every intent finished, every notification delivered."""
        deadline = time.monotonic() + timeout
        while True:
            owed = {
                "intents_pending": await Intent.filter(state="pending").count(),
                "notifications_owed": await Notification.filter(state__in=("sending", "failed")).count(),
                "events_undispatched": await Event.filter(dispatched_at__isnull=True).count(),
            }
            if not any(owed.values()) or time.monotonic() > deadline:
                return owed
            await asyncio.sleep(0.3)


def ship_counts(sandbox: OzonSandbox, numbers: list[str]) -> tuple[dict[str, int], int]:
    """(applied ship calls per posting, ship requests in all, retries and refusals included)."""
    calls = [c for c in sandbox.calls if c.path == "/v4/posting/fbs/ship"]
    applied = {n: sum(1 for c in calls if c.status == 200 and c.body.get("posting_number") == n) for n in numbers}
    return applied, len(calls)


def tracking_counts(sandbox: OzonSandbox, numbers: list[str]) -> dict[str, int]:
    calls = [c for c in sandbox.calls if c.path == "/v2/fbs/posting/tracking-number/set" and c.status == 200]
    return {n: sum(1 for c in calls for item in c.body.get("tracking_numbers", []) if item.get("posting_number") == n)
            for n in numbers}
