"""Telegram's flood limits, for the fake Bot API (reference/telegram.md §2.8; PTB's `FloodLimit`).

Telegram publishes the rates, not the burst it tolerates, so the burst is a setting here and written down:
- per bot token: 30 messages a second, a burst of 30 (the bucket starts full and refills at 30/s);
- per private chat: 1 message a second, a burst of 3 (a reply and a card edit right after a tap pass);
- per group or channel: 20 messages a minute, a burst of 20.
Past a limit the call is refused with 429 and `retry_after` (whole seconds until the bucket has room); a
chat or bot that floods again within a minute of its last 429 has that wait doubled each time, up to
`max_penalty` (Telegram's longer penalties for repeated floods). Off unless switched on, so the other
tests keep their speed. What counts: every method that sends or edits a message in a chat.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

LIMITED_METHODS = frozenset({
    "sendmessage", "senddocument", "sendphoto", "sendmediagroup", "sendchataction", "editmessagetext",
    "editmessagecaption", "editmessagereplymarkup", "copymessage", "forwardmessage",
})


@dataclass
class FloodLimits:
    per_second: float = 30.0  # per token
    token_burst: float = 30.0
    per_chat_second: float = 1.0  # per private chat
    chat_burst: float = 3.0
    per_group_minute: float = 20.0  # per group, supergroup or channel
    group_burst: float = 20.0
    penalty_window: float = 60.0  # a flood within this long of the last 429 doubles the wait
    max_penalty: float = 60.0


@dataclass
class _Bucket:
    capacity: float
    rate: float  # tokens a second
    tokens: float = field(default=-1.0)
    at: float = 0.0
    last_refusal: float = -math.inf
    strikes: int = 0
    blocked_until: float = 0.0  # a 429's retry_after holds, whatever the bucket would allow

    def take(self, now: float) -> float:
        """0 when a message may go now (and it is counted); else the seconds until one may."""
        if now < self.blocked_until:
            return self.blocked_until - now
        if self.tokens < 0:
            self.tokens, self.at = self.capacity, now
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class FloodGate:
    """Decides, per call, whether Telegram would take it now; counts what it refused."""

    def __init__(self, limits: FloodLimits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self._clock = clock
        self._token = _Bucket(limits.token_burst, limits.per_second)
        self._chats: dict[int | str, _Bucket] = {}
        self.refused = 0
        self.passed = 0

    def check(self, method: str, chat_id: object) -> int | None:
        """None when the call may go; else the retry_after (seconds) of a 429."""
        if method.lower() not in LIMITED_METHODS or chat_id is None:
            return None
        now = self._clock()
        chat = self._chat_bucket(chat_id)
        wait_chat = chat.take(now)
        if wait_chat:
            return self._refuse(chat, wait_chat, now)
        wait_token = self._token.take(now)
        if wait_token:
            chat.tokens = min(chat.capacity, chat.tokens + 1)  # not sent: the chat's share is given back
            return self._refuse(self._token, wait_token, now)
        self.passed += 1
        return None

    def _chat_bucket(self, chat_id: object) -> _Bucket:
        key: int | str = str(chat_id)
        if key.lstrip("-").isdigit():
            key = int(key)
        bucket = self._chats.get(key)
        if bucket is None:
            group = isinstance(key, str) and key.startswith("@") or isinstance(key, int) and key < 0
            bucket = (_Bucket(self.limits.group_burst, self.limits.per_group_minute / 60) if group
                      else _Bucket(self.limits.chat_burst, self.limits.per_chat_second))
            self._chats[key] = bucket
        return bucket

    def _refuse(self, bucket: _Bucket, wait: float, now: float) -> int:
        bucket.strikes = bucket.strikes + 1 if now - bucket.last_refusal < self.limits.penalty_window else 0
        bucket.last_refusal = now
        self.refused += 1
        retry_after = int(min(self.limits.max_penalty, max(1, math.ceil(wait)) * 2 ** bucket.strikes))
        bucket.blocked_until = now + retry_after
        return retry_after
