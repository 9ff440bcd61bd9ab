"""Issue 14 item 5: bars on every long command, here `reindex` (repositories done of found) and
`dr export` / `dr import` (their steps: read, derive the key and seal, write), drawn on a terminal
(a pseudo-terminal, as a person sees it) and never when the output is piped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import Instance
from tests.e2e.test_repo_prompt import on_a_terminal

PASSPHRASE = "a long enough passphrase for the export"


def backed_up_site(instance: Instance, tmp_path: Path, label: str, text: str) -> tuple[Path, str, str]:
    """A folder ``site`` with ``index.html`` backed up once by a Directories job to a Local disk
    (made through the API, run by ``snapkeep run``): (the page, the destination ID, the job ID)."""
    source = tmp_path / "site"
    source.mkdir()
    page = source / "index.html"
    page.write_text(text)
    _, destination = instance.api(
        "manageDestination",
        {
            "action": "create",
            "name": f"{label} disk",
            "type": "Local",
            "options": {"path": str(tmp_path / "b")},
        },
    )
    destination_id = str(destination["data"]["_id"])
    job: dict[str, Any] = {
        "action": "create",
        "name": f"{label} job",
        "type": 2,
        "contains": 511,
        "structure": 1,
        "destination": [destination_id],
        "include_list": [str(source)],
    }
    _, created = instance.api("manageBackupJob", job)
    assert instance.cli("run", created["data"]["_id"]).returncode == 0
    return page, destination_id, str(created["data"]["_id"])


def test_reindex_and_dr_draw_bars_on_a_terminal_only(
    instance: Instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _page, destination_id, _job_id = backed_up_site(instance, tmp_path, "Bars", "hello\n")

    home = ["--home", str(instance.home)]
    # on_a_terminal passes the test's environment on: the instance's catalog and the passphrase
    for key, value in instance.env(SNAPKEEP_DR_PASSPHRASE=PASSPHRASE).items():
        monkeypatch.setenv(key, value)
    code, text = on_a_terminal([*home, "reindex", destination_id], [])
    assert code == 0, text
    assert "\x1b[" in text, text
    assert "repositories" in text
    assert "Reindex of 'Bars disk': Completed" in text

    export = tmp_path / "takeover.skdr"
    code, text = on_a_terminal([*home, "dr", "export", str(export)], [])
    assert code == 0, text
    assert "\x1b[" in text, text
    assert "steps" in text
    assert "exported 1 destination, 0 schedules, 0 hooks, 0 account filters, 1 job, 0 settings" in text, text
    new_home = tmp_path / "new-home"
    monkeypatch.delenv("SNAPKEEP_CATALOG_URL", raising=False)  # the new server's own SQLite catalog
    monkeypatch.setenv("SNAPKEEP_HOME", str(new_home))
    code, text = on_a_terminal(["--home", str(new_home), "dr", "import", str(export)], [])
    assert code == 0, text
    assert "\x1b[" in text, text
    assert "steps" in text
    assert "imported" in text
    monkeypatch.delenv("SNAPKEEP_DR_PASSPHRASE")

    # piped: the same commands print their lines and no terminal codes
    piped = instance.cli("reindex", destination_id)
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert "\x1b[" not in piped.stdout + piped.stderr
    again = tmp_path / "again.skdr"
    exported = instance.cli("dr", "export", str(again))
    assert exported.returncode != 0
    assert "SNAPKEEP_DR_PASSPHRASE" in exported.stderr


def test_restore_in_place_asks_on_a_real_terminal(
    instance: Instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14 (Show): the confirmation of `snapkeep restore --in-place` on a pseudo-terminal: "n"
    leaves the original untouched (exit 1), "y" restores it; piped, it needs --yes."""
    page, _destination_id, job_id = backed_up_site(instance, tmp_path, "Ask", "backed up\n")
    _, listed = instance.api("listBackups", {"type": 2, "account_id": job_id})
    assert listed["success"] == 1, listed["message"]
    (backup,) = listed["data"]["backups"]
    backup_id = backup["_id"]
    page.write_text("edited since\n")
    for key, value in instance.env().items():
        monkeypatch.setenv(key, value)

    code, text = on_a_terminal(["restore", backup_id, "--in-place"], ["n"])
    assert code == 1, text
    assert "over the original paths" in text
    assert "nothing restored" in text
    assert page.read_text() == "edited since\n"
    code, text = on_a_terminal(["restore", backup_id, "--in-place"], ["y"])
    assert code == 0, text
    assert page.read_text() == "backed up\n"
    piped = instance.cli("restore", backup_id, "--in-place")
    assert piped.returncode == 2
    assert "needs --yes" in piped.stderr
