"""Running ozonbot as a service: `ozonbot doctor` against the stand-ins, `ozonbot backup` and a restore,
the deployment files, `--version` and JSON-lines logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.logsetup import setup_logging
from sandbox.telegram import DEFAULT_TOKEN
from sandbox.wechat.official import FakeOfficialAccount
from sandbox.wechat.wecom import FakeWecom
from services.security import RedactingFilter
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.service import ozonbot, running_bot

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
OWNER = 1001
CORP, AGENT, WECOM_SECRET = "ww1436e0e65a779aee", 1000002, "wecom-app-secret-0123456789abcdef"
OA_APP, OA_SECRET = "wx5823bf96d3bd56c7", "oa-app-secret-0123456789abcdef"


def _tg(fake_tg) -> dict:
    return dict(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{fake_tg.base_url}/bot",
                telegram_file_url=f"{fake_tg.base_url}/file/bot")


async def _run(settings: Settings, *argv: str, **extra: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(ozonbot, settings, *argv, **extra)


async def _doctor(settings: Settings, **extra: str) -> tuple[int, dict[str, dict]]:
    result = await _run(settings, "doctor", "--json", **extra)
    report = json.loads(result.stdout)
    assert report["ok"] == (result.returncode == 0), result.stderr
    return result.returncode, {check["name"]: check for check in report["checks"]}


async def _connect_owner(fake_tg) -> None:
    fake_tg.push_message(OWNER, "/lang en", language_code="en")
    await fake_tg.wait_for_message(OWNER, "Language set: English")
    fake_tg.push_message(OWNER, f"/connect {CLIENT_ID} {API_KEY}", language_code="en")
    await fake_tg.wait_for_message(OWNER, f"Connected Ozon seller {CLIENT_ID}", timeout=10)


# ---- doctor --------------------------------------------------------------------------------------
@pytest.fixture
async def fake_wecom():
    fake = FakeWecom()
    fake.add_app(CORP, WECOM_SECRET, AGENT, ["LiWei"])
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_oa():
    fake = FakeOfficialAccount(OA_APP, OA_SECRET, "tpl-new-order")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def everything(make_settings, sandbox, fake_tg, fake_wecom, fake_oa):
    """Every part switched on, each against its stand-in, the public URL this very service."""
    def build(**overrides) -> Settings:
        values = dict(ozon_api_url=sandbox.base_url, wecom_api_url=fake_wecom.base_url,
                      wechat_api_url=fake_oa.base_url, wechat_app_id=OA_APP, wechat_app_secret=SecretStr(OA_SECRET),
                      wechat_token=SecretStr("oatoken123"), **_tg(fake_tg))
        values.update(overrides)
        settings = make_settings(**values)
        return settings.model_copy(update={"public_url": f"http://127.0.0.1:{settings.http_port}"})
    return build


async def _seller_and_wecom_app(settings: Settings) -> None:
    added = await _run(settings, "seller", "add", "--client-id", CLIENT_ID, "--api-key", API_KEY)
    assert added.returncode == 0, added.stderr
    wecom = await _run(settings, "seller", "wecom", CLIENT_ID, "--corp-id", CORP, "--agent-id", str(AGENT),
                       "--secret", WECOM_SECRET, "--token", "wecomtoken1", "--aes-key", "a" * 43)
    assert wecom.returncode == 0, wecom.stderr


async def test_doctor_passes_every_check_on_a_healthy_installation(everything):
    settings = everything()
    await _seller_and_wecom_app(settings)
    async with running_bot(settings):
        code, checks = await _doctor(settings)
        human = await _run(settings, "doctor")
    assert code == 0, checks
    assert set(checks) == {"database", "secret key", "telegram", "telegram webhook", "public url", "clock",
                           f"ozon seller {CLIENT_ID}", f"wecom app {CORP}/{AGENT}", "official account"}
    assert all(c["ok"] and not c["action"] for c in checks.values())
    assert "every migration is applied" in checks["database"]["verdict"]
    assert "decrypts every stored secret (4)" in checks["secret key"]["verdict"]  # Ozon key; WeCom secret, token, AES key
    assert "@" in checks["telegram"]["verdict"] and "long polling" in checks["telegram webhook"]["verdict"]
    assert "expires on" in checks[f"ozon seller {CLIENT_ID}"]["verdict"]
    assert human.returncode == 0 and "all checks passed" in human.stderr
    assert [line[:4] for line in human.stdout.splitlines()] == ["ok  "] * len(checks)


async def test_doctor_names_each_fault_and_what_to_do(everything, sandbox, fake_tg):
    settings = everything()
    await _seller_and_wecom_app(settings)
    sandbox.add_seller(CLIENT_ID, "a-new-key-issued-in-seller-center")  # the stored key no longer works
    # the service is down, the token is wrong, the key is not the one the secrets were stored with
    code, checks = await _doctor(settings, OZONBOT_TELEGRAM_TOKEN="654321:WRONG-TOKEN",
                                 OZONBOT_SECRET_KEY="x" * 43 + "=")
    assert code == 1
    assert not checks["public url"]["ok"] and "unreachable" in checks["public url"]["verdict"]
    assert "ozonbot run" in checks["public url"]["action"]
    assert not checks["telegram"]["ok"] and "refused" in checks["telegram"]["verdict"]
    assert "@BotFather" in checks["telegram"]["action"]
    assert not checks["secret key"]["ok"]
    code, checks = await _doctor(settings)
    assert code == 1
    seller = checks[f"ozon seller {CLIENT_ID}"]
    assert not seller["ok"] and "refuses the key" in seller["verdict"] and f"/connect {CLIENT_ID}" in seller["action"]
    assert checks["secret key"]["ok"] and checks["telegram"]["ok"] and checks[f"wecom app {CORP}/{AGENT}"]["ok"]

    # webhook mode configured, but Telegram was never told (the service has not run since)
    code, checks = await _doctor(settings, OZONBOT_TELEGRAM_WEBHOOK_URL="https://desk.example.com/telegram/webhook")
    assert code == 1 and not checks["telegram webhook"]["ok"]
    assert "restart" in checks["telegram webhook"]["action"]

    # an expiring key fails ahead of time
    sandbox.add_seller(CLIENT_ID, API_KEY, expires_at=sandbox.now() + timedelta(days=3))
    code, checks = await _doctor(settings)
    assert "expires in 2 day(s)" in checks[f"ozon seller {CLIENT_ID}"]["verdict"] or \
        "expires in 3 day(s)" in checks[f"ozon seller {CLIENT_ID}"]["verdict"]


async def test_doctor_on_a_fresh_machine_says_to_migrate_and_changes_nothing(make_settings, sandbox):
    settings = make_settings(ozon_api_url=sandbox.base_url, database_url=None)
    code, checks = await _doctor(settings, OZONBOT_SECRET_KEY=None)
    assert code == 1
    assert "no database file" in checks["database"]["verdict"] and "ozonbot migrate" in checks["database"]["action"]
    assert not (settings.data_dir / "ozonbot.sqlite3").exists() and not (settings.data_dir / "secret.key").exists()


async def test_doctor_fails_a_clock_that_is_off(make_settings, sandbox):
    from datetime import UTC, datetime

    from bot.doctor import Doctor

    settings = make_settings(ozon_api_url=sandbox.base_url)
    ahead = await Doctor(settings, now=lambda: datetime.now(UTC) + timedelta(minutes=5)).run()
    clock = next(c for c in ahead if c.name == "clock")
    assert not clock.ok and "ahead of Ozon's" in clock.verdict and "timedatectl" in clock.action
    right = await Doctor(settings).run()
    assert next(c for c in right if c.name == "clock").ok


# ---- backup and restore ----------------------------------------------------------------------------
@pytest.mark.sqlite_only
async def test_a_backup_restores_into_a_fresh_data_dir_with_no_alert_repeated_or_lost(make_settings, sandbox,
                                                                                       fake_tg, tmp_path):
    first = make_settings(ozon_api_url=sandbox.base_url, poll_interval=1, **_tg(fake_tg))
    early = sandbox.generate_orders(CLIENT_ID, 2)
    backup = tmp_path / "ozonbot-backup.sqlite3"
    async with running_bot(first):
        await _connect_owner(fake_tg)
        for posting in early:
            await fake_tg.wait_for_message(OWNER, f"New order {posting['posting_number']}", timeout=10)
        taken = await _run(first, "backup", str(backup))  # while the service runs and polls every second
        assert taken.returncode == 0, taken.stderr
        assert "integrity ok" in taken.stdout and "secret key" in taken.stdout
        again = await _run(first, "backup", str(backup))
        assert again.returncode == 1 and "never overwritten" in again.stderr
    late = sandbox.generate_orders(CLIENT_ID, 1)  # arrived while the service was down

    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copyfile(backup, restored / "ozonbot.sqlite3")
    second = make_settings(ozon_api_url=sandbox.base_url, poll_interval=1, data_dir=restored, database_url=None,
                           **_tg(fake_tg))
    async with running_bot(second):
        await fake_tg.wait_for_message(OWNER, f"New order {late[0]['posting_number']}", timeout=15)
        await asyncio.sleep(2.5)  # two more polls: a repeated alert would have arrived by now
    texts = [m.text for m in fake_tg.messages(OWNER)]
    for posting in early + late:
        assert sum(f"New order {posting['posting_number']}" in t for t in texts) == 1, posting["posting_number"]
    assert not any("Sent again" in t for t in texts)


async def test_backup_of_postgresql_points_at_pg_dump(make_settings):
    settings = make_settings(database_url="postgres://ozonbot@127.0.0.1:5432/ozonbot")
    result = await _run(settings, "backup", str(settings.data_dir / "x.sqlite3"))
    assert result.returncode == 2 and "pg_dump" in result.stderr


# ---- deployment files ------------------------------------------------------------------------------
def _template() -> dict[str, list[str]]:
    shown: dict[str, list[str]] = {}
    for line in (DEPLOY / "ozonbot.env").read_text().splitlines():
        match = re.fullmatch(r"#?(OZONBOT_[A-Z0-9_]+)=(.*)", line.strip())
        if match:
            shown.setdefault(match[1], []).append(match[2])
    return shown


def test_the_environment_template_lists_every_setting_with_its_default():
    shown = _template()
    fields = Settings.model_fields
    assert set(shown) == {f"OZONBOT_{name.upper()}" for name in fields}
    for name, field in fields.items():
        values, default = shown[f"OZONBOT_{name.upper()}"], field.default
        if isinstance(default, Path):
            assert any(Path(v) == default for v in values), name
        else:
            assert ("" if default is None else str(default)) in values, f"OZONBOT_{name.upper()}: {default!r}"


def test_the_proxy_examples_publish_every_route_but_metrics(make_settings, fake_tg):
    from bot.app import build_services
    from bot.service import ChannelSet, build_web_app
    from handlers.telegram import TelegramChannel
    from handlers.wechat.official import OfficialAccount
    from handlers.wechat.work import WecomChannel

    settings = make_settings(wechat_app_id=OA_APP, wechat_app_secret=SecretStr(OA_SECRET),
                             wechat_token=SecretStr("oatoken123"), **_tg(fake_tg))
    services = build_services(settings)
    channels = ChannelSet(telegram=TelegramChannel(services.chat_port()), wecom=WecomChannel(services.wechat_port()),
                        official=OfficialAccount(services.wechat_port()))
    app = build_web_app(services, channels=channels)
    paths = {r.canonical for r in app.router.resources()}
    assert {"/metrics", "/health", "/telegram/webhook", "/ozon/push/{token}", "/kuaidi100/{token}", "/a/{token}"} <= paths
    caddy = re.search(r"@public path (.+)", (DEPLOY / "Caddyfile").read_text())[1].split()
    nginx = re.findall(r"location (=|\^~) (\S+)", (DEPLOY / "nginx.conf").read_text())

    def caddy_publishes(path: str) -> bool:
        return any(path == p or (p.endswith("*") and path.startswith(p[:-1])) for p in caddy)

    def nginx_publishes(path: str) -> bool:
        return any(path == p if kind == "=" else path.startswith(p) for kind, p in nginx)

    for path in paths - {"/metrics"}:
        sample = re.sub(r"\{[^}]+\}", "x1", path)
        assert caddy_publishes(sample) and nginx_publishes(sample), path
    assert not caddy_publishes("/metrics") and not nginx_publishes("/metrics")
    assert not caddy_publishes("/__sandbox__/x") and not nginx_publishes("/anything-else")


def test_the_systemd_unit_is_hardened_and_verifies(tmp_path):
    unit = (DEPLOY / "ozonbot.service").read_text()
    for setting in ("User=ozonbot", "NoNewPrivileges=true", "ProtectSystem=strict", "ProtectHome=true",
                    "StateDirectory=ozonbot", "PrivateTmp=true", "CapabilityBoundingSet=\n"):
        assert setting in unit, setting
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit's syntax was not verified")
    # verify wants the binary to exist: the same unit, pointed at this interpreter
    local = tmp_path / "ozonbot.service"
    local.write_text(unit.replace("/opt/ozonbot/.venv/bin/ozonbot", sys.executable))
    result = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True, timeout=60)
    # it exits 0 on settings it ignores ("Unknown key", "Failed to parse"): every line about the unit counts
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "ozonbot.service" in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


# ---- version and logs ------------------------------------------------------------------------------
def test_version():
    result = subprocess.run([sys.executable, "-m", "bot.cli", "--version"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == f"ozonbot {version('ozonbot')}"


def test_json_log_lines_pass_the_same_secret_filter():
    redactor = RedactingFilter()
    redactor.add("sk-live-0123456789")
    stream = io.StringIO()
    setup_logging("INFO", redactor, stream, fmt="json")
    log = logging.getLogger("ozonbot.test")
    log.info("key %s for seller %s", "sk-live-0123456789", 42)
    try:
        raise RuntimeError("boom with sk-live-0123456789 inside")
    except RuntimeError:
        log.exception("failed")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["level"], r["logger"]) for r in lines] == [("INFO", "ozonbot.test"), ("ERROR", "ozonbot.test")]
    assert lines[0]["msg"] == "key *** for seller 42" and "ts" in lines[0]
    assert "RuntimeError: boom with *** inside" in lines[1]["exc"]
    assert "sk-live" not in stream.getvalue()
    setup_logging("INFO", redactor, io.StringIO())  # back to text for the rest of the run


async def test_doctor_checks_each_sellers_kuaidi100_account(make_settings, sandbox):
    """Where a seller tracks the first mile, doctor asks Kuaidi100 (the stand-in) with the stored key."""
    from sandbox.kuaidi100 import Kuaidi100Sandbox

    kd = Kuaidi100Sandbox()
    kd.add_account("kd100key0123456789", "CUSTOMER0042")
    await kd.start()
    try:
        settings = make_settings(ozon_api_url=sandbox.base_url, kuaidi100_api_url=kd.base_url)
        assert (await _run(settings, "seller", "add", "--client-id", CLIENT_ID, "--api-key", API_KEY)).returncode == 0
        added = await _run(settings, "seller", "kuaidi100", CLIENT_ID, "--key", "kd100key0123456789",
                           "--customer", "CUSTOMER0042")
        assert added.returncode == 0, added.stderr
        _, checks = await _doctor(settings)
        assert checks[f"kuaidi100 {CLIENT_ID}"]["ok"], checks[f"kuaidi100 {CLIENT_ID}"]
        kd.expire_account("kd100key0123456789")  # the key ran out at Kuaidi100
        code, checks = await _doctor(settings)
        check = checks[f"kuaidi100 {CLIENT_ID}"]
        assert code == 1 and not check["ok"] and "refuses" in check["verdict"], check
        assert f"ozonbot seller kuaidi100 {CLIENT_ID}" in check["action"]
    finally:
        await kd.stop()
