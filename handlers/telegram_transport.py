"""python-telegram-bot's HTTP transport on aiohttp instead of httpx.

Every press costs three Bot API calls (answer, card edit, prompt), and on this path httpx with httpcore and
anyio cost about twice what aiohttp does per request (bench/buttons.py measures it). aiohttp is already
the bot's HTTP stack (Ozon client, web server, WeChat), so this adds no dependency. PTB's own contract is
kept: the same form-encoded or multipart bodies, the same timeouts (per call, or the defaults below), and
failures surface as PTB's TimedOut and NetworkError, which its retry and error handling understand.
"""

from __future__ import annotations

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

DEFAULT_TIMEOUT = 5.0  # seconds, as PTB's HTTPXRequest: connect, read and write
MEDIA_WRITE_TIMEOUT = 20.0  # seconds to upload a file (a label PDF)
POOL_SIZE = 256  # a webhook burst answers many presses at once; httpx's default pool would queue them


class AiohttpRequest(BaseRequest):
    def __init__(self, *, read_timeout: float | None = DEFAULT_TIMEOUT, pool_size: int = POOL_SIZE):
        self._read_timeout = read_timeout
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            # trust_env: HTTPS_PROXY is honoured, as by PTB's default transport (sellers in China need one)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size), trust_env=True,
                headers={"User-Agent": self.USER_AGENT})

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout=BaseRequest.DEFAULT_NONE, write_timeout=BaseRequest.DEFAULT_NONE,
                         connect_timeout=BaseRequest.DEFAULT_NONE, pool_timeout=BaseRequest.DEFAULT_NONE,
                         ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        files = request_data.multipart_data if request_data else None
        body = _form(request_data.json_parameters if request_data else {}, files)
        timeout = aiohttp.ClientTimeout(
            sock_connect=_given(connect_timeout, DEFAULT_TIMEOUT),
            sock_read=_given(read_timeout, self._read_timeout),
            # aiohttp has no write timeout of its own: the whole request is bounded by write + read
            total=_sum(_given(write_timeout, MEDIA_WRITE_TIMEOUT if files else DEFAULT_TIMEOUT),
                       _given(read_timeout, self._read_timeout), _given(pool_timeout, 1.0)))
        try:
            async with self._session.request(method, url, data=body, timeout=timeout) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            # L4: only the kind: a proxy's or a redirect's message carries the URL, and with it the bot token
            raise NetworkError(f"aiohttp.{type(exc).__name__}") from exc


def _form(fields: dict[str, str], files) -> aiohttp.FormData | dict[str, str] | None:
    """Plain fields go form-encoded; with files, everything goes as multipart (as Telegram expects)."""
    if not files:
        return fields or None
    form = aiohttp.FormData(quote_fields=False)
    for name, value in fields.items():
        form.add_field(name, value)
    for name, (filename, content, mimetype) in files.items():
        form.add_field(name, content, filename=filename or name, content_type=mimetype)
    return form


def _given(value, default: float | None) -> float | None:
    return default if isinstance(value, DefaultValue) else value


def _sum(*parts: float | None) -> float | None:
    return None if any(p is None for p in parts) else sum(parts)
