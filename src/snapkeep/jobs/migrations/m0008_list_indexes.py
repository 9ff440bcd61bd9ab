"""Migration 8: indexes for lists filtered, sorted and paged in SQL (``jobs.listing``).

A list page is ``ORDER BY <keys>, created, id LIMIT n``: with no sort asked (the common case) the
``(created, id)`` index gives the page without sorting the table, and a caller who may see only some
owners' objects walks ``(owner, created, id)``. ``name`` serves exact finds on the name. Sorts on
lower-cased text or document fields still read every matching row; they are measured in
``docs/RELIABILITY.md`` (load figures).

The managed tables that have an ``owner`` column when this migration runs get the owner index (jobs
always has one); a migration that adds ``owner`` to another table adds its index with it.

Frozen: once released, this file never changes. A later migration alters what it made.
"""

from __future__ import annotations

from sqlalchemy import Connection, Index, MetaData, Table, inspect

NAME = "list indexes"
TABLES = ("jobs", "destinations", "schedules", "hooks", "account_filters")


def index_columns(table: str, columns: set[str]) -> dict[str, tuple[str, ...]]:
    """The indexes of ``table`` (whose columns are ``columns``): index name -> columns."""
    wanted = {
        f"ix_{table}_created": ("created", "id"),
        f"ix_{table}_name": ("name",),
    }
    if "owner" in columns:
        wanted[f"ix_{table}_owner"] = ("owner", "created", "id")
    return wanted


def upgrade(connection: Connection) -> None:
    """Create the list indexes of the managed tables (those already present are kept)."""
    inspector = inspect(connection)
    for name in TABLES:
        columns = {column["name"] for column in inspector.get_columns(name)}
        existing = {index["name"] for index in inspector.get_indexes(name)}
        table = Table(name, MetaData(), autoload_with=connection)
        for index, names in index_columns(name, columns).items():
            if index in existing:
                continue
            Index(index, *(table.c[column] for column in names)).create(connection)
