"""Migration 3: backups, the catalog's view of what runs stored on destinations.

One row per backup (a snapshot of an Incremental repository, or an archive of the Archived and
Compressed structures) with a catalog ID (24 hex, the ID the API shows) and a second catalog ID for
its one item (Directories jobs have one item per backup); ``engine_id`` is the repository's own
snapshot or archive ID, which never appears in the API. Locks (``manageBackupLock``) are columns so
retention can read them without parsing documents.

Frozen: once released, this file never changes. A later migration alters what it made.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Connection, Integer, MetaData, String, Table

from snapkeep.jobs.migrations.m0001_initial import UtcDateTime

NAME = "backups"


def define(metadata: MetaData) -> dict[str, Table]:
    """Define the version-3 table on ``metadata`` and return it by name."""
    table = Table(
        "backups",
        metadata,
        Column("id", String(24), primary_key=True),
        Column("item_id", String(24), nullable=False, unique=True),
        Column("job_id", String(24), nullable=False, index=True),
        Column("destination_id", String(24), nullable=False, index=True),
        Column("engine_id", String(128), nullable=False),
        Column("structure", Integer, nullable=False),
        Column("account", String(255), nullable=False),
        Column("created", UtcDateTime, nullable=False),
        Column("size", BigInteger, nullable=False),
        Column("encrypted", Integer, nullable=False),
        Column("locked", Integer, nullable=False),
        Column("lock_ttl", Integer, nullable=False),
        Column("locked_until", UtcDateTime),
        Column("document", JSON, nullable=False),
    )
    return {table.name: table}


def upgrade(connection: Connection) -> None:
    """Create the backups table."""
    metadata = MetaData()
    define(metadata)
    metadata.create_all(connection)
