"""`ozonbot bench`: runs the scenarios, prints each table, writes bench/results/<scenario>.{json,md,png}
and a summary.md with every goal."""

from __future__ import annotations

import importlib
import logging
import time
from pathlib import Path

from bench.harness import pick_databases
from bench.options import Options
from bench.report import Result, machine

SCENARIOS = {
    "push": "bench.push_latency",
    "poll": "bench.poll_latency",
    "scale": "bench.poll_scale",
    "buttons": "bench.buttons",
    "calls": "bench.ozon_calls",
}


async def run_bench(opts: Options, names: list[str] | None, database: str | None) -> int:
    logging.getLogger().setLevel(logging.ERROR)
    dbs = pick_databases(database)
    print(f"ozonbot bench: {', '.join(names or SCENARIOS)} on {', '.join(d.kind for d in dbs)}"
          f"{' (quick)' if opts.quick else ''}; results in {opts.out}/", flush=True)
    results: list[Result] = []
    started = time.monotonic()
    for name in names or list(SCENARIOS):
        module = importlib.import_module(SCENARIOS[name])
        began = time.monotonic()
        result = await module.run(dbs, opts)
        result.config["seconds"] = round(time.monotonic() - began, 1)
        result.write(opts.out)
        result.print()
        results.append(result)
    _summary(results, opts.out, time.monotonic() - started)
    missed = [g for r in results for g in r.goals if not g.met]
    print(f"\n{len(results)} scenarios in {time.monotonic() - started:.0f} s; "
          f"{sum(len(r.goals) for r in results) - len(missed)} goals met, {len(missed)} not met")
    return 0


def _summary(results: list[Result], folder: Path, seconds: float) -> None:
    info = machine()
    lines = ["# ozonbot benchmark summary", "",
             f"Machine: {info['cpus']} CPU cores ({info['processor']}), Python {info['python']}, "
             f"{info['platform']}. All traffic on loopback: the Ozon sandbox and a fake Bot API stand in for "
             f"Ozon and Telegram, so network latency to the real services is not included.", "",
             f"Run at {info['when']}, {seconds:.0f} s in all.", ""]
    for result in results:
        lines += [f"## {result.title}", "", f"See [{result.name}.md]({result.name}.md).", ""]
        lines += [f"- {g.line()}" for g in result.goals] + [""]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.md").write_text("\n".join(lines))
