"""Turn-taking helpers: one turn at a time per key, and calls spaced at a steady pace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


class KeyedTurns:
    """One asyncio lock per key, kept only while someone holds or awaits it, so the map stays small."""

    def __init__(self) -> None:
        self._locks: dict[object, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def turn(self, key: object) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Pacer:
    """Spaces calls of wait() evenly at `per_second`, in turn (an idle pacer lets the first through at once)."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic):
        self._gap = 1.0 / per_second
        self._clock = clock
        self._next = 0.0
        self._turn = asyncio.Lock()

    async def wait(self) -> None:
        async with self._turn:
            delay = self._next - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next = max(self._clock(), self._next) + self._gap
