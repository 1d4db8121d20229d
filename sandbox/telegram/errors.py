"""Bot API error answers: ``{"ok": false, "error_code": N, "description": ...}``."""

from __future__ import annotations

from typing import Any

_ERROR_TEXT = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

def _status_text(status: int, retry_after: int | float | None = None) -> str:
    if status == 429:
        return f"Too Many Requests: retry after {retry_after}"
    return _ERROR_TEXT.get(status, f"Error {status}")



class TelegramAPIError(Exception):
    """Raised inside the fake to produce an error answer."""

    def __init__(self, status: int, description: str | None = None, parameters: dict | None = None):
        self.status = status
        self.description = description or _status_text(status)
        self.parameters = parameters
        super().__init__(f"{status} {self.description}")

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad(description: str) -> TelegramAPIError:
    return TelegramAPIError(400, f"Bad Request: {description}")
