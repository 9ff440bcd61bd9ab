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


def test_stats_find_and_unlock(tmp_path: Path) -> None:
    """Issue 14 item 6: `repo stats`, `repo find PATTERN`, `repo unlock`."""
    import os

    repo, source = str(tmp_path / "repo"), tmp_path / "src"
    (source / "www" / "blog").mkdir(parents=True)
    (source / "www" / "blog" / "wp-config.php").write_text("<?php\n")
    (source / "www" / "index.html").write_text("hi\n")
    runner = CliRunner()
    assert runner.invoke(cli, ["repo", "init", repo, "--no-encryption"]).exit_code == 0
    assert runner.invoke(cli, ["repo", "backup", repo, str(source)]).exit_code == 0
    stats = json.loads(runner.invoke(cli, ["repo", "stats", repo, "--json"]).output)
    assert stats["snapshots"] == 1
    assert stats["packs"] >= 1
    assert stats["blobs"] == sum(stats["blobs_by_type"].values()) > 0
    assert stats["stored_bytes"] >= stats["pack_bytes"] > 0
    found = json.loads(runner.invoke(cli, ["repo", "find", repo, "wp-config.php", "--json"]).output)
    assert [item["path"].rsplit("/", 3)[-3:] for item in found] == [["www", "blog", "wp-config.php"]]
    assert json.loads(runner.invoke(cli, ["repo", "find", repo, "*.nothing", "--json"]).output) == []
    dead = {
        "holder": "snapkeep backup",
        "pid": 2**22 + 7,  # no such process
        "host": os.uname().nodename,
        "exclusive": False,
        "created": 0,
        "heartbeat": 0,
        "timeout": 1800.0,
    }
    (Path(repo) / "locks").mkdir(exist_ok=True)
    (Path(repo) / "locks" / "0123456789abcdef").write_text(json.dumps(dead))
    unlocked = runner.invoke(cli, ["repo", "unlock", repo])
    assert unlocked.exit_code == 0, unlocked.output
    assert "1 lock removed" in unlocked.output
    assert not (Path(repo) / "locks" / "0123456789abcdef").exists()


def test_diff_and_key_passwd(tmp_path: Path) -> None:
    """Issue 14 item 6: `repo diff A B` and `repo key passwd`."""
    repo, source = str(tmp_path / "repo"), tmp_path / "src"
    source.mkdir()
    (source / "kept.txt").write_text("same\n")
    (source / "changed.txt").write_text("v1\n")
    (source / "gone.txt").write_text("bye\n")
    old_file, new_file = tmp_path / "old.pw", tmp_path / "new.pw"
    old_file.write_text("old secret\n")
    new_file.write_text("new secret\n")
    runner = CliRunner()
    old = ["--password-file", str(old_file)]
    assert runner.invoke(cli, ["repo", "init", repo, *old]).exit_code == 0
    assert runner.invoke(cli, ["repo", "backup", repo, str(source), *old]).exit_code == 0
    (source / "changed.txt").write_text("v2, longer\n")
    (source / "gone.txt").unlink()
    (source / "new.txt").write_text("hello\n")
    assert runner.invoke(cli, ["repo", "backup", repo, str(source), *old]).exit_code == 0
    snapshots = json.loads(runner.invoke(cli, ["repo", "snapshots", repo, "--json", *old]).stdout)
    first, second = (snapshot["id"][:8] for snapshot in snapshots)
    changes = json.loads(runner.invoke(cli, ["repo", "diff", repo, first, second, "--json", *old]).stdout)
    by_name = {item["path"].rsplit("/", 1)[-1]: item["change"] for item in changes}
    assert (by_name["changed.txt"], by_name["gone.txt"], by_name["new.txt"]) == ("M", "-", "+")
    assert "kept.txt" not in by_name

    changed = runner.invoke(cli, ["repo", "key", "passwd", repo, *old, "--new-password-file", str(new_file)])
    assert changed.exit_code == 0, changed.output
    assert "password changed" in changed.output
    refused = runner.invoke(cli, ["repo", "snapshots", repo, *old])
    assert refused.exit_code != 0, "the old password no longer opens it"
    listed = runner.invoke(cli, ["repo", "snapshots", repo, "--json", "--password-file", str(new_file)])
    assert len(json.loads(listed.stdout)) == 2


def test_counts_agree_with_their_nouns() -> None:
    from snapkeep.cli.humane import plural

    assert [plural(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert plural(3, "entry") == "3 entries"
    assert plural(2, "key") == "2 keys"
    assert plural(2, "match") == "2 matches"
    assert plural(1, "job key") == "1 job key"
