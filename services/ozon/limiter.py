"""Client-side rate limiting for the Ozon Seller API.

Ozon allows 50 requests/s per Client-Id across all methods, plus tighter per-method limits, and
answers 429 (sometimes with ``Retry-After``) when they are exceeded. Every client of one seller in the
process must draw from the same buckets, so the buckets live in a ``RateLimits`` registry that the
application creates once and hands to each ``OzonClient``.

Buckets hand out *reservations*: taking a token never blocks the event loop and never needs a lock,
because the bookkeeping is synchronous and callers then sleep for the delay they were given. That
keeps waiting callers in first-come order and makes the limiter exact under a simulated clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any

__all__ = ["DEFAULT_METHOD_LIMITS", "GLOBAL_LIMIT", "Limit", "RateLimits", "TokenBucket"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]


@dataclass(frozen=True)
class Limit:
    """``count`` requests per ``per`` seconds, with at most ``burst`` sent back to back.

    A burst of 1 spaces requests evenly, so no one-second window Ozon might measure ever sees more
    than ``count`` of them.
    """

    count: float
    per: float = 1.0
    burst: float = 1.0

    @property
    def rate(self) -> float:
        return self.count / self.per


GLOBAL_LIMIT = Limit(50, 1.0)

# Per-method limits from the method descriptions (reference §1.4). Read-only: pass an extended copy
# to RateLimits(method_limits=...) to add more.
DEFAULT_METHOD_LIMITS: Mapping[str, Limit] = MappingProxyType(
    {
        "/v2/products/stocks": Limit(80, 60.0),
    }
)


class TokenBucket:
    """A token bucket whose balance may go negative: a negative balance is a queue of reservations."""

    def __init__(self, limit: Limit, clock: Clock) -> None:
        self._rate = limit.rate
        self._capacity = max(1.0, limit.burst)
        self._clock = clock
        self._tokens = self._capacity
        self._updated = clock()

    def reserve(self) -> float:
        """Take one token and return how many seconds the caller must wait before using it."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate


class _Acquisition:
    """Lets ``acquire`` be used both as ``await limits.acquire(...)`` and ``async with``."""

    def __init__(self, wait: Callable[[], Awaitable[None]]) -> None:
        self._wait = wait

    def __await__(self) -> Generator[Any, None, None]:
        return self._wait().__await__()

    async def __aenter__(self) -> _Acquisition:
        await self._wait()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class RateLimits:
    """Per-Client-Id buckets: one global bucket per seller plus one per limited method.

    ``clock`` and ``sleep`` are injectable so tests can run thousands of requests in simulated time.
    """

    def __init__(
        self,
        *,
        global_limit: Limit = GLOBAL_LIMIT,
        method_limits: Mapping[str, Limit] | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._global_limit = global_limit
        self._method_limits = dict(DEFAULT_METHOD_LIMITS if method_limits is None else method_limits)
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._paused_until: dict[str, float] = {}

    @property
    def method_limits(self) -> dict[str, Limit]:
        """This registry's own per-method table; add entries to limit more methods."""
        return self._method_limits

    def acquire(self, client_id: str, path: str = "") -> _Acquisition:
        """Wait for a slot to call ``path`` for ``client_id`` (await it or use ``async with``)."""
        return _Acquisition(lambda: self._acquire(str(client_id), path))

    def pause(self, client_id: str, seconds: float) -> None:
        """Hold every request for ``client_id`` for ``seconds`` (Ozon's ``Retry-After`` after a 429)."""
        if seconds <= 0:
            return
        client_id = str(client_id)
        until = self._clock() + seconds
        self._paused_until[client_id] = max(until, self._paused_until.get(client_id, until))

    def paused_for(self, client_id: str) -> float:
        """Seconds left on a pause for ``client_id`` (0 when not paused)."""
        return max(0.0, self._paused_until.get(str(client_id), 0.0) - self._clock())

    async def _acquire(self, client_id: str, path: str) -> None:
        # Each step waits once for the delay computed when it was reached; no polling loops, so the
        # limiter cannot spin when a test's sleep does not advance the clock.
        await self._wait(self.paused_for(client_id))
        if path in self._method_limits:
            await self._wait(self._bucket(client_id, path).reserve())
        await self._wait(self._bucket(client_id, "").reserve())

    async def _wait(self, delay: float) -> None:
        if delay > 0:
            await self._sleep(delay)

    def _bucket(self, client_id: str, path: str) -> TokenBucket:
        key = (client_id, path)
        bucket = self._buckets.get(key)
        if bucket is None:
            limit = self._method_limits[path] if path else self._global_limit
            bucket = self._buckets[key] = TokenBucket(limit, self._clock)
        return bucket
