"""What every scenario shares: a fresh database, Settings for the real wiring, seeded sellers and desks,
`ozonbot run` in this process, and percentile arithmetic."""

from __future__ import annotations

import asyncio
import math
import os
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pydantic import SecretStr
from tortoise import fields as tortoise_fields
from tortoise import timezone as tortoise_timezone
from tortoise.models import Model
from tortoise.transactions import in_transaction

from bench.sandbox_proc import api_key, client_id
from bot.config import Settings
from services.security import SecretBox, new_token
from services.storage import db
from services.storage.models import Member, Seller

BENCH_DB_ENV = "OZONBOT_BENCH_DATABASE_URL"
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/ozonbot_bench"
FIRST_CHAT_ID = 50_000_000
BULK = 2000


@dataclass(frozen=True)
class Database:
    kind: str  # sqlite | postgres
    url: str  # for sqlite a directory-less template; fresh() hands out a new file each time

    async def fresh(self, tag: str) -> str:
        """An empty, migrated database for one scenario run."""
        _forget_cached_sql()
        if self.kind == "sqlite":
            path = Path(tempfile.mkdtemp(prefix=f"ozonbot-bench-{tag}-")) / "bench.sqlite3"
            url = f"sqlite://{path}"
        else:
            url = self.url
            await _reset_postgres(url)
        await db.migrate(url)
        return url


def _forget_cached_sql() -> None:
    """Tortoise caches each model's INSERT/DELETE SQL by connection name, not by dialect: a process that
    moves from SQLite to PostgreSQL would send `?` placeholders to PostgreSQL. The bench does move."""
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    EXECUTOR_CACHE.clear()


def pick_databases(choice: str | None) -> list[Database]:
    """sqlite always; PostgreSQL when asked for, or (default) when its URL is set or 5432 answers."""
    pg_url = os.environ.get(BENCH_DB_ENV)
    pg_here = bool(pg_url) or _port_open("127.0.0.1", 5432)
    wanted = choice or ("both" if pg_here else "sqlite")
    out: list[Database] = []
    if wanted in ("sqlite", "both"):
        out.append(Database("sqlite", "sqlite"))
    if wanted in ("postgres", "both"):
        out.append(Database("postgres", pg_url or DEFAULT_PG_URL))
    return out


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


async def _reset_postgres(url: str) -> None:
    """Creates the bench database when absent, then empties it (the bench owns that database)."""
    import asyncpg

    dsn = url.replace("postgres://", "postgresql://", 1)
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        base, _, name = dsn.rpartition("/")
        admin = await asyncpg.connect(f"{base}/postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{name.split("?")[0]}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_settings(db_url: str, *, ozon_url: str, telegram_url: str | None = None, secret: str | None = None,
                   **overrides) -> Settings:
    values = dict(data_dir=Path(tempfile.mkdtemp(prefix="ozonbot-bench-data-")), database_url=db_url,
                  secret_key=SecretStr(secret or Fernet.generate_key().decode()), http_port=free_port(),
                  ozon_api_url=ozon_url, poll_interval=3600, quiet_hours="off", label_delay=0.5,
                  log_level="CRITICAL")  # stop-time cancellations of running jobs are noise here
    if telegram_url:
        from sandbox.telegram import DEFAULT_TOKEN

        values.update(telegram_token=SecretStr(DEFAULT_TOKEN), telegram_api_url=f"{telegram_url}/bot",
                      telegram_file_url=f"{telegram_url}/file/bot")
    values.update(overrides)
    return Settings(_env_file=None, **values)


def chat_of(index: int) -> int:
    return FIRST_CHAT_ID + index


async def seed_sellers(settings: Settings, count: int, *, desks: bool = True, default_courier: str | None = None,
                       ) -> dict[int, Seller]:
    """`count` connected sellers (keys encrypted like /connect stores them), each with an owner in Telegram.

    Setup, not measured: bulk inserts instead of /connect's per-seller Ozon round trips.
    """
    box = SecretBox(settings.secret_key.get_secret_value())
    sellers = [Seller(client_id=client_id(i), name=f"bench {i}", api_key_enc=box.encrypt(api_key(i)),
                      push_token=new_token(), timezone="Asia/Shanghai", quiet_hours="off",
                      default_courier=default_courier) for i in range(count)]
    for start in range(0, count, BULK):
        await Seller.bulk_create(sellers[start:start + BULK])
    by_client = {s.client_id: s for s in await Seller.all()}
    indexed = {i: by_client[client_id(i)] for i in range(count)}
    if desks:
        members = [Member(seller_id=indexed[i].id, channel="telegram", external_id=str(chat_of(i)),
                          chat_id=str(chat_of(i)), role="owner", name=f"owner {i}", locale="en")
                   for i in range(count)]
        for start in range(0, count, BULK):
            await Member.bulk_create(members[start:start + BULK])
    return indexed


class TableWriter:
    """Rows written straight into a model's table, for seeding hundreds of thousands (setup, not measured):
    one executemany in one transaction on SQLite, COPY on PostgreSQL, instead of a tortoise Model per row.

    The values are the ones tortoise itself would write: `encode` runs each field's own to_db_value, and
    `record` fills every column left out with the field's default (auto_now columns with the time now)."""

    def __init__(self, model: type[Model]):
        meta = model._meta
        self._fields = meta.fields_map
        self.table = meta.db_table
        self.names = [name for name in meta.fields_db_projection if not meta.fields_map[name].generated]
        self.columns = [meta.fields_db_projection[name] for name in self.names]
        self._datetimes = {name for name in self.names
                           if isinstance(self._fields[name], tortoise_fields.DatetimeField)}

    def encode(self, values: dict[str, Any]) -> dict[str, Any]:
        """Database values of some columns, JSON-safe (a datetime as ISO text) so they can go to a file."""
        out = {}
        for name, value in values.items():
            value = self._fields[name].to_db_value(value, None)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out

    def record(self, encoded: dict[str, Any], now: datetime | None = None) -> tuple:
        """One row in `columns` order from `encode`d values; every other column gets its default."""
        now = now or tortoise_timezone.localtime()
        row = []
        for name in self.names:
            if name in encoded:
                value = encoded[name]
                if name in self._datetimes and isinstance(value, str):
                    value = datetime.fromisoformat(value)
            else:
                field = self._fields[name]
                if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                    value = now
                else:
                    default = field.default() if callable(field.default) else field.default
                    value = field.to_db_value(default, None)
            row.append(value)
        return tuple(row)

    async def write(self, records: Sequence[tuple]) -> None:
        if not records:
            return
        async with in_transaction() as conn:
            if conn.capabilities.dialect == "postgres":
                async with conn.acquire_connection() as raw:
                    await raw.copy_records_to_table(self.table, records=records, columns=self.columns)
            else:
                marks = ", ".join("?" for _ in self.columns)
                names = ", ".join(f'"{column}"' for column in self.columns)
                await conn.execute_many(f'INSERT INTO "{self.table}" ({names}) VALUES ({marks})', list(records))


@asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[asyncio.Task]:
    """`ozonbot run` (bot.service.run_service) in this process until the block ends."""
    from bot.service import run_service

    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_service(settings, stop=stop, ready=ready))
    started = asyncio.create_task(ready.wait())
    await asyncio.wait([task, started], timeout=60, return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    if task.done():
        task.result()  # start-up failed: its error, here
    if not ready.is_set():
        stop.set()
        raise RuntimeError("ozonbot did not start within 60 s")
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def wait_until(predicate, timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


def wall_of(monotonic: float) -> float:
    """A time.monotonic() reading as wall-clock seconds (to compare with another process's timestamps)."""
    return time.time() - (time.monotonic() - monotonic)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def latency_stats(values_ms: Sequence[float]) -> dict[str, float]:
    return {"n": len(values_ms), "p50_ms": percentile(values_ms, 50), "p90_ms": percentile(values_ms, 90),
            "p99_ms": percentile(values_ms, 99), "max_ms": max(values_ms) if values_ms else float("nan")}
