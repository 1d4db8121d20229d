"""Re-encrypts every registered secret column (services.security.ENCRYPTED_FIELDS) under a new key.

One transaction: either every value is readable with the new key afterwards, or nothing changed. Values
already under the new key are accepted, so a rotation cut short can simply be run again.
"""

from __future__ import annotations

from tortoise import Tortoise
from tortoise.transactions import in_transaction

from services.security import ENCRYPTED_FIELDS, SecretBox


def model_for(table: str):
    for app in Tortoise.apps.values():
        for model in app.values():
            if model._meta.db_table == table:
                return model
    raise LookupError(f"no model for encrypted table {table!r}")


async def reencrypt_all(old_key: str, new_key: str) -> dict[str, int]:
    """Returns how many values were re-encrypted per `table.column`."""
    reader = SecretBox(new_key, old_key)  # new first: a value already rotated reads as is
    writer = SecretBox(new_key)
    counts: dict[str, int] = {}
    async with in_transaction() as conn:
        for table, column in sorted(ENCRYPTED_FIELDS):
            model = model_for(table)
            pk = model._meta.pk_attr
            rows = await model.all().using_db(conn).values_list(pk, column)
            done = 0
            for key, value in rows:
                if value:
                    fresh = writer.encrypt(reader.decrypt(value))  # ValueError rolls everything back
                    await model.filter(**{pk: key}).using_db(conn).update(**{column: fresh})
                    done += 1
            counts[f"{table}.{column}"] = done
    return counts
