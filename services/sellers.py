"""Hands out an OzonClient per seller over one shared HTTP session and one rate-limit registry."""

from __future__ import annotations

import aiohttp

from services.ozon.client import OzonClient, RetryPolicy
from services.ozon.limiter import RateLimits
from services.security import SecretBox
from services.storage.models import Seller


class OzonGateway:
    def __init__(self, *, base_url: str, box: SecretBox, retry: RetryPolicy | None = None,
                 trace_configs: list[aiohttp.TraceConfig] | None = None):
        """`trace_configs`: aiohttp's request hooks on the shared session (the metrics count each attempt)."""
        self._base_url = base_url.rstrip("/")
        self._box = box
        self._retry = retry or RetryPolicy()
        self._limits = RateLimits()
        self._session: aiohttp.ClientSession | None = None
        self._traces = list(trace_configs or [])

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=200, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, trace_configs=self._traces or None)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def client(self, client_id: str, api_key: str) -> OzonClient:
        if self._session is None:
            raise RuntimeError("OzonGateway.start() was not awaited")
        return OzonClient(self._session, base_url=self._base_url, client_id=client_id, api_key=api_key,
                          limits=self._limits, retry=self._retry)

    def for_seller(self, seller: Seller) -> OzonClient:
        return self.client(seller.client_id, self._box.decrypt(seller.api_key_enc))
