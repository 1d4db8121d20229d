"""`ozonbot run` as real child processes: started, SIGKILLed, restarted, and a webhook balancer in front.

Everything a new user would do by hand: the bot reads its configuration from OZONBOT_* variables, the
Ozon sandbox and the fake Bot API live in the test process, and the bot talks to them over loopback.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BotProcess:
    """One `python -m bot.cli run`; `kill()` is SIGKILL (no cleanup at all), `start()` brings it back."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path, port: int | None = None):
        self.name = name
        self.port = port or free_port()
        self.env = {**os.environ, **env, "OZONBOT_HTTP_PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        self.env.pop("OZONBOT_TEST_DATABASE_URL", None)
        self.workdir = workdir  # no stray .env from the checkout is read
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.kills = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed by the OS
        log.write(f"\n===== start {self.starts} at {time.time():.3f}\n".encode())
        log.flush()
        self.proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run"], env=self.env, cwd=self.workdir,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def kill(self) -> None:
        if self.alive:
            self.kills += 1
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    async def stop(self, timeout: float = 20) -> int:
        """A clean stop (SIGTERM), as an operator's service manager does it."""
        if not self.alive:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        for _ in range(int(timeout * 20)):
            if self.proc.poll() is not None:
                return self.proc.returncode
            await asyncio.sleep(0.05)
        self.kill()
        return -9

    async def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if not self.alive:
                    raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
                try:
                    async with http.get(f"{self.url}/health", timeout=aiohttp.ClientTimeout(total=1)) as resp:
                        if resp.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} did not come up:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Chaos:
    """Kills a process with SIGKILL at random moments and restarts it after a random pause."""

    def __init__(self, processes: list[BotProcess], *, seed: int, kills: int, gap: tuple[float, float],
                 downtime: tuple[float, float] = (0.1, 1.0)):
        self._processes = processes
        self._rng = random.Random(seed)
        self._kills = kills
        self._gap = gap
        self._downtime = downtime
        self.done = asyncio.Event()

    async def run(self) -> None:
        try:
            for _ in range(self._kills):
                await asyncio.sleep(self._rng.uniform(*self._gap))
                victim = self._rng.choice([p for p in self._processes if p.alive] or self._processes)
                victim.kill()
                await asyncio.sleep(self._rng.uniform(*self._downtime))
                victim.start()
        finally:
            self.done.set()


class WebhookBalancer:
    """What a load balancer does in front of several `ozonbot run`: any live process may serve an update."""

    def __init__(self, backends: list[BotProcess], seed: int = 5):
        self.backends = backends
        self._rng = random.Random(seed)
        self.port = free_port()
        self.served: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/telegram/webhook"

    async def start(self) -> None:
        app = web.Application(client_max_size=2 * 1024 * 1024)
        app.router.add_post("/telegram/webhook", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._http:
            await self._http.close()
        if self._runner:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-telegram")}
        headers["Content-Type"] = "application/json"
        live = [b for b in self.backends if b.alive]
        self._rng.shuffle(live)
        for backend in live:
            try:
                async with self._http.post(f"{backend.url}/telegram/webhook", data=body, headers=headers,
                                           timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    await resp.read()
                    self.served[backend.name] = self.served.get(backend.name, 0) + 1
                    return web.Response(status=resp.status)
            except (aiohttp.ClientError, TimeoutError):
                continue
        return web.Response(status=502)
