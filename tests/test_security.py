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


def test_a_signature_that_is_not_ascii_is_refused_not_raised():
    """L2: hmac.compare_digest raises TypeError on a non-ASCII str: GET /a/YWJj.%C3%A9 was a 500, forged
    button data 'something went wrong'."""
    from datetime import UTC, datetime

    from services.links import ActionLinks

    box = SecretBox(Fernet.generate_key().decode())
    assert box.verify("x", "é") is False and box.verify("x", "\ufffd" * 8) is False
    assert ActionLinks(box, "https://desk.example.com", lambda: datetime.now(UTC)).verify("YWJj.é") is None
    assert ActionCodec(box).decode("p.1..éé") is None
    assert box.verify("x", box.sign("x"))


def test_leads_under_a_second_or_absurdly_long_and_quiet_hours_that_end_where_they_start_are_refused():
    """L1: 'leads 0.5' was stored as '0s', which then failed to parse: that seller's reminders stopped; a
    huge number raised OverflowError. L7: '08:00-08:00' meant quiet all day."""
    import pytest

    from services.durations import parse_duration, parse_quiet_hours
    from services.preferences import BY_NAME, InvalidValue, normalize

    for value in ("0.5", "0.5s", "1.5s", "99999999999999999999d"):
        with pytest.raises(InvalidValue):
            normalize(BY_NAME["leads"], value)
    with pytest.raises(ValueError):
        parse_duration("99999999999999999999d")
    assert normalize(BY_NAME["leads"], "4h, 30m") == "4h,30m"
    for value in ("08:00-08:00", "00:00-00:00"):
        with pytest.raises(InvalidValue):
            normalize(BY_NAME["quiet"], value)
        with pytest.raises(ValueError):
            parse_quiet_hours(value)
    assert normalize(BY_NAME["quiet"], "22:00-08:00") == "22:00-08:00"
