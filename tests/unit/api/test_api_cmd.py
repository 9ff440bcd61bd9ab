"""``snapkeep api``: output formats and exit codes (the subprocess end-to-end tests live in tests/e2e)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from snapkeep.cli.api_cmd import plain_lines
from snapkeep.cli.main import cli


def run(home: Path, *arguments: str):
    return CliRunner().invoke(cli, ["--home", str(home), "api", *arguments])


def test_success_prints_json_and_exits_0(tmp_path: Path) -> None:
    result = run(
        tmp_path, "-F", "manageDestination", "-D", "action=create&name=D&type=Local&options[path]=%2Fsrv"
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)  # (stderr may say the home is new)
    assert answer["success"] == 1
    assert answer["data"]["options"] == {"path": "/srv"}


def test_failure_prints_the_envelope_and_exits_2(tmp_path: Path) -> None:
    result = run(tmp_path, "-F", "getBackupJob", "-D", "_id=nope")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["message"].startswith("_id: must be an ID")


def test_plain_output_is_an_indented_tree(tmp_path: Path) -> None:
    result = run(tmp_path, "-F", "listBackupJobs", "-D", "limit=5", "-O", "plain")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "success: 1"
    assert "  licenseIssue: 0" in lines
    assert lines[-3:] == ["data:", "  jobs:", "  total: 0"]


def test_plain_lines_blank_empty_and_false_values() -> None:
    tree = {"a": None, "b": False, "c": "", "d": 0, "e": [], "f": {"g": [1, {"h": True}]}}
    assert plain_lines(tree) == [
        "a:",
        "b:",
        "c:",
        "d: 0",
        "e:",
        "f:",
        "  g:",
        "    0: 1",
        "    1:",
        "      h: 1",
    ]
