"""Ozon push receiver: answer inside Ozon's time budget, do the work in the background."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
from datetime import UTC, datetime

from aiohttp import web

from handlers.bodies import read_body
from services.orders import OrderSync
from services.storage.models import Seller

log = logging.getLogger(__name__)
VERSION = "0.1.0"
MAX_BODY = 256 * 1024
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
POSTING_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z-]{0,63}$")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, "details": None}}, status=status)


def parse_networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """OZONBOT_OZON_PUSH_ALLOW: comma-separated networks; a bad entry stops start-up rather than open the door."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]


class OzonPushReceiver:
    """Pushes arrive on /ozon/push/<token>: the token is per seller and unguessable (random, 18 bytes), so
    a push for a seller proves it knows that seller's URL. `allow` optionally narrows senders to networks."""

    def __init__(self, sync: OrderSync, allow: str = "", trusted_proxies: str = ""):
        self._sync = sync
        self._allow = parse_networks(allow)
        self._proxies = parse_networks(trusted_proxies)
        self._tasks: set[asyncio.Task] = set()

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/ozon/push/{token}", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        if not self._allowed(self._sender(request)):
            return _error(403, "ERROR_UNKNOWN", "sender not allowed")
        token = request.match_info["token"]
        seller = await Seller.get_or_none(push_token=token) if TOKEN_RE.match(token) else None
        if seller is None:
            return _error(404, "ERROR_UNKNOWN", "unknown endpoint")
        raw = await read_body(request, MAX_BODY)
        if raw is None:
            return _error(413, "ERROR_PARAMETER_VALUE_MISSED", "body too large")
        try:
            payload = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            return _error(400, "ERROR_PARAMETER_VALUE_MISSED", "body is not JSON")
        if not isinstance(payload, dict) or not isinstance(payload.get("message_type"), str):
            return _error(400, "ERROR_PARAMETER_VALUE_MISSED", "message_type is missing")
        number = payload.get("posting_number")
        if number is not None and not (isinstance(number, str) and POSTING_RE.match(number)):
            return _error(400, "ERROR_PARAMETER_VALUE_MISSED", "posting_number is malformed")
        if payload["message_type"] == "TYPE_PING":
            now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            return web.json_response({"version": VERSION, "name": "ozonbot", "time": now})
        task = asyncio.create_task(self._process(seller, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response({"result": True})

    def _sender(self, request: web.Request) -> str | None:
        """The address that sent the push (L6): the TCP peer, or, when the peer is a configured trusted proxy
        (the HTTPS proxy in front of the bot), the nearest X-Forwarded-For address that is not one."""
        chain = [request.remote or ""]
        forwarded = request.headers.get("X-Forwarded-For", "")
        chain[:0] = [part.strip() for part in forwarded.split(",") if part.strip()]
        for address in reversed(chain):
            if not self._is_proxy(address):
                return address
        return chain[0]

    def _is_proxy(self, address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self._proxies)

    def _allowed(self, remote: str | None) -> bool:
        if not self._allow:
            return True
        try:
            address = ipaddress.ip_address(remote or "")
        except ValueError:
            return False
        return any(address in network for network in self._allow)

    async def _process(self, seller: Seller, payload: dict) -> None:
        try:
            await self._sync.handle_push(seller, payload)
        except Exception:  # the poll is the safety net; a failed push must not take anything down
            log.exception("push %s for seller %s failed", payload.get("message_type"), seller.id)

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
