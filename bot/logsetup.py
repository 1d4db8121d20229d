"""Logging through a filter that removes every registered secret: key=value lines, or JSON lines
(OZONBOT_LOG_FORMAT=json) for a log collector."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from services.security import RedactingFilter

TEXT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s"


class JsonLines(logging.Formatter):
    """One JSON object a line: ts (UTC, ISO 8601), level, logger, msg, and exc for a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        # the redacting filter has already put the traceback, scrubbed, in exc_text
        exc = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else None)
        if exc:
            line["exc"] = exc
        return json.dumps(line, ensure_ascii=False)


def setup_logging(level: str, redactor: RedactingFilter, stream=None, *, fmt: str = "text") -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLines() if fmt == "json" else logging.Formatter(TEXT))
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "apscheduler", "aiohttp.access", "tortoise"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
