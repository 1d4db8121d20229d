"""Push notifications to the seller's URL (reference §4): queued, sent in order, each one recorded."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from aiohttp import ClientSession, ClientTimeout

from .wire import Json
from .world import _Posting, _Seller

log = logging.getLogger(__name__)


@dataclass
class RecordedPush:
    url: str
    payload: Json
    status: int | None  # HTTP status answered by the receiver, None when the request failed
    error: str | None
    timestamp: datetime

    def to_json(self) -> Json:
        return {
            "url": self.url,
            "payload": self.payload,
            "status": self.status,
            "error": self.error,
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
        }



class Push:
    """Queue and deliver pushes (state lives on `OzonSandbox`)."""

    def _new_posting_push(self, seller: _Seller, p: _Posting) -> Json:
        d = p.data
        analytics = d.get("analytics_data") or {}
        return {
            "message_type": "TYPE_NEW_POSTING",
            "seller_id": int(seller.client_id),
            "posting_number": p.number,
            "products": [
                {"sku": x["sku"], "offer_id": x.get("offer_id", ""), "quantity": x["quantity"]}
                for x in d.get("products") or []
            ],
            "in_process_at": d.get("in_process_at"),
            "warehouse_id": d["delivery_method"]["warehouse_id"],
            "shipment_date": d.get("shipment_date"),
            "tpl_integration_type": d.get("tpl_integration_type"),
            "is_express": bool(d.get("is_express")),
            "tracking_number": d.get("tracking_number") or "",
            "delivery_date_begin": analytics.get("delivery_date_begin"),
            "delivery_date_end": analytics.get("delivery_date_end"),
        }

    def _emit(self, seller: _Seller, payload: Json) -> None:
        if not seller.push_url:
            return
        url = seller.push_url
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning("sandbox push to %s dropped: no running event loop", url)
            self.pushes.append(RecordedPush(url, payload, None, "no running event loop", self.now()))
            return
        if self._push_task is None or self._push_task.done() or self._push_task.get_loop() is not loop:
            self._push_queue = asyncio.Queue()
            self._push_task = loop.create_task(self._push_worker(self._push_queue))
        assert self._push_queue is not None
        self._push_queue.put_nowait((url, payload))

    async def _push_worker(self, queue: asyncio.Queue[tuple[str, Json]]) -> None:
        while True:
            url, payload = await queue.get()
            try:
                await self._send_push(url, payload)
            except Exception as exc:  # never raised to anyone: logged and recorded
                log.warning("sandbox push to %s failed: %r", url, exc)
            finally:
                queue.task_done()

    async def _send_push(self, url: str, payload: Json) -> None:
        if self._push_session is None or self._push_session.closed:
            self._push_session = ClientSession(timeout=ClientTimeout(total=self.push_timeout))
        status: int | None = None
        error: str | None = None
        try:
            async with self._push_session.post(url, json=payload) as resp:
                status = resp.status
                await resp.read()
                if status != 200:
                    error = f"HTTP {status}"
                    log.warning(
                        "sandbox push %s to %s answered HTTP %s", payload.get("message_type"), url, status
                    )
        except Exception as exc:
            error = repr(exc)
            log.warning("sandbox push %s to %s failed: %r", payload.get("message_type"), url, exc)
        self.pushes.append(RecordedPush(url, payload, status, error, self.now()))

    async def flush_pushes(self, timeout: float = 10.0) -> None:
        """Wait until every queued push has been delivered (or has failed)."""
        if self._push_queue is not None and self._push_task is not None and not self._push_task.done():
            await asyncio.wait_for(self._push_queue.join(), timeout)
