"""Migration 5: the scheduled integrity check's state, and the damage it found.

``integrity_objects``: one row per pack or archive of a repository (a destination and a job) that the
check has seen: its size, when it was last read whole, and whether that read found it damaged (with
the reason). The rotation reads the objects read longest ago (never read first), so every object is
read once per cycle. ``integrity_runs``: one row per check (scheduled by the service or started by
hand) with its summary; the service's daily slot looks at the last scheduled one.
``backup_damage``: a backup the check found damaged (``listBackups`` shows ``damaged: 1``), with the
damaged objects it depends on; a later clean read of those objects removes the row.

Frozen: once released, this file never changes. A later migration alters what it made.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Connection, Integer, MetaData, String, Table

from snapkeep.jobs.migrations.m0001_initial import UtcDateTime

NAME = "integrity check"


def define(metadata: MetaData) -> dict[str, Table]:
    """Define the version-5 tables on ``metadata`` and return them by name."""
    tables = [
        Table(
            "integrity_objects",
            metadata,
            Column("destination_id", String(24), primary_key=True),
            Column("job_id", String(24), primary_key=True),
            Column("kind", String(16), primary_key=True),
            Column("object_id", String(128), primary_key=True),
            Column("size", BigInteger, nullable=False),
            Column("last_read", UtcDateTime),
            Column("damaged", Integer, nullable=False),
            Column("document", JSON, nullable=False),
        ),
        Table(
            "integrity_runs",
            metadata,
            Column("id", String(24), primary_key=True),
            Column("scheduled", Integer, nullable=False),
            Column("started", UtcDateTime, nullable=False, index=True),
            Column("ended", UtcDateTime),
            Column("document", JSON, nullable=False),
        ),
        Table(
            "backup_damage",
            metadata,
            Column("backup_id", String(24), primary_key=True),
            Column("detected", UtcDateTime, nullable=False),
            Column("document", JSON, nullable=False),
        ),
    ]
    return {table.name: table for table in tables}


def upgrade(connection: Connection) -> None:
    """Create the integrity tables."""
    metadata = MetaData()
    define(metadata)
    metadata.create_all(connection)
