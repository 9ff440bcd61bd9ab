"""Disaster recovery of an encrypted Accounts job with databases (real MariaDB and PostgreSQL): dr
export, a new data directory, dr import, reindex, and the account's databases and files restored
from the reindexed backup (databases compared by row checksums)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import require_server
from tests.integration.runner_helpers import World, tree_state
from tests.integration.test_account_runs import (
    Site,
    accounts_job,
    items_of,
    mariadb,
    mariadb_checksum,
    postgres,
    postgres_checksum,
    restore,
    servers_answer,
)

from snapkeep.jobs import dr
from snapkeep.jobs.runs import execute_group

PASSPHRASE = "accounts take-over passphrase"


@pytest.fixture
def old(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path / "old")
    yield made
    made.close()


@pytest.fixture
def site(tmp_path: Path, old: World) -> Iterator[Site]:
    require_server(servers_answer(), "MariaDB at 127.0.0.1:3306 and PostgreSQL at 127.0.0.1:5432")
    made = Site(tmp_path, old.home)
    try:
        made.build()
        yield made
    finally:
        made.drop()


def test_an_encrypted_accounts_job_is_taken_over_by_a_new_server(
    old: World, site: Site, tmp_path: Path
) -> None:
    alice = site.user("alice")
    job = accounts_job(old, site, encrypted=1)
    status, group = old.run(job)
    assert status == 100, old.log_text(group)
    before = {"wp": mariadb_checksum(f"{alice}_wp"), "app": postgres_checksum(f"{alice}_app")}
    docs_before = tree_state(site.account_home("alice") / "docs")
    old_items = {
        item["account"]: items_of(old, item["_id"]) for item in old.ok("listBackups", {"limit": 0})["backups"]
    }
    sealed = dr.seal(dr.export_state(old.catalog, old.home), PASSPHRASE)

    new = World(tmp_path / "new")  # config.toml belongs to the server: the new one has its own
    shutil.copy(old.home / "config.toml", new.home / "config.toml")
    dr.import_state(new.catalog, new.home, dr.open_sealed(sealed, PASSPHRASE))
    destination = new.ok("listDestinations")["destinations"][0]
    try:
        queued = new.ok("reindexDestination", {"_id": destination["_id"]})
        assert execute_group(new.catalog, new.home, queued["_id"], stop=threading.Event()) == 100
        listed = new.ok("listBackups", {"limit": 0})["backups"]
        assert sorted(item["account"] for item in listed) == sorted(old_items)
        backup = next(item for item in listed if item["account"] == alice)
        assert backup["backup_type"] == 1
        assert backup["backup_contains"] == 511
        assert backup["orphan"] == 0
        assert backup["encrypted"] == 1
        items = items_of(new, backup["_id"])
        assert list(items) == list(old_items[alice])

        mariadb(f"DROP DATABASE `{alice}_wp`")
        postgres(f'DROP DATABASE "{alice}_app" WITH (FORCE)')
        shutil.rmtree(site.account_home("alice") / "docs")
        databases = items["databases"]["_id"]
        for path in (f"/databases/mariadb/{alice}_wp.sql", f"/postgresql/{alice}_app"):
            status, restored = restore(new, {"items": [databases], "files": {databases: {path: "File"}}})
            assert status == 100, new.log_text(restored)
        assert mariadb_checksum(f"{alice}_wp") == before["wp"]
        assert postgres_checksum(f"{alice}_app") == before["app"]
        homedir = items["homedir"]["_id"]
        status, restored = restore(
            new, {"items": [homedir], "files": {homedir: {"/homedir/docs": "Directory"}}}
        )
        assert status == 100, new.log_text(restored)
        assert tree_state(site.account_home("alice") / "docs") == docs_before
        # the new server's account provider tells the reindex where alice's home is: full paths work
        shutil.rmtree(site.account_home("alice") / "docs" / "2024")
        full = str(site.account_home("alice") / "docs" / "2024")
        status, restored = restore(
            new, {"snapshot_id": backup["_id"], "files": {backup["_id"]: {full: "Directory"}}}
        )
        assert status == 100, new.log_text(restored)
        assert tree_state(site.account_home("alice") / "docs") == docs_before
    finally:
        new.close()
