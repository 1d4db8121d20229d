"""The operator's routes: GET /metrics (Prometheus text format) and GET /health (ready or not, and why).

/metrics carries business numbers (sellers, order traffic), so it is never public: with
OZONBOT_METRICS_TOKEN set it wants `Authorization: Bearer <token>`; without one it answers only
Prometheus on this host (a loopback peer that no proxy forwarded).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from tortoise import Tortoise

from services.metrics import INBOUND_REFUSED, REFUSAL_REASONS

log = logging.getLogger(__name__)
HEALTH_DB_TIMEOUT = 2.0  # seconds; a health check that hangs is a failed one
FORWARDED = ("X-Forwarded-For", "Forwarded", "X-Real-IP")
UNCOUNTED = ("/metrics", "/health")


class Monitoring:
    def __init__(self, *, registry: CollectorRegistry, sample: Callable[[datetime], Awaitable[None]],
                 clock: Callable[[], datetime], token: str | None,
                 channels: Callable[[], dict[str, bool]] | None = None):
        """`channels`: each channel's name and whether it is up right now (None: not started yet)."""
        self._registry = registry
        self._sample = sample
        self._clock = clock
        self._token = token
        self._channels = channels

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/metrics", self.metrics), web.get("/health", self.health)]

    async def metrics(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return web.Response(status=403, text="forbidden\n")
        try:
            await self._sample(self._clock())
        except Exception:  # the process counters are still worth a scrape when the database is down
            log.warning("metrics: the database gauges could not be read", exc_info=True)
        return web.Response(body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _allowed(self, request: web.Request) -> bool:
        if self._token:
            given = request.headers.get("Authorization", "")
            return hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode())
        local = request.remote in ("127.0.0.1", "::1")
        return local and not any(h in request.headers for h in FORWARDED)

    async def health(self, request: web.Request) -> web.Response:
        """200 only when the database answers and every channel is up; 503 otherwise, saying which part."""
        database = await _database_answers()
        channels = self._channels() if self._channels else {}
        ready = database and channels is not None and all(channels.values())
        body = {"ok": ready, "database": "ok" if database else "down",
                "channels": {name: "up" if up else "down" for name, up in (channels or {}).items()}}
        if channels is None:
            body["channels"] = "starting"
        return web.json_response(body, status=200 if ready else 503)


async def _database_answers() -> bool:
    try:
        connection = Tortoise.get_connection("default")
        await asyncio.wait_for(connection.execute_query("SELECT 1"), HEALTH_DB_TIMEOUT)
    except Exception:
        return False
    return True


@web.middleware
async def count_refusals(request: web.Request, handler) -> web.StreamResponse:
    """Inbound callbacks refused (a bad signature, an unknown seller, an oversized body...), by route and
    reason, without each handler having to count its own."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _count(request, exc.status)
        raise
    _count(request, response.status)
    return response


def _count(request: web.Request, status: int) -> None:
    reason = REFUSAL_REASONS.get(status)
    if reason is None or request.path in UNCOUNTED:
        return
    route = request.match_info.route.resource
    INBOUND_REFUSED.labels(route.canonical if route is not None else "unrouted", reason).inc()
