"""rFBS cancellation requests (`/v2/conditional-cancellation/list|approve|reject`, reference next-features §6).

A buyer asks to cancel; the request waits ON_APPROVAL until the seller approves it (the posting is cancelled),
rejects it with a comment (the posting stays and must be delivered) or `auto_approve_date` passes (Ozon
approves it: the posting is cancelled). There is no push for requests: only the final TYPE_POSTING_CANCELLED."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from .api import ApiError, _int, _invalid, _str_list
from .wire import Json, fmt_dt

STATES = ("ON_APPROVAL", "APPROVED", "REJECTED")
STATE_IDS = {"ON_APPROVAL": 1, "APPROVED": 2, "REJECTED": 3}
STATE_NAMES = {"ON_APPROVAL": "На согласовании", "APPROVED": "Подтверждена", "REJECTED": "Отклонена"}
INITIATORS = ("OZON", "SELLER", "CLIENT", "SYSTEM", "DELIVERY")
LIST_LIMIT = 500


@dataclass
class _CancelRequest:
    cancellation_id: int
    client_id: str
    posting_number: str
    reason_id: int
    reason: str
    message: str
    created_at: datetime
    auto_approve_at: datetime
    initiator: str = "CLIENT"
    state: str = "ON_APPROVAL"
    comment: str = ""
    decided_at: datetime | None = None


class Cancellations:
    """The requests and their three methods (state lives on `OzonSandbox`)."""

    _cancel_requests: dict[int, _CancelRequest]

    def request_cancellation(self, client_id: str, posting_number: str, *, reason: str = "Передумал покупать",
                             message: str = "", auto_approve_in: timedelta = timedelta(hours=48),
                             reason_id: int = 503) -> Json:
        """A buyer asks to cancel an open posting; Ozon approves it by itself at auto_approve_date."""
        self._tick()
        seller = self._seller(client_id)
        p = seller.postings.get(posting_number)
        if p is None:
            raise KeyError(f"unknown posting {posting_number}")
        if p.data["status"] in ("cancelled", "delivered"):
            raise ValueError(f"posting {posting_number} is {p.data['status']}")
        request = _CancelRequest(
            cancellation_id=880000 + len(self._cancel_requests) + 1, client_id=client_id,
            posting_number=posting_number, reason_id=reason_id, reason=reason, message=message,
            created_at=self.now(), auto_approve_at=self.now() + auto_approve_in)
        self._cancel_requests[request.cancellation_id] = request
        return self._cancel_json(request)

    def cancel_requests(self) -> list[_CancelRequest]:
        self._auto_approve()
        return list(self._cancel_requests.values())

    def _auto_approve(self) -> None:
        now = self.now()
        for request in self._cancel_requests.values():
            if request.state == "ON_APPROVAL" and request.auto_approve_at <= now:
                self._close_request(request, "APPROVED", "", now)

    def _close_request(self, request: _CancelRequest, state: str, comment: str, now: datetime) -> None:
        request.state, request.comment, request.decided_at = state, comment, now
        if state == "APPROVED":
            p = self._seller(request.client_id).postings.get(request.posting_number)
            if p is not None and p.data["status"] not in ("cancelled", "delivered"):
                self.cancel(request.client_id, request.posting_number, "Покупатель отменил заказ")

    def _cancel_json(self, r: _CancelRequest) -> Json:
        p = self._seller(r.client_id).postings.get(r.posting_number)
        return {
            "cancellation_id": r.cancellation_id,
            "posting_number": r.posting_number,
            "cancellation_initiator": r.initiator,
            "cancellation_reason": {"id": r.reason_id, "name": r.reason},
            "cancellation_reason_message": r.message,
            "cancelled_at": fmt_dt(r.created_at),
            "order_date": (p.data.get("in_process_at") if p else None) or fmt_dt(r.created_at),
            "state": {"id": STATE_IDS[r.state], "name": STATE_NAMES[r.state], "state": r.state},
            "approve_comment": r.comment,
            "approve_date": fmt_dt(r.decided_at) if r.decided_at else None,
            "auto_approve_date": fmt_dt(r.auto_approve_at),
            "tpl_integration_type": (p.data.get("tpl_integration_type") if p else None) or "non_integrated",
            "source_id": r.cancellation_id,
        }

    def _api_cancellation_list(self, seller: Any, body: Json) -> Json:
        limit = _int(body.get("limit"), "limit")
        if not 1 <= limit <= LIST_LIMIT:
            raise _invalid("limit must be between 1 and 500")
        filters = body.get("filters") or {}
        if not isinstance(filters, dict):
            raise _invalid("invalid filters")
        state = filters.get("state") or "ALL"
        if state not in ("ALL", *STATES):
            raise _invalid("invalid filters.state")
        numbers = set(_str_list(filters.get("posting_number"), "filters.posting_number"))
        initiators = set(_str_list(filters.get("cancellation_initiator"), "filters.cancellation_initiator"))
        if initiators - set(INITIATORS):
            raise _invalid("invalid filters.cancellation_initiator")
        last_id = _int(body.get("last_id") or 0, "last_id")
        mine = sorted((r for r in self.cancel_requests() if r.client_id == seller.client_id),
                      key=lambda r: r.cancellation_id)
        matching = [r for r in mine if (state == "ALL" or r.state == state)
                    and (not numbers or r.posting_number in numbers)
                    and (not initiators or r.initiator in initiators)]
        page = [r for r in matching if r.cancellation_id > last_id][:limit]
        answer: Json = {"result": [self._cancel_json(r) for r in page],
                        "last_id": page[-1].cancellation_id if page else last_id}
        if (body.get("with") or {}).get("counter"):
            answer["counter"] = sum(1 for r in mine if r.state == "ON_APPROVAL")
        return answer

    def _move_request(self, seller: Any, body: Json, state: str) -> Json:
        request = self._cancel_requests.get(_int(body.get("cancellation_id"), "cancellation_id"))
        self._auto_approve()
        if request is None or request.client_id != seller.client_id:
            raise ApiError(404, 5, "CANCELLATION_NOT_FOUND")
        if request.state != "ON_APPROVAL":
            raise ApiError(400, 3, f"CANCELLATION_ALREADY_{request.state}")
        comment = body.get("comment") or ""
        if not isinstance(comment, str):
            raise _invalid("invalid comment")
        if state == "REJECTED" and not comment.strip():
            raise _invalid("comment is required to reject a cancellation")
        self._close_request(request, state, comment, self.now())
        return {}

    def _api_cancellation_approve(self, seller: Any, body: Json) -> Json:
        return self._move_request(seller, body, "APPROVED")

    def _api_cancellation_reject(self, seller: Any, body: Json) -> Json:
        return self._move_request(seller, body, "REJECTED")

    async def _ctl_cancellation_request(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        return await self._ctl_call(lambda: self.request_cancellation(
            str(body["client_id"]), str(body["posting_number"]), reason=str(body.get("reason") or
                                                                              "Передумал покупать"),
            message=str(body.get("message") or ""),
            auto_approve_in=timedelta(seconds=float(body.get("auto_approve_in") or 48 * 3600))))

    async def _ctl_cancellation_requests(self, request: web.Request) -> web.Response:
        return await self._ctl_call(lambda: [self._cancel_json(r) for r in self.cancel_requests()])
