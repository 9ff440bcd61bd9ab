"""Issue 14 item 6: `snapkeep repo forget` with restic's --keep-* rules, through the command."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from snapkeep.cli.main import cli
from snapkeep.errors import ValidationError


def test_keep_rules_choose_what_forget_removes(tmp_path: Path) -> None:
    repo, source = str(tmp_path / "repo"), tmp_path / "src"
    source.mkdir()
    runner = CliRunner()
    assert runner.invoke(cli, ["repo", "init", repo, "--no-encryption"]).exit_code == 0
    for number, tag in enumerate(("a", "keep", "b")):
        (source / "f.txt").write_text(f"version {number}\n")
        done = runner.invoke(cli, ["repo", "backup", repo, str(source), "--tag", tag])
        assert done.exit_code == 0, done.output

    def plan(*rules: str) -> dict:
        done = runner.invoke(cli, ["repo", "forget", repo, *rules, "--dry-run", "--json"])
        assert done.exit_code == 0, done.output
        return dict(json.loads(done.output))

    assert len(plan("--keep-last", "1")["remove"]) == 2
    tagged = plan("--keep-last", "1", "--keep-tag", "keep")
    assert [item["reason"] for item in tagged["remove"]] == ["kept by no --keep rule"]
    assert plan("--keep-within", "1d")["remove"] == []
    assert plan("--keep-daily", "1")["remove"] != [], "one per day: the two older of today go"
    bad = runner.invoke(cli, ["repo", "forget", repo, "--keep-within", "3 days", "--dry-run"])
    assert isinstance(bad.exception, ValidationError)  # the command exits 2 with its message
    assert bad.exception.exit_code == 2
    assert "keep_within: '3 days' is not a span like 30d" in str(bad.exception)
