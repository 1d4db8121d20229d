"""Figures of fault runs, printed in pytest's terminal summary (so CI output shows them without -s)."""

from __future__ import annotations

import json
import os
from pathlib import Path

LINES: list[str] = []


def report(title: str, figures: dict) -> None:
    db = "postgres" if os.environ.get("OZONBOT_TEST_DATABASE_URL") else "sqlite"
    LINES.append(f"{title} [{db}]: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    target = os.environ.get("OZONBOT_FAULT_REPORT")  # optional: keep the figures for docs/reliability.md
    if target:
        with Path(target).open("a") as handle:
            handle.write(json.dumps({"test": title, "db": db, **figures}) + "\n")
