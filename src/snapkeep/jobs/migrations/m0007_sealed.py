"""Migration 7: job repository keys move into the catalog, sealed with the master key.

``job_keys``: one row per encrypted job, its repository password as a sealed token
(``jobs.sealing``; purpose ``job-key/<job id>``). Until version 7 the keys were files in
``<home>/keys/``; the files, and the secrets older catalogs hold in clear, are sealed into the catalog
by ``jobs.seal_catalog`` when ``Catalog.open`` runs (it needs the master key, which lives outside
the catalog, so this migration only makes the table).

Frozen: once released, this file never changes. A later migration alters what it made.
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, MetaData, String, Table, Text

from snapkeep.jobs.migrations.m0001_initial import UtcDateTime

NAME = "sealed job keys"


def define(metadata: MetaData) -> dict[str, Table]:
    """Define the version-7 table on ``metadata`` and return it by name."""
    table = Table(
        "job_keys",
        metadata,
        Column("job_id", String(24), primary_key=True),
        Column("sealed", Text, nullable=False),
        Column("created", UtcDateTime, nullable=False),
    )
    return {table.name: table}


def upgrade(connection: Connection) -> None:
    """Create the ``job_keys`` table."""
    metadata = MetaData()
    define(metadata)
    metadata.create_all(connection)
