"""Migration 11: nodes (issue 16: many servers on one catalog).

A ``nodes`` table: one row per ``snapkeep serve`` that has registered on the catalog (its stable ID
from ``<home>/node.id``, name, host, process, version, start, heartbeat, the timeout after which the
others declare it down, and its state). Jobs and queue groups get a ``node`` column: the node whose
scheduler queues the job and whose workers claim the group (NULL on rows from before nodes: the first
node to register adopts them, ``jobs.nodes.register``).

Indexes for what every node asks many times a minute: its own jobs in creation order (the scheduler
pass), its own pending groups of some types in creation order (the claim), and the nodes whose
heartbeat is old (the sweep).

Self-contained: it looks at the live tables (``inspect``) and adds only what is missing, so it can be
renumbered when merged beside another migration. Frozen once released.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Connection, Float, Index, Integer, MetaData, String, Table, inspect

from snapkeep.jobs.migrations.m0001_initial import UtcDateTime

NAME = "nodes"

#: index name -> (table, columns)
INDEXES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ix_jobs_node": ("jobs", ("node", "created", "id")),
    "ix_queue_groups_claim": ("queue_groups", ("node", "status", "type", "created", "id")),
    "ix_queue_groups_status_ended": ("queue_groups", ("status", "ended")),
    "ix_alerts_created": ("alerts", ("created",)),
    "ix_logs_ended": ("logs", ("ended",)),
}


def define(metadata: MetaData) -> dict[str, Table]:
    """The ``nodes`` table on ``metadata``."""
    table = Table(
        "nodes",
        metadata,
        Column("id", String(24), primary_key=True),
        Column("name", String(255), nullable=False, unique=True),
        Column("host", String(255), nullable=False),
        Column("pid", Integer, nullable=False),
        Column("version", String(64), nullable=False),
        Column("state", String(16), nullable=False),  # "up" or "down"
        Column("started", UtcDateTime, nullable=False),
        Column("heartbeat", UtcDateTime, nullable=False),
        Column("timeout", Float, nullable=False),
        Column("down_since", UtcDateTime),
        Column("created", UtcDateTime, nullable=False),
        Column("document", JSON, nullable=False),
        Index("ix_nodes_state_heartbeat", "state", "heartbeat"),
    )
    return {"nodes": table}


def node_column() -> Column[Any]:
    """The ``node`` column of ``jobs`` and ``queue_groups`` (a node ID; NULL: from before nodes)."""
    return Column("node", String(24), nullable=True)


def upgrade(connection: Connection) -> None:
    """Create ``nodes``, add ``node`` to jobs and queue groups, and the indexes (what is missing)."""
    inspector = inspect(connection)
    if not inspector.has_table("nodes"):
        metadata = MetaData()
        define(metadata)
        metadata.create_all(connection)
    for table in ("jobs", "queue_groups"):
        columns = {column["name"] for column in inspector.get_columns(table)}
        if "node" not in columns:
            connection.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN node VARCHAR(24)")
    for index, (table_name, names) in INDEXES.items():
        existing = {item["name"] for item in inspect(connection).get_indexes(table_name)}
        if index in existing:
            continue
        live = Table(table_name, MetaData(), autoload_with=connection)
        Index(index, *(live.c[column] for column in names)).create(connection)
