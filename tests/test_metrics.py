"""GET /metrics and GET /health of a running service: who may scrape, what the numbers say after real
traffic, and a scrape by a real Prometheus server (Debian's `prometheus` package)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from handlers.monitoring import Monitoring
from sandbox.telegram import DEFAULT_TOKEN
from services.metrics import REGISTRY, sample_state
from tests.conftest import API_KEY, CLIENT_ID
from tests.harness.service import ozonbot, running_bot

OWNER = 1001
TOKEN = "metrics-token-0123456789"


@pytest.fixture
def tg_settings(make_settings, sandbox, fake_tg):
    def build(**overrides):
        return make_settings(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{fake_tg.base_url}/bot",
                             telegram_file_url=f"{fake_tg.base_url}/file/bot", ozon_api_url=sandbox.base_url,
                             duty_tick=30, **overrides)  # no retry job racing the poll for the alert
    return build


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def _connect_and_get_alert(fake_tg, number: str) -> None:
    fake_tg.push_message(OWNER, "/lang en", language_code="en")
    await fake_tg.wait_for_message(OWNER, "Language set: English")
    fake_tg.push_message(OWNER, f"/connect {CLIENT_ID} {API_KEY}", language_code="en")
    await fake_tg.wait_for_message(OWNER, f"New order {number}", timeout=10)


async def test_metrics_count_real_traffic_and_want_the_token(tg_settings, sandbox, fake_tg):
    settings = tg_settings(metrics_token=SecretStr(TOKEN))
    (posting,) = sandbox.generate_orders(CLIENT_ID, 1)
    sent_before = _value("ozonbot_alerts_sent_total", channel="telegram")
    latency_before = _value("ozonbot_alert_latency_seconds_count", source="poll")
    roles_before = _value("ozonbot_ozon_requests_total", method="/v1/roles", outcome="ok")
    refused_before = _value("ozonbot_inbound_refused_total", route="/ozon/push/{token}", reason="unknown_target")
    base = f"http://{settings.http_host}:{settings.http_port}"
    async with running_bot(settings), aiohttp.ClientSession() as http:
        await _connect_and_get_alert(fake_tg, posting["posting_number"])
        async with http.post(f"{base}/ozon/push/not-a-seller", json={"message_type": "TYPE_PING"}) as resp:
            assert resp.status == 404
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            async with http.get(f"{base}/metrics", headers=headers) as resp:
                assert resp.status == 403
        deadline = time.monotonic() + 10
        while True:  # the event is marked dispatched just after its alert went out
            async with http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
                samples = _samples(await resp.text())
            if samples[("ozonbot_outbox_depth", frozenset({("state", "undispatched")}))] == 0:
                break
            assert time.monotonic() < deadline, "the outbox never emptied"
            await asyncio.sleep(0.1)
        async with http.get(f"{base}/health") as resp:
            health = await resp.json()
            assert resp.status == 200, health
    assert health == {"ok": True, "database": "ok", "channels": {"telegram": "up", "wecom": "up"}}

    def sample(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    # one outbox delivery: the alert (notices such as the morning digest go around the outbox)
    assert sample("ozonbot_alerts_sent_total", channel="telegram") - sent_before == 1
    assert sample("ozonbot_alert_latency_seconds_count", source="poll") - latency_before == 1
    assert sample("ozonbot_ozon_requests_total", method="/v1/roles", outcome="ok") - roles_before == 1
    assert sample("ozonbot_inbound_refused_total", route="/ozon/push/{token}", reason="unknown_target") \
        - refused_before == 1
    assert sample("ozonbot_sellers", key_state="ok") == 1 and sample("ozonbot_sellers", key_state="revoked") == 0
    assert sample("ozonbot_outbox_depth", state="failed") == 0
    assert sample("ozonbot_outbox_oldest_pending_seconds") >= 0
    assert ("ozonbot_intents", frozenset({("state", "pending")})) in samples
    assert ("ozonbot_poll_cycle_seconds_count", frozenset()) in samples


async def test_a_push_alert_is_timed_from_the_push_and_a_failed_delivery_is_counted(tg_settings, sandbox, fake_tg):
    settings = tg_settings()
    (first,) = sandbox.generate_orders(CLIENT_ID, 1)
    failed_before = _value("ozonbot_alerts_failed_total", channel="telegram")
    pushed_before = _value("ozonbot_alert_latency_seconds_count", source="push")
    pushed_sum = _value("ozonbot_alert_latency_seconds_sum", source="push")
    async with running_bot(settings), aiohttp.ClientSession() as http:
        await _connect_and_get_alert(fake_tg, first["posting_number"])
        listed = await asyncio.to_thread(ozonbot, settings, "seller", "list")
        push_url = listed.stdout.split("push=")[1].split()[0]

        async def push(posting: dict) -> None:
            body = {"message_type": "TYPE_NEW_POSTING", "posting_number": posting["posting_number"],
                    "seller_id": int(CLIENT_ID), "products": [], "shipment_date": posting["shipment_date"]}
            async with http.post(push_url, json=body) as resp:
                assert resp.status == 200

        (lost,) = sandbox.generate_orders(CLIENT_ID, 1)
        fake_tg.fail_next("sendMessage", status=502, description="Bad Gateway")
        await push(lost)
        await fake_tg.wait_for(lambda: _value("ozonbot_alerts_failed_total", channel="telegram") > failed_before,
                               timeout=15)  # a loaded CI machine takes longer than 5 s to fail and count
        (second,) = sandbox.generate_orders(CLIENT_ID, 1)
        await push(second)
        await fake_tg.wait_for_message(OWNER, f"New order {second['posting_number']}", timeout=10)
        await fake_tg.wait_for(lambda: _value("ozonbot_alert_latency_seconds_count", source="push") > pushed_before)
    assert _value("ozonbot_alerts_failed_total", channel="telegram") - failed_before == 1
    assert _value("ozonbot_alert_latency_seconds_count", source="push") - pushed_before == 1
    assert _value("ozonbot_alert_latency_seconds_sum", source="push") - pushed_sum < 10  # seconds, on loopback


async def test_without_a_token_only_prometheus_on_this_host_may_scrape(tg_settings):
    settings = tg_settings()
    base = f"http://{settings.http_host}:{settings.http_port}"
    async with running_bot(settings), aiohttp.ClientSession() as http:
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 200 and "ozonbot_sellers" in await resp.text()
        async with http.get(f"{base}/metrics", headers={"X-Forwarded-For": "203.0.113.9"}) as resp:
            assert resp.status == 403  # a proxy on this host passed it on: it came from outside


async def test_health_says_which_part_is_down(db_url):
    """The handler alone: starting, then up; a channel down; the database closed."""
    from services.storage import db

    channels: dict[str, bool] | None = None  # still starting
    monitoring = Monitoring(registry=REGISTRY, sample=sample_state, clock=lambda: None, token=None,
                            channels=lambda: channels)
    app = web.Application()
    app.add_routes(monitoring.routes())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/health"
    await db.connect(db_url)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                assert resp.status == 503
                assert await resp.json() == {"ok": False, "database": "ok", "channels": "starting"}
            channels = {"telegram": True, "wecom": True}
            async with http.get(url) as resp:
                assert resp.status == 200 and (await resp.json())["ok"] is True
            channels["telegram"] = False
            async with http.get(url) as resp:
                assert resp.status == 503
                assert await resp.json() == {"ok": False, "database": "ok",
                                             "channels": {"telegram": "down", "wecom": "up"}}
            await db.close()
            channels["telegram"] = True
            async with http.get(url) as resp:
                assert resp.status == 503
                assert await resp.json() == {"ok": False, "database": "down",
                                             "channels": {"telegram": "up", "wecom": "up"}}
    finally:
        await db.close()
        await runner.cleanup()


def test_every_metric_is_listed_in_the_operations_guide():
    from pathlib import Path

    guide = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    names = {family.name for family in REGISTRY.collect()}
    assert names and not [name for name in sorted(names) if f"`{name}" not in guide]


# ---- a real Prometheus -----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_real_prometheus_scrapes_it_and_a_value_comes_back(tg_settings, sandbox, fake_tg, tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("OZONBOT_REQUIRE_PROMETHEUS"):
            pytest.fail("prometheus is not installed, and OZONBOT_REQUIRE_PROMETHEUS is set (CI installs it)")
        pytest.skip("Debian's prometheus package is not installed (apt-get install prometheus; CI does)")
    settings = tg_settings(metrics_token=SecretStr(TOKEN))
    (posting,) = sandbox.generate_orders(CLIENT_ID, 1)
    port = _free_port()
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "prometheus.yml").write_text(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: ozonbot
    authorization:
      credentials_file: {tmp_path / "token"}
    static_configs:
      - targets: ["{settings.http_host}:{settings.http_port}"]
""")
    async with running_bot(settings):
        await _connect_and_get_alert(fake_tg, posting["posting_number"])
        server = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                   f"--web.listen-address=127.0.0.1:{port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            value = await _query_until(port, 'ozonbot_sellers{key_state="ok"}', timeout=60)
            sent = await _query_until(port, 'ozonbot_alerts_sent_total{channel="telegram"}', timeout=10)
            up = await _query_until(port, 'up{job="ozonbot"}', timeout=10)
        finally:
            server.terminate()
            _, errors = await asyncio.to_thread(server.communicate, timeout=30)
    assert value == 1.0 and sent >= 1.0 and up == 1.0, errors.decode()[-2000:]


async def _query_until(port: int, query: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query}) as resp:
                    body = await resp.json()
                    result = body.get("data", {}).get("result", [])
                    if result:
                        return float(result[0]["value"][1])
            except aiohttp.ClientError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus never had a value for {query}")
            await asyncio.sleep(0.5)
