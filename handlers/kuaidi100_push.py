"""Kuaidi100 push receiver: POST /kuaidi100/<per-seller token>, a form body with `param` (JSON) and `sign`.

The body is read whole, then believed only once its signature matches the salt of one of that seller's
waybills (services.firstmile). A push that proves nothing gets the same 403 whatever was wrong with it:
no clue which part of a forgery failed. A stored push is answered as Kuaidi100 expects
({"result": true, "returnCode": "200"}); our own storage failing answers 500, so Kuaidi100 pushes it again.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qs

from aiohttp import web

from handlers.bodies import read_body
from services.firstmile import FirstMile, PushRefused
from services.kuaidi100.client import PUSH_REPLY

log = logging.getLogger(__name__)
MAX_BODY = 512 * 1024  # a long trace of a parcel a month on the road is tens of kilobytes
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
REFUSED = {"result": False, "returnCode": "403", "message": "refused"}


class Kuaidi100PushReceiver:
    def __init__(self, first_mile: FirstMile):
        self._first_mile = first_mile

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/kuaidi100/{token}", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        raw = await read_body(request, MAX_BODY)
        if raw is None:
            return web.json_response(REFUSED, status=413)
        if not TOKEN_RE.match(token):
            return web.json_response(REFUSED, status=403)
        try:
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return web.json_response(REFUSED, status=403)
        param, sign = (form.get("param") or [""])[0], (form.get("sign") or [""])[0]
        try:
            taken = await self._first_mile.take_push(token, param, sign)
        except PushRefused as exc:
            log.info("kuaidi100 push refused (%s)", exc)
            return web.json_response(REFUSED, status=403)
        log.info("kuaidi100 push for waybill %s: %d new scan(s)", taken.waybill.id, taken.new_events)
        return web.json_response(PUSH_REPLY)
