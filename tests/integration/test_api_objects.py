"""Destinations, schedules, hooks, account filters and the dispatcher itself, on both backends."""

from __future__ import annotations

from typing import Any

import pytest

import snapkeep.api
from snapkeep.jobs import destinations, sealing
from snapkeep.jobs.models.destination import SECRET_MASK

SFTP = {"host": "backup.example", "username": "keeper", "password": "s3cret!", "path": "backups"}
S3 = {
    "bucket": "my-bucket",
    "access_key": "AKIA1",
    "secret_key": "topsecret",
    "endpoint": "http://127.0.0.1:9000",
}


def test_secrets_are_masked_and_the_mask_keeps_them(make: Any, catalog: Any) -> None:
    created = make.ok(
        "manageDestination", {"action": "create", "name": "Remote", "type": "sftp", "options": SFTP}
    )
    assert created["type"] == "SFTP"
    assert created["options"]["password"] == SECRET_MASK
    assert created["options"]["port"] == 22
    assert "s3cret!" not in str(make.ok("listDestinations"))
    modified = make.ok(
        "manageDestination",
        {"action": "modify", "_id": created["_id"], "options": {**created["options"], "path": "elsewhere"}},
    )
    assert modified["options"]["path"] == "elsewhere"
    assert modified["options"]["password"] == SECRET_MASK
    stored = next(row for row in catalog.dump()["destinations"] if row["id"] == created["_id"])
    assert sealing.is_sealed(stored["document"]["options"]["password"])  # sealed at rest
    assert destinations.open_options("SFTP", stored["document"]["options"])["password"] == "s3cret!"
    make.ok(
        "manageDestination",
        {"action": "modify", "_id": created["_id"], "options": {**SFTP, "password": "new"}},
    )
    stored = next(row for row in catalog.dump()["destinations"] if row["id"] == created["_id"])
    assert destinations.open_options("SFTP", stored["document"]["options"])["password"] == "new"


def test_s3_options_are_validated_and_masked(make: Any, api: Any) -> None:
    created = make.ok(
        "manageDestination", {"action": "create", "name": "Bucket", "type": "S3", "options": S3}
    )
    assert created["options"]["secret_key"] == SECRET_MASK
    assert created["options"]["region"] == "us-east-1"
    answer = api.call(
        "manageDestination",
        {"action": "create", "name": "B", "type": "S3", "options": {**S3, "secret_key": ""}},
    )
    assert "options[secret_key]" in answer["message"]
    answer = api.call(
        "manageDestination",
        {"action": "create", "name": "B", "type": "S3", "options": {**S3, "endpoint": "ftp://x"}},
    )
    assert "options[endpoint]: must be an http:// or https:// URL" in answer["message"]


def test_destination_option_errors_name_the_option(api: Any) -> None:
    answer = api.call("manageDestination", "action=create&name=L&type=Local&options[path]=relative")
    assert "options[path]: must be an absolute path" in answer["message"]
    answer = api.call(
        "manageDestination",
        {"action": "create", "name": "S", "type": "SFTP", "options": {**SFTP, "port": "0"}},
    )
    assert "options[port]: must be at least 1" in answer["message"]
    sftp = {key: value for key, value in SFTP.items() if key != "password"}
    answer = api.call("manageDestination", {"action": "create", "name": "S", "type": "SFTP", "options": sftp})
    assert "options[password]: an SFTP destination needs a password or a privatekey" in answer["message"]
    answer = api.call("manageDestination", {"action": "create", "name": "F", "type": "Gopher"})
    assert "type: must be one of Local, SFTP, S3 or FTP" in answer["message"]


def test_destination_flags_counts_and_limits(make: Any, api: Any) -> None:
    destination = make.ok(
        "manageDestination",
        "action=create&name=D&type=Local&options[path]=/srv&readonly=1&threads=4&disk_limit=90",
    )
    assert (destination["readonly"], destination["disabled"], destination["threads"]) == (1, None, 4)
    assert set(destination["disk_usage"]) == {"usage", "free", "total"}
    make.job(destination=destination)
    assert make.ok("getDestination", {"_id": destination["_id"]})["count"] == 1
    answer = api.call(
        "manageDestination", {"action": "modify", "_id": destination["_id"], "disk_limit": "101"}
    )
    assert "disk_limit: must be at most 100" in answer["message"]


def test_destination_types_describe_their_options(make: Any) -> None:
    data = make.ok("listDestinationTypes")
    assert [item["type"] for item in data["types"]] == ["Local", "SFTP", "S3", "FTP"]
    sftp = {option["name"]: option for option in data["types"][1]["options"]}
    assert sftp["password"]["secret"] == 1
    assert sftp["host"]["required"] == 1
    assert sftp["port"]["type"] == "integer"


@pytest.mark.parametrize(
    ("query", "type_data"),
    [
        ("type=1&type_data=6", 6),
        ("type=2&type_data[]=7&type_data[]=1", [1, 7]),
        ("type=3&type_data=4", 4),
        ("type=4&type_data[]=31&type_data[]=1", [1, 31]),
    ],
)
def test_schedule_types_store_their_type_data(make: Any, query: str, type_data: Any) -> None:
    schedule = make.ok("manageSchedule", f"action=create&name=S&{query}")
    assert schedule["type_data"] == type_data
    assert schedule["count"] == 0
    assert schedule["jobs"] == []


def test_after_job_schedule_needs_an_existing_job(make: Any, api: Any) -> None:
    job = make.job()
    schedule = make.schedule(name="After", type=5, type_data=job["_id"], delay_amount=10, delay_type=2)
    assert (schedule["type_data"], schedule["delay_amount"], schedule["delay_type"]) == (job["_id"], 10, 2)
    answer = api.call("manageSchedule", {"action": "create", "name": "A", "type": 5, "type_data": "0" * 24})
    assert "type_data: no such Backup Job" in answer["message"]


def test_schedule_lists_the_jobs_using_it(make: Any, api: Any) -> None:
    schedule = make.schedule()
    job = make.job(schedules=[{"_id": schedule["_id"]}])
    assert job["schedules"][0]["retain"] == 7
    got = make.ok("getSchedule", {"_id": schedule["_id"]})
    assert got["count"] == 1
    assert got["jobs"] == [{"_id": job["_id"], "name": job["name"]}]
    answer = api.call("manageSchedule", {"action": "modify", "_id": schedule["_id"], "type": 1})
    assert "type_data: must be one of 1, 2, 3, 4, 6, 8 or 12" in answer["message"]
    assert (
        make.ok("manageSchedule", {"action": "modify", "_id": schedule["_id"], "type": 1, "type_data": 12})[
            "type_data"
        ]
        == 12
    )


def test_hooks_are_validated(make: Any, api: Any) -> None:
    hook = make.ok("manageHook", "action=create&name=Notify&script=/bin/true&position_type=2&position=8")
    assert (hook["timeout"], hook["disabled"], hook["data_list"]) == (3600, None, [])
    job = make.job()
    assert make.ok("getBackupJob", {"_id": job["_id"]})["hooks"] == [{"_id": hook["_id"], "name": "Notify"}]
    answer = api.call("manageHook", {"action": "modify", "_id": hook["_id"], "data_list": ["0" * 24]})
    assert "data_list[0]: no such Backup Job" in answer["message"]
    answer = api.call("manageHook", {"action": "modify", "_id": hook["_id"], "position": "3"})
    assert (
        "position: must be one of 1 (Backup), 2 (Restore), 4 (Download), 8 (Backup Account) or 5 (Reindex)"
        in answer["message"]
    )
    make.ok("deleteHook", {"_id": hook["_id"]})
    assert make.ok("listHooks")["total"] == 0


def test_account_filters_form_groups(make: Any, api: Any) -> None:
    first = make.ok("manageAccountFilter", "action=create&name=Some&type=2&list[]=alice&list[]=bob")
    second = make.ok(
        "manageAccountFilter", f"action=create&name=Active&type=8&condition=2&group_id={first['group_id']}"
    )
    alone = make.ok("manageAccountFilter", "action=create&name=Range&type=128&range_start=a&range_end=m")
    assert second["group_id"] == first["group_id"] != alone["group_id"]
    job = make.job(filters=[[first["group_id"], alone["group_id"]]])
    assert job["filters"] == [[first["group_id"], alone["group_id"]]]
    make.ok("deleteAccountFilter", {"_id": second["_id"]})  # the group keeps a filter
    answer = api.call("deleteAccountFilter", {"_id": first["_id"]})
    assert answer["success"] == 0
    assert job["_id"] in answer["message"]
    answer = api.call(
        "manageAccountFilter", {"action": "create", "name": "x", "type": 8, "group_id": "0" * 24}
    )
    assert "group_id: no such account filter group" in answer["message"]
    answer = api.call("manageAccountFilter", {"action": "create", "name": "x", "type": 256, "regex": "("})
    assert "regex: is not a valid regular expression" in answer["message"]
    assert make.ok("listAccountFilters", "find[type]=128")["filters"] == [alone]


def test_job_filters_must_name_existing_groups(make: Any, api: Any) -> None:
    destination = make.destination()
    answer = api.call(
        "manageBackupJob",
        {
            "action": "create", "name": "J", "type": 1, "destination": [destination["_id"]],
            "contains": 1, "structure": 1, "filters": [["0" * 24]],
        },
    )  # fmt: skip
    assert "filters[0][0]: no such account filter group" in answer["message"]


def test_flat_bracket_pairs_are_decoded_by_the_dispatcher(make: Any) -> None:
    destination = make.destination()
    job = make.ok(
        "manageBackupJob",
        {
            "action": "create", "name": "Flat", "type": "2", "destination[0]": destination["_id"],
            "contains": "511", "structure": "2", "include_list[]": ["/a", "/b"], "api": "1",
        },
    )  # fmt: skip
    assert job["include_list"] == ["/a", "/b"]


def test_unknown_function_answers_with_a_suggestion(api: Any) -> None:
    answer = api.call("listBackupJob", {})
    assert answer["success"] == 0
    assert "did you mean listBackupJobs?" in answer["message"]
    assert answer["system"]["tier"] == "STABLE"
    assert answer["system"]["licenseIssue"] == 0


def test_module_level_call_uses_the_default_catalog(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("SNAPKEEP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SNAPKEEP_CATALOG_URL", raising=False)
    monkeypatch.setattr(snapkeep.api, "_default", None)
    answer = snapkeep.api.call("listBackupJobs", {"limit": 10})
    assert answer["success"] == 1
    assert answer["data"] == {"jobs": [], "total": 0}
    assert (tmp_path / "home" / "catalog.db").exists()
    snapkeep.api.default_api().catalog.close()
