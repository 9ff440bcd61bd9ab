"""Catalog schema migrations: an ordered list, each applied once and recorded.

``schema_migrations`` holds one row per applied migration (version, name, time). ``apply`` runs the
missing ones in order, each in its own transaction, so an upgrade never loses a catalog. To change the
schema, add ``mNNNN_what.py`` with ``NAME`` and ``upgrade(connection)``, append it to ``MIGRATIONS``,
and update ``schema.py`` (the current shape the catalog queries).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, select

from snapkeep.clock import SYSTEM, Clock
from snapkeep.jobs.migrations import (
    m0001_initial,
    m0002_incidents,
    m0003_backups,
    m0004_reindex,
    m0005_integrity,
    m0006_users,
    m0007_sealed,
    m0008_list_indexes,
    m0009_log_types,
    m0010_panel,
    m0011_nodes,
)
from snapkeep.jobs.migrations.m0001_initial import UtcDateTime


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    upgrade: Callable[[Connection], None]


def _from(version: int, module: ModuleType) -> Migration:
    return Migration(version, module.NAME, module.upgrade)


MIGRATIONS: list[Migration] = [
    _from(1, m0001_initial),
    _from(2, m0002_incidents),
    _from(3, m0003_backups),
    _from(4, m0004_reindex),
    _from(5, m0005_integrity),
    _from(6, m0006_users),
    _from(7, m0007_sealed),
    _from(8, m0008_list_indexes),
    _from(9, m0009_log_types),
    _from(10, m0010_panel),
    _from(11, m0011_nodes),
]

_metadata = MetaData()
schema_migrations = Table(
    "schema_migrations",
    _metadata,
    Column("version", Integer, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("applied", UtcDateTime, nullable=False),
)


def applied_versions(connection: Connection) -> set[int]:
    """The versions recorded as applied."""
    return set(connection.execute(select(schema_migrations.c.version)).scalars())


def apply(engine: Engine, *, clock: Clock = SYSTEM) -> list[int]:
    """Apply every missing migration in order; return the versions applied now.

    Raises whatever the database raises (the catalog translates it into CatalogError).
    """
    with engine.begin() as connection:
        _metadata.create_all(connection)
    done: list[int] = []
    for migration in MIGRATIONS:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # Several nodes may start together on one catalog: one migrates, the others wait.
                connection.exec_driver_sql("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
            if migration.version in applied_versions(connection):
                continue
            migration.upgrade(connection)
            connection.execute(
                schema_migrations.insert().values(
                    version=migration.version, name=migration.name, applied=clock.now()
                )
            )
            done.append(migration.version)
    return done
