"""The runner on real LocalStores: every structure, plain and encrypted, restore, retention, stop,
failures. Catalog on SQLite (the runner's catalog use is the same on PostgreSQL)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.runner_helpers import World, make_tree, tree_state

from snapkeep.jobs.keystore import KeyStore
from snapkeep.jobs.runs import execute_group


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    opened = World(tmp_path)
    opened.source.mkdir()
    yield opened
    opened.close()


def restore_into(world: World, backup_id: str, target: Path, **extra: object) -> tuple[int, dict]:
    group = world.ok(
        "addQueueItems", {"type": 2, "snapshot_id": backup_id, "options": {"target": str(target)}, **extra}
    )
    status = execute_group(world.catalog, world.home, group["_id"], stop=threading.Event())
    return status, world.ok("getQueueGroup", {"_id": group["_id"]})


@pytest.mark.parametrize("structure", [1, 2, 4])
@pytest.mark.parametrize("encrypted", [0, 1])
def test_three_runs_then_restore_the_second(world: World, structure: int, encrypted: int) -> None:
    job = world.job(structure=structure, encrypted=encrypted)
    states = []
    for version in (1, 2, 3):
        make_tree(world.source, version)
        states.append(tree_state(world.source))
        status, group = world.run(job)
        assert status == 100, world.log_text(group)
        assert group["status"] == 100
        assert group["progress"]["completed"] == 1
    listed = world.ok("listBackups", {"account_id": job["_id"]})
    assert listed["total"] == 3
    second = listed["backups"][1]  # newest first
    assert second["backup_structure"] == structure
    assert second["encrypted"] == encrypted
    assert second["schedules"] == ["manual"]
    assert len(second["_id"]) == 24
    target = world.root / "restored"
    status, group = restore_into(world, second["_id"], target)
    assert status == 100, group
    restored = target / str(world.source).lstrip("/")
    assert tree_state(restored) == states[1]
    fetched = world.ok("getBackupJob", {"_id": job["_id"]})
    assert fetched["running"] is None
    assert fetched["last_run"] is not None
    assert KeyStore(world.catalog).has(job["_id"]) == bool(encrypted)
    assert not (world.home / "keys").exists(), "keys live in the catalog, sealed"


def open_repo(world: World, job: dict) -> object:
    from snapkeep.jobs.repositories import open_repository
    from snapkeep.storage.local import LocalStore

    return open_repository(LocalStore(world.backups / job["_id"]), password=None, create=False)


def test_retention_keeps_manually_retain_and_locked_backups(world: World) -> None:
    job = world.job(manually_retain=2)
    ids = []
    for version in range(1, 5):
        make_tree(world.source, version)
        status, _group = world.run(job)
        assert status == 100
        newest = world.ok("listBackups", {"find": {"job_id": job["_id"]}})["backups"][0]
        ids.append(newest["_id"])
        if version == 1:
            locked = world.ok("manageBackupLock", {"_id": newest["_id"], "locked": 1, "lock_ttl": 0})
            assert locked["locked"] == 1
    remaining = {item["_id"] for item in world.ok("listBackups", {"limit": 0})["backups"]}
    assert remaining == {ids[0], ids[2], ids[3]}, "newest 2 manual runs and the locked one survive"
    repository = open_repo(world, job)
    try:
        assert len(repository.list_snapshots()) == 3
    finally:
        repository.close()
    assert "is locked" in world.fails("deleteSnapshot", {"_id": ids[0]})
    world.ok("manageBackupLock", {"_id": ids[0], "locked": 0})
    world.ok("deleteSnapshot", {"_id": ids[0]})
    assert world.ok("listBackups")["total"] == 2
    repository = open_repo(world, job)
    try:
        assert len(repository.list_snapshots()) == 2
    finally:
        repository.close()


def test_stop_event_mid_run_commits_nothing_and_repository_stays_valid(world: World) -> None:
    from snapkeep.engine.maintenance.check import check

    for index in range(300):
        (world.source / f"file-{index:03}.txt").write_text(f"contents {index}\n" * 20)
    job = world.job()
    world.ok("runBackupJobManually", {"_id": job["_id"]})
    group = world.ok("listQueueGroups", {"type": 1})["groups"][0]
    stop = threading.Event()

    def on_progress(progress: dict[str, int]) -> None:
        if progress["completed_files"] >= 5:
            stop.set()

    status = execute_group(world.catalog, world.home, group["_id"], stop=stop, on_progress=on_progress)
    assert status == 103
    assert world.ok("listBackups")["total"] == 0
    repository = open_repo(world, job)
    try:
        assert repository.list_snapshots() == []
        assert check(repository).ok
    finally:
        repository.close()
    assert world.ok("getBackupJob", {"_id": job["_id"]})["running"] is None
    assert "stopped on request" in world.log_text(world.ok("getQueueGroup", {"_id": group["_id"]}))
    assert world.ok("listAlerts")["total"] == 1, "an aborted run raises an alert"


def test_unwritable_destination_fails_with_the_cause_logged_and_an_alert(world: World) -> None:
    blocker = world.root / "not-a-folder"
    blocker.write_text("a file where the destination folder should be")
    make_tree(world.source, 1)
    job = world.job(world.destination(blocker / "backups"))
    status, group = world.run(job)
    assert status == 102
    assert group["status"] == 102
    text = world.log_text(group)
    assert "backup failed" in text
    assert "not-a-folder" in text
    alerts = world.ok("listAlerts")["alerts"]
    assert len(alerts) == 1
    assert alerts[0]["level"] == 3
    assert job["_id"] in alerts[0]["message"]
    log = world.ok("listLogs", {"find": {"job_id": job["_id"]}})["logs"][0]
    # issue 14 item 1: the alert says why, not only that no backup was stored, and names the log
    assert "no backup was stored: " in alerts[0]["message"]
    assert "not-a-folder" in alerts[0]["message"]
    assert alerts[0]["message"].endswith(f"; log {log['_id']}")
    assert log["status"] == 2
    assert log["status_name"] == "Failed"
    items = world.ok("listQueueItems", {"group_id": group["_id"]})["items"]
    assert [item["status"] for item in items] == [102]


def test_disabled_destination_is_skipped_with_a_warning(world: World) -> None:
    make_tree(world.source, 1)
    good, off = world.destination(), world.destination(world.root / "off", disabled=1)
    job = world.job(good)
    job = world.ok(
        "manageBackupJob", {"action": "modify", "_id": job["_id"], "destination": [good["_id"], off["_id"]]}
    )
    status, group = world.run(job)
    assert status == 101
    assert "is disabled: skipped" in world.log_text(group)
    assert world.ok("listBackups")["total"] == 1


def hook(folder: Path, world: World, name: str, body: str, stage: int, position: int = 1) -> dict:
    """A hook whose script lies in ``folder`` (a ``trusted_dir``: hook scripts may not live under /tmp)."""
    script = folder / f"{name}.sh"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return world.ok(
        "manageHook",
        {
            "action": "create",
            "name": name,
            "script": str(script),
            "position_type": stage,
            "position": position,
        },
    )


@pytest.mark.parametrize(
    ("body", "stage", "status", "alerts", "phrase"),
    [
        ("echo refusing; exit 3", 1, 103, 1, "refusing"),
        ("exit 75", 1, 103, 0, "skipped by hook"),
        ("echo post-broken; exit 1", 2, 100, 0, "post-broken"),
        ('echo "pre ok $1"; exit 0', 1, 100, 0, "pre ok"),
    ],
)
def test_backup_hooks_exit_codes(
    world: World, trusted_dir: Path, body: str, stage: int, status: int, alerts: int, phrase: str
) -> None:
    make_tree(world.source, 1)
    job = world.job()
    hook(trusted_dir, world, "h", body, stage)
    got, group = world.run(job)
    assert got == status
    assert phrase in world.log_text(group)
    assert world.ok("listAlerts")["total"] == alerts
    assert world.ok("listBackups")["total"] == (1 if status == 100 else 0)


def test_restore_hooks_run_around_a_restore_and_a_failing_pre_hook_stops_it(
    world: World, trusted_dir: Path, tmp_path: Path
) -> None:
    make_tree(world.source, 1)
    job = world.job()
    assert world.run(job)[0] == 100
    backup_id = world.ok("listBackups")["backups"][0]["_id"]
    seen = tmp_path / "post-arguments"
    hook(trusted_dir, world, "after", f'echo "$SNAPKEEP_HOOK_STAGE $1 $9" > {seen}', stage=2, position=2)
    refusing = hook(trusted_dir, world, "before", "echo not-now; exit 4", stage=1, position=2)

    status, refused = restore_into(world, backup_id, tmp_path / "refused")
    assert status == 103
    assert refused["status"] == 103
    assert not (tmp_path / "refused").exists(), "a pre Restore hook that fails stops the restore"
    assert not seen.exists(), "post hooks do not run for a restore that never started"

    world.ok("manageHook", {"action": "modify", "_id": refusing["_id"], "disabled": 1})
    status, _ = restore_into(world, backup_id, tmp_path / "restored")
    assert status == 100
    assert tree_state(tmp_path / "restored" / world.source.relative_to("/")) == tree_state(world.source)
    assert seen.read_text().split() == ["post", job["_id"], "100"]


def test_stop_queue_group_aborts_a_pending_run_and_rerun_queues_again(world: World) -> None:
    make_tree(world.source, 1)
    job = world.job()
    world.ok("runBackupJobManually", {"_id": job["_id"]})
    group = world.ok("listQueueGroups", {"type": 1})["groups"][0]
    stopped = world.ok("stopQueueGroup", {"_id": group["_id"]})
    assert stopped["status"] == 103
    assert world.ok("getBackupJob", {"_id": job["_id"]})["running"] is None
    again = world.ok("rerunFailedQueueGroup", {"_id": group["_id"]})
    assert again["status"] == 1
    assert again["_id"] != group["_id"]
    assert execute_group(world.catalog, world.home, again["_id"], stop=threading.Event()) == 100


def test_stop_queue_group_kills_a_running_pre_hook(world: World, trusted_dir: Path, tmp_path: Path) -> None:
    """Review F12: stopQueueGroup while a pre hook runs kills the hook's process group and ends the
    run 103 (Aborted) without an alert; the hook's timeout is not waited for."""
    make_tree(world.source, 1)
    job = world.job()
    started = tmp_path / "hook-started"
    hook(trusted_dir, world, "slow", f"echo $$ > {started}; sleep 120", 1)
    outcome: list[tuple[int, dict[str, Any]]] = []
    runner = threading.Thread(target=lambda: outcome.append(world.run(job)), daemon=True)
    begun = time.monotonic()
    runner.start()
    while not started.exists() or not started.read_text().strip():
        assert time.monotonic() - begun < 30, "the pre hook never started"
        time.sleep(0.05)
    group = world.ok("listQueueGroups", {"type": 1, "find": {"data._id": job["_id"]}})["groups"][0]
    world.ok("stopQueueGroup", {"_id": group["_id"]})
    runner.join(timeout=30)
    assert not runner.is_alive(), "the run waited for the hook instead of stopping"
    status, finished = outcome[0]
    assert status == 103
    assert time.monotonic() - begun < 30
    text = world.log_text(finished)
    assert "the run was asked to stop" in text
    assert world.ok("listAlerts")["total"] == 0, "a stop asked for is not an alert"
    with pytest.raises(ProcessLookupError):
        os.kill(int(started.read_text()), 0)  # the hook's shell is gone


def test_download_packs_a_tar_zst_and_partial_restore_stays_in_target(world: World) -> None:
    import tarfile

    import zstandard

    make_tree(world.source, 1)
    job = world.job(structure=4)
    assert world.run(job)[0] == 100
    backup = world.ok("listBackups")["backups"][0]
    item = world.ok("getBackupItems", {"_id": backup["_id"]})["items"][0]
    wanted = f"{world.source}/sub"
    group = world.ok(
        "addQueueItems", {"type": 4, "items": [item["_id"]], "files": {item["_id"]: {wanted: "Directory"}}}
    )
    assert execute_group(world.catalog, world.home, group["_id"], stop=threading.Event()) == 100
    done = world.ok("getQueueGroup", {"_id": group["_id"]})
    path = Path(done["data"]["file"])
    assert path.parent == world.home / "downloads"
    assert path.name.endswith(".tar.zst")
    with (
        path.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as archive,
    ):
        names = [member.name for member in archive]
    assert any(name.endswith("sub/b.bin") for name in names), names
    assert not any(name.endswith("a.txt") for name in names), "only the chosen folder is downloaded"
