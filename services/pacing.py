"""Turn-taking helpers: one turn at a time per key, and calls spaced at a steady pace."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from services.channels import DeliveryDeferred


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


class SlidingWindow:
    """At most `limit` sends per `period` seconds per key. `acquire` waits for a free slot, because the
    platforms drop or punish the excess (WeCom: 30 a minute per member, silently; robots: 20 a minute;
    Telegram: about one a second per private chat, with a 429 that pauses the whole bot)."""

    def __init__(self, limit: int, period: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.period = period
        # the platform stamps a send when it arrives, a little after we do: keep a margin, or the send that
        # opens a new window may still fall into the platform's previous one and be dropped without an error
        self._span = period * 1.05
        self._clock = clock
        self._sent: dict[str, deque[float]] = defaultdict(deque)
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def acquire(self, key: str, *, wait: bool = True) -> None:
        """Takes a slot; without `wait`, a full window raises DeliveryDeferred at once, so the outbox
        (which delivers to every desk in turn) moves on and retries this one later."""
        async with self._locks[key]:
            sent = self._sent[key]
            while True:
                now = self._clock()
                while sent and sent[0] <= now - self._span:
                    sent.popleft()
                if len(sent) < self.limit:
                    sent.append(now)
                    return
                if not wait:
                    raise DeliveryDeferred(f"send limit of {self.limit} per {self.period:.0f}s reached")
                await asyncio.sleep(sent[0] + self._span - now + 0.001)
