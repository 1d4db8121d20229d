"""Typed Kuaidi100 errors. Callers branch on the class: retry later, tell the seller the key is wrong,
or give up on a number Kuaidi100 will never track. No error carries the key: they are built from
Kuaidi100's answer only."""

from __future__ import annotations

__all__ = ["Kuaidi100AuthError", "Kuaidi100Error", "Kuaidi100Refused", "Kuaidi100Unavailable",
           "error_for_code"]


class Kuaidi100Error(Exception):
    """``code`` is Kuaidi100's returnCode ("" when no answer came), ``message`` its message."""

    retryable = False

    def __init__(self, message: str = "", *, code: str = "", status: int = 0):
        self.code, self.message, self.status = code, message[:300], status
        super().__init__(f"kuaidi100 {code or status}: {self.message}")


class Kuaidi100Unavailable(Kuaidi100Error):
    """No usable answer (network, 5xx, not JSON) or returnCode 500/502: try again later."""

    retryable = True


class Kuaidi100AuthError(Kuaidi100Error):
    """600/601 (key unknown or expired, no balance) or 503 (signature): the seller must fix the account.
    A subscription is kept and tried again: it goes through once the account is right."""

    retryable = True


class Kuaidi100Refused(Kuaidi100Error):
    """700/701/702 (bad data, courier unsupported, number not recognised), 400, 408 (phone needed):
    asking again with the same data is pointless."""


_AUTH = {"600", "601", "503"}
_RETRY = {"500", "502"}


def error_for_code(code: str, message: str, status: int = 200) -> Kuaidi100Error:
    if code in _AUTH:
        return Kuaidi100AuthError(message, code=code, status=status)
    if code in _RETRY:
        return Kuaidi100Unavailable(message, code=code, status=status)
    return Kuaidi100Refused(message, code=code, status=status)
