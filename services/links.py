"""Signed, expiring, per-member links to the action page (WeChat template messages, group robot alerts).

A link names one member and, optionally, one posting. The member is who acts when the page is used,
so a forwarded link acts as the member it was made for, and only until it expires.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.security import SecretBox

SIGNATURE_LENGTH = 22  # ~128 bits of HMAC-SHA256: links live longer and travel further than buttons


@dataclass(frozen=True)
class LinkClaim:
    member_id: int
    posting_id: int | None
    expires_at: datetime


class ActionLinks:
    PATH = "/a/"

    def __init__(self, box: SecretBox, base_url: str, clock: Callable[[], datetime],
                 ttl: timedelta = timedelta(days=3)):
        self._box = box
        self._base_url = base_url.rstrip("/")
        self._clock = clock
        self._ttl = ttl

    def token(self, member_id: int, posting_id: int | None = None, *, expires_at: datetime | None = None) -> str:
        """`expires_at` lets a page hand out links derived from its own without outliving it."""
        expires = int((expires_at or self._clock() + self._ttl).timestamp())
        body = f"{member_id}.{posting_id or 0}.{expires}"
        encoded = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
        return f"{encoded}.{self._box.sign('link:' + body, SIGNATURE_LENGTH)}"

    def url(self, member_id: int, posting_id: int | None = None) -> str:
        return self.url_of(self.token(member_id, posting_id))

    def url_of(self, token: str) -> str:
        return f"{self._base_url}{self.PATH}{token}"

    def verify(self, token: str) -> LinkClaim | None:
        """The claim of a link we made that has not expired; None for anything else."""
        encoded, _, signature = token.partition(".")
        if not encoded or not signature or len(token) > 200:
            return None
        try:
            body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        if not self._box.verify("link:" + body, signature, SIGNATURE_LENGTH):
            return None
        member, posting, expires = (int(part) for part in body.split("."))
        expires_at = datetime.fromtimestamp(expires, tz=self._clock().tzinfo)
        if expires_at <= self._clock():
            return None
        return LinkClaim(member_id=member, posting_id=posting or None, expires_at=expires_at)


@dataclass(frozen=True)
class ConnectClaim:
    """Who may connect a key through the form: the person who asked for the link, where they asked."""

    channel: str
    external_id: str
    chat_id: str | None
    locale: str
    nonce: str
    expires_at: datetime


class ConnectLinks:
    """One-time, signed, short-lived links to the key form, for surfaces where a typed key could not be deleted.

    The link names the person (channel and id) it was made for; the nonce is spent when a key is stored
    through it (the form records it), so a link seen later by someone else connects nothing."""

    PATH = "/k/"
    TTL = timedelta(minutes=30)

    def __init__(self, box: SecretBox, base_url: str, clock: Callable[[], datetime]):
        self._box = box
        self._base_url = base_url.rstrip("/")
        self._clock = clock

    def token(self, channel: str, external_id: str, chat_id: str | None, locale: str) -> str:
        expires = int((self._clock() + self.TTL).timestamp())
        body = json.dumps([channel, external_id, chat_id, locale, expires, secrets.token_urlsafe(9)],
                          separators=(",", ":"), ensure_ascii=False)
        encoded = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
        return f"{encoded}.{self._box.sign('connect:' + encoded, SIGNATURE_LENGTH)}"

    def url(self, channel: str, external_id: str, chat_id: str | None, locale: str) -> str:
        return f"{self._base_url}{self.PATH}{self.token(channel, external_id, chat_id, locale)}"

    def verify(self, token: str) -> ConnectClaim | None:
        encoded, _, signature = token.partition(".")
        if not encoded or not signature or len(token) > 600:
            return None
        if not self._box.verify("connect:" + encoded, signature, SIGNATURE_LENGTH):
            return None
        try:
            channel, external_id, chat_id, locale, expires, nonce = json.loads(
                base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        except (ValueError, TypeError):
            return None
        expires_at = datetime.fromtimestamp(expires, tz=self._clock().tzinfo)
        if expires_at <= self._clock():
            return None
        return ConnectClaim(channel, external_id, chat_id, locale, nonce, expires_at)
