"""Database lifecycle: tortoise config, built-in migrations, connect and close."""

from __future__ import annotations

import os
from pathlib import Path

from tortoise import Tortoise
from tortoise.migrations.api import migrate as run_migrations

from services.security import make_private_dir

APP = "ozonbot"


def tortoise_config(db_url: str) -> dict:
    return {
        "connections": {"default": db_url},
        "apps": {
            APP: {
                "models": ["services.storage.models"],
                "migrations": "services.storage.migrations",
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _ensure_sqlite_dir(db_url: str) -> None:
    """The directory 0700 and the database file 0600 before SQLite creates it with the umask's 0644 (L8):
    it holds push tokens, invite codes and members' names. SQLite gives its journal files the same mode."""
    if db_url.startswith("sqlite://") and ":memory:" not in db_url:
        path = Path(db_url.removeprefix("sqlite://").split("?")[0])
        make_private_dir(path.parent)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


async def migrate(db_url: str) -> None:
    """Apply every pending migration (idempotent)."""
    _ensure_sqlite_dir(db_url)
    try:
        await run_migrations(config=tortoise_config(db_url))
    finally:
        await Tortoise.close_connections()


async def connect(db_url: str, *, apply_migrations: bool = True) -> None:
    if apply_migrations:
        await migrate(db_url)
    _ensure_sqlite_dir(db_url)
    # global fallback: PTB, aiohttp and APScheduler run callbacks in tasks of their own
    await Tortoise.init(config=tortoise_config(db_url), _enable_global_fallback=True)


async def pending_migrations() -> list[str]:
    """Names of the migrations the connected database lacks (connect with apply_migrations=False first)."""
    from tortoise.connection import get_connection
    from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

    config = tortoise_config("sqlite://:memory:")["apps"]  # only the apps part is read here
    executor = MigrationExecutor(get_connection("default"), config)
    steps = await executor.plan([MigrationTarget(app_label=APP, name="__latest__")])
    return [step.migration.name for step in steps if not step.backward]


async def close() -> None:
    await Tortoise.close_connections()
