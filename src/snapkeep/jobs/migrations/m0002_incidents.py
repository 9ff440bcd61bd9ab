"""Migration 2: open incidents, so a condition raises one alert per incident, not one per check.

An incident is a condition that is true now (a job with no successful run for too long, a run that
lasts too long). Its row lives while the condition holds and names the alert it raised; clearing that
alert does not reopen the incident, so the monitor does not raise it again until it is over.

Frozen: once released, this file never changes. A later migration alters what it made.
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, MetaData, String, Table

from snapkeep.jobs.migrations.m0001_initial import UtcDateTime

NAME = "incidents"


def define(metadata: MetaData) -> dict[str, Table]:
    """Define the version-2 table on ``metadata`` and return it by name."""
    table = Table(
        "incidents",
        metadata,
        Column("key", String(255), primary_key=True),
        Column("alert_id", String(24), nullable=False),
        Column("opened", UtcDateTime, nullable=False),
    )
    return {table.name: table}


def upgrade(connection: Connection) -> None:
    """Create the incidents table."""
    metadata = MetaData()
    define(metadata)
    metadata.create_all(connection)
