"""Secrets never reach a log line, a traceback included; forged button data is refused."""

from __future__ import annotations

import io
import logging

from cryptography.fernet import Fernet

from bot.logsetup import setup_logging
from services.actions import ActionCodec
from services.security import RedactingFilter, SecretBox


def test_log_lines_and_tracebacks_are_redacted():
    secret = "ozon-key-0123456789abcdef"
    redactor = RedactingFilter()
    redactor.add(secret)
    stream = io.StringIO()
    setup_logging("INFO", redactor, stream=stream)
    log = logging.getLogger("test.secrets")
    log.info("connecting with %s", secret)
    try:
        raise RuntimeError(f"request failed with Api-Key {secret}")
    except RuntimeError:
        log.exception("boom")
    output = stream.getvalue()
    assert secret not in output
    assert output.count("***") >= 2 and "RuntimeError" in output


def test_button_data_is_short_signed_and_tamper_proof():
    codec = ActionCodec(SecretBox(Fernet.generate_key()))
    data = codec.encode("c", 123456, "chinapost")
    assert len(data.encode()) <= 64
    assert codec.decode(data).arg == "chinapost"
    assert codec.decode(data.replace("123456", "123457")) is None
    assert codec.decode(data[:-1] + ("A" if data[-1] != "A" else "B")) is None
    other = ActionCodec(SecretBox(Fernet.generate_key()))
    assert other.decode(data) is None
