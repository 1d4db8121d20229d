"""Async client for the Kuaidi100 calls the first-mile watch makes (reference/next-features.md §3).

- ``subscribe``: ``POST {base}/poll`` with ``schema=json`` and ``param`` (the key sits inside ``param``;
  the request is not signed). 200 and 501 (already subscribed) are accepted.
- ``query``: ``POST {base}/poll/query.do`` with ``customer``, ``param`` and
  ``sign = UPPER(MD5(param + key + customer))``. Kuaidi100 allows it for user-triggered looks only
  (one waybill a second): the account check and "the whole trace on request" use it, nothing polls it.
- ``parse_push``: a push's ``param`` is believed only when ``sign = UPPER(MD5(param + salt))`` matches.

One attempt per call: the caller owns retrying (a subscription is kept until Kuaidi100 took it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import aiohttp
from pydantic import ValidationError

from .errors import Kuaidi100Error, Kuaidi100Refused, Kuaidi100Unavailable, error_for_code
from .models import PushNotification, SubscribeRequest, Trace

__all__ = ["DEFAULT_API_URL", "PUSH_REPLY", "Kuaidi100Client", "SignatureMismatch", "parse_push",
           "push_signature", "query_signature"]

DEFAULT_API_URL = "https://poll.kuaidi100.com"
SUBSCRIBE = "/poll"
QUERY = "/poll/query.do"
# what a push must be answered with, or Kuaidi100 pushes it again
PUSH_REPLY: dict[str, Any] = {"result": True, "returnCode": "200", "message": "成功"}
ACCEPTED = {"200", "501"}  # 501: a duplicate subscription, harmless


def _md5_upper(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()


def query_signature(param: str, key: str, customer: str) -> str:
    return _md5_upper(param + key + customer)


def push_signature(param: str, salt: str) -> str:
    return _md5_upper(param + salt)


class SignatureMismatch(ValueError):
    """A push whose signature does not match: nothing in it is believed."""


def parse_push(param: str, sign: str, salt: str) -> PushNotification:
    """The push, once its signature is verified (compared in constant time); SignatureMismatch or
    ValueError (not a push) otherwise."""
    if not salt or not sign or not hmac.compare_digest(push_signature(param, salt), sign.strip().upper()):
        raise SignatureMismatch("kuaidi100 push signature mismatch")
    try:
        body = json.loads(param)
        if not isinstance(body, dict):
            raise ValueError("kuaidi100 push param is not an object")
        return PushNotification.model_validate(body)
    except ValidationError as exc:
        raise ValueError("kuaidi100 push param is not a push") from exc


class Kuaidi100Client:
    def __init__(self, session: aiohttp.ClientSession, base_url: str = DEFAULT_API_URL, *, timeout: float = 15.0):
        self._session = session
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def _post(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        try:
            async with self._session.post(self._base + path, data=form, timeout=self._timeout) as resp:
                status, text = resp.status, await resp.text()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Kuaidi100Unavailable(type(exc).__name__) from exc
        if status >= 500:
            raise Kuaidi100Unavailable(f"HTTP {status}", status=status)
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise Kuaidi100Unavailable("not JSON", status=status) from exc
        if not isinstance(body, dict):
            raise Kuaidi100Unavailable("not a JSON object", status=status)
        if status != 200:
            raise Kuaidi100Refused(f"HTTP {status}", status=status)
        return body

    async def subscribe(self, key: str, request: SubscribeRequest) -> bool:
        """Subscribe a waybill to pushes. True when new, False when Kuaidi100 already had it (501).
        Raises Kuaidi100Error (``retryable`` says whether to try again)."""
        parameters: dict[str, str] = {"callbackurl": request.callback_url, "resultv2": "1"}
        if request.salt:
            parameters["salt"] = request.salt
        if request.phone:
            parameters["phone"] = request.phone
        if request.auto_com:
            parameters["autoCom"] = "1"
        param: dict[str, Any] = {"company": request.company, "number": request.number, "key": key,
                                 "parameters": parameters}
        if request.from_:
            param["from"] = request.from_
        if request.to:
            param["to"] = request.to
        body = await self._post(SUBSCRIBE, {"schema": "json", "param": json.dumps(param, ensure_ascii=False)})
        code = str(body.get("returnCode") or "")
        if code in ACCEPTED:
            return code == "200"
        raise error_for_code(code, str(body.get("message") or ""))

    async def query(self, key: str, customer: str, company: str, number: str, *, phone: str = "") -> Trace:
        """The trace now (newest first). Raises Kuaidi100Error; 500 "no result yet" is Unavailable."""
        param_obj: dict[str, str] = {"com": company, "num": number, "resultv2": "1", "order": "desc"}
        if phone:
            param_obj["phone"] = phone
        param = json.dumps(param_obj, ensure_ascii=False)
        body = await self._post(QUERY, {"customer": customer, "param": param,
                                        "sign": query_signature(param, key, customer)})
        if str(body.get("status") or "") == "200" or body.get("message") == "ok":
            return Trace.model_validate(body)
        raise error_for_code(str(body.get("returnCode") or ""), str(body.get("message") or ""))

    async def check_account(self, key: str, customer: str) -> None:
        """A real call that proves the key and customer id: a signed query. Kuaidi100 answers a
        well-signed query for an unknown number with 400/500 (no such record) and a bad key or customer
        with 503/601. Raises Kuaidi100AuthError when the account is wrong, Kuaidi100Unavailable when
        nothing could be learnt."""
        try:
            await self.query(key, customer, "yuantong", "YT0000000000000")
        except Kuaidi100Refused:
            return
        except Kuaidi100Unavailable as exc:
            if exc.code == "500":  # "查询无结果": the signature passed
                return
            raise
        except Kuaidi100Error:
            raise
