"""Secrets at rest: `ozonbot rotate-key` as an operator runs it, and a scan of the database file and every
log line of a full run for each secret the run used."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet

from bot.app import build_services
from bot.config import Settings
from sandbox.kuaidi100 import Kuaidi100Sandbox
from sandbox.ozon import OzonSandbox
from sandbox.telegram import DEFAULT_TOKEN
from services.firstmile import FirstMile
from services.security import ENCRYPTED_FIELDS, SecretBox
from services.storage import db
from services.storage.models import Seller
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.rig import CLIENT_A, KEY_A, KEY_B, Rig
from tests.harness.users import DeskWorker, Tally, Work

KD100_KEY = "kd100scankey0123456789"


def _cli(settings: Settings, *args: str, env_key: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OZONBOT_DATA_DIR": str(settings.data_dir), "OZONBOT_DATABASE_URL": settings.db_url}
    env.pop("OZONBOT_SECRET_KEY", None)
    if env_key:
        env["OZONBOT_SECRET_KEY"] = env_key
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, capture_output=True, text=True,
                          cwd=settings.data_dir.parent)


async def _seller_with_key(settings: Settings) -> None:
    services = build_services(settings)
    await services.start(schedule=False)
    try:
        await services.desk.connect_seller(CLIENT_ID, API_KEY)
    finally:
        await services.stop()


async def _stored_key() -> str:
    await db.connect(_stored_key.url, apply_migrations=False)
    try:
        return (await Seller.get(client_id=CLIENT_ID)).api_key_enc
    finally:
        await db.close()


def test_every_encrypted_column_is_registered():
    assert ("seller", "api_key_enc") in ENCRYPTED_FIELDS
    assert {("tracking_account", "key_enc"), ("waybill", "salt_enc")} <= set(ENCRYPTED_FIELDS)


async def test_rotate_key_with_a_key_file(make_settings, sandbox):
    settings = make_settings(secret_key=None, ozon_api_url=sandbox.base_url)
    await _seller_with_key(settings)
    key_file = settings.data_dir / "secret.key"
    old = key_file.read_text().strip()
    _stored_key.url = settings.db_url
    before = await _stored_key()

    done = await asyncio.to_thread(_cli, settings, "rotate-key")
    assert done.returncode == 0, done.stderr
    assert "re-encrypted seller.api_key_enc: 1 value(s)" in done.stdout
    new = key_file.read_text().strip()
    assert new != old and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(p.name for p in settings.data_dir.iterdir() if p.name.startswith("secret")) == ["secret.key"]
    assert new not in done.stdout + done.stderr and old not in done.stdout + done.stderr
    after = await _stored_key()
    assert after != before and SecretBox(new).decrypt(after) == API_KEY
    with pytest.raises(ValueError):
        SecretBox(old).decrypt(after)
    # the service reads the new key file and can still talk to Ozon for the seller
    services = build_services(settings)
    await services.start(schedule=False)
    try:
        report = await services.sync.poll(await Seller.get(client_id=CLIENT_ID))
        assert report.postings >= 0
    finally:
        await services.stop()

    bad = await asyncio.to_thread(_cli, settings, "rotate-key", "--new-key", "not-a-key")
    assert bad.returncode == 2 and "Nothing was changed" in bad.stderr
    assert await _stored_key() == after


async def test_rotate_key_cut_short_is_finished_by_running_it_again(make_settings, sandbox):
    settings = make_settings(secret_key=None, ozon_api_url=sandbox.base_url)
    await _seller_with_key(settings)
    pending = settings.data_dir / "secret.key.new"
    new = Fernet.generate_key().decode()
    pending.write_text(new)  # as if the command died right after writing it
    refused = await asyncio.to_thread(_cli, settings, "seller", "list")
    assert refused.returncode == 2 and "rotate-key" in refused.stderr
    done = await asyncio.to_thread(_cli, settings, "rotate-key")
    assert done.returncode == 0 and "finishing" in done.stdout
    assert (settings.data_dir / "secret.key").read_text().strip() == new and not pending.exists()
    _stored_key.url = settings.db_url
    assert SecretBox(new).decrypt(await _stored_key()) == API_KEY


async def test_rotate_key_with_the_key_in_the_environment_writes_no_file(make_settings, sandbox):
    settings = make_settings(ozon_api_url=sandbox.base_url)
    await _seller_with_key(settings)
    files = sorted(os.listdir(settings.data_dir)) if settings.data_dir.exists() else []
    done = await asyncio.to_thread(_cli, settings, "rotate-key", env_key=settings.secret_key.get_secret_value())
    assert done.returncode == 0, done.stderr
    new = done.stdout.splitlines()[1].strip()
    assert (sorted(os.listdir(settings.data_dir)) if settings.data_dir.exists() else []) == files
    _stored_key.url = settings.db_url
    assert SecretBox(new).decrypt(await _stored_key()) == API_KEY


@pytest.mark.sqlite_only
async def test_no_secret_in_the_database_file_or_the_logs_of_a_full_run(tmp_path, fake_tg):
    sandbox = OzonSandbox(seed=5, label_delay=0.2, registration_delay=0.2)
    await sandbox.start()
    kd = Kuaidi100Sandbox()
    kd.add_account(KD100_KEY, "SCANCUSTOMER")
    await kd.start()
    db_url = f"sqlite://{tmp_path}/scan.sqlite3"
    await db.connect(db_url)
    rig = Rig(tmp_path, db_url, sandbox, fake_tg)
    bot = rig.process("bot", OZONBOT_LOG_LEVEL="DEBUG", OZONBOT_KUAIDI100_API_URL=kd.base_url)
    bot.env["OZONBOT_TELEGRAM_WEBHOOK_URL"] = f"{bot.url}/telegram/webhook"
    try:
        bot.start()
        await bot.wait_ready()
        await rig.set_up_desks()
        # the seller's Kuaidi100 account too: its key, and the salt of the subscription, are secrets
        first_mile = FirstMile(box=SecretBox(rig.secret_key), api_url=kd.base_url, callback_base=bot.url,
                               clock=lambda: datetime.now(UTC))
        await first_mile.start()
        try:
            await first_mile.connect_account(await Seller.get(client_id=CLIENT_A), KD100_KEY, "SCANCUSTOMER")
        finally:
            await first_mile.close()
        (posting,) = sandbox.generate_orders(CLIENT_A, 1, flows=["non_integrated"])
        worker = DeskWorker(fake_tg, rig.owner, Tally())
        await worker.finish(Work(posting["posting_number"], "SF1000000000001"), time.monotonic() + 60)
        await fake_tg.wait_for_call("sendDocument", timeout=20)  # the label went out too
        for _ in range(200):
            if kd.subscriptions:
                break
            await asyncio.sleep(0.05)
        (subscription,) = kd.subscriptions
        kd.scan(subscription.com, subscription.num, "顺丰速运 已收取快件", state=1)
        await kd.flush()
        assert kd.pushes[-1].accepted
        assert await bot.stop() == 0
    finally:
        rig.kill_all()
        await db.close()
        await sandbox.stop()
        await kd.stop()
    secrets = {"api key A": KEY_A, "api key B": KEY_B, "bot token": DEFAULT_TOKEN, "fernet key": rig.secret_key,
               "webhook secret": fake_tg.webhook_secret, "kuaidi100 key": KD100_KEY,
               "kuaidi100 salt": subscription.salt}
    assert all(secrets.values())
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("scan.sqlite3*"))
    logs = bot.log_text()
    assert "level=DEBUG" in logs  # a verbose run: the worst case for leaks
    found = {name for name, value in secrets.items() if value.encode() in stored or value in logs}
    assert not found, f"secrets found at rest or in logs: {sorted(found)}"


async def test_the_push_token_rotates_and_the_data_dir_and_database_are_private(make_settings, sandbox, tmp_path):
    """L8: push tokens could not be rotated; the data dir and the SQLite file took the umask (0755/0644)."""
    from services.storage.models import Seller
    from tests.test_wechat_work import cli

    settings = make_settings(ozon_api_url=sandbox.base_url, data_dir=tmp_path / "fresh", secret_key=None,
                             database_url=f"sqlite://{tmp_path}/db/ozonbot.sqlite3")  # file modes: SQLite
    assert (await cli(settings, "add", "--client-id", CLIENT_ID, "--api-key", API_KEY))[0] == 0
    code, out = await cli(settings, "push-token", CLIENT_ID)
    assert code == 0
    old = out.strip().rsplit("/", 1)[1]
    code, out = await cli(settings, "push-token", CLIENT_ID, "--rotate")
    new = out.strip().rsplit("/", 1)[1]
    assert code == 0 and new != old and len(new) >= 16
    from services.storage import db

    await db.connect(settings.db_url)
    try:
        assert (await Seller.get(client_id=CLIENT_ID)).push_token == new
    finally:
        await db.close()
    assert stat.S_IMODE(os.stat(tmp_path / "fresh").st_mode) == 0o700
    if settings.db_url.startswith("sqlite"):
        assert stat.S_IMODE(os.stat(tmp_path / "db").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(tmp_path / "db" / "ozonbot.sqlite3").st_mode) == 0o600
