"""`ozonbot run` in this process (a restart is two of these in a row), through bot.service.run_service;
and `ozonbot` commands as child processes with a test's settings."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import SecretStr

from bot.config import Settings
from bot.service import run_service


@asynccontextmanager
async def running_bot(settings: Settings) -> AsyncIterator[asyncio.Task]:
    """The service until the block ends; its start-up error, if any, raised here."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_service(settings, stop=stop, ready=ready))
    started = asyncio.create_task(ready.wait())
    await asyncio.wait([task, started], timeout=60, return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    if task.done():
        task.result()  # start-up failed: its error, here
    if not ready.is_set():
        stop.set()
        raise RuntimeError("ozonbot did not start within 60 s")
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def accepts_connections(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


def settings_env(settings: Settings, **extra: str | None) -> dict[str, str]:
    """The environment that makes `python -m bot.cli` in a child build these same settings; `extra`
    overrides variables (None removes one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OZONBOT_")}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"OZONBOT_{name.upper()}"] = str(value)
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def ozonbot(settings: Settings, *argv: str, timeout: float = 60, **extra: str | None) -> subprocess.CompletedProcess:
    """`ozonbot ARGV…` as a child process with these settings (run it in a thread from async tests)."""
    return subprocess.run([sys.executable, "-m", "bot.cli", *argv], env=settings_env(settings, **extra),
                          capture_output=True, text=True, timeout=timeout, cwd=settings.data_dir.parent)
