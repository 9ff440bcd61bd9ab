"""Migration 4: backups found by a reindex (``reindexDestination``, ``snapkeep reindex``).

Two columns on ``backups``, both 0 for every backup a run stored:

* ``orphan`` 1: the backup's repository (``<destination root>/<job id>/``) belongs to a job this
  catalog does not know (the old server's job, before ``dr import``, or a deleted one). Orphans are
  owned by root and restorable like any backup.
* ``key_required`` 1: the row stands for an encrypted repository whose password the key store does
  not hold, so its backups cannot be listed yet (``engine_id`` is empty). ``snapkeep keys import`` or
  ``dr import`` supplies the key; the next reindex replaces the row by the repository's backups.

Frozen: once released, this file never changes. A later migration alters what it made.
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, Integer, text

NAME = "reindex"


def columns() -> list[Column[int]]:
    """The version-4 columns of ``backups`` (``schema`` appends them to the table)."""
    return [
        Column("orphan", Integer, nullable=False, server_default=text("0")),
        Column("key_required", Integer, nullable=False, server_default=text("0")),
    ]


def upgrade(connection: Connection) -> None:
    """Add ``orphan`` and ``key_required`` to ``backups`` (0 for the rows already there)."""
    for column in columns():
        connection.execute(text(f"ALTER TABLE backups ADD COLUMN {column.name} INTEGER NOT NULL DEFAULT 0"))
