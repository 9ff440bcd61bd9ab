"""Log retention: run logs are kept for the ``logs_ttl`` setting's days (``jobs.settings``), then deleted.

Interface (for the daemon, about once an hour)
----------------------------------------------
``prune_logs(tx, home) -> list[str]``
    deletes every finished log that ended more than ``logs_ttl`` days before ``tx.clock.now()``: its
    row, its ``log_items`` rows and its text file ``<home>/logs/<id>.log``; returns the IDs deleted,
    oldest first. ``logs_ttl`` 0 keeps every log. A log still Processing is never deleted, however
    old. The files are removed after the rows, inside the caller's transaction: should that
    transaction then fail, the rows stay and read as logs without text (``getLog`` shows an empty
    ``content`` for a missing file), and the next pass deletes them. A file that cannot be removed
    is logged and left; the catalog rows go all the same.

A queue group keeps the ``log_id`` of a deleted log; ``getLog`` then answers "Log not found".
"""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path

from sqlalchemy import delete, select

from snapkeep.jobs import settings
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.runlog import PROCESSING, log_path

log = logging.getLogger(__name__)

# IDs per DELETE statement (SQLite limits the parameters of one statement)
BATCH = 500


def expired_logs(tx: Transaction, days: int) -> list[str]:
    """The IDs of the finished logs that ended more than ``days`` days ago, oldest first."""
    logs = schema.logs
    cutoff = tx.clock.now() - _dt.timedelta(days=days)
    query = (
        select(logs.c.id)
        .where(logs.c.status != PROCESSING, logs.c.ended.is_not(None), logs.c.ended < cutoff)
        .order_by(logs.c.ended, logs.c.id)
    )
    return [str(ident) for ident in tx.connection.execute(query).scalars()]


def prune_logs(tx: Transaction, home: Path) -> list[str]:
    """Delete the logs older than the ``logs_ttl`` setting (see the module docstring)."""
    days = settings.general(tx).logs_ttl
    if days == 0:
        return []
    expired = expired_logs(tx, days)
    if not expired:
        return []
    for start in range(0, len(expired), BATCH):
        batch = expired[start : start + BATCH]
        tx.connection.execute(delete(schema.log_items).where(schema.log_items.c.log_id.in_(batch)))
        tx.connection.execute(delete(schema.logs).where(schema.logs.c.id.in_(batch)))
    for ident in expired:
        try:
            log_path(home, ident).unlink(missing_ok=True)
        except OSError as error:
            log.warning("log %s: cannot remove its file: %s", ident, error.strerror or error)
    log.info("deleted %d run logs older than %d days", len(expired), days)
    return expired
