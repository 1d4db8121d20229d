"""Typed Ozon Seller API errors.

Callers branch on the error *class* (retry later, ask the seller for a new key, show a business
error) and on ``token`` (Ozon's ``message``, e.g. ``POSTING_ALREADY_SHIPPED``), never on the HTTP
status alone: Ozon documents its messages, not its status codes (reference §1.3).

No error ever carries the Api-Key: errors are built from the response only, and any secret that an
upstream body might echo is scrubbed before it is stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = [
    "OzonAuthError",
    "OzonError",
    "OzonRateLimited",
    "OzonRequestError",
    "OzonUnavailable",
    "error_from_response",
    "parse_error_body",
    "parse_retry_after",
]

_MAX_TEXT = 300

# (substring of Ozon's message, lower-case) -> OzonAuthError.reason. Order matters: first match wins.
_AUTH_MESSAGES: tuple[tuple[str, str], ...] = (
    ("invalid api-key", "invalid_key"),
    ("client-id header value", "invalid_key"),
    ("is deactivated", "deactivated"),
    ("missing a required role", "missing_role"),
    ("restricted to specific ip", "ip_restricted"),
    ("offer not signed", "offer_not_signed"),
)
_RATE_LIMIT_MESSAGES = ("rate limit", "too many requests")
_CIRCUIT_OPEN = "circle is open"


class OzonError(Exception):
    """Base of all Ozon errors.

    ``status`` is the HTTP status (0 when no response arrived), ``code`` the rpcStatus code when
    numeric, ``token`` Ozon's message, ``details`` its details/data, ``path`` the API method.
    """

    retryable = False

    def __init__(
        self,
        token: str = "",
        *,
        status: int = 0,
        code: int | None = None,
        details: Any = None,
        path: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.token = token
        self.details = details
        self.path = path
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f" on {self.path}" if self.path else ""
        status = f"HTTP {self.status}" if self.status else "no response"
        code = f", code {self.code}" if self.code is not None else ""
        return f"{self.token or 'Ozon error'} ({status}{code}){where}"

    def __str__(self) -> str:
        return self._describe()

    def __repr__(self) -> str:
        fields = {"status": self.status, "code": self.code, "token": self.token, "path": self.path}
        fields.update(self._extra_repr())
        inner = ", ".join(f"{key}={value!r}" for key, value in fields.items())
        return f"{type(self).__name__}({inner})"

    def _extra_repr(self) -> dict[str, Any]:
        return {}

    def matches(self, token: str) -> bool:
        """True when Ozon's message is (or contains) ``token``, case-insensitively."""
        return token.casefold() in self.token.casefold()


class OzonAuthError(OzonError):
    """The key cannot be used: the seller must act (new key, roles, IP list, or sign the offer).

    ``reason`` is one of ``invalid_key``, ``deactivated``, ``missing_role``, ``ip_restricted``,
    ``offer_not_signed``.
    """

    def __init__(self, token: str = "", *, reason: str = "invalid_key", **kwargs: Any) -> None:
        self.reason = reason
        super().__init__(token, **kwargs)

    def _extra_repr(self) -> dict[str, Any]:
        return {"reason": self.reason}


class OzonRateLimited(OzonError):
    """HTTP 429. ``retry_after`` is Ozon's ``Retry-After`` in seconds, when it sent one."""

    retryable = True

    def __init__(self, token: str = "", *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(token, **kwargs)

    def _extra_repr(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after}


class OzonUnavailable(OzonError):
    """Ozon could not serve the request: 5xx, ``Circle is open``, timeout or connection failure.

    ``circuit_open`` marks Ozon's circuit breaker, which blocks a method for minutes and so calls
    for a much longer backoff than a plain 5xx.
    """

    retryable = True

    def __init__(
        self,
        token: str = "",
        *,
        circuit_open: bool = False,
        retry_after: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.circuit_open = circuit_open
        self.retry_after = retry_after
        super().__init__(token, **kwargs)

    def _extra_repr(self) -> dict[str, Any]:
        return {"circuit_open": self.circuit_open}


class OzonRequestError(OzonError):
    """Any other 4xx: a business error Ozon will repeat if asked again, so it is never retried."""


# --------------------------------------------------------------------------- parsing


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def parse_error_body(raw: bytes | str) -> tuple[int | None, str, Any]:
    """Return ``(code, token, details)`` from an error body of any known shape.

    Handles rpcStatus ``{"code", "message", "details"}``, the legacy ``{"error": {"code", "message",
    "data"}}`` (whose string code becomes the token when the message is empty) and plain text.
    """
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        legacy = body["error"]
        token = str(legacy.get("message") or legacy.get("code") or "")
        return _as_int(legacy.get("code")), token, legacy.get("data")
    if isinstance(body, dict):
        token = body.get("message") or body.get("error") or ""
        return _as_int(body.get("code")), str(token), body.get("details")
    return None, " ".join(text.split())[:_MAX_TEXT], None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header, given as seconds or as an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds()) if moment.tzinfo else None


def _auth_reason(status: int, token: str) -> str | None:
    lowered = token.casefold()
    for needle, reason in _AUTH_MESSAGES:
        if needle in lowered:
            return reason
    return "invalid_key" if status == 401 else None


def error_from_response(
    status: int,
    raw: bytes | str,
    *,
    path: str = "",
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
) -> OzonError:
    """Build the typed error for a non-2xx response.

    Classification goes by Ozon's message first (``Circle is open`` and the auth messages can come
    with various statuses), then by HTTP status. ``secrets`` are masked out of the stored text.
    """
    code, token, details = parse_error_body(raw)
    secrets = tuple(secrets)
    token = _scrub(token, secrets)
    if details is not None:
        details = json.loads(_scrub(json.dumps(details, ensure_ascii=False, default=str), secrets))
    retry_after = parse_retry_after((headers or {}).get("Retry-After"))
    common: dict[str, Any] = {"status": status, "code": code, "details": details, "path": path}
    lowered = token.casefold()
    if _CIRCUIT_OPEN in lowered:
        return OzonUnavailable(token, circuit_open=True, retry_after=retry_after, **common)
    reason = _auth_reason(status, token)
    if reason:
        return OzonAuthError(token, reason=reason, **common)
    if status == 429 or any(needle in lowered for needle in _RATE_LIMIT_MESSAGES):
        return OzonRateLimited(token, retry_after=retry_after, **common)
    if status >= 500:
        return OzonUnavailable(token, retry_after=retry_after, **common)
    return OzonRequestError(token, **common)
