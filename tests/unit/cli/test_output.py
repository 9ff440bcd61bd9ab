"""The people-facing job tables: numbers become words, flags and times read naturally."""

from __future__ import annotations

import pytest
from rich.console import Console

from snapkeep.cli.humane import local_time
from snapkeep.cli.output import (
    JOB_TYPES,
    STRUCTURES,
    CallFailed,
    contains_text,
    flag,
    job_table,
    jobs_table,
    named,
    require_success,
    schedules_text,
    time_of_day,
    when,
)

JOB = {
    "_id": "65a1b2c3d4e5f60718293a4b",
    "name": "Website files",
    "type": 2,
    "structure": 4,
    "contains": 511,
    "destination": ["65a1b2c3d4e5f60718293a00"],
    "destination_name": ["Local disk"],
    "schedules": [{"_id": "65a1b2c3d4e5f60718293a01", "name": "Nightly", "type": 2, "retain": 7}],
    "time": 200,
    "include_list": ["/var/www", "/etc"],
    "exclude_list": [],
    "filters": [],
    "hooks": [],
    "monitor": {"notran": 2, "ranfor": 0},
    "manually_retain": 14,
    "next_run": "2026-11-29T02:00:00+00:00",
    "last_run": None,
    "running": 1,
    "disabled": None,
}


def render(table: object) -> str:
    console = Console(width=250, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def test_numbers_become_words() -> None:
    assert named(JOB_TYPES, 2) == "Directories"
    assert named(STRUCTURES, "4") == "Compressed"
    assert named(STRUCTURES, 3) == "3"
    assert named(STRUCTURES, None) == "-"
    assert contains_text(511) == "everything"
    assert contains_text(1 | 4) == "config, databases"
    assert contains_text(0) == "nothing"
    assert time_of_day(945) == "09:45"
    assert time_of_day("0200") == "02:00"


def test_flags_and_times() -> None:
    assert flag(1) == "yes"
    assert flag(None) == ""
    assert flag(0) == ""
    assert when(None) == "-"
    assert when("2026-11-28T03:57:09+00:00") == local_time("2026-11-28T03:57:09+00:00")  # the local zone
    assert schedules_text(JOB["schedules"]) == "Nightly (Daily, keep 7)"
    assert schedules_text([]) == "-"


def test_jobs_table_has_one_row_per_job_with_every_column() -> None:
    text = render(jobs_table([JOB, {**JOB, "_id": "x" * 24, "name": "Second", "running": None}], total=2))
    for expected in ("Backup jobs (2)", "Website files", "Second", "Directories", "Compressed", "Local disk"):
        assert expected in text
    assert "Nightly (Daily, keep 7)" in text
    assert local_time("2026-11-29T02:00:00+00:00") in text
    header = next(line for line in text.splitlines() if "Name" in line)
    for column in (
        "Type",
        "Structure",
        "Destinations",
        "Schedules",
        "Next run",
        "Last run",
        "Running",
        "Disabled",
    ):
        assert column in header


def test_job_table_shows_every_setting() -> None:
    text = render(job_table(JOB))
    for expected in (
        "65a1b2c3d4e5f60718293a4b",
        "everything",
        "/var/www, /etc",
        "02:00",
        "not ran: 2 days",
        "Local disk",
        "Nightly (Daily, keep 7)",
    ):
        assert expected in text


def test_require_success_returns_data_or_raises_with_the_message() -> None:
    assert require_success({"success": 1, "data": {"a": 1}}) == {"a": 1}
    with pytest.raises(CallFailed, match="Backup Job not found: abc") as raised:
        require_success({"success": 0, "message": "Backup Job not found: abc", "data": {}})
    assert raised.value.exit_code == 2
