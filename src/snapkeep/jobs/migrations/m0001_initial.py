"""Migration 1: the initial catalog schema.

Objects the API manages (jobs, destinations, schedules, hooks, account filters) keep their fields as
one JSON ``document`` beside the columns that queries and constraints need (id, name, type, state).
Runs, logs and alerts get real columns for what the queue and the monitor select on.

Frozen: once released, this file never changes. A later migration alters what it made.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

from snapkeep.clock import UTC

NAME = "initial schema"


class UtcDateTime(TypeDecorator[_dt.datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: _dt.datetime | None, dialect: Dialect) -> _dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UtcDateTime needs a timezone-aware datetime")
        moment = value.astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: _dt.datetime | None, dialect: Dialect) -> _dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _id(name: str = "id") -> Column[Any]:
    return Column(name, String(24), primary_key=True)


def define(metadata: MetaData) -> dict[str, Table]:
    """Define the version-1 tables on ``metadata`` and return them by name."""
    tables = [
        Table(
            "jobs",
            metadata,
            _id(),
            Column("name", String(255), nullable=False),
            Column("owner", String(255), nullable=False),
            Column("running", Integer, nullable=False, default=0),
            Column("last_run", UtcDateTime),
            Column("next_run", UtcDateTime),
            Column("created", UtcDateTime, nullable=False),
            Column("modified", UtcDateTime, nullable=False),
            Column("document", JSON, nullable=False),
        ),
        Table(
            "destinations",
            metadata,
            _id(),
            Column("name", String(255), nullable=False),
            Column("type", String(16), nullable=False),
            Column("created", UtcDateTime, nullable=False),
            Column("modified", UtcDateTime, nullable=False),
            Column("document", JSON, nullable=False),
        ),
        Table(
            "schedules",
            metadata,
            _id(),
            Column("name", String(255), nullable=False),
            Column("type", Integer, nullable=False),
            Column("created", UtcDateTime, nullable=False),
            Column("modified", UtcDateTime, nullable=False),
            Column("document", JSON, nullable=False),
        ),
        Table(
            "hooks",
            metadata,
            _id(),
            Column("name", String(255), nullable=False),
            Column("created", UtcDateTime, nullable=False),
            Column("modified", UtcDateTime, nullable=False),
            Column("document", JSON, nullable=False),
        ),
        Table(
            "account_filters",
            metadata,
            _id(),
            Column("group_id", String(24), nullable=False, index=True),
            Column("name", String(255), nullable=False),
            Column("type", Integer, nullable=False),
            Column("created", UtcDateTime, nullable=False),
            Column("modified", UtcDateTime, nullable=False),
            Column("document", JSON, nullable=False),
        ),
        Table(
            "queue_groups",
            metadata,
            _id(),
            Column("type", Integer, nullable=False),
            Column("status", Integer, nullable=False),
            Column("job_id", String(24), index=True),
            Column("owner", String(255), nullable=False),
            Column("created", UtcDateTime, nullable=False),
            Column("started", UtcDateTime),
            Column("ended", UtcDateTime),
            Column("document", JSON, nullable=False),
            Index("ix_queue_groups_status_type", "status", "type"),
        ),
        Table(
            "queue_items",
            metadata,
            _id(),
            Column("group_id", String(24), nullable=False, index=True),
            Column("type", Integer, nullable=False),
            Column("status", Integer, nullable=False),
            Column("created", UtcDateTime, nullable=False),
            Column("started", UtcDateTime),
            Column("ended", UtcDateTime),
            Column("document", JSON, nullable=False),
        ),
        Table(
            "logs",
            metadata,
            _id(),
            Column("type", Integer, nullable=False),
            Column("status", Integer, nullable=False),
            Column("job_id", String(24), index=True),
            Column("queue_group_id", String(24), index=True),
            Column("owner", String(255), nullable=False),
            Column("created", UtcDateTime, nullable=False),
            Column("ended", UtcDateTime),
            Column("document", JSON, nullable=False),
        ),
        Table(
            "log_items",
            metadata,
            _id(),
            Column("log_id", String(24), nullable=False, index=True),
            Column("level", Integer, nullable=False),
            Column("created", UtcDateTime, nullable=False),
            Column("message", Text, nullable=False),
            Column("document", JSON, nullable=False),
        ),
        Table(
            "alerts",
            metadata,
            _id(),
            Column("level", Integer, nullable=False),
            Column("title", String(255), nullable=False),
            Column("message", Text, nullable=False),
            Column("created", UtcDateTime, nullable=False),
            Column("document", JSON, nullable=False),
        ),
        Table(
            "tokens",
            metadata,
            _id(),
            Column("user", String(255), nullable=False),
            Column("secret_hash", String(64), nullable=False, unique=True),
            Column("created", UtcDateTime, nullable=False),
            Column("last_used", UtcDateTime),
        ),
        Table(
            "settings",
            metadata,
            Column("key", String(255), primary_key=True),
            Column("value", JSON, nullable=False),
        ),
    ]
    return {table.name: table for table in tables}


def upgrade(connection: Connection) -> None:
    """Create the version-1 tables."""
    metadata = MetaData()
    define(metadata)
    metadata.create_all(connection)
