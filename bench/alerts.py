"""Reading alerts back from the fake Bot API: when each new-order card reached it, and how often."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime

from bench.harness import wall_of
from sandbox.telegram import FakeBotAPI

NEW_ORDER = re.compile(r"New order (\S+)")


def alert_calls(tg: FakeBotAPI) -> tuple[dict[str, float], Counter]:
    """{posting number: wall time its first alert arrived}, and how many alerts each number got."""
    first: dict[str, float] = {}
    counts: Counter = Counter()
    for call in tg.calls_of("sendMessage", ok=True):
        found = NEW_ORDER.search(str(call.params.get("text") or ""))
        if found:
            number = found.group(1)
            counts[number] += 1
            first.setdefault(number, wall_of(call.at))
    return first, counts


def parse_wall(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
