"""Durations (90s, 30m, 4h, 1d), reminder leads and quiet hours as operators write them."""

from __future__ import annotations

import logging
import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def parse_duration(text: str) -> timedelta:
    """'90s', '4h', '1d', '30m' or plain seconds."""
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(f"not a duration: {text!r} (use forms like 90s, 30m, 4h, 1d)")
    try:
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    except OverflowError:  # L1: '99999999999999999999d'
        raise ValueError(f"not a duration: {text!r} (far too long)") from None


MAX_LEAD = timedelta(days=30)  # Ozon's deadlines are days away, and date arithmetic must stay in range


def parse_leads(text: str) -> list[timedelta]:
    leads = sorted({parse_duration(part) for part in text.split(",") if part.strip()}, reverse=True)
    if not leads:
        raise ValueError("at least one reminder lead is needed")
    if leads[0] > MAX_LEAD or leads[-1] < timedelta(seconds=1):
        raise ValueError(f"reminder leads must lie between 1s and {MAX_LEAD.days}d, not {text!r}")
    return leads


def parse_quiet_hours(text: str) -> tuple[time, time] | None:
    """'22:00-08:00' -> (22:00, 08:00); 'off' -> None."""
    if text.strip().lower() in {"off", "none", ""}:
        return None
    start, _, end = text.partition("-")
    try:
        window = clock_time(start), clock_time(end)
    except ValueError as exc:
        raise ValueError(f"quiet hours must look like 22:00-08:00 or off, not {text!r}") from exc
    if window[0] == window[1]:  # L7: '08:00-08:00' read as quiet all day
        raise ValueError(f"quiet hours need an end other than their start (or off), not {text!r}")
    return window


def clock_time(text: str) -> time:
    """'08:00' -> 08:00. Only hours and minutes of a local clock: no seconds, no zone."""
    if not _CLOCK.match(text.strip()):
        raise ValueError(f"not a time of day: {text!r} (use HH:MM)")
    return time.fromisoformat(text.strip())


def in_quiet_hours(quiet: str, zone: str, now: datetime) -> bool:
    """Unusable settings (a row written before validation) count as no quiet hours: an alert or reminder
    is never held, and never blocked, because of them."""
    try:
        window = parse_quiet_hours(quiet or "off")
        local = now.astimezone(ZoneInfo(zone)).time()
    except (ValueError, KeyError):
        log.warning("unusable quiet hours %r / zone %r ignored", quiet, zone)
        return False
    if window is None:
        return False
    start, end = window
    return start <= local < end if start < end else (local >= start or local < end)
