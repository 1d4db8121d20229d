"""Inbound rate limits: a token bucket per person and per chat, so one flood cannot starve a desk.

A channel asks before it handles anything a person sent; a refused update is dropped, and the person hears
about it once per flood (not once per message, which would feed the flood).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from services.metrics import INBOUND_REFUSED


@dataclass
class _Bucket:
    tokens: float
    at: float
    warned: bool = False


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    tell: bool = False  # the first refusal of a flood: say something polite


@dataclass
class InboundLimiter:
    """`per_member` and `per_chat` updates per `period` seconds, in bursts up to the same numbers; 0 = off."""

    per_member: int = 30
    per_chat: int = 60
    period: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def check(self, member_key: str | None, chat_key: str | None) -> Verdict:
        keys = [(f"m:{member_key}", self.per_member), (f"c:{chat_key}", self.per_chat)]
        keys = [(key, limit) for key, limit in keys if limit > 0 and not key.endswith(":None")]
        buckets = [(self._refill(key, limit), limit) for key, limit in keys]
        if all(bucket.tokens >= 1 for bucket, _ in buckets):
            for bucket, _ in buckets:
                bucket.tokens -= 1
                bucket.warned = False
            return Verdict(True)
        empty = [bucket for bucket, _ in buckets if bucket.tokens < 1]
        tell = not any(bucket.warned for bucket in empty)
        for bucket in empty:
            bucket.warned = True
        INBOUND_REFUSED.labels("chat", "rate_limited").inc()
        return Verdict(False, tell)

    def _refill(self, key: str, limit: int) -> _Bucket:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > 50_000:  # forget idle senders rather than grow without bound
                self._buckets.clear()
            bucket = self._buckets[key] = _Bucket(tokens=float(limit), at=now)
        bucket.tokens = min(float(limit), bucket.tokens + (now - bucket.at) * limit / self.period)
        bucket.at = now
        return bucket
