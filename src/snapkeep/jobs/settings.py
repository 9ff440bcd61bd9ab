"""Settings kept in the catalog (shared by every server on it): performance and time zone."""

from __future__ import annotations

from collections.abc import Mapping

from snapkeep.jobs import schedule
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.migrations import schema

PERFORMANCE_SETTING = "performance"
PERFORMANCE_DEFAULTS = {"backup_forks": 2, "queueable_forks": 2}


def timezone_setting(tx: Transaction) -> str:
    """The ``timezone`` setting ("" = the server's zone)."""
    value = tx.connection.execute(
        schema.settings.select().where(schema.settings.c.key == schedule.TIMEZONE_SETTING)
    ).first()
    return str(value.value) if value is not None and value.value else ""


def performance(tx: Transaction) -> dict[str, int]:
    """The ``performance`` setting: ``backup_forks`` (backups at once) and ``queueable_forks``
    (restores and downloads at once), 1-10 each, default 2."""
    found = tx.connection.execute(
        schema.settings.select().where(schema.settings.c.key == PERFORMANCE_SETTING)
    ).first()
    stored = dict(found.value) if found is not None and isinstance(found.value, dict) else {}
    return {key: int(stored.get(key, default)) for key, default in PERFORMANCE_DEFAULTS.items()}


def save_performance(tx: Transaction, values: Mapping[str, int]) -> dict[str, int]:
    """Store the ``performance`` setting (merged over the current one); return it."""
    merged = {**performance(tx), **{key: int(value) for key, value in values.items()}}
    table = schema.settings
    if tx.connection.execute(table.select().where(table.c.key == PERFORMANCE_SETTING)).first() is None:
        tx.connection.execute(table.insert().values(key=PERFORMANCE_SETTING, value=merged))
    else:
        tx.connection.execute(table.update().where(table.c.key == PERFORMANCE_SETTING).values(value=merged))
    return merged
