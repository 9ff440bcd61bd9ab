"""Reindex: the catalog's backups rebuilt from what a destination holds (``reindexDestination``,
queue type 8), orphans, "key required" and ``snapkeep keys import``.

Runs go through the API and ``execute_group`` as the daemon runs them; a "new server" is a second
data directory whose catalog has the same destination and nothing else.
"""

from __future__ import annotations

import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.integration.runner_helpers import World, make_tree, tree_state
from tests.integration.test_remote_runs import sftp_destination
from tests.servers import SshServer

from snapkeep.cli.main import cli
from snapkeep.daemon.service import Service
from snapkeep.engine.repository.locks import RepositoryLock
from snapkeep.errors import ConflictError, WrongPasswordError
from snapkeep.jobs import backups, dr, reindex
from snapkeep.jobs.keystore import KeyStore
from snapkeep.jobs.queue import claim, worker_identity
from snapkeep.jobs.runs import execute_group
from snapkeep.jobs.schedule import zone
from snapkeep.jobs.users import ROOT_ID
from snapkeep.storage.local import LocalStore


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    opened = World(tmp_path)
    opened.source.mkdir()
    yield opened
    opened.close()


@pytest.fixture
def new_server(tmp_path: Path) -> Iterator[World]:
    """A second data directory (an empty catalog) beside ``world``, sharing its source folder."""
    opened = World(tmp_path / "new")
    opened.source = tmp_path / "source"
    yield opened
    opened.close()


def reindex_now(world: World, destination: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """reindexDestination over the dispatcher, then the group run as the daemon runs it."""
    group = world.ok("reindexDestination", {"_id": destination["_id"]})
    assert (group["type"], group["status"]) == (8, 1), group
    status = execute_group(world.catalog, world.home, group["_id"], stop=threading.Event())
    return status, world.ok("getQueueGroup", {"_id": group["_id"]})


def listed(world: World, **find: Any) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"limit": 0}
    if find:
        params["find"] = find
    return list(world.ok("listBackups", params)["backups"])


def restore_into(world: World, backup: dict[str, Any]) -> tuple[int, Path, dict[str, Any]]:
    target = world.root / f"restored-{secrets.token_hex(4)}"
    group = world.ok(
        "addQueueItems", {"type": 2, "snapshot_id": backup["_id"], "options": {"target": str(target)}}
    )
    status = execute_group(world.catalog, world.home, group["_id"], stop=threading.Event())
    return status, target / str(world.source).lstrip("/"), world.ok("getQueueGroup", {"_id": group["_id"]})


def drop_rows(world: World) -> None:
    with world.catalog.transaction() as tx:
        for row in backups.rows(tx):
            backups.forget_row(tx, row.id)


def test_known_job_backups_are_relinked_without_duplicates(world: World) -> None:
    destination = world.destination()
    incremental = world.job(destination, name="Incremental")
    archived = world.job(destination, name="Archived", structure=2, encrypted=1)
    for version in (1, 2):
        make_tree(world.source, version)
        assert world.run(incremental)[0] == 100
    assert world.run(archived)[0] == 100
    before = {(item["job_id"], item["created"], item["size"]) for item in listed(world)}
    engines_before = {row.engine_id for row in _rows(world)}
    drop_rows(world)
    assert listed(world) == []

    status, group = reindex_now(world, destination)
    assert status == 100, world.log_text(group)
    assert group["type"] == 8
    assert group["progress"]["total"] == group["progress"]["completed"] == 2
    items = world.ok("listQueueItems", {"group_id": group["_id"]})["items"]
    assert sorted(item["name"] for item in items) == sorted([incremental["_id"], archived["_id"]])
    text = world.log_text(group)
    assert "2 repositories found" in text
    assert "3 added" not in text
    assert f"job {incremental['_id']}: known job; 2 added" in text
    after = listed(world)
    assert {(item["job_id"], item["created"], item["size"]) for item in after} == before
    assert {row.engine_id for row in _rows(world)} == engines_before
    assert all(item["orphan"] == 0 and item["key_required"] == 0 and item["missing"] == 0 for item in after)
    assert {item["job_name"] for item in after} == {"Incremental", "Archived"}
    assert {item["backup_structure"] for item in after if item["job_id"] == archived["_id"]} == {2}

    # a second reindex changes nothing: same rows, same IDs
    status, group = reindex_now(world, destination)
    assert status == 100
    assert "0 added, 2 already listed" in world.log_text(group)
    assert sorted(item["_id"] for item in listed(world)) == sorted(item["_id"] for item in after)

    # a backup the destination lost is marked missing, and unmarked when it comes back
    newest = next(row for row in _rows(world) if row.job_id == incremental["_id"] and row.structure == 1)
    snapshot = world.backups / incremental["_id"] / "snapshots" / newest.engine_id
    kept = snapshot.read_bytes()
    snapshot.unlink()
    status, group = reindex_now(world, destination)
    assert status == 100
    assert f"backup {newest.id} is no longer on the destination: marked missing" in world.log_text(group)
    assert [item["_id"] for item in listed(world) if item["missing"]] == [newest.id]
    snapshot.write_bytes(kept)
    assert reindex_now(world, destination)[0] == 100
    assert [item for item in listed(world) if item["missing"]] == []
    assert len(listed(world)) == 3

    # a deleted job's backups stay listed; a reindex makes them orphans (same rows, owned by root)
    world.ok("deleteBackupJob", {"_id": archived["_id"]})
    assert reindex_now(world, destination)[0] == 100
    (orphaned,) = [item for item in listed(world) if item["job_id"] == archived["_id"]]
    assert orphaned["orphan"] == 1
    assert orphaned["owner"] == ROOT_ID
    assert orphaned["job_name"] == "Archived"
    assert sorted(item["_id"] for item in listed(world)) == sorted(item["_id"] for item in after)


def _rows(world: World) -> list[backups.BackupRecord]:
    with world.catalog.transaction(write=False) as tx:
        return backups.rows(tx)


def test_unknown_job_is_an_orphan_owned_by_root_and_restorable(world: World, new_server: World) -> None:
    job = world.job(world.destination(), name="Old server job")
    make_tree(world.source, 3)
    expected = tree_state(world.source)
    assert world.run(job)[0] == 100
    original = listed(world)[0]

    destination = new_server.destination(world.backups)
    status, group = reindex_now(new_server, destination)
    assert status == 100, new_server.log_text(group)
    assert "orphan (job unknown here, owned by root)" in new_server.log_text(group)
    (orphan,) = listed(new_server)
    assert orphan["orphan"] == 1
    assert orphan["owner"] == ROOT_ID
    assert orphan["key_required"] == 0
    assert orphan["job_id"] == job["_id"]
    assert orphan["created"] == original["created"]
    assert orphan["paths"] == [str(world.source)]
    assert orphan["destination"] == destination["_id"]
    status, restored, finished = restore_into(new_server, orphan)
    assert status == 100, new_server.log_text(finished)
    assert tree_state(restored) == expected
    # idempotent for orphans too
    assert reindex_now(new_server, destination)[0] == 100
    assert [item["_id"] for item in listed(new_server)] == [orphan["_id"]]


def test_encrypted_orphan_needs_its_key_then_reads(world: World, new_server: World, tmp_path: Path) -> None:
    job = world.job(world.destination(), name="Secret", encrypted=1)
    make_tree(world.source, 4)
    expected = tree_state(world.source)
    assert world.run(job)[0] == 100
    destination = new_server.destination(world.backups)

    status, group = reindex_now(new_server, destination)
    assert status == 101, new_server.log_text(group)
    assert f"snapkeep keys import {job['_id']} FILE" in new_server.log_text(group)
    (placeholder,) = listed(new_server)
    assert placeholder["key_required"] == 1
    assert placeholder["orphan"] == 1
    assert placeholder["encrypted"] == 1
    assert placeholder["locked"] == 1  # retention and deleteSnapshot leave it alone
    refused = new_server.fails("addQueueItems", {"type": 2, "snapshot_id": placeholder["_id"]})
    assert f"snapkeep keys import {job['_id']} FILE" in refused  # refused when queued, not at run time
    assert reindex_now(new_server, destination)[0] == 101
    assert len(listed(new_server)) == 1  # still one placeholder

    runner = CliRunner()
    wrong = tmp_path / "wrong.key"
    wrong.write_text("f" * 64 + "\n")
    result = runner.invoke(cli, ["--home", str(new_server.home), "keys", "import", job["_id"], str(wrong)])
    assert isinstance(result.exception, WrongPasswordError), result.output
    assert "the key does not open Backup Job" in str(result.exception)
    assert not KeyStore(new_server.catalog).has(job["_id"])  # nothing stored

    exported = runner.invoke(cli, ["--home", str(world.home), "keys", "export", job["_id"]])
    assert exported.exit_code == 0
    key_file = tmp_path / "job.key"
    key_file.write_text(exported.output)
    result = runner.invoke(cli, ["--home", str(new_server.home), "keys", "import", job["_id"], str(key_file)])
    assert result.exit_code == 0, result.output
    assert "stored" in result.output
    assert KeyStore(new_server.catalog).get(job["_id"]) == exported.output.strip()
    assert not (new_server.home / "keys").exists(), "keys live in the catalog, sealed"
    # importing the same key again is harmless; a different one is refused
    assert (
        runner.invoke(
            cli, ["--home", str(new_server.home), "keys", "import", job["_id"], str(key_file)]
        ).exit_code
        == 0
    )
    with pytest.raises(ConflictError):
        KeyStore(new_server.catalog).put(job["_id"], "0" * 64)

    status, group = reindex_now(new_server, destination)
    assert status == 100, new_server.log_text(group)
    (backup,) = listed(new_server)
    assert backup["key_required"] == 0
    assert backup["orphan"] == 1
    assert backup["encrypted"] == 1
    status, restored, finished = restore_into(new_server, backup)
    assert status == 100, new_server.log_text(finished)
    assert tree_state(restored) == expected


def test_a_key_made_by_a_run_before_the_import_is_replaced_by_the_working_one(
    world: World, new_server: World, tmp_path: Path
) -> None:
    """A new server that runs the job before importing its key makes a random key: the run fails
    and says how to import the right one; ``keys import`` then replaces the useless key (a stored
    key that opens the repository is never replaced) and the job runs again."""
    job = world.job(world.destination(), name="Secret", encrypted=1)
    make_tree(world.source, 2)
    status, first = world.run(job)
    assert status == 100
    assert f"snapkeep keys export {job['_id']}" in world.log_text(first)  # told to export it
    state = dr.export_state(world.catalog, world.home)
    dr.import_state(new_server.catalog, new_server.home, state)
    KeyStore(new_server.catalog).remove(job["_id"])  # the key did not come along
    status, failed = new_server.run(job)
    assert status == 102
    assert f"snapkeep keys import {job['_id']} FILE" in new_server.log_text(failed)
    key_file = tmp_path / "job.key"
    key_file.write_text(KeyStore(world.catalog).get(job["_id"]) + "\n")
    result = CliRunner().invoke(
        cli, ["--home", str(new_server.home), "keys", "import", job["_id"], str(key_file)]
    )
    assert result.exit_code == 0, result.output
    assert KeyStore(new_server.catalog).get(job["_id"]) == KeyStore(world.catalog).get(job["_id"])
    other = tmp_path / "other.key"
    other.write_text("0" * 64 + "\n")
    refused = CliRunner().invoke(
        cli, ["--home", str(new_server.home), "keys", "import", job["_id"], str(other)]
    )
    assert isinstance(refused.exception, WrongPasswordError)
    assert KeyStore(new_server.catalog).get(job["_id"]) == KeyStore(world.catalog).get(job["_id"])
    status, again = new_server.run(job)
    assert status == 100, new_server.log_text(again)
    assert "a new repository password was made" not in new_server.log_text(again)


def test_a_key_for_no_known_repository_is_not_stored(new_server: World, tmp_path: Path) -> None:
    new_server.destination(tmp_path / "empty")
    with pytest.raises(Exception, match="no destination of this catalog holds a repository"):
        reindex.import_key(new_server.catalog, new_server.home, "a" * 24, "b" * 64)
    assert not KeyStore(new_server.catalog).has("a" * 24)


def test_reindex_is_refused_twice_at_once_and_for_unknown_destinations(world: World) -> None:
    destination = world.destination()
    world.ok("reindexDestination", {"_id": destination["_id"]})
    assert "already being reindexed" in world.fails("reindexDestination", {"_id": destination["_id"]})
    assert "Destination not found" in world.fails("reindexDestination", {"_id": "f" * 24})
    assert "_id" in world.fails("reindexDestination", {})


def test_an_unreadable_destination_fails_with_a_clear_log(world: World, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    destination = world.destination(blocker / "below")
    status, group = reindex_now(world, destination)
    assert status in (100, 102)
    if status == 102:
        assert "cannot list its repositories" in world.log_text(group)
    else:  # a missing root is an empty destination
        assert "0 repositories found" in world.log_text(group)


def test_reindex_of_an_sftp_destination(world: World, new_server: World, sshd: SshServer) -> None:
    destination = sftp_destination(world, sshd, key="plain")
    job = world.job(destination, name="Remote", encrypted=1, structure=4)
    make_tree(world.source, 5)
    expected = tree_state(world.source)
    assert world.run(job)[0] == 100
    with world.catalog.transaction(write=False) as tx:
        stored = tx.get("destinations", destination["_id"])
    assert stored is not None
    drop_rows(world)
    status, group = reindex_now(world, destination)
    assert status == 100, world.log_text(group)
    (backup,) = listed(world)
    assert backup["orphan"] == 0
    assert backup["backup_structure"] == 4
    status, restored, finished = restore_into(world, backup)
    assert status == 100, world.log_text(finished)
    assert tree_state(restored) == expected


def test_the_service_runs_a_queued_reindex(world: World) -> None:
    destination = world.destination()
    job = world.job(destination)
    make_tree(world.source, 6)
    assert world.run(job)[0] == 100
    drop_rows(world)
    running = Service(world.catalog, world.home, tz=zone("UTC"), poll_interval=0.1, schedule_interval=0.2)
    running.start()
    try:
        group = world.ok("reindexDestination", {"_id": destination["_id"]})
        deadline = time.monotonic() + 60
        while world.ok("getQueueGroup", {"_id": group["_id"]})["status"] in (1, 2):
            assert time.monotonic() < deadline, "the service did not run the reindex"
            time.sleep(0.1)
    finally:
        assert running.stop(60) == []
    finished = world.ok("getQueueGroup", {"_id": group["_id"]})
    assert finished["status"] == 100, world.log_text(finished)
    assert [item["job_id"] for item in listed(world)] == [job["_id"]]


def test_a_damaged_snapshot_is_skipped_and_a_stopped_reindex_ends_aborted(world: World) -> None:
    destination = world.destination()
    job = world.job(destination)
    for version in (1, 2):
        make_tree(world.source, version)
        assert world.run(job)[0] == 100
    oldest, newest = _rows(world)
    drop_rows(world)
    damaged = world.backups / job["_id"] / "snapshots" / oldest.engine_id
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    status, group = reindex_now(world, destination)
    assert status == 101
    assert f"{oldest.engine_id[:12]} skipped: integrity check failed" in world.log_text(group)
    assert [row.engine_id for row in _rows(world)] == [newest.engine_id]

    stopped = world.ok("reindexDestination", {"_id": destination["_id"]})
    stop = threading.Event()
    stop.set()
    assert execute_group(world.catalog, world.home, stopped["_id"], stop=stop) == 103
    finished = world.ok("getQueueGroup", {"_id": stopped["_id"]})
    assert finished["status"] == 103
    assert "stopped on request" in world.log_text(finished)


def test_a_repository_a_backup_is_writing_is_skipped_as_in_use(world: World) -> None:
    destination = world.destination()
    job = world.job(destination)
    make_tree(world.source, 8)
    assert world.run(job)[0] == 100
    drop_rows(world)
    with (
        LocalStore(world.backups / job["_id"]) as store,
        RepositoryLock(store, exclusive=False, holder="snapkeep run (test)"),
    ):
        status, group = reindex_now(world, destination)
        assert status == 101
        assert "in use, not indexed" in world.log_text(group)
        assert listed(world) == []
    assert reindex_now(world, destination)[0] == 100
    assert len(listed(world)) == 1
    assert list((world.backups / job["_id"] / "locks").iterdir()) == []  # the reindex's lock is gone


def test_a_killed_reindex_does_not_block_the_next_one(world: World) -> None:
    destination = world.destination()
    job = world.job(destination)
    make_tree(world.source, 9)
    assert world.run(job)[0] == 100
    drop_rows(world)
    killed = world.ok("reindexDestination", {"_id": destination["_id"]})
    child = subprocess.Popen(["true"])
    child.wait()
    with world.catalog.transaction() as tx:  # claimed by a process that is gone (kill -9)
        assert claim(tx, killed["_id"], worker={"host": worker_identity()["host"], "pid": child.pid})
    status, group = reindex_now(world, destination)
    assert status == 100, world.log_text(group)
    assert world.ok("getQueueGroup", {"_id": killed["_id"]})["status"] == 104
    assert len(listed(world)) == 1
