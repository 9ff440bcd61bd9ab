"""Issue 14 item 7: small things a person meets at a terminal."""

from __future__ import annotations

import threading
from pathlib import Path

from click.testing import CliRunner

from snapkeep.api.dispatch import Api
from snapkeep.cli.main import cli
from snapkeep.jobs import queue
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.queue import RunningGroup
from snapkeep.jobs.users import ROOT_ID


def _job(catalog: Catalog, tmp_path: Path, **fields: object) -> dict:
    api = Api(catalog)
    destination = api.call(
        "manageDestination",
        {"action": "create", "name": "d", "type": "Local", "options": {"path": str(tmp_path / "b")}},
    )["data"]
    answer = api.call(
        "manageBackupJob",
        {
            "action": "create",
            "name": "plain",
            "type": 2,
            "contains": 511,
            "structure": 1,
            "destination": [destination["_id"]],
            "include_list": [str(tmp_path)],
            **fields,
        },
    )
    assert answer["success"] == 1, answer["message"]
    return dict(answer["data"])


def test_completion_scripts_for_every_shell() -> None:
    runner = CliRunner()
    for shell, marker in (
        ("bash", "_snapkeep_completion()"),
        ("zsh", "#compdef snapkeep"),
        ("fish", "complete"),
    ):
        result = runner.invoke(cli, ["completion", shell])
        assert result.exit_code == 0, result.output
        assert marker in result.output, shell
    assert runner.invoke(cli, ["completion", "tcsh"]).exit_code == 2


def test_keys_export_of_an_unencrypted_job_says_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    catalog = Catalog.open(home)
    job = _job(catalog, tmp_path)
    catalog.close()
    result = CliRunner().invoke(cli, ["--home", str(home), "keys", "export", job["_id"]])
    assert result.exit_code == 1
    assert f"Backup Job 'plain' ({job['_id']}) is not encrypted: its backups need no key" in result.output


def test_progress_never_shows_more_completed_than_total(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path / "home")
    job = _job(catalog, tmp_path)
    with catalog.transaction() as tx:
        group = queue.enqueue_backup(tx, tx.require("jobs", job["_id"], "Backup Job"), owner=ROOT_ID)
    running = RunningGroup(catalog, group["_id"], threading.Event(), None)
    running.advance(total_files=10, completed_files=4)
    running.advance(completed_files=30, completed_bytes=5, force=True)
    progress = (
        queue.get_group_progress(catalog, group["_id"]) if hasattr(queue, "get_group_progress") else None
    )
    with catalog.transaction(write=False) as tx:
        progress = queue.get_group(tx, group["_id"])["progress"]
    assert progress["completed_files"] <= progress["total_files"]
    assert progress["completed_bytes"] <= progress["total_bytes"]
    assert progress["percentage"] <= 100
    catalog.close()


def test_a_port_in_use_is_one_clear_line_before_anything_starts(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "serve", "--port", str(port)])
    assert result.exit_code == 2
    assert f"snapkeep: cannot listen on 127.0.0.1:{port}: address already in use" in result.stderr
    assert "API token" not in result.output
    assert not (tmp_path / "home" / "catalog.db").exists(), "nothing was started or created"


def test_version_is_looked_up_only_when_asked_for() -> None:
    """``--version`` prints the installed version; starting the CLI for anything else does not pay
    for ``importlib.metadata`` (30 ms of every ``snapkeep repo backup``)."""
    import subprocess
    import sys

    import snapkeep

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"snapkeep, version {snapkeep.__version__}\n"
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, snapkeep.cli.main; print('importlib.metadata' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "False"
