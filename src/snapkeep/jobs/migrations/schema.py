"""The current catalog schema, as the catalog queries it.

At version 1 it is exactly what migration 1 created. When a later migration changes a table, this
module changes with it (and a test checks that a migrated catalog matches this shape).
"""

from __future__ import annotations

from sqlalchemy import MetaData, Table

from snapkeep.jobs.migrations import m0001_initial

metadata = MetaData()
TABLES: dict[str, Table] = m0001_initial.define(metadata)

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
