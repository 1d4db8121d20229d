"""Scenario 3: the reconciliation poll at scale. N sellers with 20 open postings each, already known to
the database (seeded in bulk: setup, not measured), the sandbox answering every call after 50 ms. The
scheduler's poll job runs over all of them, cycle after cycle, in a separate process (bench.scale_worker)
that reports wall time, CPU seconds, Ozon requests per seller and peak RSS."""

from __future__ import annotations

import asyncio
import json
import sys

from bench.harness import BULK, Database, bench_settings, seed_sellers
from bench.options import Options
from bench.report import Goal, Result
from bench.sandbox_proc import api_key, client_id, sandbox_process
from services.orders import posting_fields
from services.ozon.gateway import OzonGateway
from services.ozon.models import Posting as OzonPosting
from services.security import SecretBox
from services.storage import db
from services.storage.models import Posting

POSTINGS_PER_SELLER = 20
LATENCY_S = 0.050
CYCLES = 3
GOALS = {"cycle_s": 30.0, "rss_mb": 400.0, "requests_per_seller": 1.0}


async def run(dbs: list[Database], opts: Options) -> Result:
    sizes = opts.sellers or ([200] if opts.quick else [1000, 10000])
    result = Result("poll_scale", f"Poll cycle at scale: {POSTINGS_PER_SELLER} open postings per seller, "
                    f"sandbox latency {LATENCY_S * 1000:.0f} ms",
                    ["database", "sellers", "cycle", "cycle_s", "cpu_s", "requests/seller", "max/seller",
                     "peak_rss_mb"],
                    config={"sizes": sizes, "postings_per_seller": POSTINGS_PER_SELLER, "latency_s": LATENCY_S,
                            "cycles": CYCLES})
    bars = {}
    for sellers in sizes:
        async with sandbox_process(sellers, POSTINGS_PER_SELLER) as ozon:
            snapshots = await _read_all(ozon.base_url, sellers)
            await ozon.faults(latency=LATENCY_S)
            for database in dbs:
                cycles = await _measure(database, ozon.base_url, sellers, snapshots)
                for c in cycles:
                    result.rows.append({"database": database.kind, "sellers": sellers, "cycle": c["cycle"],
                                        "cycle_s": c["seconds"], "cpu_s": c["cpu_seconds"],
                                        "requests/seller": c["requests_per_seller"],
                                        "max/seller": c["max_requests_one_seller"], "peak_rss_mb": c["peak_rss_mb"]})
                steady = cycles[-1]
                bars[f"{database.kind} {sellers}"] = steady["seconds"]
                if sellers == max(sizes):
                    tag = f"{database.kind}, {sellers} sellers"
                    result.goals += [
                        Goal(f"steady cycle ({tag})", steady["seconds"], GOALS["cycle_s"], " s"),
                        Goal(f"peak RSS ({tag})", max(c["peak_rss_mb"] for c in cycles), GOALS["rss_mb"], " MB"),
                        Goal(f"Ozon requests per seller, nothing changed ({tag})",
                             steady["requests_per_seller"], GOALS["requests_per_seller"]),
                    ]
    result.notes.append("cycle 1 is the first after start (no page fingerprints yet: every page is parsed and "
                        "compared with the database); later cycles are the steady state")
    result.notes.append("CPU and RSS are the bot process's own; the sandbox and the database server run in "
                        "processes of their own on the same 2 cores")
    result.plot = {"kind": "bars", "series": bars, "ylabel": "steady poll cycle (s)",
                   "lines": {"goal 30 s": GOALS["cycle_s"]}}
    return result


async def _read_all(ozon_url: str, sellers: int) -> dict[int, list[OzonPosting]]:
    """Every seller's open postings, read like the poll reads them (setup for the database seed)."""
    gateway = OzonGateway(base_url=ozon_url, box=SecretBox(_fernet_key()))
    await gateway.start()
    gate = asyncio.Semaphore(50)

    async def read(index: int) -> tuple[int, list[OzonPosting]]:
        async with gate:
            client = gateway.client(client_id(index), api_key(index))
            return index, [p async for p in client.iter_unfulfilled()]

    try:
        return dict(await asyncio.gather(*(read(i) for i in range(sellers))))
    finally:
        await gateway.close()


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


async def _seed(database: Database, ozon_url: str, sellers: int, snapshots: dict[int, list[OzonPosting]]):
    url = await database.fresh(f"scale{sellers}")
    settings = bench_settings(url, ozon_url=ozon_url)
    await db.connect(url, apply_migrations=False)
    try:
        rows = await seed_sellers(settings, sellers, desks=False)
        batch: list[Posting] = []
        for index, postings in snapshots.items():
            seller = rows[index]
            for remote in postings:
                batch.append(Posting(seller_id=seller.id, posting_number=remote.posting_number,
                                     **posting_fields(seller, None, remote)))
            if len(batch) >= BULK:
                await Posting.bulk_create(batch)
                batch = []
        if batch:
            await Posting.bulk_create(batch)
    finally:
        await db.close()
    return settings


async def _measure(database: Database, ozon_url: str, sellers: int, snapshots) -> list[dict]:
    settings = await _seed(database, ozon_url, sellers, snapshots)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.scale_worker", "--db", settings.db_url,
        "--secret", settings.secret_key.get_secret_value(), "--ozon", ozon_url, "--sellers", str(sellers),
        "--cycles", str(CYCLES), stdout=asyncio.subprocess.PIPE, limit=1 << 20)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"scale worker failed with exit code {proc.returncode}")
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
