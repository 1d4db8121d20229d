"""Our own aiohttp client for the WeChat APIs (WeCom and Official Account): cached access tokens refreshed
ahead of expiry, one bounded retry after a token error, bounded back-off when WeChat says 'busy'.

wechatpy's client is synchronous and retries token errors without limit (wechat.md §7 P1): not used.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

log = logging.getLogger(__name__)
TOKEN_ERRORS = frozenset({40001, 40014, 42001})  # invalid credential, invalid token, expired token
BUSY_ERRORS = frozenset({-1, 45009, 45011})  # system busy, api frequency / daily quota
REFRESH_EARLY = 300  # seconds: WeChat rotates with a 5-minute overlap; never use a token in its last minutes
BUSY_RETRIES = 2
# permanent refusals of a send: invalid user id, not following the account, refused template messages,
# outside the 48-hour customer-service window, user not found, no user valid, robot webhook gone
REFUSALS = frozenset({40003, 43004, 43101, 45015, 60111, 81013, 93000})


class WechatApiError(Exception):
    def __init__(self, errcode: int | None, errmsg: str, path: str):
        super().__init__(f"{path}: {errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path


def refusal(exc: Exception) -> str | None:
    """WeChat's "never" for a send (the outbox stops retrying and tells the owners); None for anything else."""
    if not isinstance(exc, WechatApiError):
        return None
    if exc.errcode in REFUSALS or (exc.errcode is None and "visible range" in exc.errmsg):
        return f"{exc.path}: {exc.errcode or ''} {exc.errmsg}"[:200]
    return None


@dataclass(frozen=True)
class AppAuth:
    """How one app gets its access token. `cache_key` is unique per app (per secret)."""

    cache_key: str
    base_url: str  # e.g. https://qyapi.weixin.qq.com/cgi-bin/
    token_path: str  # gettoken | stable_token
    token_params: dict = field(default_factory=dict, hash=False, compare=False)
    token_post: bool = False


@dataclass
class _Token:
    value: str
    expires_at: float


class WechatHttp:
    """One aiohttp session for every app; tokens cached per app in this process."""

    def __init__(self, *, timeout: float = 10.0, on_secret: Callable[[str], None] | None = None,
                 busy_delay: float = 1.0):
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._on_secret = on_secret or (lambda value: None)
        self._busy_delay = busy_delay
        self.token_fetches = 0

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # ---- tokens --------------------------------------------------------------------------------
    async def token(self, auth: AppAuth) -> str:
        cached = self._tokens.get(auth.cache_key)
        if cached and cached.expires_at > time.monotonic():
            return cached.value
        async with self._locks[auth.cache_key]:  # one fetch per app at a time; the others wait for it
            cached = self._tokens.get(auth.cache_key)
            if cached and cached.expires_at > time.monotonic():
                return cached.value
            url = auth.base_url + auth.token_path
            self.token_fetches += 1
            if auth.token_post:
                data = await self._request("POST", url, auth.token_path, json=auth.token_params)
            else:
                data = await self._request("GET", url, auth.token_path, params=auth.token_params)
            value, lifetime = str(data.get("access_token") or ""), int(data.get("expires_in") or 7200)
            if not value:
                raise WechatApiError(None, "no access_token in answer", auth.token_path)
            self._on_secret(value)
            self._tokens[auth.cache_key] = _Token(value, time.monotonic() + max(60, lifetime - REFRESH_EARLY))
            return value

    def invalidate(self, auth: AppAuth, value: str) -> None:
        cached = self._tokens.get(auth.cache_key)
        if cached and cached.value == value:
            del self._tokens[auth.cache_key]

    # ---- calls ---------------------------------------------------------------------------------
    async def call(self, auth: AppAuth, path: str, *, json: dict | None = None, params: dict | None = None,
                   form: Callable[[], aiohttp.FormData] | None = None, raw: bool = False) -> dict | bytes:
        """POST (json/form) or GET (params only) with the app's token. One refetch-and-retry after a
        token error, a couple of short waits when WeChat is busy, then the error is raised."""
        refetched, busy = False, 0
        while True:
            token = await self.token(auth)
            query = {**(params or {}), "access_token": token}
            method = "POST" if json is not None or form is not None else "GET"
            try:
                return await self._request(method, auth.base_url + path, path, params=query, json=json,
                                           data=form() if form else None, raw=raw)
            except WechatApiError as exc:
                if exc.errcode in TOKEN_ERRORS and not refetched:
                    refetched = True
                    self.invalidate(auth, token)
                    continue
                if exc.errcode in BUSY_ERRORS and busy < BUSY_RETRIES:
                    busy += 1
                    await asyncio.sleep(self._busy_delay * busy)
                    continue
                raise

    async def post_plain(self, url: str, path: str, json: dict) -> dict:
        """A call without access token (group robot webhooks: the key in the URL is the credential)."""
        return await self._request("POST", url, path, json=json)

    async def _request(self, method: str, url: str, path: str, *, params: dict | None = None,
                       json: dict | None = None, data=None, raw: bool = False) -> dict | bytes:
        try:
            async with self.session.request(method, url, params=params, json=json, data=data) as response:
                body = await response.read()
                kind = response.headers.get("Content-Type", "")
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WechatApiError(None, f"transport: {type(exc).__name__}", path) from None
        if status >= 400:
            raise WechatApiError(None, f"HTTP {status}", path)
        if raw and "json" not in kind and "text/plain" not in kind:
            return body
        try:
            answer = jsonlib.loads(body or b"{}")
        except ValueError:
            raise WechatApiError(None, "answer is not JSON", path) from None
        errcode = answer.get("errcode", 0) if isinstance(answer, dict) else None
        if errcode:
            raise WechatApiError(int(errcode), str(answer.get("errmsg", "")), path)
        return answer
