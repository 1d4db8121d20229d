"""`ozonbot rotate-key`: a new Fernet key, every stored secret re-encrypted under it in one transaction.

Key file mode (no OZONBOT_SECRET_KEY): the new key is written to secret.key.new (0600) before the database
changes, the old key is kept as secret.key.old until the end, then secret.key.new replaces secret.key. A run
cut short leaves secret.key.new behind; the service refuses to start until `rotate-key` is run again, which
finishes the job with that same key.

Environment mode (OZONBOT_SECRET_KEY set): nothing is written; the new key is printed for the operator to
set in place of the old one. Stop every `ozonbot run` first: a running process only knows the old key.
"""

from __future__ import annotations

import os
import shutil
import sys

from cryptography.fernet import Fernet

from bot.config import Settings
from services.keyrotation import reencrypt_all
from services.security import KEY_FILE, NEW_KEY_FILE, OLD_KEY_FILE, write_secret_file
from services.storage import db


def _valid(key: str) -> bool:
    try:
        Fernet(key)
    except (ValueError, TypeError):
        return False
    return True


async def rotate_key_command(settings: Settings, args) -> int:
    new = args.new_key or Fernet.generate_key().decode()
    if not _valid(new):
        print("--new-key is not a Fernet key (32 url-safe base64 bytes). Nothing was changed.", file=sys.stderr)
        return 2
    if settings.secret_key is not None:
        old = settings.secret_key.get_secret_value()
        # printed before the database changes, so the key can never be lost with the process
        print(f"new key (set OZONBOT_SECRET_KEY to it once this command reports success):\n{new}", flush=True)
        return await _reencrypt(settings, old, new)
    data = settings.data_dir
    key_file, pending, kept = data / KEY_FILE, data / NEW_KEY_FILE, data / OLD_KEY_FILE
    if not key_file.exists():
        print(f"no key file {key_file} and no OZONBOT_SECRET_KEY: nothing is encrypted yet.", file=sys.stderr)
        return 1
    old = key_file.read_text().strip()
    if pending.exists():
        new = pending.read_text().strip()
        print(f"finishing the rotation that was cut short ({pending})")
    else:
        write_secret_file(pending, new)
    shutil.copyfile(key_file, kept)
    os.chmod(kept, 0o600)
    status = await _reencrypt(settings, old, new)
    if status:
        return status
    os.replace(pending, key_file)
    kept.unlink()
    print(f"new key written to {key_file} (mode 0600); the old key is deleted")
    return 0


async def _reencrypt(settings: Settings, old: str, new: str) -> int:
    await db.connect(settings.db_url)
    try:
        counts = await reencrypt_all(old, new)
    except ValueError as exc:
        print(f"not rotated: {exc}. The database is unchanged.", file=sys.stderr)
        return 1
    finally:
        await db.close()
    for column, count in counts.items():
        print(f"re-encrypted {column}: {count} value(s)")
    print("buttons on messages sent before the rotation are signed with the old key and will be refused; "
          "/orders gives fresh ones")
    return 0
