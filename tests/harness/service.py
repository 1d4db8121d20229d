"""`ozonbot run` in this process (a restart is two of these in a row), through bot.service.run_service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
