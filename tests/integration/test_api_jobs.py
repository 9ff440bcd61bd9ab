"""The six Backup Job functions and the list parameters, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from snapkeep.api.dispatch import FUNCTIONS


def test_create_returns_the_whole_job_with_derived_fields(make: Any) -> None:
    destination = make.destination(name="Disk A")
    schedule = make.schedule(name="Nightly")
    make.ok("manageSettingsGeneral", {"timezone": "UTC"})
    job = make.job(
        destination=destination,
        schedules=[{"_id": schedule["_id"], "retain": "3"}],
        time="0200",
        monitor={"notran": "2"},
        encrypted="1",
    )
    assert job["destination_name"] == ["Disk A"]
    # next_run is computed on save (the clock reads 2026-03-01 12:00 UTC), as the scheduler would
    tomorrow = "2026-03-02T02:00:00+00:00"
    assert job["schedules"] == [
        {"_id": schedule["_id"], "name": "Nightly", "type": 2, "next_run": tomorrow, "retain": 3}
    ]
    assert job["time"] == 200
    assert job["monitor"] == {"notran": 2, "ranfor": 0}
    assert (job["encrypted"], job["running"], job["disabled"]) == (1, None, None)
    assert (job["retry_failed"], job["manually_retain"]) == (0, 14)
    assert (job["owner"], job["owner_name"]) == ("000000000000000000000000", "root")
    assert job["last_run"] is None
    assert job["next_run"] == tomorrow
    assert make.ok("getBackupJob", {"_id": job["_id"]}) == job
    disabled = make.ok("manageBackupJob", {"action": "modify", "_id": job["_id"], "disabled": "1"})
    assert disabled["next_run"] is None
    assert disabled["schedules"][0]["next_run"] is None


def test_create_through_a_query_string(make: Any) -> None:
    destination = make.destination()
    job = make.ok(
        "manageBackupJob",
        f"action=create&name=Daily%20Backup&type=2&destination[0]={destination['_id']}&contains=511&structure=4"
        "&include_list[0]=%2Fvar%2Fwww"
        "&exclude_list[]=*.log&exclude_list[]=%2Ftmp%2F**",
    )
    assert job["name"] == "Daily Backup"
    assert job["structure"] == 4
    assert job["exclude_list"] == ["*.log", "/tmp/**"]


def test_modify_changes_only_the_given_fields_and_replaces_lists(make: Any, api: Any) -> None:
    job = make.job(exclude_list=["*.log", "*.tmp"])
    answer = api.call("manageBackupJob", {"action": "modify", "_id": job["_id"], "name": "Renamed"})
    assert answer["message"] == "Backup Job Modified Successfully"
    assert answer["data"] == {**job, "name": "Renamed"}
    changed = make.ok("manageBackupJob", f"action=modify&_id={job['_id']}&exclude_list[0]=*.bak")
    assert changed["exclude_list"] == ["*.bak"]
    cleared = make.ok("manageBackupJob", f"action=modify&_id={job['_id']}&exclude_list=")
    assert cleared["exclude_list"] == []
    assert cleared["include_list"] == job["include_list"]


def test_read_only_fields_sent_back_are_ignored(make: Any) -> None:
    job = make.job()
    echoed = {key: value for key, value in job.items() if value is not None}
    again = make.ok("manageBackupJob", {**echoed, "action": "modify"})
    assert again == job


def test_duplicate_makes_a_disabled_copy(make: Any, api: Any) -> None:
    job = make.job(name="Sites")
    copy = make.ok("duplicateBackupJob", {"_id": job["_id"]})
    assert copy["_id"] != job["_id"]
    millis = int(api.clock.time() * 1000)
    assert copy["name"].startswith("Sites - ")
    assert abs(int(copy["name"].split(" - ")[1]) - millis) < 1000
    assert copy["disabled"] == 1
    assert copy["last_run"] is None
    assert copy["next_run"] is None
    same = {key: value for key, value in job.items() if key not in ("_id", "name", "disabled")}
    assert {key: value for key, value in copy.items() if key in same} == same


def test_run_manually_queues_a_group_and_sets_running(make: Any, api: Any) -> None:
    job = make.job()
    answer = api.call("runBackupJobManually", {"_id": job["_id"]})
    assert answer["success"] == 1
    assert "queued" in answer["message"]
    assert answer["data"]["running"] == 1
    groups = make.ok("listQueueGroups", f"type=1&find[data._id]={job['_id']}")
    assert groups["total"] == 1
    group = groups["groups"][0]
    assert (group["type"], group["status"], group["data"]["_id"]) == (1, 1, job["_id"])
    assert group["created"].endswith("+00:00")
    assert make.ok("getQueueGroup", {"_id": group["_id"]}) == group
    assert make.ok("listQueueGroups", "type=2")["total"] == 0
    assert make.ok("getBackupJob", {"_id": job["_id"]})["running"] == 1


def test_delete_removes_the_job_and_frees_its_destination(make: Any) -> None:
    destination = make.destination()
    job = make.job(destination=destination)
    hook = make.ok(
        "manageHook",
        {
            "action": "create",
            "name": "h",
            "script": "/bin/true",
            "position_type": 1,
            "position": 1,
            "data_list": [job["_id"]],
        },
    )
    assert make.ok("deleteBackupJob", {"_id": job["_id"]}) == {"_id": job["_id"]}
    assert make.ok("listBackupJobs")["total"] == 0
    orphan = make.ok("getHook", {"_id": hook["_id"]})
    assert orphan["data_list"] == []
    assert orphan["disabled"] == 1
    make.ok("deleteDestination", {"_id": destination["_id"]})


def test_delete_is_refused_while_an_after_job_schedule_waits_on_it(make: Any, api: Any) -> None:
    job = make.job()
    make.schedule(name="Chained", type=5, type_data=job["_id"])
    answer = api.call("deleteBackupJob", {"_id": job["_id"]})
    assert answer["success"] == 0
    assert "'Chained'" in answer["message"]


@pytest.fixture
def three_jobs(make: Any) -> list[dict[str, Any]]:
    destination = make.destination()
    return [
        make.job(name="beta", destination=destination, structure=2, monitor={"notran": 1}),
        make.job(name="Alpha", destination=destination, structure=1, monitor={"notran": 5}),
        make.job(name="gamma", destination=destination, structure=1, monitor={"notran": 3}, disabled=1),
    ]


def names(data: dict[str, Any]) -> list[str]:
    return [job["name"] for job in data["jobs"]]


def test_list_defaults_and_total(make: Any, three_jobs: list[dict[str, Any]]) -> None:
    data = make.ok("listBackupJobs")
    assert names(data) == ["beta", "Alpha", "gamma"]
    assert data["total"] == 3


def test_list_limit_skip_keep_the_total(make: Any, three_jobs: list[dict[str, Any]]) -> None:
    data = make.ok("listBackupJobs", "sort[name]=1&limit=1&skip=1")
    assert names(data) == ["beta"]
    assert data["total"] == 3
    assert len(make.ok("listBackupJobs", "limit=0")["jobs"]) == 3


def test_list_sorts_by_several_fields_in_order(make: Any, three_jobs: list[dict[str, Any]]) -> None:
    assert names(make.ok("listBackupJobs", "sort[structure]=1&sort[name]=-1")) == ["gamma", "Alpha", "beta"]
    assert names(make.ok("listBackupJobs", "sort[monitor.notran]=-1")) == ["Alpha", "gamma", "beta"]


def test_list_find_matches_dotted_paths_and_flags(make: Any, three_jobs: list[dict[str, Any]]) -> None:
    assert names(make.ok("listBackupJobs", "find[monitor.notran]=3")) == ["gamma"]
    assert names(make.ok("listBackupJobs", "find[monitor][notran]=5")) == ["Alpha"]
    assert names(make.ok("listBackupJobs", "find[disabled]=1")) == ["gamma"]
    destination = three_jobs[0]["destination"][0]
    assert make.ok("listBackupJobs", f"find[destination]={destination}")["total"] == 3


def test_list_filter_is_a_case_insensitive_name_match(make: Any, three_jobs: list[dict[str, Any]]) -> None:
    assert names(make.ok("listBackupJobs", "filter=ALP")) == ["Alpha"]
    assert make.ok("listBackupJobs", "filter=a")["total"] == 3


def test_list_parameters_are_validated(api: Any, three_jobs: list[dict[str, Any]]) -> None:
    assert "limit: must be at least 0" in api.call("listBackupJobs", {"limit": "-1"})["message"]
    assert (
        "sort[name]: must be 1 (ascending) or -1 (descending)"
        in api.call("listBackupJobs", {"sort": {"name": "up"}})["message"]
    )
    assert "bogus: unknown field" in api.call("listBackupJobs", {"bogus": "1"})["message"]


def test_every_function_of_the_issue_is_in_the_table() -> None:
    expected = {
        "manageBackupJob", "getBackupJob", "listBackupJobs", "duplicateBackupJob", "runBackupJobManually",
        "deleteBackupJob", "listDestinationTypes", "listQueueGroups", "getQueueGroup",
        "listAlerts", "getAlert", "clearAlerts",
        # issue 4: runs, logs, backups, restores, settings
        "listQueueItems", "stopQueueGroup", "rerunFailedQueueGroup", "listLogs", "getLog", "listLogItems",
        "listBackups", "getBackupItems", "manageBackupLock", "deleteSnapshot", "addQueueItems",
        "getSettingsPerformance", "manageSettingsPerformance", "validateDestination",
        # issue 6: accounts
        "listAccounts", "getAccount", "listBackupForAccounts",
        # issue 9: settings in one place
        "getSettingsGeneral", "manageSettingsGeneral",
        "getSettingsNotification", "manageSettingsNotification",
        # issue 10: the scheduled integrity check
        "getSettingsIntegrity", "manageSettingsIntegrity",
        # issue 10: a destination's backups back into the catalog
        "reindexDestination",
        # issue 10: the download behind GET /download/GROUP_ID
        "downloadBackupFile",
        # issue 11: users, roles and their tokens
        "manageUser", "getUser", "listUsers", "deleteUser", "createToken", "listTokens", "revokeToken",
        # issue 13: what a JetBackup admin script calls around jobs
        "getQueueItem", "clearQueue", "stopAllQueueGroup", "getLogItem", "deleteLog",
        "listAccountFilterGroups", "getAccountFilterGroup", "getBackupItem", "listBackupForType",
        "listBackupForTypeName", "listAccountsByFilters", "deleteAccountSnapshots",
        "addMultiAccountQueueItems", "manageAccountExcludeList", "getAccountExcludeList",
        # issue 15: the web panel's lazy file chooser
        "listBackupFiles",
        # issue 16: the nodes sharing the catalog
        "listNodes", "getNode", "deleteNode",
    }  # fmt: skip
    for kind in ("Destination", "Schedule", "Hook", "AccountFilter"):
        expected |= {f"manage{kind}", f"get{kind}", f"list{kind}s", f"delete{kind}"}
    assert expected == set(FUNCTIONS)
    for spec in FUNCTIONS.values():
        assert spec.summary
        for parameter in spec.parameters:
            assert parameter.type in {"string", "integer", "boolean", "array", "object", "any"}
