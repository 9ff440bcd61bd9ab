"""Accounts jobs through the runner and restores, against the real MariaDB and PostgreSQL servers.

``Site`` builds three hosting accounts (files, a Maildir with junk folders, a crontab, a zone file,
a certificate, MariaDB and PostgreSQL databases with rows, users with grants) under unique names,
writes the inventory and ``config.toml``, and drops every database, user and role at the end.
Row checksums come from ``SELECT``ed rows, so a restore is compared by content.
"""

from __future__ import annotations

import io
import secrets
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from tests.conftest import require_server
from tests.integration.runner_helpers import World, tree_state

from snapkeep.engine.restore.content import find_node
from snapkeep.errors import DatabaseError, NotFoundError
from snapkeep.jobs import backups, repositories
from snapkeep.jobs.runs import execute_group
from snapkeep.sources.dbclient import (
    DatabaseSettings,
    mariadb_command,
    mariadb_query,
    postgres_query,
    run_client,
)

SETTINGS = DatabaseSettings()
MARIADB_SQL = """
CREATE TABLE posts (id INT PRIMARY KEY, title VARCHAR(100), body TEXT, price DECIMAL(8,2));
INSERT INTO posts VALUES {rows};
CREATE TRIGGER posts_ins BEFORE INSERT ON posts FOR EACH ROW SET NEW.title = TRIM(NEW.title);
"""
POSTGRES_SQL = """
CREATE TABLE items (id INT PRIMARY KEY, label TEXT, amount NUMERIC(8,2), tags TEXT[]);
INSERT INTO items SELECT g, 'item ' || g, g * 1.25, ARRAY['a' || g, 'b'] FROM generate_series(1, 300) g;
"""


def servers_answer() -> bool:
    try:
        mariadb_query(SETTINGS, "SELECT 1", what="ping")
        postgres_query(SETTINGS, "SELECT 1", what="ping")
    except DatabaseError:
        return False
    return True


def mariadb(sql: str, database: str = "") -> list[list[str]]:
    args = [*([database] if database else []), "--batch", "--skip-column-names", "-e", sql]
    output = run_client("mariadb", SETTINGS, mariadb_command(SETTINGS, *args), "test sql")
    return [line.split("\t") for line in output.decode().splitlines()]


def postgres(sql: str, database: str = "postgres") -> list[list[str]]:
    return postgres_query(SETTINGS, sql, what="test sql", database=database)


def mariadb_checksum(database: str) -> str:
    rows = mariadb(
        "SELECT MD5(GROUP_CONCAT(CONCAT_WS('|', id, title, body, price) ORDER BY id SEPARATOR '\\n')), "
        "COUNT(*) FROM posts",
        database,
    )
    return "/".join(rows[0])


def postgres_checksum(database: str) -> str:
    rows = postgres("SELECT md5(string_agg(i::text, ',' ORDER BY id)), count(*) FROM items i", database)
    return "/".join(rows[0])


class Site:
    """Three accounts (``<prefix>alice``, ``bob``, ``carol``) with everything an account has."""

    def __init__(self, root: Path, home: Path) -> None:
        self.prefix = f"sk{secrets.token_hex(3)}"
        self.root = root
        self.home = home
        self.names = {short: f"{self.prefix}{short}" for short in ("alice", "bob", "carol")}
        self.databases: list[tuple[str, str]] = []
        self.users: list[str] = []
        self.roles: list[str] = []
        self.extra_config = ""

    def user(self, short: str) -> str:
        return self.names[short]

    def account_home(self, short: str) -> Path:
        return self.root / "homes" / self.user(short)

    def build(self) -> None:
        blocks = []
        for short in ("alice", "bob", "carol"):
            blocks.append(self._account(short))
        (self.root / "inventory.toml").write_text("\n".join(blocks))
        self.write_config()

    def write_config(self, extra: str = "") -> None:
        self.extra_config = extra
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(
            f'[accounts]\nprovider = "inventory"\ninventory = "{self.root / "inventory.toml"}"\n{extra}'
        )

    def _account(self, short: str) -> str:
        user, home = self.user(short), self.account_home(short)
        (home / "public_html" / "assets").mkdir(parents=True)
        (home / "public_html" / "index.php").write_text(f"<?php echo '{user}';\n" * 20)
        (home / "public_html" / "assets" / "logo.bin").write_bytes(secrets.token_bytes(5000))
        (home / "docs" / "2024").mkdir(parents=True)
        (home / "docs" / "2024" / "report.txt").write_text(f"report of {user}\n" * 100)
        (home / "docs" / "notes.md").write_text("# notes\n")
        (home / "cache").mkdir()
        (home / "cache" / "junk.tmp").write_text("cache")
        maildir = home / "Maildir"
        for folder in ("", ".Junk", ".Trash", ".Work"):
            for sub in ("cur", "new", "tmp"):
                (maildir / folder / sub).mkdir(parents=True, exist_ok=True)
            (maildir / folder / "cur" / f"1700000000.{short}{folder}:2,S").write_text(
                f"Subject: {folder}\n\nhi"
            )
        etc = self.root / "etc" / user
        etc.mkdir(parents=True)
        (etc / "crontab").write_text(f"*/5 * * * * /home/{user}/cron.sh\n")
        (etc / f"{user}.example.db").write_text(f"$ORIGIN {user}.example.\n@ IN A 192.0.2.1\n")
        (etc / f"{user}.example.pem").write_text(
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        )
        lines = [
            "[[account]]",
            f'username = "{user}"',
            f'home = "{home}"',
            f'package = "{"gold" if short == "alice" else "basic"}"',
            f'mail_root = "{maildir}"',
            f'cron_file = "{etc / "crontab"}"',
            f'certificates = ["{etc / f"{user}.example.pem"}"]',
            'excludes = ["cache/**"]',
            "[[account.domains]]",
            f'name = "{user}.example"',
            f'zone_file = "{etc / f"{user}.example.db"}"',
        ]
        dbs = [f"{user}_wp"] + ([f"{user}_shop"] if short == "alice" else [])
        for index, name in enumerate(dbs):
            rows = ",".join(f"({n}, ' post {n} ', 'body {n} {name}', {n}.{index}5)" for n in range(1, 201))
            mariadb(f"CREATE DATABASE `{name}`")
            self.databases.append(("mariadb", name))
            mariadb(MARIADB_SQL.format(rows=rows), name)
            lines += ["[[account.databases]]", 'engine = "mariadb"', f'name = "{name}"']
        mariadb(f"CREATE USER '{user}_wp'@'localhost' IDENTIFIED BY 'pw-{user}'")
        mariadb(f"GRANT SELECT, INSERT ON `{user}_wp`.* TO '{user}_wp'@'localhost'")
        self.users.append(f"'{user}_wp'@'localhost'")
        lines += [
            "[[account.database_users]]",
            'engine = "mariadb"',
            f'name = "{user}_wp"',
            'host = "localhost"',
        ]
        if short == "alice":
            postgres(f"CREATE ROLE \"{user}\" LOGIN PASSWORD 'pg-{user}'")
            self.roles.append(user)
            postgres(f'CREATE DATABASE "{user}_app" OWNER "{user}"')
            self.databases.append(("postgresql", f"{user}_app"))
            postgres(POSTGRES_SQL + f'ALTER TABLE items OWNER TO "{user}";', f"{user}_app")
            lines += ["[[account.databases]]", 'engine = "postgresql"', f'name = "{user}_app"']
            lines += ["[[account.database_users]]", 'engine = "postgresql"', f'name = "{user}"']
        return "\n".join(lines) + "\n"

    def drop(self) -> None:
        for engine, name in [*self.databases, ("mariadb", f"{self.prefix}alice_wp_copy")]:
            if engine == "mariadb":
                mariadb(f"DROP DATABASE IF EXISTS `{name}`")
        for name in [n for e, n in self.databases if e == "postgresql"] + [f"{self.prefix}alice_app_copy"]:
            postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for user in self.users:
            mariadb(f"DROP USER IF EXISTS {user}")
        for role in self.roles:
            postgres(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    yield made
    made.close()


@pytest.fixture
def site(tmp_path: Path, world: World) -> Iterator[Site]:
    require_server(servers_answer(), "MariaDB at 127.0.0.1:3306 and PostgreSQL at 127.0.0.1:5432")
    made = Site(tmp_path, world.home)
    try:
        made.build()
        yield made
    finally:
        made.drop()


def accounts_job(world: World, site: Site, **fields: Any) -> dict[str, Any]:
    """An Accounts job (contains 511) whose filter (a regular expression) selects alice and bob."""
    group = world.ok(
        "manageAccountFilter",
        {
            "action": "create",
            "name": "a and b",
            "type": 256,
            "condition": 1,
            "regex": f"^{site.prefix}(alice|bob)$",
        },
    )
    params = {
        "type": 1,
        "contains": 511,
        "include_list": [],
        "filters": [[group["group_id"]]],
        "name": "Sites",
    }
    return world.job(**{**params, **fields})


def restore(world: World, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    group = world.ok("addQueueItems", {"type": 2, **params})
    status = execute_group(world.catalog, world.home, group["_id"], stop=threading.Event())
    return status, world.ok("getQueueGroup", {"_id": group["_id"]})


def items_of(world: World, backup_id: str) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in world.ok("getBackupItems", {"_id": backup_id})["items"]}


def backup_of(world: World, username: str) -> dict[str, Any]:
    listed = world.ok("listBackups", {"account_id": username})["backups"]
    assert listed, f"no backup of {username}"
    return dict(listed[0])


def test_show_backup_two_of_three_accounts_drop_and_restore(world: World, site: Site) -> None:
    alice, bob, carol = (site.user(short) for short in ("alice", "bob", "carol"))
    assert {item["name"] for item in world.ok("listAccounts")["accounts"]} == {alice, bob, carol}
    assert world.ok("getAccount", {"_id": alice})["package"] == "gold"
    job = accounts_job(world, site)
    before = {
        "wp": mariadb_checksum(f"{alice}_wp"),
        "shop": mariadb_checksum(f"{alice}_shop"),
        "app": postgres_checksum(f"{alice}_app"),
    }
    docs_before = tree_state(site.account_home("alice") / "docs")
    status, group = world.run(job)
    assert status == 100, world.log_text(group)
    assert group["progress"]["total"] == 2
    assert group["progress"]["completed"] == 2
    assert [item["name"] for item in world.ok("listQueueItems", {"group_id": group["_id"]})["items"]] == [
        f"{alice} on Disk 0",
        f"{bob} on Disk 0",
    ]
    accounts = world.ok("listBackupForAccounts")["accounts"]
    assert [entry["account"] for entry in accounts] == [alice, bob]  # carol is not selected
    assert world.ok("listBackups", {"account_id": carol})["backups"] == []
    backup = backup_of(world, alice)
    assert backup["backup_type"] == 1
    assert backup["backup_contains"] == 511
    items = items_of(world, backup["_id"])
    assert list(items) == [
        "config", "homedir", "databases", "email", "cron", "domains", "certificates", "database_users", "ftp",
    ]  # fmt: skip
    assert {item["backup_contains"] for item in items.values()} == {1, 2, 4, 8, 16, 32, 64, 128, 256}
    assert all(item["parent_id"] == backup["_id"] for item in items.values())

    # disaster: one database dropped, one folder deleted, one PostgreSQL database dropped
    mariadb(f"DROP DATABASE `{alice}_wp`")
    postgres(f'DROP DATABASE "{alice}_app" WITH (FORCE)')
    shutil.rmtree(site.account_home("alice") / "docs")
    status, restored = restore(
        world,
        {
            "items": [items["databases"]["_id"]],
            "files": {items["databases"]["_id"]: {"/databases/mariadb/" + f"{alice}_wp.sql": "File"}},
        },
    )
    assert status == 100, world.log_text(restored)
    assert mariadb_checksum(f"{alice}_wp") == before["wp"]
    status, restored = restore(
        world,
        {
            "items": [items["databases"]["_id"]],
            "files": {items["databases"]["_id"]: {f"/postgresql/{alice}_app": "File"}},
        },
    )
    assert status == 100, world.log_text(restored)
    assert postgres_checksum(f"{alice}_app") == before["app"]
    owner = postgres(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{alice}_app'")
    assert owner == [[alice]]
    status, restored = restore(
        world,
        {
            "snapshot_id": backup["_id"],
            "files": {backup["_id"]: {str(site.account_home("alice") / "docs"): "Directory"}},
        },
    )
    assert status == 100, world.log_text(restored)
    assert tree_state(site.account_home("alice") / "docs") == docs_before
    assert mariadb_checksum(f"{alice}_shop") == before["shop"]  # untouched
    grants = mariadb(f"SHOW GRANTS FOR '{alice}_wp'@'localhost'")
    assert any(f"`{alice}_wp`" in row[0] and "SELECT, INSERT" in row[0] for row in grants)


def test_restore_keeps_existing_files_unless_merge_0_and_restores_under_another_name(
    world: World, site: Site
) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    status, group = world.run(accounts_job(world, site))
    assert status == 100, world.log_text(group)
    backup = backup_of(world, alice)
    items = items_of(world, backup["_id"])
    index = site.account_home("alice") / "public_html" / "index.php"
    original = index.read_text()
    index.write_text("changed")
    (site.account_home("alice") / "public_html" / "new.txt").write_text("not in the backup")
    home_item = items["homedir"]["_id"]
    status, done = restore(world, {"items": [home_item]})
    assert status == 100, world.log_text(done)
    assert index.read_text() == "changed"  # merge=1: existing files are kept
    assert "kept existing" in world.log_text(done)
    status, done = restore(world, {"items": [home_item], "options": {"merge": 0}})
    assert status == 100, world.log_text(done)
    assert index.read_text() == original
    assert (site.account_home("alice") / "public_html" / "new.txt").exists()  # not the backup's: left alone

    # another database name; restoring over an existing database is refused unless merge=0
    db_item = items["databases"]["_id"]
    wanted = {db_item: {f"/mariadb/{alice}_wp": "File"}}
    status, done = restore(
        world, {"items": [db_item], "files": wanted, "options": {"database_name": f"{alice}_wp_copy"}}
    )
    assert status == 100, world.log_text(done)
    assert mariadb_checksum(f"{alice}_wp_copy") == mariadb_checksum(f"{alice}_wp")
    status, done = restore(world, {"items": [db_item], "files": wanted})
    # the users and grants are recreated (rerunnable), the existing database is kept: partial
    assert status == 101
    assert "the database exists" in world.log_text(done)

    # to another account: the home files go to bob's home
    shutil.rmtree(site.account_home("bob") / "docs")
    status, done = restore(
        world,
        {
            "items": [home_item],
            "files": {home_item: {"/docs": "Directory"}},
            "options": {"target_account": bob},
        },
    )
    assert status == 100, world.log_text(done)
    assert (
        (site.account_home("bob") / "docs" / "2024" / "report.txt")
        .read_text()
        .startswith(f"report of {alice}")
    )


def test_a_dump_killed_halfway_leaves_the_account_partial_and_retry_completes_it(
    world: World, site: Site, tmp_path: Path
) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    mariadb("INSERT INTO posts SELECT id + 1000, title, REPEAT(body, 400), price FROM posts", f"{alice}_shop")
    marker = tmp_path / "killed-once"
    wrapper = tmp_path / "dump.sh"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case "$*" in *{alice}_shop*) if [ ! -e {marker} ]; then touch {marker}; '
        'mariadb-dump "$@" | head -c 20000; kill -KILL $$; fi;; esac\n'
        'exec mariadb-dump "$@"\n'
    )
    wrapper.chmod(0o755)
    site.write_config(f'[databases]\nmariadb_dump = "{wrapper}"\n')
    job = accounts_job(world, site)
    status, group = world.run(job)
    assert status == 101, world.log_text(group)
    text = world.log_text(group)
    assert f"{alice}_shop.sql" in text
    assert "left out of the backup" in text
    statuses = {
        item["name"]: item["status"]
        for item in world.ok("listQueueItems", {"group_id": group["_id"]})["items"]
    }
    assert statuses == {f"{alice} on Disk 0": 101, f"{bob} on Disk 0": 100}
    partial = backup_of(world, alice)
    items = items_of(world, partial["_id"])
    assert items["databases"]["failed"] == [f"databases/mariadb/{alice}_shop.sql"]
    with world.catalog.transaction(write=False) as tx:
        row = backups.row(tx, partial["_id"])
    destination = world.ok("getDestination", {"_id": row.destination_id})
    with repositories.job_repository(
        destination, row.job_id, catalog=world.catalog, encrypted=bool(row.encrypted)
    ) as repository:
        tree = bytes.fromhex(repository.load_snapshot(row.engine_id).tree)
        with pytest.raises(NotFoundError):
            find_node(repository, tree, f"databases/mariadb/{alice}_shop.sql")  # no truncated dump stored
        assert find_node(repository, tree, f"databases/mariadb/{alice}_wp.sql").size > 0

    # retry_failed: the second attempt (the wrapper kills only once) completes the account
    marker.unlink()
    world.ok("manageBackupJob", {"action": "modify", "_id": job["_id"], "retry_failed": 1})
    status, group = world.run(job)
    assert status == 100, world.log_text(group)
    assert "retrying 1 failed account(s) once" in world.log_text(group)


def test_account_hooks_run_around_each_account_and_retention_counts_per_account(
    world: World, site: Site, tmp_path: Path, trusted_dir: Path
) -> None:
    calls = tmp_path / "calls.txt"
    script = trusted_dir / "hook.sh"
    script.write_text(f'#!/bin/sh\necho "$SNAPKEEP_HOOK_STAGE $3" >> {calls}\n')
    script.chmod(0o755)
    job = accounts_job(world, site, manually_retain=1)
    for stage in (1, 2):
        world.ok(
            "manageHook",
            {
                "action": "create",
                "name": f"acct {stage}",
                "script": str(script),
                "position_type": stage,
                "position": 8,
            },
        )
    for _ in range(2):
        status, group = world.run(job)
        assert status == 100, world.log_text(group)
    alice, bob = site.user("alice"), site.user("bob")
    assert (
        calls.read_text().splitlines() == [f"pre {alice}", f"post {alice}", f"pre {bob}", f"post {bob}"] * 2
    )
    listed = world.ok("listBackups", {"type": 1})["backups"]
    assert sorted(item["account"] for item in listed) == [alice, bob]  # one kept per account


def test_accounts_jobs_take_every_structure(world: World, site: Site) -> None:
    """Archived (2) and Compressed (4) are accepted (test_account_archives.py runs them)."""
    job = accounts_job(world, site)
    for structure in (2, 4, 1):
        world.ok("manageBackupJob", {"action": "modify", "_id": job["_id"], "structure": structure})
        assert world.ok("getBackupJob", {"_id": job["_id"]})["structure"] == structure


def test_mail_cron_zone_and_certificate_components_go_back_to_their_places(world: World, site: Site) -> None:
    alice = site.user("alice")
    status, group = world.run(accounts_job(world, site))
    assert status == 100, world.log_text(group)
    items = items_of(world, backup_of(world, alice)["_id"])
    maildir = site.account_home("alice") / "Maildir"
    etc = site.root / "etc" / alice
    kept = {path: path.read_bytes() for path in (etc / "crontab", etc / f"{alice}.example.db")}
    certificate = etc / f"{alice}.example.pem"
    junk_before = tree_state(maildir / ".Junk")
    shutil.rmtree(maildir / ".Junk")
    for path in [*kept, certificate]:
        path.unlink()
    chosen = [items[name]["_id"] for name in ("email", "cron", "domains", "certificates")]
    status, done = restore(world, {"items": chosen})
    assert status == 100, world.log_text(done)
    assert tree_state(maildir / ".Junk") == junk_before
    assert {path: path.read_bytes() for path in kept} == kept
    assert certificate.read_text().startswith("-----BEGIN CERTIFICATE-----")
    # the whole account over itself: every file exists and every database exists, nothing is replaced
    status, done = restore(world, {"snapshot_id": items["config"]["parent_id"]})
    assert status == 101
    assert "the database exists" in world.log_text(done)
    assert "kept existing" in world.log_text(done)


def test_an_accounts_own_exclude_list_is_applied_by_its_runs(world: World, site: Site) -> None:
    """Issue 13 section 5: manageAccountExcludeList, for every job and for one job, reaches the run."""
    alice, bob = site.user("alice"), site.user("bob")
    job = accounts_job(world, site, options=4)  # no databases: only the home matters here
    world.ok("manageAccountExcludeList", {"account_id": alice, "list": ["docs/**"]})
    world.ok(
        "manageAccountExcludeList",
        {"account_id": alice, "job_id": job["_id"], "list": ["public_html/assets/**"]},
    )
    status, group = world.run(job)
    assert status == 100, world.log_text(group)
    # (a "folder/**" glob leaves out what the folder holds; the folder itself stays, as for ``cache/**``)
    for user, gone in ((alice, {"report.txt", "notes.md", "logo.bin"}), (bob, set())):
        home = items_of(world, backup_of(world, user)["_id"])["homedir"]["_id"]
        download = world.ok("addQueueItems", {"type": 4, "items": [home]})
        assert execute_group(world.catalog, world.home, download["_id"], stop=threading.Event()) == 100
        raw = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO((world.home / "downloads" / f"{download['_id']}.tar.zst").read_bytes())
        )
        with tarfile.open(fileobj=raw, mode="r|") as archive:
            names = {member.name.rsplit("/", 1)[-1] for member in archive if member.isfile()}
        assert "index.php" in names
        if gone:
            assert gone & names == set(), (user, gone & names)
        else:
            assert {"report.txt", "notes.md", "logo.bin"} <= names, user  # bob's home is whole
