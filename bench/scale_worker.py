"""The measured side of the scale scenario, in a fresh process so its CPU time and peak RSS are the bot's
alone: `ozonbot`'s own services (build_services) run the scheduler's poll job (Duties.poll_due) over
every seller, cycle after cycle, against the sandbox process. Prints one JSON line per cycle."""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections import Counter
from pathlib import Path

import aiohttp
from pydantic import SecretStr

from bot.app import build_services
from bot.config import Settings
from bot.service import tune_gc
from services.storage.models import PollState


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    """VmHWM, this process's own high-water mark: ru_maxrss would carry the forking parent's across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _calls(session: aiohttp.ClientSession, ozon: str) -> list[dict]:
    async with session.get(f"{ozon}/__sandbox__/calls") as resp:
        return await resp.json()


async def _clear(session: aiohttp.ClientSession, ozon: str) -> None:
    async with session.delete(f"{ozon}/__sandbox__/calls") as resp:
        await resp.read()


async def measure(args: argparse.Namespace) -> None:
    settings = Settings(_env_file=None, database_url=args.db, secret_key=SecretStr(args.secret),
                        ozon_api_url=args.ozon, poll_interval=args.interval, log_level="ERROR")
    services = build_services(settings)
    await services.start(schedule=False)
    tune_gc()  # as `ozonbot run` does once started (bot.service.run_service)
    started_rss = _peak_rss_mb()
    try:
        async with aiohttp.ClientSession() as session:
            for cycle in range(1, args.cycles + 1):
                await PollState.all().update(next_poll_at=None)  # every seller due now (setup)
                await _clear(session, args.ozon)
                cpu, began = _cpu(), time.monotonic()
                await services.duties.poll_due()
                wall, cpu = time.monotonic() - began, _cpu() - cpu
                calls = await _calls(session, args.ozon)
                per_seller = Counter(c["client_id"] for c in calls)
                print(json.dumps({
                    "cycle": cycle, "seconds": wall, "cpu_seconds": cpu, "requests": len(calls),
                    "requests_per_seller": len(calls) / args.sellers,
                    "max_requests_one_seller": max(per_seller.values(), default=0),
                    "sellers_polled": len(per_seller),
                    "paths": dict(Counter(c["path"] for c in calls)),
                    "failed": sum(1 for c in calls if c["status"] != 200),
                    "peak_rss_mb": _peak_rss_mb(), "rss_at_start_mb": started_rss,
                }), flush=True)
    finally:
        await services.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_worker")
    parser.add_argument("--db", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--ozon", required=True)
    parser.add_argument("--sellers", type=int, required=True)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--interval", type=float, default=60.0)
    asyncio.run(measure(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
