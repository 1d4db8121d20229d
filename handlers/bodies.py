"""Inbound request bodies, read whole: `StreamReader.read(n)` returns only what has arrived so far, so a
body that comes in several TCP segments (over the internet, or behind a streaming proxy) was cut short."""

from __future__ import annotations

from aiohttp import web


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole body, however it is segmented or chunked, up to `limit` bytes; None when it is larger (the
    declared length is refused before anything is read)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(limit + 1 - size):  # b"" only at the end of the body
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(chunks)
