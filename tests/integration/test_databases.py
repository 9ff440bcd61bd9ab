"""Streamed database dumps against the real MariaDB and PostgreSQL servers on this machine.

Each test creates databases, rows and users with unique names, dumps them through the streaming path
into a real repository, restores them under new names and compares checksums of SELECTed rows.
Everything created is dropped at the end.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat

import pytest
from tests.conftest import require_server

from snapkeep.engine.repository import Repository
from snapkeep.engine.restore.content import find_node, read_content
from snapkeep.errors import DatabaseError, DumpError, NotFoundError
from snapkeep.sources.accounts.base import MARIADB, POSTGRESQL, Account, Database, DatabaseUser
from snapkeep.sources.components import account_sources, backup_account
from snapkeep.sources.databases import drop_database, open_dump, restore_database
from snapkeep.sources.dbclient import (
    DatabaseSettings,
    ServerSettings,
    mariadb_query,
    postgres_query,
    run_client,
)
from snapkeep.sources.dbusers import (
    mariadb_databases_of,
    mariadb_users_of,
    postgres_databases_of,
    restore_users,
)
from snapkeep.storage.memory import MemoryStore

SETTINGS = DatabaseSettings(
    mariadb=ServerSettings(host="127.0.0.1", port=3306, user="root"),
    postgresql=ServerSettings(host="127.0.0.1", port=5432, user="root", maintenance_database="postgres"),
)


def _answers(engine: str) -> bool:
    try:
        if engine == MARIADB:
            mariadb_query(SETTINGS, "SELECT 1", what="ping")
        else:
            postgres_query(SETTINGS, "SELECT 1", what="ping")
    except DatabaseError:
        return False
    return True


@pytest.fixture
def mariadb_account(tmp_path):
    """An account ``sk<hex>`` with two MariaDB databases (rows, a trigger, a routine) and a user."""
    require_server(_answers(MARIADB), "MariaDB at 127.0.0.1:3306")
    username = f"sk{secrets.token_hex(4)}"
    names = [f"{username}_shop", f"{username}_blog"]
    sql = []
    for name in names:
        sql += [
            f"CREATE DATABASE `{name}`",
            f"CREATE TABLE `{name}`.items "
            "(id INT PRIMARY KEY, label VARCHAR(64), data BLOB, price DECIMAL(8,2))",
            f"CREATE TABLE `{name}`.audit (id INT AUTO_INCREMENT PRIMARY KEY, item INT)",
            f"USE `{name}`",
            "CREATE TRIGGER log_item AFTER INSERT ON items "
            "FOR EACH ROW INSERT INTO audit (item) VALUES (NEW.id)",
            "CREATE FUNCTION double_it(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
        ]
        values = ", ".join(
            f"({i}, 'item {i} é\\'\"', UNHEX('{os.urandom(40).hex()}'), {i * 1.25})" for i in range(1, 301)
        )
        sql.append(f"INSERT INTO `{name}`.items VALUES {values}")
    sql += [
        f"CREATE USER '{username}_app'@'127.0.0.1' IDENTIFIED BY 'S3cret-{username}'",
        f"GRANT SELECT, INSERT, UPDATE ON `{names[0]}`.* TO '{username}_app'@'127.0.0.1'",
        f"GRANT SELECT ON `{names[1]}`.items TO '{username}_app'@'127.0.0.1'",
    ]
    run_client(
        MARIADB, SETTINGS, ["mariadb", "--no-defaults", "-h127.0.0.1", "-uroot", "-e", ";".join(sql)], "setup"
    )
    home = tmp_path / username
    home.mkdir()
    (home / "index.html").write_text("hello")
    account = Account(
        username=username,
        home=str(home),
        databases=tuple(Database(MARIADB, name) for name in names),
        database_users=(DatabaseUser(MARIADB, f"{username}_app", "127.0.0.1"),),
    )
    yield account
    for name in names + [f"{name}_restored" for name in names]:
        drop_database(SETTINGS, Database(MARIADB, name))
    mariadb_query(SETTINGS, f"DROP USER IF EXISTS '{username}_app'@'127.0.0.1'", what="cleanup")


@pytest.fixture
def postgres_account(tmp_path):
    """An account ``sk<hex>`` with a role of that name owning one PostgreSQL database."""
    require_server(_answers(POSTGRESQL), "PostgreSQL at 127.0.0.1:5432")
    username = f"sk{secrets.token_hex(4)}"
    name = f"{username}_app"
    postgres_query(SETTINGS, f"CREATE ROLE {username} LOGIN PASSWORD 'pw-{username}'", what="setup")
    postgres_query(SETTINGS, f"CREATE DATABASE {name} OWNER {username}", what="setup")
    postgres_query(
        SETTINGS,
        f"SET ROLE {username}; CREATE TABLE notes (id int PRIMARY KEY, body text, payload bytea); "
        "INSERT INTO notes SELECT g, 'note ' || g || ' ünïcode', decode(md5(g::text), 'hex') "
        "FROM generate_series(1, 500) g; CREATE VIEW long_notes AS SELECT * FROM notes WHERE id > 250",
        what="setup",
        database=name,
    )
    home = tmp_path / username
    home.mkdir()
    account = Account(
        username=username,
        home=str(home),
        databases=(Database(POSTGRESQL, name),),
        database_users=(DatabaseUser(POSTGRESQL, username),),
    )
    yield account
    for database in (name, f"{name}_restored"):
        drop_database(SETTINGS, Database(POSTGRESQL, database))
    postgres_query(SETTINGS, f"DROP ROLE IF EXISTS {username}", what="cleanup")


def mariadb_checksum(database: str) -> str:
    rows = mariadb_query(
        SETTINGS,
        f"SELECT id, label, HEX(data), price FROM `{database}`.items ORDER BY id",
        what="checksum",
    )
    assert len(rows) == 300
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def postgres_checksum(database: str) -> str:
    rows = postgres_query(
        SETTINGS,
        "SELECT id, body, encode(payload, 'hex') FROM notes ORDER BY id",
        what="sum",
        database=database,
    )
    assert len(rows) == 500
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def new_repository() -> Repository:
    return Repository.init(
        MemoryStore(), password="pw", kdf_params={"time_cost": 1, "memory_cost": 8, "parallelism": 1}
    )


def test_mariadb_dump_restores_under_another_name_with_the_same_rows(mariadb_account):
    repository = new_repository()
    sources = account_sources(mariadb_account, 4 | 128 | 2, 0, settings=SETTINGS)
    result = backup_account(repository, sources, job_id="job1")
    assert result.failures == []
    snapshot = repository.load_snapshot(result.snapshot.id)
    assert snapshot.account == mariadb_account.username
    assert snapshot.components == ["homedir", "databases", "database_users"]
    tree = bytes.fromhex(snapshot.tree)
    for database in mariadb_account.databases:
        node = find_node(repository, tree, f"databases/mariadb/{database.name}.sql")
        assert node.size > 300 * 40
        restored = Database(MARIADB, database.name + "_restored")
        restore_database(SETTINGS, restored, read_content(repository, node))
        assert mariadb_checksum(restored.name) == mariadb_checksum(database.name)
        # routines and triggers came back too
        assert mariadb_query(SETTINGS, f"SELECT `{restored.name}`.double_it(21)", what="routine") == [["42"]]
        triggers = mariadb_query(
            SETTINGS,
            f"SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = '{restored.name}'",
            what="t",
        )
        assert triggers == [["log_item"]]
    # a second run of an unchanged database adds almost nothing (chunk dedup)
    again = backup_account(
        repository, account_sources(mariadb_account, 4, 0, settings=SETTINGS), job_id="job1"
    )
    assert again.failures == []
    assert again.snapshot.stats["new_bytes"] < 20_000
    repository.close()


def test_mariadb_users_and_grants_are_recreated(mariadb_account):
    repository = new_repository()
    result = backup_account(
        repository, account_sources(mariadb_account, 128, 0, settings=SETTINGS), job_id="j"
    )
    user = f"'{mariadb_account.username}_app'@'127.0.0.1'"
    grants_before = sorted(
        row[0] for row in mariadb_query(SETTINGS, f"SHOW GRANTS FOR {user}", what="grants")
    )
    mariadb_query(SETTINGS, f"DROP USER {user}", what="drop")
    node = find_node(repository, bytes.fromhex(result.snapshot.tree), "database_users/mariadb.sql")
    sql = b"".join(read_content(repository, node))
    assert b"CREATE USER IF NOT EXISTS" in sql
    assert b"GRANT SELECT" in sql
    restore_users(SETTINGS, MARIADB, sql)
    grants_after = sorted(row[0] for row in mariadb_query(SETTINGS, f"SHOW GRANTS FOR {user}", what="grants"))
    assert grants_after == grants_before
    # the password hash came back: the user can log in with its old password
    login = DatabaseSettings(
        mariadb=ServerSettings(
            host="127.0.0.1",
            port=3306,
            user=f"{mariadb_account.username}_app",
            password=f"S3cret-{mariadb_account.username}",
        )
    )
    rows = mariadb_query(
        login, f"SELECT COUNT(*) FROM `{mariadb_account.databases[0].name}`.items", what="login"
    )
    assert rows == [["300"]]
    repository.close()


def test_postgresql_dump_restores_and_role_is_recreated(postgres_account):
    repository = new_repository()
    result = backup_account(
        repository, account_sources(postgres_account, 4 | 128, 0, settings=SETTINGS), job_id="j"
    )
    assert result.failures == []
    tree = bytes.fromhex(result.snapshot.tree)
    database = postgres_account.databases[0]
    node = find_node(repository, tree, f"databases/postgresql/{database.name}.sql")
    users_sql = b"".join(
        read_content(repository, find_node(repository, tree, "database_users/postgresql.sql"))
    )
    assert f'ALTER ROLE "{postgres_account.username}" WITH'.encode() in users_sql
    assert b"PASSWORD 'SCRAM-SHA-256$" in users_sql or b"PASSWORD 'md5" in users_sql
    # the database is lost: restore it under another name, owned by the account's role
    restore_users(SETTINGS, POSTGRESQL, users_sql)  # idempotent over an existing role
    restored = Database(POSTGRESQL, database.name + "_restored")
    restore_database(SETTINGS, restored, read_content(repository, node), owner=postgres_account.username)
    assert postgres_checksum(restored.name) == postgres_checksum(database.name)
    owner = postgres_query(
        SETTINGS,
        "SELECT tableowner FROM pg_tables WHERE tablename = 'notes'",
        what="o",
        database=restored.name,
    )
    assert owner == [[postgres_account.username]]
    assert [db.name for db in postgres_databases_of(SETTINGS, postgres_account.username)] == sorted(
        [database.name, restored.name]
    )
    repository.close()


def test_restore_refuses_an_existing_database_unless_replacing(postgres_account):
    repository = new_repository()
    result = backup_account(
        repository, account_sources(postgres_account, 4, 0, settings=SETTINGS), job_id="j"
    )
    database = postgres_account.databases[0]
    node = find_node(
        repository, bytes.fromhex(result.snapshot.tree), f"databases/postgresql/{database.name}.sql"
    )
    with pytest.raises(DatabaseError, match="exists"):
        restore_database(SETTINGS, database, read_content(repository, node))
    postgres_query(SETTINGS, "DELETE FROM notes WHERE id > 10", what="damage", database=database.name)
    restore_database(
        SETTINGS, database, read_content(repository, node), owner=postgres_account.username, replace=True
    )
    assert len(postgres_query(SETTINGS, "SELECT id FROM notes", what="n", database=database.name)) == 500
    repository.close()


def test_linux_convention_discovers_databases_and_users(mariadb_account):
    username = mariadb_account.username
    assert [d.name for d in mariadb_databases_of(SETTINGS, username)] == sorted(
        d.name for d in mariadb_account.databases
    )
    assert mariadb_users_of(SETTINGS, username) == [DatabaseUser(MARIADB, f"{username}_app", "127.0.0.1")]
    assert mariadb_databases_of(SETTINGS, username + "x") == []


def test_killed_dump_raises_dump_error(mariadb_account):
    database = mariadb_account.databases[0]
    stream = open_dump(SETTINGS, database)
    with stream:
        first = stream.read(4096)
        assert first.startswith(b"-- MariaDB dump") or b"MariaDB dump" in first
        stream.process.kill()
        while stream.read(65536):
            pass
        with pytest.raises(DumpError, match="killed by signal 9"):
            stream.finish()


def _wrapper(tmp_path, body: str) -> str:
    script = tmp_path / "fake-dump"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_dump_killed_halfway_is_a_failure_and_never_stored(mariadb_account, tmp_path):
    # the dump program dies (SIGKILL) after 20 kB of output: a truncated dump
    dumper = _wrapper(tmp_path, 'mariadb-dump "$@" | head -c 20000; kill -9 $$')
    settings = DatabaseSettings(mariadb=SETTINGS.mariadb, mariadb_dump=dumper)
    repository = new_repository()
    result = backup_account(
        repository, account_sources(mariadb_account, 1 | 2 | 4, 0, settings=settings), job_id="j"
    )
    names = [database.name for database in mariadb_account.databases]
    assert [failure.target for failure in result.failures] == [
        f"databases/mariadb/{name}.sql" for name in names
    ]
    assert all("killed by signal 9" in failure.message for failure in result.failures)
    assert result.partial
    snapshot = repository.load_snapshot(result.snapshot.id)
    assert [f["target"] for f in snapshot.stats["failures"]] == [
        f"databases/mariadb/{name}.sql" for name in names
    ]
    tree = bytes.fromhex(snapshot.tree)
    for name in names:
        with pytest.raises(NotFoundError):
            find_node(repository, tree, f"databases/mariadb/{name}.sql")
    # the other components are there
    assert find_node(repository, tree, "homedir/index.html").size == 5
    assert find_node(repository, tree, "config/account.json").size > 0
    repository.close()


def test_dump_without_trailer_is_refused_even_with_exit_status_zero(mariadb_account, tmp_path):
    dumper = _wrapper(tmp_path, 'mariadb-dump "$@" | head -c 20000; exit 0')
    settings = DatabaseSettings(mariadb=SETTINGS.mariadb, mariadb_dump=dumper)
    stream = open_dump(settings, mariadb_account.databases[0])
    with stream:
        while stream.read(65536):
            pass
        with pytest.raises(DumpError, match="trailer"):
            stream.finish()


def test_failing_dump_program_reports_its_message(mariadb_account):
    with open_dump(SETTINGS, Database(MARIADB, mariadb_account.username + "_missing")) as stream:
        stream.read()
        with pytest.raises(DumpError, match="exit status"):
            stream.finish()


def test_exclude_by_size_skips_large_databases_with_a_warning(mariadb_account):
    repository = new_repository()
    sources = account_sources(mariadb_account, 4, 0, settings=SETTINGS, exclude_db_by_size=1)
    result = backup_account(repository, sources, job_id="j")
    assert result.failures == []
    messages = [w["message"] for w in result.snapshot.stats["warnings"]]
    assert len(messages) == 2
    assert all("mysql_exclude_db_by_size" in m for m in messages)
    tree = bytes.fromhex(result.snapshot.tree)
    assert find_node(repository, tree, "databases").type == "dir"
    with pytest.raises(NotFoundError):
        find_node(repository, tree, f"databases/mariadb/{mariadb_account.databases[0].name}.sql")
    # a limit above the size keeps them
    big = backup_account(
        repository,
        account_sources(mariadb_account, 4, 0, settings=SETTINGS, exclude_db_by_size=10**12),
        job_id="j",
    )
    assert big.snapshot.stats["warning_count"] == 0
    find_node(
        repository,
        bytes.fromhex(big.snapshot.tree),
        f"databases/mariadb/{mariadb_account.databases[0].name}.sql",
    )
    repository.close()


def test_option_4_leaves_databases_out(mariadb_account):
    sources = account_sources(mariadb_account, 511, 4, settings=SETTINGS)
    assert "databases" not in sources.names
    assert "database_users" in sources.names
