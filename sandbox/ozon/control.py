"""The JSON control API under ``/__sandbox__/``: another process (demo, bench) drives the world through it."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import fields
from datetime import timedelta
from typing import Any

from aiohttp import web

from .api import Faults
from .catalogue import public_warehouse
from .wire import Json, _dumps, _json, fmt_dt, parse_dt


class Control:
    """The `/__sandbox__/` handlers (state lives on `OzonSandbox`)."""

    # control API (/__sandbox__/…)

    @staticmethod
    async def _ctl_body(request: web.Request) -> Json:
        try:
            body = await request.json() if (await request.read()).strip() else {}
        except ValueError:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "body is not valid JSON"}), content_type="application/json"
            ) from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "expected a JSON object"}), content_type="application/json"
            )
        return body

    @staticmethod
    def _ctl_error(status: int, message: str) -> web.Response:
        return _json({"error": message}, status=status)

    async def _ctl_call(self, fn: Callable[[], Any]) -> web.Response:
        try:
            return _json(fn())
        except KeyError as exc:
            return self._ctl_error(404, str(exc.args[0] if exc.args else exc))
        except (ValueError, TypeError) as exc:
            return self._ctl_error(400, str(exc))

    async def _ctl_sellers(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)

        def run() -> Json:
            expires = parse_dt(body["expires_at"]) if body.get("expires_at") else None
            self.add_seller(
                str(body["client_id"]),
                str(body["api_key"]),
                expires_at=expires,
                roles=body.get("roles"),
                warehouses=int(body.get("warehouses") or 1),
            )
            seller = self._sellers[str(body["client_id"])]
            return {
                "client_id": seller.client_id,
                "expires_at": fmt_dt(seller.expires_at),
                "roles": seller.roles,
                "warehouses": [public_warehouse(w) for w in seller.warehouses],
            }

        if "client_id" not in body or "api_key" not in body:
            return self._ctl_error(400, "client_id and api_key are required")
        return await self._ctl_call(run)

    async def _ctl_orders(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)

        def run() -> list[Json]:
            due = body.get("due_in_seconds")
            return self.generate_orders(
                str(body["client_id"]),
                int(body.get("count") or 1),
                flows=body.get("flows"),
                due_in=timedelta(seconds=float(due)) if due is not None else None,
            )

        return await self._ctl_call(run)

    async def _ctl_add_posting(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        return await self._ctl_call(
            lambda: self.add_posting(str(body["client_id"]), body.get("posting") or {})
        )

    async def _ctl_get_posting(self, request: web.Request) -> web.Response:
        info = request.match_info
        return await self._ctl_call(lambda: self.posting(info["client_id"], info["posting_number"]))

    async def _ctl_list_postings(self, request: web.Request) -> web.Response:
        return await self._ctl_call(lambda: self.postings(request.match_info["client_id"]))

    async def _ctl_cancel(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)

        def run() -> Json:
            args = [str(body["client_id"]), str(body["posting_number"])]
            if body.get("reason"):
                args.append(str(body["reason"]))
            self.cancel(*args)
            return self.posting(args[0], args[1])

        return await self._ctl_call(run)

    async def _ctl_status(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)

        def run() -> Json:
            cid, number = str(body["client_id"]), str(body["posting_number"])
            self.set_status(cid, number, str(body["status"]), body.get("substatus"))
            return self.posting(cid, number)

        return await self._ctl_call(run)

    async def _ctl_fail_next_ship(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)

        def run() -> Json:
            self.fail_next_ship(str(body["posting_number"]), int(body.get("times", 1)))
            return {"ok": True}

        return await self._ctl_call(run)

    async def _ctl_faults(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        known = {f.name: f for f in fields(Faults)}
        unknown = set(body) - set(known) - {"reset"}
        if unknown:
            return self._ctl_error(400, f"unknown fault fields: {', '.join(sorted(unknown))}")
        faults = Faults() if body.get("reset") else copy.copy(self.faults)
        try:
            for name, value in body.items():
                if name == "reset":
                    continue
                if name == "paths":
                    faults.paths = set(value) if value is not None else None
                elif name == "timeout_after_processing":
                    faults.timeout_after_processing = bool(value)
                elif name == "retry_after":
                    faults.retry_after = int(value)
                else:
                    setattr(faults, name, float(value))
        except (TypeError, ValueError) as exc:
            return self._ctl_error(400, str(exc))
        self.faults = faults
        return _json(faults.to_json())

    async def _ctl_get_faults(self, request: web.Request) -> web.Response:
        return _json(self.faults.to_json())

    async def _ctl_push_url(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)

        def run() -> Json:
            self.set_push_url(str(body["client_id"]), body.get("url") or None)
            return {"ok": True}

        return await self._ctl_call(run)

    async def _ctl_calls(self, request: web.Request) -> web.Response:
        q = request.query
        ok_only = q.get("ok_only", "false").lower() in ("1", "true", "yes")
        calls = self.calls
        if q.get("path"):
            calls = self.calls_to(q["path"], q.get("client_id"), ok_only=ok_only)
        else:
            calls = [
                c
                for c in calls
                if (not q.get("client_id") or c.client_id == q["client_id"])
                and (not ok_only or c.status == 200)
            ]
        return _json([c.to_json() for c in calls])

    async def _ctl_clear_calls(self, request: web.Request) -> web.Response:
        self.calls.clear()
        return _json({"ok": True})

    async def _ctl_pushes(self, request: web.Request) -> web.Response:
        return _json([p.to_json() for p in self.pushes])

    async def _ctl_health(self, request: web.Request) -> web.Response:
        return web.json_response(
            dumps=_dumps, data={"ok": True, "sellers": sorted(self._sellers), "postings": len(self._postings)}
        )
