"""Model validation without a catalog: messages name the field path and the allowed values."""

from __future__ import annotations

import pytest

from snapkeep.errors import ValidationError
from snapkeep.jobs.models import (
    FilterFields,
    HookFields,
    JobFields,
    ScheduleFields,
    validate,
    validate_destination,
)
from snapkeep.jobs.models.base import describe

ID = "0123456789abcdef01234567"
JOB = {"name": "J", "type": "1", "destination": ID, "contains": "511", "structure": "1"}


def problem(model, data) -> str:
    with pytest.raises(ValidationError) as caught:
        validate(model, data)
    return str(caught.value)


def test_strings_from_the_command_line_are_coerced() -> None:
    job = validate(
        JobFields, {**JOB, "encrypted": "true", "retry_failed": "0", "time": "0945", "monitor": ""}
    )
    assert (job.type, job.destination, job.encrypted, job.retry_failed, job.time) == (
        1,
        [ID],
        True,
        False,
        945,
    )
    assert job.monitor.notran == 0


def test_every_problem_is_named_at_once() -> None:
    message = problem(JobFields, {"type": "x", "contains": "1024", "extra": 1})
    for needle in (
        "name: is required",
        "type: must be 1 (Accounts) or 2 (Directories) (got 'x')",
        "destination: is required",
        "contains: must be at most 511",
        "structure: is required",
        "extra: unknown field",
    ):
        assert needle in message


def test_time_needs_valid_minutes_and_flags_need_1_or_0() -> None:
    assert "time: must be HHMM with minutes 00-59" in problem(JobFields, {**JOB, "time": "1275"})
    assert "disabled: must be 1 or 0 (got 'maybe')" in problem(JobFields, {**JOB, "disabled": "maybe"})


def test_a_schedule_may_be_linked_once() -> None:
    links = [{"_id": ID}, {"_id": ID}]
    assert "schedules[1][_id]: schedule" in problem(JobFields, {**JOB, "schedules": links})


def test_job_options_enum() -> None:
    assert "options: must be one of 0 (include databases)" in problem(JobFields, {**JOB, "options": "3"})


def test_schedule_rules_per_type() -> None:
    assert validate(ScheduleFields, {"name": "s", "type": "3", "type_data": ["2"]}).type_data == 2
    assert "type_data: needs at least one of 1 to 31" in problem(ScheduleFields, {"name": "s", "type": 4})
    assert "delay_type: must be one of" in problem(
        ScheduleFields, {"name": "s", "type": 5, "type_data": ID, "delay_type": 4}
    )
    assert "type_data: must be the ID of a Backup Job" in problem(ScheduleFields, {"name": "s", "type": 5})


def test_hook_script_must_be_absolute() -> None:
    message = problem(HookFields, {"name": "h", "script": "run.sh", "position_type": 1, "position": 1})
    assert "script: must be an absolute path starting with / (got 'run.sh')" in message


def test_filter_rules_per_type() -> None:
    assert "list: needs at least one entry" in problem(FilterFields, {"name": "f", "type": 64})
    assert "range_end: must not come before range_start" in problem(
        FilterFields, {"name": "f", "type": 128, "range_start": "z", "range_end": "a"}
    )
    assert validate(FilterFields, {"name": "f", "type": 16, "usage": "1000"}).usage == 1000


def test_destination_options_are_checked_per_type() -> None:
    local = validate_destination({"name": "d", "type": "LOCAL", "options": {"path": "/b"}})
    assert local.type == "Local"
    assert local.options == {"path": "/b"}
    with pytest.raises(ValidationError, match=r"options\[bucket\]: unknown field"):
        validate_destination({"name": "d", "type": "Local", "options": {"path": "/b", "bucket": "x"}})


def test_long_values_are_shortened_in_messages() -> None:
    message = problem(JobFields, {**JOB, "type": "x" * 5000})
    assert len(message) < 300
    assert "5000 characters" in message


def test_describe_lists_choices() -> None:
    assert (
        describe({1: "Incremental", 2: "Archived", 4: "Compressed"})
        == "1 (Incremental), 2 (Archived) or 4 (Compressed)"
    )
