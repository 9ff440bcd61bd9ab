"""Every bad input of issue 2: ``success: 0``, a message naming the field, and the catalog unchanged.

Each test compares a dump of every table's rows before and after the call. They run on SQLite and on
PostgreSQL (the ``catalog`` fixture is parametrized over both).
"""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from snapkeep.api.dispatch import Api
from snapkeep.api.params import decode_query
from snapkeep.cli.main import cli
from snapkeep.errors import ParameterError
from snapkeep.jobs.catalog import Catalog

MISSING_ID = "0123456789abcdef01234567"


@pytest.fixture
def world(make: Any) -> dict[str, Any]:
    destination = make.destination()
    schedule = make.schedule()
    group = make.ok(
        "manageAccountFilter", {"action": "create", "name": "bob only", "type": 2, "list": ["bob"]}
    )
    job = make.job(
        destination=destination,
        schedules=[{"_id": schedule["_id"], "retain": 7}],
        filters=[[group["group_id"]]],
    )
    return {"destination": destination, "schedule": schedule, "filter": group, "job": job}


def refused(api: Api, catalog: Catalog, function: str, params: Any, *needles: str) -> str:
    if isinstance(params, str):
        params = decode_query(params)
    before = catalog.dump()
    answer = api.call(function, params)
    assert answer["success"] == 0, answer
    assert answer["data"] == {}
    for needle in needles:
        assert needle in answer["message"], answer["message"]
    assert catalog.dump() == before
    return str(answer["message"])


def job_params(world: dict[str, Any], **changes: Any) -> dict[str, Any]:
    params = {
        "action": "create",
        "name": "New",
        "type": "2",
        "destination": [world["destination"]["_id"]],
        "contains": "511",
        "structure": "1",
        "include_list": ["/srv"],
    }
    params.update(changes)
    return {key: value for key, value in params.items() if value is not None}


def test_missing_required_field_on_create(api, catalog, world) -> None:
    refused(api, catalog, "manageBackupJob", job_params(world, name=None), "name: is required")


def test_wrong_type(api, catalog, world) -> None:
    refused(api, catalog, "manageBackupJob", job_params(world, type="abc"), "type: must be 1 (Accounts) or 2")


def test_structure_outside_the_enum(api, catalog, world) -> None:
    refused(
        api,
        catalog,
        "manageBackupJob",
        job_params(world, structure="3"),
        "structure: must be one of 1 (Incremental), 2 (Archived) or 4 (Compressed)",
    )


def test_type_outside_the_enum(api, catalog, world) -> None:
    refused(api, catalog, "manageBackupJob", job_params(world, type="9"), "type: must be", "(got '9')")


def test_hourly_type_data_outside_the_enum(api, catalog, world) -> None:
    refused(
        api,
        catalog,
        "manageSchedule",
        "action=create&name=H&type=1&type_data=5",
        "type_data: must be one of 1, 2, 3",
    )


def test_weekday_8_on_a_weekly_schedule(api, catalog, world) -> None:
    refused(
        api,
        catalog,
        "manageSchedule",
        "action=create&name=W&type=3&type_data=8",
        "type_data:",
        "7 (Saturday)",
    )


def test_weekday_8_on_a_daily_schedule(api, catalog, world) -> None:
    refused(
        api,
        catalog,
        "manageSchedule",
        "action=create&name=D&type=2&type_data[]=1&type_data[]=8",
        "type_data[1]:",
    )


def test_unknown_field(api, catalog, world) -> None:
    refused(api, catalog, "manageBackupJob", job_params(world, colour="blue"), "colour: unknown field")


def test_destination_that_does_not_exist(api, catalog, world) -> None:
    refused(
        api,
        catalog,
        "manageBackupJob",
        job_params(world, destination=[MISSING_ID]),
        "destination[0]: no such destination",
    )


def test_schedule_that_does_not_exist(api, catalog, world) -> None:
    params = job_params(world, schedules=[{"_id": MISSING_ID, "retain": "3"}])
    refused(api, catalog, "manageBackupJob", params, "schedules[0][_id]: no such schedule")


def test_negative_retain(api, catalog, world) -> None:
    params = job_params(world, schedules=[{"_id": world["schedule"]["_id"], "retain": "-1"}])
    refused(api, catalog, "manageBackupJob", params, "schedules[0][retain]: must be at least 1")


def test_invalid_exclude_glob_is_refused_when_saved(api, catalog, world) -> None:
    """Attack report LOW-13: ``[z-a]`` was accepted and failed only when the job ran."""
    params = job_params(world, exclude_list=["*.tmp", "[z-a]"])
    refused(
        api,
        catalog,
        "manageBackupJob",
        params,
        "exclude_list[1]: is not a valid glob: bad character range z-a",
    )


def test_relative_path_in_include_list(api, catalog, world) -> None:
    params = job_params(world, include_list=["/srv", "home/site"])
    refused(api, catalog, "manageBackupJob", params, "include_list[1]: must be an absolute path")


def test_id_that_does_not_exist(api, catalog, world) -> None:
    refused(api, catalog, "getBackupJob", {"_id": MISSING_ID}, f"Backup Job not found: {MISSING_ID}")
    refused(api, catalog, "deleteDestination", {"_id": MISSING_ID}, f"Destination not found: {MISSING_ID}")
    params = {"action": "modify", "_id": MISSING_ID, "name": "x"}
    refused(api, catalog, "manageBackupJob", params, f"Backup Job not found: {MISSING_ID}")


@pytest.mark.parametrize("bad", ["xyz", "0123456789ABCDEF01234567", "01234", "g" * 24])
def test_id_that_is_not_24_hex(api, catalog, world, bad: str) -> None:
    refused(api, catalog, "getBackupJob", {"_id": bad}, "_id: must be an ID of 24 lowercase hex characters")


def test_hex_shorter_than_an_id_is_an_abbreviation_that_may_match_nothing(api, catalog, world) -> None:
    """6 to 23 hex characters are an ID's start or end (docs/api-decisions.md, abbreviated IDs)."""
    short = "0123456789abcdef0123456"
    refused(api, catalog, "getBackupJob", {"_id": short}, f"Backup Job not found: {short}")


def test_modify_without_id(api, catalog, world) -> None:
    refused(api, catalog, "manageBackupJob", {"action": "modify", "name": "x"}, "_id: is required")


def test_missing_action(api, catalog, world) -> None:
    refused(api, catalog, "manageDestination", {"name": "x"}, "action: is required")
    refused(api, catalog, "manageDestination", {"action": "remove"}, "action: must be create or modify")


def test_delete_of_a_destination_a_job_uses(api, catalog, world) -> None:
    job = world["job"]
    refused(
        api,
        catalog,
        "deleteDestination",
        {"_id": world["destination"]["_id"]},
        "is used by Backup Jobs",
        job["_id"],
    )


def test_delete_of_a_schedule_a_job_uses(api, catalog, world) -> None:
    job = world["job"]
    refused(
        api,
        catalog,
        "deleteSchedule",
        {"_id": world["schedule"]["_id"]},
        "is used by Backup Jobs",
        "'Sites'",
        job["_id"],
    )


def test_delete_of_a_filter_group_a_job_uses(api, catalog, world) -> None:
    job = world["job"]
    refused(
        api,
        catalog,
        "deleteAccountFilter",
        {"_id": world["filter"]["_id"]},
        "used by Backup Jobs",
        job["_id"],
    )


def test_delete_of_a_running_job(api, catalog, world, make) -> None:
    make.ok("runBackupJobManually", {"_id": world["job"]["_id"]})
    refused(api, catalog, "deleteBackupJob", {"_id": world["job"]["_id"]}, "'Sites'", "is running")


def test_run_of_a_job_that_is_already_running(api, catalog, world, make) -> None:
    make.ok("runBackupJobManually", {"_id": world["job"]["_id"]})
    refused(api, catalog, "runBackupJobManually", {"_id": world["job"]["_id"]}, "already running")


@pytest.mark.parametrize("name", ["a[0", "a[0]["])
def test_malformed_brackets(api, catalog, world, name: str) -> None:
    with pytest.raises(ParameterError, match="malformed brackets"):
        decode_query(f"{name}=1")
    refused(api, catalog, "listBackupJobs", {name: "1"}, f"{name}: malformed brackets")


def test_a_10_mb_parameter_value(api, catalog, world) -> None:
    huge = "x" * 10_000_000
    refused(api, catalog, "manageBackupJob", job_params(world, name=huge), "name: value is too large")
    refused(
        api,
        catalog,
        "manageBackupJob",
        {"action": "create", "exclude_list[0]": huge},
        "exclude_list[0]: value is too large",
    )


def test_non_utf8_bytes(api, catalog, world) -> None:
    with pytest.raises(ParameterError, match=r"^name: is not valid UTF-8"):
        decode_query(b"action=create&name=caf%E9")
    refused(api, catalog, "manageBackupJob", job_params(world, name=b"caf\xe9"), "name: is not valid UTF-8")


def test_bad_input_from_the_command_line_leaves_the_catalog_alone(tmp_path) -> None:
    home = str(tmp_path / "home")
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", home, "api", "-F", "listBackupJobs"]).exit_code == 0
    before = Catalog.open(tmp_path / "home").dump()
    for data in ["a[0=1", "a[0][=1", "action=create&name=caf%E9", "action=create&type=9"]:
        result = runner.invoke(cli, ["--home", home, "api", "-F", "manageBackupJob", "-D", data])
        assert result.exit_code == 2, result.output
        assert '"success": 0' in result.output
    assert Catalog.open(tmp_path / "home").dump() == before


@pytest.mark.parametrize("action", [{"a": "1"}, ["create"], 7])
def test_action_that_is_not_a_word_is_named(api, catalog, world, action: Any) -> None:
    """Attack report LOW-11: an object or list as ``action`` was an internal error."""
    refused(
        api,
        catalog,
        "manageBackupJob",
        {**job_params(world), "action": action},
        "action: must be create or modify",
    )
