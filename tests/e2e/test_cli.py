"""Every function through the installed command (``snapkeep api`` in a subprocess), and the tables
of ``snapkeep jobs`` for people."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.e2e.conftest import Instance
from tests.e2e.scenario import walk

from snapkeep.api.dispatch import FUNCTIONS

MISSING_ID = "f" * 24


@pytest.mark.slow
def test_every_function_through_the_command_line(instance: Instance) -> None:
    def call(function: str, params: dict[str, Any]) -> dict[str, Any]:
        code, answer = instance.api(function, params)
        assert code == (0 if answer["success"] == 1 else 2), (function, code, answer)
        return answer

    called = walk(call, tag="cli", thorough=False)
    assert set(FUNCTIONS) - called == set(), "functions the command-line walk did not reach"


def test_failure_prints_the_envelope_and_exits_2(instance: Instance) -> None:
    code, answer = instance.api("getBackupJob", f"_id={MISSING_ID}")
    assert code == 2
    assert answer["success"] == 0
    assert MISSING_ID in answer["message"]


def test_jobs_list_and_show_are_tables_for_people(instance: Instance) -> None:
    _, destination = instance.api(
        "manageDestination", "action=create&name=Tables%20disk&type=Local&options[path]=%2Fsrv%2Ftables"
    )
    _, schedule = instance.api("manageSchedule", "action=create&name=Tables%20nightly&type=2&type_data[]=1")
    code, job = instance.api(
        "manageBackupJob",
        "action=create&name=Tables%20job&type=2&contains=511&structure=4"
        f"&destination[0]={destination['data']['_id']}&include_list[0]=%2Fvar%2Fwww"
        f"&schedules[0][_id]={schedule['data']['_id']}&schedules[0][retain]=3&time=0230",
    )
    assert code == 0, job
    job_id = job["data"]["_id"]

    listing = instance.cli("jobs", "list")
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if "Tables job" in line)
    for expected in (job_id[-8:], "Directories", "Compressed", "Tables disk", "Tables nightly"):
        assert expected in row, (expected, row)

    shown = instance.cli("jobs", "show", job_id)
    assert shown.returncode == 0, shown.stderr
    for expected in (
        "Tables job",
        "Compressed",
        "everything",
        "/var/www",
        "02:30",
        "Tables nightly (Daily, keep 3)",
    ):
        assert expected in shown.stdout, expected

    missing = instance.cli("jobs", "show", MISSING_ID)
    assert missing.returncode == 2
    assert MISSING_ID in missing.stderr


def test_ids_may_be_abbreviated_on_the_command_line(instance: Instance, tmp_path: Any) -> None:
    """Issue 14: the last 8 characters of an ID (what tables show) stand for it, in `snapkeep api`
    and in commands that take an ID."""
    source = tmp_path / "site"
    source.mkdir()
    (source / "index.html").write_text("hello\n")
    _, destination = instance.api(
        "manageDestination",
        {
            "action": "create",
            "name": "Abbrev disk",
            "type": "Local",
            "options": {"path": str(tmp_path / "b")},
        },
    )
    _, job = instance.api(
        "manageBackupJob",
        {
            "action": "create",
            "name": "Abbrev job",
            "type": 2,
            "contains": 511,
            "structure": 1,
            "destination": [destination["data"]["_id"]],
            "include_list": [str(source)],
        },
    )
    job_id = job["data"]["_id"]
    code, fetched = instance.api("getBackupJob", {"_id": job_id[-8:]})
    assert (code, fetched["data"]["_id"]) == (0, job_id)
    done = instance.cli("run", job_id[-8:])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Completed" in done.stdout
    assert "\x1b[" not in done.stdout + done.stderr, "no ANSI codes (nor progress bars) off a terminal"


def test_a_failed_run_says_why_and_the_logs_command_reads_it(instance: Instance, tmp_path: Any) -> None:
    """Issue 14 item 1: `snapkeep run` prints the log's error lines and how to read the whole log;
    `snapkeep logs list|show` read it."""
    _, destination = instance.api(
        "manageDestination",
        {"action": "create", "name": "Why disk", "type": "Local", "options": {"path": str(tmp_path / "b")}},
    )
    missing = tmp_path / "no-such-site"
    _, job = instance.api(
        "manageBackupJob",
        {
            "action": "create",
            "name": "Why job",
            "type": 2,
            "contains": 511,
            "structure": 1,
            "destination": [destination["data"]["_id"]],
            "include_list": [str(missing)],
        },
    )
    done = instance.cli("run", job["data"]["_id"])
    assert done.returncode != 0
    assert "errors in the log:" in done.stderr
    assert str(missing) in done.stderr, done.stderr
    hint = next(line for line in done.stderr.splitlines() if line.startswith("the whole log: "))
    log_end = hint.rsplit(" ", 1)[-1]
    assert f"--home {instance.home}" in hint
    listing = instance.cli("logs", "list", "--job", job["data"]["_id"])
    assert listing.returncode == 0, listing.stderr
    assert log_end in listing.stdout
    unknown = instance.cli("logs", "list", "--job", "0123456789abcdef01234567")
    assert unknown.returncode == 2, "an unknown job is an error, not an empty table (review F13)"
    assert "Backup Job not found" in unknown.stderr
    shown = instance.cli("logs", "show", log_end)
    assert shown.returncode == 0, shown.stderr
    assert str(missing) in shown.stdout
    assert "error" in shown.stdout
    runs = instance.cli("runs", "list")
    assert runs.returncode == 0, runs.stderr
    assert log_end in runs.stdout, "the runs table names each run's log"
    assert f"snapkeep --home {instance.home} logs show LOG" in runs.stderr
    _, alerts = instance.api("listAlerts")
    assert any(str(missing) in alert["message"] for alert in alerts["data"]["alerts"]), "the alert says why"


def test_listings_print_json_for_scripts(instance: Instance) -> None:
    """Issue 14: `--json` on every listing command prints the API's answer (full IDs)."""
    for args, key in (
        (("jobs", "list"), "jobs"),
        (("runs", "list"), "groups"),
        (("logs", "list"), "logs"),
        (("user", "list"), "users"),
        (("token", "list"), "tokens"),
    ):
        done = instance.cli(*args, "--json")
        assert done.returncode == 0, (args, done.stderr)
        data = json.loads(done.stdout)
        assert isinstance(data[key], list), args
        assert data["total"] >= len(data[key]), args
