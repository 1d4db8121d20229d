"""A scenario's outcome as a printed table, and as JSON, Markdown and a PNG plot in the results folder."""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class Goal:
    label: str
    value: float
    target: float
    unit: str = ""
    lower_is_better: bool = True

    @property
    def met(self) -> bool:
        if math.isnan(self.value):
            return False
        return self.value <= self.target if self.lower_is_better else self.value >= self.target

    def line(self) -> str:
        sign = "≤" if self.lower_is_better else "≥"
        mark = "met" if self.met else "NOT met"
        return f"{self.label}: {_fmt(self.value)}{self.unit} (goal {sign} {_fmt(self.target)}{self.unit}) {mark}"


@dataclass
class Result:
    name: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    # what the plot shows: {"kind": "cdf"|"bars", "series": {label: [values]}, "xlabel": ..., "ylabel": ...}
    plot: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        cells = [[_fmt(row.get(c, "")) for c in self.columns] for row in self.rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(self.columns)]
        line = "  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True))
        out = [line, "  ".join("-" * w for w in widths)]
        out += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"## {self.title}", "", "| " + " | ".join(self.columns) + " |",
               "|" + "|".join("---:" for _ in self.columns) + "|"]
        out += ["| " + " | ".join(_fmt(row.get(c, "")) for c in self.columns) + " |" for row in self.rows]
        if self.goals:
            out += [""] + [f"- {g.line()}" for g in self.goals]
        if self.notes:
            out += [""] + [f"- {n}" for n in self.notes]
        out += ["", f"Configuration: `{json.dumps(self.config, default=str)}`", ""]
        if self.plot:
            out += [f"![{self.title}]({self.name}.png)", ""]
        return "\n".join(out)

    def print(self) -> None:
        print(f"\n=== {self.title} ===")
        print(self.table())
        for goal in self.goals:
            print("  " + goal.line())
        for note in self.notes:
            print("  note: " + note)

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["goals"] = [dict(asdict(g), met=g.met) for g in self.goals]
        data["machine"] = machine()
        data["plot"] = {k: v for k, v in self.plot.items() if k != "series"}
        (folder / f"{self.name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
        (folder / f"{self.name}.md").write_text(self.markdown())
        if self.plot:
            draw(self, folder / f"{self.name}.png")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "processor": _cpu_model(), "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "network": "loopback"}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def draw(result: Result, path: Path) -> None:
    """PNG plot with matplotlib's Agg backend; skipped with a note when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        result.notes.append("plot skipped: install the `bench` extra (matplotlib) for PNG plots")
        return
    spec = result.plot
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if spec["kind"] == "cdf":
        for label, values in spec["series"].items():
            ordered = sorted(values)
            if ordered:
                ax.plot(ordered, [(i + 1) / len(ordered) * 100 for i in range(len(ordered))], label=label)
        for label, x in spec.get("lines", {}).items():
            ax.axvline(x, linestyle="--", color="grey")
            ax.annotate(label, (x, 5), rotation=90, fontsize=8, color="grey")
        ax.set_ylabel("% of alerts at or below")
    else:
        labels = list(spec["series"])
        values = [spec["series"][k] for k in labels]
        bars = ax.bar(range(len(labels)), values, color="#4a7ebb")
        ax.set_xticks(range(len(labels)), labels, rotation=15, fontsize=8)
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        for label, y in spec.get("lines", {}).items():
            ax.axhline(y, linestyle="--", color="grey")
            ax.annotate(label, (0, y), fontsize=8, color="grey", va="bottom")
        ax.set_ylabel(spec.get("ylabel", ""))
    ax.set_xlabel(spec.get("xlabel", ""))
    ax.set_title(result.title, fontsize=10)
    if spec["kind"] == "cdf":
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
