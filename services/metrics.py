"""What an operator watches, in Prometheus' terms (served at GET /metrics; names listed in docs/operations.md).

The counters and histograms live in one registry per process, the way prometheus-client is meant to be
used and the way Prometheus scrapes: each `ozonbot run` reports its own traffic. The gauges read from the
database (`sample_state`, run on each scrape) describe the shared state, so every process of a
PostgreSQL deployment reports the same values for them.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from tortoise.functions import Count, Min

from services.storage.models import Event, Intent, Notification, Seller
from services.storage.states import IntentState, KeyState, NotificationState

REGISTRY = CollectorRegistry(auto_describe=True)
# seconds from an order reaching us to its alert on the phone: sub-second on loopback, seconds with real
# networks and send limits, minutes when a channel was down
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800)

ALERTS_SENT = Counter("ozonbot_alerts_sent", "Messages the outbox delivered (alerts, reminders, notices)",
                      ["channel"], registry=REGISTRY)
ALERTS_FAILED = Counter("ozonbot_alerts_failed", "Deliveries a channel refused or lost (retried later)",
                        ["channel"], registry=REGISTRY)
SEND_BUDGET_WAITS = Counter("ozonbot_send_budget_waits", "Deliveries put off because the channel's own send "
                            "limit was reached", ["channel"], registry=REGISTRY)
ALERT_LATENCY = Histogram("ozonbot_alert_latency_seconds", "From an Ozon push arriving, or a poll starting, "
                          "to each alert it caused being sent", ["source"], buckets=LATENCY_BUCKETS,
                          registry=REGISTRY)
OZON_REQUESTS = Counter("ozonbot_ozon_requests", "HTTP exchanges with the Ozon Seller API, each attempt",
                        ["method", "outcome"], registry=REGISTRY)
OZON_RETRIES = Counter("ozonbot_ozon_retries", "Ozon requests tried again after a retryable failure",
                       ["method", "reason"], registry=REGISTRY)
POLL_CYCLE = Histogram("ozonbot_poll_cycle_seconds", "One scheduler pass over the sellers due for a poll",
                       buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120), registry=REGISTRY)
INBOUND_REFUSED = Counter("ozonbot_inbound_refused", "Inbound requests and chat updates refused",
                          ["route", "reason"], registry=REGISTRY)
OUTBOX_DEPTH = Gauge("ozonbot_outbox_depth", "Work in the outbox: events not yet dispatched, deliveries in "
                     "flight, failed (awaiting a retry) and given up", ["state"], registry=REGISTRY)
OUTBOX_OLDEST = Gauge("ozonbot_outbox_oldest_pending_seconds", "Age of the oldest event not yet dispatched "
                      "or delivery not yet sent (0 when there is none)", registry=REGISTRY)
SELLERS = Gauge("ozonbot_sellers", "Connected sellers by the state of their Ozon key", ["key_state"],
                registry=REGISTRY)
INTENTS = Gauge("ozonbot_intents", "Recorded Ozon mutations by state", ["state"], registry=REGISTRY)

KEY_STATES = tuple(KeyState)
INTENT_STATES = tuple(IntentState)
# status of a refused inbound request -> the reason it is counted under
REFUSAL_REASONS = {400: "malformed", 401: "unauthorized", 403: "forbidden", 404: "unknown_target",
                   405: "wrong_method", 413: "too_large", 429: "rate_limited"}

_API_PATH = re.compile(r"/v\d+/[a-z0-9_/-]+")

# (source, monotonic start) of the push or poll being handled; alerts sent inside it are timed against it
_seen: ContextVar[tuple[str, float] | None] = ContextVar("ozonbot_seen", default=None)


@contextmanager
def seen(source: str) -> Iterator[None]:
    """Marks the work of one push or one seller's poll: every alert sent within it counts toward the
    `source` latency (push | poll)."""
    token = _seen.set((source, time.monotonic()))
    try:
        yield
    finally:
        _seen.reset(token)


def delivered(channel: str) -> None:
    ALERTS_SENT.labels(channel).inc()
    origin = _seen.get()
    if origin is not None:
        source, started = origin
        ALERT_LATENCY.labels(source).observe(time.monotonic() - started)


def ozon_outcome(status: int | None, error: BaseException | None = None) -> str:
    if error is not None:
        return "timeout" if isinstance(error, TimeoutError) else "connection_error"
    if status is None or 200 <= status < 300:
        return "ok"
    if status == 429:
        return "rate_limited"
    return "server_error" if status >= 500 else "client_error"


async def sample_state(now: datetime) -> None:
    """The gauges that describe the database: read on each scrape (a handful of indexed counts)."""
    undispatched = await Event.filter(dispatched_at__isnull=True).annotate(n=Count("id"), oldest=Min("created_at")) \
        .values("n", "oldest")
    sending, failed = NotificationState.SENDING, NotificationState.FAILED
    owed = [("sending", Notification.filter(state=sending)),
            ("failed", Notification.filter(state=failed))]  # each is retried for as long as its alert matters
    rows = [("undispatched", undispatched[0] if undispatched else {"n": 0, "oldest": None})]
    for state, query in owed:
        found = await query.annotate(n=Count("id"), oldest=Min("created_at")).values("n", "oldest")
        rows.append((state, found[0] if found else {"n": 0, "oldest": None}))
    for state, row in rows:
        OUTBOX_DEPTH.labels(state).set(row["n"] or 0)
    # refused by the platform, or undeliverable for as long as it mattered: reported, but no longer "pending"
    # (it would hold the oldest age up forever)
    OUTBOX_DEPTH.labels("given_up").set(await Notification.filter(
        state__in=(NotificationState.REFUSED, NotificationState.EXPIRED)).count())
    oldest = [row["oldest"] for _, row in rows if row["oldest"] is not None]
    OUTBOX_OLDEST.set(max(0.0, (now - min(oldest)).total_seconds()) if oldest else 0.0)
    _set_counts(SELLERS, KEY_STATES, await Seller.all().annotate(n=Count("id")).group_by("key_state")
                .values_list("key_state", "n"))
    _set_counts(INTENTS, INTENT_STATES, await Intent.all().annotate(n=Count("id")).group_by("state")
                .values_list("state", "n"))


def _set_counts(gauge: Gauge, known: tuple[str, ...], rows) -> None:
    counts = {str(state): n for state, n in rows}
    for state in {*map(str, known), *counts}:  # known states are reported as 0 rather than vanishing
        gauge.labels(state).set(counts.get(state, 0))


def alerts_timed(source: str):
    """Decorates the coroutine that handles one push or one seller's poll (see `seen`)."""
    def wrap(handler):
        @functools.wraps(handler)
        async def run(*args, **kwargs):
            with seen(source):
                return await handler(*args, **kwargs)
        return run
    return wrap


def ozon_retry(path: str, error: Exception) -> None:
    OZON_RETRIES.labels(_api_method(path), type(error).__name__).inc()


def _api_method(path: str) -> str:
    """The API method of a path; a label download (a CDN or file URL) is `file`, so labels stay few."""
    return path if _API_PATH.fullmatch(path) else "file"


def ozon_trace() -> aiohttp.TraceConfig:
    """aiohttp's request hooks for the Ozon session: every attempt counted by method and outcome."""
    trace = aiohttp.TraceConfig()

    async def ended(session, context, params: aiohttp.TraceRequestEndParams) -> None:
        OZON_REQUESTS.labels(_api_method(params.url.path), ozon_outcome(params.response.status)).inc()

    async def failed(session, context, params: aiohttp.TraceRequestExceptionParams) -> None:
        OZON_REQUESTS.labels(_api_method(params.url.path), ozon_outcome(None, params.exception)).inc()

    trace.on_request_end.append(ended)
    trace.on_request_exception.append(failed)
    return trace
