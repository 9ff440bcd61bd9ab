"""Archived (2) and Compressed (4) Accounts jobs against the real MariaDB and PostgreSQL servers.

One archive per account holds the Incremental snapshot's layout; restores go through the same
account restore (per component, per path, whole), downloads join a dump stored in parts, and a
reindex on a rebuilt server lists and restores the archives. ``Site`` (test_account_runs) builds
the accounts and drops every database it made.
"""

from __future__ import annotations

import io
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
from tests.integration.test_account_runs import (
    Site,
    accounts_job,
    backup_of,
    items_of,
    mariadb,
    mariadb_checksum,
    postgres,
    postgres_checksum,
    restore,
    servers_answer,
)

from snapkeep.jobs.runs import execute_group
from snapkeep.sources import account_archive

COMPONENTS = [
    "config",
    "homedir",
    "databases",
    "email",
    "cron",
    "domains",
    "certificates",
    "database_users",
    "ftp",
]


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


def rebuild(world: World) -> World:
    """A new server: an empty catalog with the same account settings and destination, reindexed."""
    rebuilt = World(world.root / f"rebuilt-{len(list(world.root.glob('rebuilt-*')))}")
    shutil.copy(world.home / "config.toml", rebuilt.home / "config.toml")
    added = rebuilt.destination(path=world.backups)
    group = rebuilt.ok("reindexDestination", {"_id": added["_id"]})
    assert execute_group(rebuilt.catalog, rebuilt.home, group["_id"], stop=threading.Event()) == 100
    return rebuilt


def archives(world: World) -> list[Path]:
    return sorted(path for path in world.backups.rglob("archives/*") if ".tar" in path.name)


def manifests(world: World) -> list[Path]:
    return sorted(world.backups.rglob("archives/*.manifest"))


def download(world: World, params: dict[str, Any]) -> dict[str, bytes]:
    """A download group's file, unpacked in memory: {member name: contents} of its files."""
    group = world.ok("addQueueItems", {"type": 4, **params})
    status = execute_group(world.catalog, world.home, group["_id"], stop=threading.Event())
    done = world.ok("getQueueGroup", {"_id": group["_id"]})
    assert status == 100, world.log_text(done)
    packed = Path(done["data"]["file"]).read_bytes()
    plain = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(packed)).read()
    with tarfile.open(fileobj=io.BytesIO(plain)) as archive:
        return {
            member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        }


@pytest.mark.parametrize(
    ("structure", "encrypted"), [(2, 0), (4, 1)], ids=["archived", "compressed-encrypted"]
)
def test_account_archives_back_up_and_restore_per_component_path_and_whole(
    world: World, site: Site, monkeypatch: pytest.MonkeyPatch, structure: int, encrypted: int
) -> None:
    monkeypatch.setattr(account_archive, "PART_SIZE", 8192)  # dumps of a few parts each
    alice, bob = site.user("alice"), site.user("bob")
    before = {
        "wp": mariadb_checksum(f"{alice}_wp"),
        "shop": mariadb_checksum(f"{alice}_shop"),
        "app": postgres_checksum(f"{alice}_app"),
    }
    home = site.account_home("alice")
    docs_before, site_before = tree_state(home / "docs"), tree_state(home / "public_html")
    job = accounts_job(world, site, structure=structure, encrypted=encrypted)
    status, group = world.run(job)
    assert status == 100, world.log_text(group)
    stored = archives(world)
    assert len(stored) == 2  # one per account (alice, bob)
    assert all(path.name.endswith(".tar.zst" if structure == 4 else ".tar") for path in stored)
    backup = backup_of(world, alice)
    assert backup["backup_contains"] == 511
    assert backup_of(world, bob)["backup_contains"] == 511
    items = items_of(world, backup["_id"])
    assert list(items) == COMPONENTS
    if not encrypted:  # a plain tar: the layout, the excludes, the dumps in parts
        names = set()
        for path in stored:
            with tarfile.open(path) as archive:
                names |= set(archive.getnames())
        assert "homedir/docs/2024/report.txt" in names
        assert "email/.Junk/cur" in names
        assert not any(name.startswith("homedir/cache/") for name in names)  # the account's exclude
        assert not any(name.startswith("homedir/Maildir") for name in names)  # the email component's
        assert f"databases/mariadb/{alice}_wp.sql.part-00001" in names
        assert "database_users/mariadb.sql" in names

    # disaster: databases dropped, folders deleted
    mariadb(f"DROP DATABASE `{alice}_wp`")
    postgres(f'DROP DATABASE "{alice}_app" WITH (FORCE)')
    shutil.rmtree(home / "docs")
    databases = items["databases"]["_id"]
    status, done = restore(
        world, {"items": [databases], "files": {databases: {f"/mariadb/{alice}_wp": "File"}}}
    )
    assert status == 100, world.log_text(done)
    assert mariadb_checksum(f"{alice}_wp") == before["wp"]
    status, done = restore(
        world, {"items": [databases], "files": {databases: {f"/postgresql/{alice}_app": "File"}}}
    )
    assert status == 100, world.log_text(done)
    assert postgres_checksum(f"{alice}_app") == before["app"]
    assert postgres(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{alice}_app'") == [
        [alice]
    ]
    status, done = restore(
        world, {"snapshot_id": backup["_id"], "files": {backup["_id"]: {str(home / "docs"): "Directory"}}}
    )
    assert status == 100, world.log_text(done)
    assert tree_state(home / "docs") == docs_before

    # the whole account: every component back, databases recreated from the dumps
    mariadb(f"DROP DATABASE `{alice}_shop`")
    mariadb(f"DROP DATABASE `{alice}_wp`")
    postgres(f'DROP DATABASE "{alice}_app" WITH (FORCE)')
    shutil.rmtree(home / "public_html")
    shutil.rmtree(home / "docs")
    (site.root / "etc" / alice / "crontab").unlink()
    status, done = restore(world, {"snapshot_id": backup["_id"]})
    assert status == 100, world.log_text(done)
    assert mariadb_checksum(f"{alice}_shop") == before["shop"]
    assert mariadb_checksum(f"{alice}_wp") == before["wp"]
    assert postgres_checksum(f"{alice}_app") == before["app"]
    assert tree_state(home / "public_html") == site_before
    assert tree_state(home / "docs") == docs_before
    assert (site.root / "etc" / alice / "crontab").read_text().startswith("*/5 * * * *")
    grants = mariadb(f"SHOW GRANTS FOR '{alice}_wp'@'localhost'")
    assert any(f"`{alice}_wp`" in row[0] and "SELECT, INSERT" in row[0] for row in grants)

    # a download of one dump and one file: the dump joined from its parts
    files = download(
        world,
        {
            "items": [databases],
            "files": {databases: {f"/mariadb/{alice}_shop.sql": "File"}},
        },
    )
    dump = files[f"databases/mariadb/{alice}_shop.sql"]
    assert len(dump) > 8192
    assert b"-- Dump completed" in dump[-200:]
    assert not any(".part-" in name for name in files)


def test_a_failed_dump_leaves_the_archive_partial_and_is_never_restored(
    world: World, site: Site, tmp_path: Path
) -> None:
    alice = site.user("alice")
    wrapper = tmp_path / "dump.sh"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case "$*" in *{alice}_shop*) mariadb-dump "$@" | head -c 2000; kill -KILL $$;; esac\n'
        'exec mariadb-dump "$@"\n'
    )
    wrapper.chmod(0o755)
    site.write_config(f'[databases]\nmariadb_dump = "{wrapper}"\n')
    status, group = world.run(accounts_job(world, site, structure=4))
    assert status == 101, world.log_text(group)
    assert "left out of the backup" in world.log_text(group)
    backup = backup_of(world, alice)
    items = items_of(world, backup["_id"])
    assert items["databases"]["failed"] == [f"databases/mariadb/{alice}_shop.sql"]
    rebuilt = rebuild(world)  # the failure is in the archive's own manifest: a reindex keeps it
    try:
        (found,) = rebuilt.ok("listBackups", {"account_id": alice})["backups"]
        assert items_of(rebuilt, found["_id"])["databases"]["failed"] == [
            f"databases/mariadb/{alice}_shop.sql"
        ]
    finally:
        rebuilt.close()
    databases = items["databases"]["_id"]
    mariadb(f"DROP DATABASE `{alice}_shop`")
    status, done = restore(
        world, {"items": [databases], "files": {databases: {f"/mariadb/{alice}_shop": "File"}}}
    )
    assert status == 101, world.log_text(done)  # the users are recreated, the dump is not there
    assert f"'databases/mariadb/{alice}_shop.sql' is not in archive" in world.log_text(done)
    assert mariadb(f"SHOW DATABASES LIKE '{alice}_shop'") == []  # nothing half-restored


def test_a_large_table_streams_in_bounded_parts(world: World, site: Site) -> None:
    """A ~20 MB dump goes into the archive in 4 MiB parts and comes back identical."""
    alice = site.user("alice")
    mariadb(
        "CREATE TABLE big (id INT PRIMARY KEY, blob_text LONGTEXT); "
        "INSERT INTO big SELECT seq, REPEAT(MD5(seq), 640) FROM seq_1_to_1000",
        f"{alice}_shop",
    )
    checksum = mariadb("SELECT MD5(GROUP_CONCAT(blob_text ORDER BY id)) FROM big", f"{alice}_shop")
    status, group = world.run(accounts_job(world, site, structure=2))
    assert status == 100, world.log_text(group)
    (alice_archive,) = [path for path in archives(world) if path.stat().st_size > 10_000_000]
    with tarfile.open(alice_archive) as archive:
        parts = [member for member in archive.getmembers() if f"{alice}_shop.sql.part-" in member.name]
    assert len(parts) >= 5
    assert max(member.size for member in parts) == account_archive.PART_SIZE
    mariadb(f"DROP DATABASE `{alice}_shop`")
    backup = backup_of(world, alice)
    databases = items_of(world, backup["_id"])["databases"]["_id"]
    status, done = restore(
        world, {"items": [databases], "files": {databases: {f"/mariadb/{alice}_shop": "File"}}}
    )
    assert status == 100, world.log_text(done)
    assert mariadb("SELECT MD5(GROUP_CONCAT(blob_text ORDER BY id)) FROM big", f"{alice}_shop") == checksum


def test_a_rebuilt_server_reindexes_account_archives_and_restores_them(world: World, site: Site) -> None:
    alice = site.user("alice")
    before = mariadb_checksum(f"{alice}_wp")
    job = accounts_job(world, site, structure=4, manually_retain=1)
    for _ in range(2):
        status, group = world.run(job)
        assert status == 100, world.log_text(group)
    assert len(archives(world)) == 2  # retention counts per account: one kept of each
    assert len(manifests(world)) == 2
    assert len(world.ok("listBackups", {"type": 1})["backups"]) == 2
    rebuilt = rebuild(world)
    try:
        found = rebuilt.ok("listBackups", {"account_id": alice})["backups"]
        assert len(found) == 1
        assert found[0]["backup_contains"] == 511
        items = {
            item["name"]: item for item in rebuilt.ok("getBackupItems", {"_id": found[0]["_id"]})["items"]
        }
        assert list(items) == COMPONENTS
        mariadb(f"DROP DATABASE `{alice}_wp`")
        databases = items["databases"]["_id"]
        status, done = restore(
            rebuilt, {"items": [databases], "files": {databases: {f"/mariadb/{alice}_wp": "File"}}}
        )
        assert status == 100, rebuilt.log_text(done)
        assert mariadb_checksum(f"{alice}_wp") == before
    finally:
        rebuilt.close()


def test_options_and_the_jobs_excludes_apply_to_archives(world: World, site: Site) -> None:
    alice = site.user("alice")
    job = accounts_job(world, site, structure=2, options=4, exclude_list=["public_html/assets/**"])
    status, group = world.run(job)
    assert status == 100, world.log_text(group)
    backup = backup_of(world, alice)
    assert list(items_of(world, backup["_id"])) == [name for name in COMPONENTS if name != "databases"]
    names = set()
    for path in archives(world):
        with tarfile.open(path) as archive:
            names |= set(archive.getnames())
    assert "homedir/public_html/index.php" in names
    assert not any(name.startswith("homedir/public_html/assets/") for name in names)
    assert not any(name.startswith("databases") for name in names)
