"""Wire-format helpers shared by the Ozon sandbox: JSON answers, deep copies, RFC 3339 times, money strings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Any

from aiohttp import web

Json = dict[str, Any]

_dumps = partial(json.dumps, ensure_ascii=False)  # Ozon answers UTF-8 text, not \u escapes


def _json(data: Any, **kwargs: Any) -> web.Response:
    return web.json_response(data, dumps=_dumps, **kwargs)



def clone(obj: Any) -> Any:
    """Deep copy of JSON-shaped data (dicts, lists, scalars); much faster than copy.deepcopy."""
    if type(obj) is dict:
        return {k: clone(v) for k, v in obj.items()}
    if type(obj) is list:
        return [clone(v) for v in obj]
    return obj


def utc(dt: datetime) -> datetime:
    """Make a datetime aware and in UTC (naive ones are taken as UTC)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def fmt_dt(dt: datetime | None) -> str | None:
    """RFC 3339 with Z, whole seconds."""
    if dt is None:
        return None
    return utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_dt(value: Any) -> datetime:
    """Parse an RFC 3339 timestamp (Z or offset, optional fraction). Raises ValueError."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"invalid timestamp: {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python 3.11 fromisoformat accepts up to 6 fractional digits; trim longer fractions
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    dt = datetime.fromisoformat(text)
    return utc(dt)


FAR_FUTURE = "9999-12-31T23:59:59Z"

_CENT = Decimal("0.01")


def money(amount: Decimal | float | str, places: int = 2) -> str:
    q = Decimal(10) ** -places
    return str(Decimal(str(amount)).quantize(q, rounding=ROUND_HALF_UP))
