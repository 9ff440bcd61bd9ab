"""The catalog on SQLite and PostgreSQL: migrations, transactions, tokens, dumps."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select

from snapkeep.errors import CatalogError, ConfigError, NotFoundError, ValidationError
from snapkeep.ids import is_id
from snapkeep.jobs import migrations, users
from snapkeep.jobs.catalog import Catalog, catalog_url
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.users import ROOT_ID


def test_every_migration_is_recorded_once(catalog: Catalog) -> None:
    with catalog.transaction(write=False) as tx:
        rows = tx.connection.execute(select(migrations.schema_migrations)).all()
    assert [row.version for row in rows] == [migration.version for migration in migrations.MIGRATIONS]
    assert migrations.apply(catalog.engine) == []


def test_every_table_of_the_schema_exists(catalog: Catalog) -> None:
    dump = catalog.dump()
    expected = {
        "jobs",
        "destinations",
        "schedules",
        "hooks",
        "account_filters",
        "queue_groups",
        "queue_items",
        "logs",
        "log_items",
        "alerts",
        "tokens",
        "settings",
        "incidents",
        "backups",
        "integrity_objects",  # migration 5: the integrity check
        "integrity_runs",
        "backup_damage",
        "users",  # migration 6: users and roles
        "job_keys",  # migration 7: job repository keys, sealed
        "nodes",  # migration 11: the serve processes sharing the catalog
        "schema_migrations",
    }
    assert set(dump) == expected
    assert set(schema.TABLES) == expected - {"schema_migrations"}


def test_a_failing_transaction_writes_nothing(catalog: Catalog) -> None:
    before = catalog.dump()

    def insert_then_fail() -> None:
        with catalog.transaction() as tx:
            tx.insert("hooks", {"name": "h", "script": "/bin/true"})
            raise ValidationError(field="x", problem="late failure")

    with pytest.raises(ValidationError, match="late failure"):
        insert_then_fail()
    assert catalog.dump() == before


def test_documents_round_trip_with_their_columns(catalog: Catalog) -> None:
    with catalog.transaction() as tx:
        ident = tx.insert("destinations", {"name": "d", "type": "Local", "options": {"path": "/x"}})
    assert is_id(ident)
    with catalog.transaction() as tx:
        assert tx.get("destinations", ident) == {
            "_id": ident,
            "name": "d",
            "type": "Local",
            "options": {"path": "/x"},
            "owner": ROOT_ID,  # the owner column: root when the document names none
        }
        tx.replace("destinations", ident, {"name": "e", "type": "Local", "options": {"path": "/y"}})
        row = tx.connection.execute(
            select(schema.destinations).where(schema.destinations.c.id == ident)
        ).one()
        assert (row.name, row.type) == ("e", "Local")
        assert row.created.tzinfo is not None
        tx.remove("destinations", ident)
        with pytest.raises(NotFoundError):
            tx.remove("destinations", ident)


def test_job_running_flag_is_set_once(catalog: Catalog) -> None:
    with catalog.transaction() as tx:
        ident = tx.insert("jobs", {"name": "j", "owner": "root"})
        assert tx.set_job_running(ident, True) is True
        assert tx.set_job_running(ident, True) is False
        assert tx.get("jobs", ident)["running"] is True


def test_tokens_are_stored_hashed_and_verified(catalog: Catalog) -> None:
    assert catalog.count_tokens() == 0
    with catalog.transaction() as tx:
        alice = users.save(tx, None, name="alice", role=users.ACCOUNT, document={"account": "alice"})
    bearer = catalog.create_token("alice")
    user, secret = bearer.split(":")
    assert user == "alice"
    assert len(secret) == 64
    assert catalog.verify_token(bearer) == alice
    assert catalog.verify_token(f"bob:{secret}") is None
    assert catalog.verify_token("alice:" + "0" * 64) is None
    assert catalog.verify_token("garbage") is None
    assert catalog.count_tokens() == 1
    stored = catalog.dump()["tokens"][0]
    assert secret not in str(stored)
    assert stored["secret_hash"] != secret


def test_a_token_is_only_made_for_an_existing_user(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError, match="no user named 'a:b'"):
        catalog.create_token("a:b")
    with pytest.raises(ValidationError, match="name"):
        users.check_name("a:b")


def test_sqlite_catalog_is_in_wal_mode_and_reopens(tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"
    first = Catalog.open(home)
    token = first.create_token()
    first.close()
    with sqlite3.connect(home / "catalog.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    second = Catalog.open(home)
    assert second.verify_token(token) == ROOT_ID
    second.close()


def test_urls_pick_the_backend(tmp_path: Path) -> None:
    assert catalog_url(tmp_path, None) == f"sqlite:///{tmp_path / 'catalog.db'}"
    assert catalog_url(tmp_path, "postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(ConfigError, match="postgresql://"):
        catalog_url(tmp_path, "mysql://u@h/db")


def test_an_unreachable_database_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot open the catalog"):
        Catalog.open(tmp_path, "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
