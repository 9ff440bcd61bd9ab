"""Issue 13: answers in JetBackup 5's shape where a script reads them (conformance review D4, D5, D11).

Logs use JetBackup's type numbers (1 Backup, 2 Download, 3 Restore, 4 System, 5 Reindex) and carry
``info.ID``/``info.Backup Job``, ``start_time``, ``end_time`` and ``execution_time``; queue groups carry
``log_id`` at the top level; ``runBackupJobManually`` names the queue group to poll. Migration 9
renumbers logs stored with the queue's numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.integration.runner_helpers import World, make_tree

from snapkeep.jobs.codes import LogType
from snapkeep.jobs.migrations import m0009_log_types, schema
from snapkeep.jobs.runs import execute_group


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    yield made
    made.close()


def test_logs_and_queue_groups_have_jetbackup_fields(world: World) -> None:
    make_tree(world.source, 1)
    job = world.job()
    queued = world.ok("runBackupJobManually", {"_id": job["_id"]})
    assert queued["running"] == 1
    group_id = queued["queue_group_id"]
    assert execute_group(world.catalog, world.home, group_id, stop=threading.Event()) == 100
    group = world.ok("getQueueGroup", {"_id": group_id})
    assert group["log_id"] == group["data"]["log_id"]
    assert group["job_id"] == job["_id"]
    found = world.ok("listLogs", {"find": {"type": 1, "info.ID": job["_id"]}, "sort": {"start_time": -1}})
    (log,) = found["logs"]
    assert log["_id"] == group["log_id"]
    assert log["info"]["Backup Job"] == job["name"]
    assert log["start_time"] is not None
    assert log["end_time"] is not None
    assert log["execution_time"] >= 0

    backup = world.ok("listBackups", {})["backups"][0]
    download = world.ok("addQueueItems", {"type": 4, "snapshot_id": backup["_id"]})
    assert execute_group(world.catalog, world.home, download["_id"], stop=threading.Event()) == 100
    restore = world.ok(
        "addQueueItems",
        {"type": 2, "snapshot_id": backup["_id"], "options": {"target": str(world.root / "r")}},
    )
    assert execute_group(world.catalog, world.home, restore["_id"], stop=threading.Event()) == 100
    by_type = {
        kind: [log["queue_group_id"] for log in world.ok("listLogs", {"type": kind})["logs"]]
        for kind in (LogType.DOWNLOAD, LogType.RESTORE)
    }
    assert by_type == {LogType.DOWNLOAD: [download["_id"]], LogType.RESTORE: [restore["_id"]]}
    assert (
        world.ok("getLog", {"_id": world.ok("getQueueGroup", {"_id": download["_id"]})["log_id"]})[
            "type_name"
        ]
        == "Download"
    )


def test_migration_9_moves_stored_logs_to_jetbackup_numbers(world: World) -> None:
    logs = schema.logs
    now = world.catalog.clock.now()
    with world.catalog.transaction() as tx:
        for number, old in enumerate((1, 2, 4, 8)):
            tx.connection.execute(
                logs.insert().values(
                    id=f"{number:024x}", type=old, status=1, job_id=None, queue_group_id=None,
                    owner="x", created=now, document={"name": str(old)},
                )
            )  # fmt: skip
        m0009_log_types.upgrade(tx.connection)
        moved = {row.document["name"]: row.type for row in tx.connection.execute(select(logs))}
    assert moved == {"1": 1, "2": 3, "4": 2, "8": 5}


def _hook(world: World, name: str, position: int = 1, data_list: list[str] | None = None) -> dict:
    params = {
        "action": "create",
        "name": name,
        "script": "/bin/true",
        "position_type": 1,
        "position": position,
    }
    return world.ok("manageHook", {**params, "data_list": data_list or []})


def test_hooks_named_on_the_job_are_linked_both_ways(world: World) -> None:
    """Review D7: ``hooks[i]=ID`` on manageBackupJob links, instead of a silent no-op."""
    first, second = world.job(name="first"), world.job(name="second")
    everyone = _hook(world, "for every job")
    only_second = _hook(world, "second's", data_list=[second["_id"]])
    restore = _hook(world, "restore hook", position=2)
    shown = world.ok("getBackupJob", {"_id": first["_id"]})["hooks"]
    assert [hook["_id"] for hook in shown] == [everyone["_id"]]  # not the Restore hook nor second's

    linked = world.ok(
        "manageBackupJob", {"action": "modify", "_id": first["_id"], "hooks": [only_second["_id"]]}
    )
    assert {hook["_id"] for hook in linked["hooks"]} == {everyone["_id"], only_second["_id"]}
    assert world.ok("getHook", {"_id": only_second["_id"]})["data_list"] == [second["_id"], first["_id"]]
    assert world.ok("getHook", {"_id": everyone["_id"]})["data_list"] == []  # still for every job

    before = world.catalog.dump()
    for hooks, message in (
        ([restore["_id"]], "hooks[0]: 'restore hook' is a Restore hook"),
        (["f" * 24], f"hooks[0]: no such hook: {'f' * 24}"),
        (["nothex"], "hooks[0]: must be an ID"),
    ):
        assert world.fails(
            "manageBackupJob", {"action": "modify", "_id": first["_id"], "hooks": hooks}
        ).startswith(message)
    assert world.catalog.dump() == before

    fetched = world.ok("getBackupJob", {"_id": first["_id"]})
    echoed = {key: value for key, value in fetched.items() if key != "_id"}
    assert world.ok("manageBackupJob", {"action": "modify", "_id": first["_id"], **echoed}) == fetched

    world.ok("manageBackupJob", {"action": "modify", "_id": second["_id"], "hooks": []})
    left = world.ok("getHook", {"_id": only_second["_id"]})
    assert (left["data_list"], left["disabled"]) == ([first["_id"]], None)
    world.ok("manageBackupJob", {"action": "modify", "_id": first["_id"], "hooks": [everyone["_id"]]})
    emptied = world.ok("getHook", {"_id": only_second["_id"]})
    assert (emptied["data_list"], emptied["disabled"]) == ([], 1), "an emptied list must not mean every job"


def test_jobs_named_on_the_schedule_are_linked_both_ways(world: World) -> None:
    """Review D7: ``jobs[i]=ID`` on manageSchedule links the jobs, as API.md section 5 says."""
    first, second = world.job(name="first"), world.job(name="second")
    nightly = world.ok(
        "manageSchedule", {"action": "create", "name": "Nightly", "type": 2, "type_data": [1, 2, 3]}
    )
    linked = world.ok("manageSchedule", {"action": "modify", "_id": nightly["_id"], "jobs": [first["_id"]]})
    assert (linked["count"], [job["_id"] for job in linked["jobs"]]) == (1, [first["_id"]])
    schedules = world.ok("getBackupJob", {"_id": first["_id"]})["schedules"]
    assert [(link["_id"], link["retain"]) for link in schedules] == [(nightly["_id"], 7)]
    moved = world.ok(
        "manageSchedule",
        {"action": "modify", "_id": nightly["_id"], "jobs": [{"_id": second["_id"], "name": "x"}]},
    )
    assert [job["_id"] for job in moved["jobs"]] == [second["_id"]]
    assert world.ok("getBackupJob", {"_id": first["_id"]})["schedules"] == []
    message = world.fails("manageSchedule", {"action": "modify", "_id": nightly["_id"], "jobs": ["f" * 24]})
    assert message == f"jobs[0]: no such Backup Job: {'f' * 24}"
    created = world.ok(
        "manageSchedule",
        {"action": "create", "name": "Weekly", "type": 3, "type_data": [1], "jobs": [first["_id"]]},
    )
    assert [job["_id"] for job in created["jobs"]] == [first["_id"]]


def test_jetbackup_fields_are_ignored_with_a_warning_and_unknown_ones_refused(world: World) -> None:
    """Review D3: fields JetBackup defines and snapkeep does not implement are named, not fatal."""
    world.source.mkdir()  # (a missing folder would add its own warning)
    destination = world.destination()
    params = {
        "action": "create",
        "name": "jb",
        "type": 2,
        "contains": 511,
        "structure": 1,
        "destination": [destination["_id"]],
        "include_list": [str(world.source)],
    }
    answer = world.api.call("manageBackupJob", {**params, "immutable": 1, "postgresql_exclude_db_by_size": 0})
    assert answer["success"] == 1, answer["message"]
    assert answer["warnings"] == [
        "postgresql_exclude_db_by_size: a JetBackup field snapkeep does not implement; ignored",
        "immutable: a JetBackup field snapkeep does not implement; ignored",
    ]
    assert "immutable" not in answer["data"]
    assert world.fails("manageBackupJob", {**params, "imutable": 1}) == "imutable: unknown field"
    assert "warnings" not in world.api.call("listBackupJobs", {})


def test_everything_a_get_answers_can_be_sent_back_to_its_manage(world: World) -> None:
    """Issue 13 section 2: read-modify-write of every managed object (read-only fields ignored)."""
    job = world.job()
    schedule = world.ok(
        "manageSchedule", {"action": "create", "name": "N", "type": 2, "type_data": [1], "jobs": [job["_id"]]}
    )
    hook = _hook(world, "h", data_list=[job["_id"]])
    group = world.ok("manageAccountFilter", {"action": "create", "name": "f", "type": 2, "list": ["bob"]})
    for kind, ident in (
        ("BackupJob", job["_id"]),
        ("Destination", job["destination"][0]),
        ("Schedule", schedule["_id"]),
        ("Hook", hook["_id"]),
        ("AccountFilter", group["_id"]),
    ):
        fetched = world.ok(f"get{kind}", {"_id": ident})
        echoed = {key: value for key, value in fetched.items() if key != "_id"}
        answer = world.api.call(f"manage{kind}", {"action": "modify", "_id": ident, **echoed})
        assert answer["success"] == 1, (kind, answer["message"])
        assert world.ok(f"get{kind}", {"_id": ident}) == fetched, kind


def test_the_queue_log_filter_and_backup_functions_a_script_calls(world: World) -> None:
    """Issue 13 section 5: getQueueItem, clearQueue, stopAllQueueGroup, getLogItem, deleteLog,
    listAccountFilterGroups, getAccountFilterGroup, getBackupItem."""
    make_tree(world.source, 1)
    job = world.job()
    status, group = world.run(job)
    assert status == 100
    (item,) = world.ok("listQueueItems", {"group_id": group["_id"]})["items"]
    assert world.ok("getQueueItem", {"_id": item["_id"]})["group_id"] == group["_id"]
    line = world.ok("listLogItems", {"log_id": group["log_id"]})["items"][0]
    assert world.ok("getLogItem", {"_id": line["_id"]}) == line

    backup = world.ok("listBackups")["backups"][0]
    folders = world.ok("getBackupItems", {"_id": backup["_id"]})["items"][0]
    assert world.ok("getBackupItem", {"_id": folders["_id"]}) == folders
    assert world.ok("getBackupItem", {"_id": backup["_id"]})["_id"] == backup["_id"]
    download = world.ok("addQueueItems", {"type": 4, "snapshot_id": backup["_id"]})
    assert execute_group(world.catalog, world.home, download["_id"], stop=threading.Event()) == 100
    pending = world.ok("runBackupJobManually", {"_id": job["_id"]})["queue_group_id"]

    cleared = world.ok("clearQueue")
    assert cleared["groups"] == [group["_id"]], "finished runs go; the download and the pending run stay"
    remaining = {g["_id"] for g in world.ok("listQueueGroups")["groups"]}
    assert remaining == {download["_id"], pending}
    stopped = world.ok("stopAllQueueGroup")
    assert [g["_id"] for g in stopped["groups"]] == [pending]
    assert world.ok("getQueueGroup", {"_id": pending})["status"] == 103

    world.ok("deleteLog", {"_id": group["log_id"]})
    assert world.fails("getLog", {"_id": group["log_id"]}) == f"Log not found: {group['log_id']}"
    assert not (world.home / "logs" / f"{group['log_id']}.log").exists()

    first = world.ok("manageAccountFilter", {"action": "create", "name": "a", "type": 2, "list": ["bob"]})
    world.ok(
        "manageAccountFilter", {"action": "create", "name": "b", "type": 8, "group_id": first["group_id"]}
    )
    groups = world.ok("listAccountFilterGroups")["groups"]
    assert [(g["_id"], [f["name"] for f in g["filters"]]) for g in groups] == [
        (first["group_id"], ["a", "b"])
    ]
    assert world.ok("getAccountFilterGroup", {"_id": first["group_id"]}) == groups[0]


def test_accounts_have_a_stable_id_beside_their_username(world: World) -> None:
    """Issue 13 section 6: a 24-hex ``_id`` per account; ``_id``/``account_id`` parameters take it or
    the username; flags are 1 or null."""
    inventory = world.root / "inventory.toml"
    inventory.write_text(
        f'[[account]]\nusername = "alice"\nhome = "{world.root}"\nsuspended = true\n'
        f'[[account]]\nusername = "bob"\nhome = "{world.root}"\n'
    )
    (world.home / "config.toml").write_text(
        f'[accounts]\nprovider = "inventory"\ninventory = "{inventory}"\n'
    )
    alice, bob = world.ok("listAccounts")["accounts"]
    assert (alice["name"], bob["name"]) == ("alice", "bob")
    assert len(alice["_id"]) == 24
    assert int(alice["_id"], 16) >= 0
    assert alice["_id"] != bob["_id"]
    assert (alice["suspended"], bob["suspended"], alice["reseller"]) == (1, None, None)
    assert world.ok("getAccount", {"_id": alice["_id"]}) == world.ok("getAccount", {"_id": "alice"}) == alice
    assert world.ok("listAccounts")["accounts"][0]["_id"] == alice["_id"], "stable across calls"
    assert world.fails("getAccount", {"_id": "f" * 24}) == f"Account not found: {'f' * 24}"


def test_download_hooks_run_for_downloads_and_restore_hooks_for_restores(
    world: World, trusted_dir: Path
) -> None:
    """Issue 13 section 7: Download hooks (position 4) are in scope."""
    marker = world.root / "hooks.txt"
    script = trusted_dir / "note.sh"
    script.write_text(f'#!/bin/sh\necho "$0 $1" >> {marker}\n')
    script.chmod(0o755)
    make_tree(world.source, 1)
    job = world.job()
    world.ok(
        "manageHook",
        {"action": "create", "name": "dl", "script": str(script), "position_type": 1, "position": 4},
    )
    assert world.run(job)[0] == 100
    backup = world.ok("listBackups")["backups"][0]
    restore = world.ok(
        "addQueueItems",
        {"type": 2, "snapshot_id": backup["_id"], "options": {"target": str(world.root / "r")}},
    )
    assert execute_group(world.catalog, world.home, restore["_id"], stop=threading.Event()) == 100
    assert not marker.exists(), "a Download hook does not run for a restore"
    download = world.ok("addQueueItems", {"type": 4, "snapshot_id": backup["_id"]})
    assert execute_group(world.catalog, world.home, download["_id"], stop=threading.Event()) == 100
    assert marker.read_text().splitlines() == [f"{script} {job['_id']}"]
