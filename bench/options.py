"""What `ozonbot bench` was asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Options:
    quick: bool = False
    sellers: list[int] = field(default_factory=list)  # scale scenario sizes; empty: the defaults
    poll_interval: float = 5.0  # seconds, for the poll → alert scenario
    push_postings: int = 0  # 0: the default for the mode
    out: Path = Path("bench/results")
