"""Hooks run real shell scripts: every exit-code rule, arguments, environment, stdin JSON, timeout."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from snapkeep.jobs.codes import HookPosition, HookStage
from snapkeep.jobs.hooks import (
    OUTPUT_LIMIT,
    SKIPPED_MESSAGE,
    HookContext,
    Verdict,
    run_hook,
    run_stage,
    select_hooks,
)

BACKUP, BACKUP_ACCOUNT, RESTORE = HookPosition.BACKUP, HookPosition.BACKUP_ACCOUNT, HookPosition.RESTORE
PRE, POST = HookStage.PRE, HookStage.POST
JOB = "a" * 24
OTHER_JOB = "b" * 24
LOG = "c" * 24


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def hook(path: str, name: str = "h", *, ident: str = "e" * 24, timeout: int = 30, **fields) -> dict:
    return {
        "_id": ident,
        "name": name,
        "script": path,
        "position": BACKUP,
        "position_type": PRE,
        "data_list": [],
        "disabled": False,
        "timeout": timeout,
        **fields,
    }


def backup_context(stage: int = PRE, status: int | None = None) -> HookContext:
    return HookContext(
        position=BACKUP,
        stage=stage,
        job_id=JOB,
        log_id=LOG,
        job_name="Sites & mail",
        job_type=2,
        contains=511,
        structure=1,
        destinations=["d" * 24, "f" * 24],
        start_time=1780000000,
        status=status,
    )


def test_a_pre_hook_that_exits_0_lets_the_run_go_on(trusted_dir: Path, tmp_path: Path) -> None:
    outcome = run_stage([hook(script(trusted_dir, "ok", "echo all good"))], backup_context())
    assert outcome.verdict is Verdict.OK
    assert outcome.status is None
    assert not outcome.alert
    assert outcome.results[0].exit_code == 0
    assert (1, "  | all good") in outcome.log_lines


def test_a_failing_pre_hook_aborts_with_an_alert_and_stops_later_hooks(
    trusted_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "second-ran"
    hooks = [
        hook(script(trusted_dir, "fail", "echo cannot dump >&2; exit 3"), "1-fail"),
        hook(script(trusted_dir, "later", f"touch {marker}"), "2-later", ident="f" * 24),
    ]
    outcome = run_stage(hooks, backup_context())
    assert outcome.verdict is Verdict.FAILED
    assert outcome.status == 103
    assert outcome.alert
    assert outcome.message == "aborted: pre hook '1-fail' " + outcome.results[0].describe()
    assert "exited 3" in outcome.message
    assert any("cannot dump" in text for _, text in outcome.log_lines)
    assert not marker.exists()


def test_exit_75_skips_the_run_quietly(trusted_dir: Path, tmp_path: Path) -> None:
    outcome = run_stage([hook(script(trusted_dir, "skip", "exit 75"))], backup_context())
    assert outcome.verdict is Verdict.SKIPPED
    assert outcome.status == 103
    assert not outcome.alert
    assert outcome.message == SKIPPED_MESSAGE


def test_a_failing_post_hook_is_a_warning_and_every_post_hook_runs(trusted_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "second-ran"
    hooks = [
        hook(script(trusted_dir, "fail", "exit 1"), "1-fail", position_type=POST),
        hook(
            script(trusted_dir, "skip", f"touch {marker}; exit 75"),
            "2-75",
            ident="f" * 24,
            position_type=POST,
        ),
    ]
    outcome = run_stage(hooks, backup_context(POST, status=100))
    assert outcome.verdict is Verdict.WARNING
    assert outcome.status is None
    assert not outcome.alert
    assert marker.exists()
    assert [level for level, text in outcome.log_lines if "hook" in text] == [2, 2]


def test_arguments_environment_and_stdin_json(
    trusted_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    body = f"""
printf '%s\\n' "$@" > {out}/args
env | grep '^SNAPKEEP_' | sort > {out}/env
cat > {out}/stdin
"""
    out.mkdir()
    monkeypatch.setenv("SNAPKEEP_CATALOG_URL", "postgresql://secret@db/x")  # never passed on
    result = run_hook(hook(script(trusted_dir, "show", body)), backup_context(POST, status=101))
    assert result.exit_code == 0, result.output
    destinations = "d" * 24 + "," + "f" * 24
    assert (out / "args").read_text().splitlines() == [
        JOB,
        "Sites & mail",
        "2",
        "511",
        "1",
        destinations,
        "1780000000",
        LOG,
        "101",
    ]
    assert (out / "env").read_text().splitlines() == [
        "SNAPKEEP_CONTAINS=511",
        f"SNAPKEEP_DESTINATIONS={destinations}",
        "SNAPKEEP_HOOK_STAGE=post",
        f"SNAPKEEP_JOB_ID={JOB}",
        "SNAPKEEP_JOB_NAME=Sites & mail",
        "SNAPKEEP_JOB_TYPE=2",
        f"SNAPKEEP_LOG_ID={LOG}",
        "SNAPKEEP_START_TIME=1780000000",
        "SNAPKEEP_STATUS=101",
        "SNAPKEEP_STRUCTURE=1",
    ]
    assert json.loads((out / "stdin").read_text()) == {
        "hook_stage": "post",
        "job_id": JOB,
        "job_name": "Sites & mail",
        "job_type": 2,
        "contains": 511,
        "structure": 1,
        "destinations": ["d" * 24, "f" * 24],
        "start_time": 1780000000,
        "log_id": LOG,
        "status": 101,
    }


def test_backup_account_hooks_get_job_account_user_and_log(trusted_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "args"
    context = HookContext(
        position=BACKUP_ACCOUNT, stage=PRE, job_id=JOB, log_id=LOG, account_id="u1-id", username="u1"
    )
    body = f'printf "%s\\n" "$@" "$SNAPKEEP_USERNAME" "$SNAPKEEP_ACCOUNT_ID" > {out}'
    result = run_hook(hook(script(trusted_dir, "acct", body), position=BACKUP_ACCOUNT), context)
    assert result.exit_code == 0
    assert out.read_text().splitlines() == [JOB, "u1-id", "u1", LOG, "u1", "u1-id"]


def test_a_hook_that_runs_too_long_is_killed_with_its_children(trusted_dir: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    body = f"""
sleep 300 &
echo $! > {pid_file}
echo started
wait
"""
    started = time.monotonic()
    outcome = run_stage([hook(script(trusted_dir, "slow", body), timeout=1)], backup_context())
    assert time.monotonic() - started < 10
    result = outcome.results[0]
    assert result.timed_out
    assert result.exit_code is None
    assert "started" in result.output
    assert outcome.verdict is Verdict.FAILED
    assert "timed out after" in outcome.message
    child = int(pid_file.read_text())
    for _ in range(50):  # the killed child may take a moment to be reaped by init
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        if Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the hook's child {child} survived the timeout")


def test_output_is_bounded(trusted_dir: Path, tmp_path: Path) -> None:
    body = "head -c 300000 /dev/zero | tr '\\0' x"
    result = run_hook(hook(script(trusted_dir, "loud", body)), backup_context())
    assert result.exit_code == 0
    assert len(result.output) == OUTPUT_LIMIT
    assert result.truncated == 300000 - OUTPUT_LIMIT


def test_a_script_that_cannot_run_fails_the_pre_stage(trusted_dir: Path) -> None:
    not_executable = trusted_dir / "plain"
    not_executable.write_text("#!/bin/sh\nexit 0\n")
    no_interpreter = script(trusted_dir, "orphan", "exit 0")
    Path(no_interpreter).write_text("#!/nonexistent/sh\nexit 0\n")
    missing = trusted_dir / "missing"
    outcome = run_stage([hook(str(missing)), hook(str(not_executable), ident="f" * 24)], backup_context())
    assert outcome.verdict is Verdict.FAILED
    assert outcome.results[0].error == f"refused to run {missing}: {missing} does not exist"
    post = run_stage([hook(str(not_executable), position_type=POST)], backup_context(POST, status=100))
    assert post.verdict is Verdict.WARNING
    assert "is not executable" in post.message
    started = run_hook(hook(no_interpreter), backup_context())
    assert started.exit_code is None
    assert started.error.startswith(f"cannot run {no_interpreter}: No such file")


def test_a_script_that_ignores_stdin_is_fine(trusted_dir: Path, tmp_path: Path) -> None:
    result = run_hook(hook(script(trusted_dir, "quick", "exit 0")), backup_context())
    assert result.exit_code == 0
    assert result.output == ""


def test_selection_by_position_stage_job_and_disabled_in_name_order() -> None:
    hooks = [
        hook("/x", "b-all", ident="1" * 24),
        hook("/x", "a-this-job", ident="2" * 24, data_list=[JOB]),
        hook("/x", "c-other-job", ident="3" * 24, data_list=[OTHER_JOB]),
        hook("/x", "d-disabled", ident="4" * 24, disabled=True),
        hook("/x", "e-post", ident="5" * 24, position_type=POST),
        hook("/x", "f-restore", ident="6" * 24, position=RESTORE),
    ]
    chosen = select_hooks(hooks, position=BACKUP, stage=PRE, job_id=JOB)
    assert [item["name"] for item in chosen] == ["a-this-job", "b-all"]
    assert [item["name"] for item in select_hooks(hooks, position=BACKUP, stage=POST, job_id=JOB)] == [
        "e-post"
    ]
    assert [item["name"] for item in select_hooks(hooks, position=RESTORE, stage=PRE, job_id=OTHER_JOB)] == [
        "f-restore"
    ]
