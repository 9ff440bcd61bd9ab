"""Issue 4 "Show": backups and restores through the HTTP door of a real ``snapkeep serve``.

For each structure (Incremental, Archived, Compressed, and an encrypted Incremental job): a Local
destination, a Directories job with two schedules, three manual runs while the source changes, the
backups listed over HTTP, the second one restored into a new folder and compared byte for byte and
mode for mode with the source as it was then.

Everything goes through HTTP and the service's own workers: runs are queued with
``runBackupJobManually`` and awaited by polling ``getBackupJob`` until ``running`` is null, restores
are queued with ``addQueueItems`` and awaited by polling ``getQueueGroup``, as a client would.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.e2e.conftest import Server
from tests.integration.runner_helpers import make_tree, tree_state


def ok(server: Server, function: str, params: dict) -> dict:
    answer = server.call(function, params)
    assert answer["success"] == 1, (function, params, answer["message"])
    data: dict = answer["data"]
    return data


def wait_for(what: str, done: Callable[[], dict | None], timeout: float = 120) -> dict:
    """Poll ``done`` until it returns an answer (the service's workers run the queue)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = done()
        if answer is not None:
            return answer
        time.sleep(0.2)
    raise AssertionError(f"the service did not finish {what} within {timeout} s")


def run_through_service(server: Server, job_id: str) -> None:
    queued = ok(server, "runBackupJobManually", {"_id": job_id})
    assert queued["running"] == 1

    def finished() -> dict | None:
        job = ok(server, "getBackupJob", {"_id": job_id})
        return job if job["running"] is None else None

    wait_for(f"a run of job {job_id}", finished)


@pytest.mark.parametrize(("structure", "encrypted"), [(1, 0), (2, 0), (4, 0), (1, 1)])
def test_three_runs_list_restore_second(
    server: Server, tmp_path: Path, structure: int, encrypted: int
) -> None:
    tag = secrets.token_hex(3)
    source, store = tmp_path / "source", tmp_path / "backups"
    source.mkdir()
    destination = ok(
        server,
        "manageDestination",
        {"action": "create", "name": f"Disk {tag}", "type": "Local", "options": {"path": str(store)}},
    )
    daily = ok(
        server,
        "manageSchedule",
        {"action": "create", "name": f"Daily {tag}", "type": "2", "type_data": ["1", "4"]},
    )
    hourly = ok(
        server, "manageSchedule", {"action": "create", "name": f"Hourly {tag}", "type": "1", "type_data": "6"}
    )
    job = ok(
        server,
        "manageBackupJob",
        {
            "action": "create",
            "name": f"Folders {tag}",
            "type": "2",
            "contains": "1",
            "structure": str(structure),
            "encrypted": str(encrypted),
            "destination": [destination["_id"]],
            "include_list": [str(source)],
            "schedules": [{"_id": daily["_id"], "retain": "3"}, {"_id": hourly["_id"], "retain": "2"}],
        },
    )
    states, backup_ids = [], []
    for version in (1, 2, 3):
        make_tree(source, version)
        states.append(tree_state(source))
        run_through_service(server, job["_id"])
        newest = ok(server, "listBackups", {"account_id": job["_id"], "limit": "1"})["backups"][0]
        backup_ids.append(newest["_id"])
    listed = ok(server, "listBackups", {"account_id": job["_id"]})
    assert listed["total"] == 3
    assert [item["_id"] for item in listed["backups"]] == backup_ids[::-1]
    assert all(
        item["backup_structure"] == structure and item["encrypted"] == encrypted for item in listed["backups"]
    )
    fetched = ok(server, "getBackupJob", {"_id": job["_id"]})
    assert fetched["running"] is None
    assert fetched["last_run"]
    groups = ok(server, "listQueueGroups", {"type": "1", "find": {"data._id": job["_id"]}})
    assert groups["total"] == 3
    assert {group["status"] for group in groups["groups"]} == {100}
    log = ok(server, "getLog", {"_id": groups["groups"][0]["data"]["log_id"], "content": "1"})
    assert log["status"] == 1
    assert "stored" in log["content"]

    target = tmp_path / "restored"
    group = ok(
        server,
        "addQueueItems",
        {"type": "2", "snapshot_id": backup_ids[1], "options": {"target": str(target)}},
    )

    def restored() -> dict | None:
        answer = ok(server, "getQueueGroup", {"_id": group["_id"]})
        return answer if answer["status"] >= 100 else None

    assert wait_for("the restore", restored)["status"] == 100
    assert tree_state(target / str(source).lstrip("/")) == states[1]
    assert tree_state(source) == states[2], "the source itself is untouched"

    if encrypted:
        exported = server.instance.cli("keys", "export", job["_id"])
        assert exported.returncode == 0
        assert len(exported.stdout.strip()) == 64
        assert not (server.instance.home / "keys").exists(), "keys live in the catalog, sealed"
        assert os.stat(server.instance.home / "master.key").st_mode & 0o777 == 0o600
