"""Background work a request starts but must not wait for (a first poll after connecting, a late reply):
kept referenced until done, its failure logged, and awaited at shutdown so nothing is cut mid-write."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine

log = logging.getLogger(__name__)


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, work: Coroutine, *, name: str) -> asyncio.Task:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # the name says what failed; the type, not the message, since a message may carry a secret
            log.warning("%s failed: %s", task.get_name(), type(task.exception()).__name__)

    async def drain(self) -> None:
        """Waits for what is running now (used at shutdown, and by tests that need the work finished)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
