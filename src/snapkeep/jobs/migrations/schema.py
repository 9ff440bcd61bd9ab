"""The current catalog schema, as the catalog queries it.

At version 5 it is what migration 1 created plus migration 2's ``incidents`` table, migration
3's ``backups`` table, migration 4's ``orphan`` and ``key_required`` columns of it and migration 5's
integrity check tables, migration 6's users (with token and owner columns) and migration 7's sealed
``job_keys``, migration 10's ``users.password`` and ``tokens.kind``, and migration 11's
``nodes`` (with the ``node`` column of jobs and queue groups). When a later
migration changes a table, this module changes with it (and a test checks that a migrated catalog
matches this shape).
"""

from __future__ import annotations

from sqlalchemy import MetaData, Table

from snapkeep.jobs.migrations import (
    m0001_initial,
    m0002_incidents,
    m0003_backups,
    m0004_reindex,
    m0005_integrity,
    m0006_users,
    m0007_sealed,
    m0010_panel,
    m0011_nodes,
)

metadata = MetaData()
TABLES: dict[str, Table] = m0001_initial.define(metadata)
TABLES.update(m0002_incidents.define(metadata))
TABLES.update(m0003_backups.define(metadata))
for _column in m0004_reindex.columns():
    TABLES["backups"].append_column(_column)
TABLES.update(m0005_integrity.define(metadata))
TABLES.update(m0006_users.define(metadata))
for _column in m0006_users.token_columns():
    TABLES["tokens"].append_column(_column)
for _kind in m0006_users.OWNED:
    TABLES[_kind].append_column(m0006_users.owner_column())
TABLES.update(m0007_sealed.define(metadata))
for _column in m0010_panel.user_columns():
    TABLES["users"].append_column(_column)
for _column in m0010_panel.token_columns():
    TABLES["tokens"].append_column(_column)
TABLES.update(m0011_nodes.define(metadata))
for _kind in ("jobs", "queue_groups"):
    TABLES[_kind].append_column(m0011_nodes.node_column())

jobs = TABLES["jobs"]
destinations = TABLES["destinations"]
schedules = TABLES["schedules"]
hooks = TABLES["hooks"]
account_filters = TABLES["account_filters"]
queue_groups = TABLES["queue_groups"]
queue_items = TABLES["queue_items"]
logs = TABLES["logs"]
log_items = TABLES["log_items"]
alerts = TABLES["alerts"]
tokens = TABLES["tokens"]
settings = TABLES["settings"]
incidents = TABLES["incidents"]
backups = TABLES["backups"]
integrity_objects = TABLES["integrity_objects"]
integrity_runs = TABLES["integrity_runs"]
backup_damage = TABLES["backup_damage"]
users = TABLES["users"]
job_keys = TABLES["job_keys"]
nodes = TABLES["nodes"]
