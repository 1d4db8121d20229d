"""`ozonbot backup FILE`: a consistent copy of the SQLite database, taken while the service runs.

SQLite's online backup API copies the pages under one read transaction, so the copy is the database as
it was at one instant even while `ozonbot run` writes. PostgreSQL has pg_dump for that (the command says
how). Either way the copy holds stored secrets encrypted: it is useless without the secret key.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path

from bot.config import Settings
from services.security import KEY_FILE

PG_DUMP = "pg_dump --format=custom --file=ozonbot-$(date +%F).dump \"$OZONBOT_DATABASE_URL\""


def sqlite_path(db_url: str) -> Path | None:
    if not db_url.startswith("sqlite://") or ":memory:" in db_url:
        return None
    return Path(db_url.removeprefix("sqlite://").split("?")[0])


def copy_sqlite(source: Path, target: Path) -> str:
    """Copies `source` to `target` through the online backup API; returns the copy's integrity verdict.
    Written beside the target first, so a copy cut short never takes the target's name."""
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # one step: one read transaction, the database as of one instant
            (verdict,) = dst.execute("PRAGMA integrity_check").fetchone()
        finally:
            dst.close()
    finally:
        src.close()
    os.chmod(partial, 0o600)  # encrypted keys, but also names and addresses of buyers
    os.replace(partial, target)
    return verdict


async def backup_command(settings: Settings, args) -> int:
    source = sqlite_path(settings.db_url)
    if source is None:
        print("The database is not a SQLite file. For PostgreSQL take the copy with pg_dump, for example:\n"
              f"  {PG_DUMP}\nand restore it with pg_restore (docs/operations.md). Keep the secret key with it.",
              file=sys.stderr)
        return 2
    if not source.exists():
        print(f"no database at {source}: nothing to back up", file=sys.stderr)
        return 1
    target = Path(args.file)
    if target.exists():
        print(f"{target} exists: choose a new name (a backup is never overwritten)", file=sys.stderr)
        return 1
    verdict = await asyncio.to_thread(copy_sqlite, source, target)
    if verdict != "ok":
        print(f"the copy at {target} fails SQLite's integrity check ({verdict}); the database itself may be "
              "damaged: keep the older backups", file=sys.stderr)
        return 1
    where = "OZONBOT_SECRET_KEY" if settings.secret_key else str(settings.data_dir / KEY_FILE)
    print(f"backed up {source} to {target} ({target.stat().st_size // 1024} KiB, integrity ok)")
    print(f"Keep the secret key ({where}) with it, stored apart from the backup: without the key the Ozon "
          "API keys and WeChat secrets in the backup cannot be read, and with it anyone can read them.")
    return 0
