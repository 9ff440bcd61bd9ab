"""Issue 14 item 4: warnings before the run, not after it: the save succeeds and the envelope's
``warnings`` says what will go wrong or what to do."""

from __future__ import annotations

from pathlib import Path

from snapkeep.api.dispatch import Api
from snapkeep.jobs.catalog import Catalog


def test_missing_folders_unwritable_destinations_and_new_keys_are_warned(tmp_path: Path) -> None:
    api = Api(Catalog.open(tmp_path / "home"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    local = {"action": "create", "name": "d", "type": "Local"}
    warned = api.call("manageDestination", {**local, "options": {"path": str(blocker / "backups")}})
    assert warned["success"] == 1
    assert warned["warnings"] == [f"options[path]: {blocker} exists and is not a folder"]
    fine = api.call(
        "manageDestination", {**local, "name": "e", "options": {"path": str(tmp_path / "new" / "b")}}
    )
    assert "warnings" not in fine
    (tmp_path / "site").mkdir()
    job = {
        "action": "create",
        "name": "j",
        "type": 2,
        "contains": 511,
        "structure": 1,
        "destination": [fine["data"]["_id"]],
        "include_list": [str(tmp_path / "site"), str(tmp_path / "gone")],
        "encrypted": 1,
    }
    answer = api.call("manageBackupJob", job)
    assert answer["success"] == 1
    first, second = answer["warnings"]
    assert first == f"include_list[1]: {tmp_path / 'gone'} does not exist on this server (yet)"
    assert second.startswith("encrypted: the repository key is made on the first run")
    assert f"snapkeep keys export {answer['data']['_id']}" in second
    again = api.call(
        "manageBackupJob",
        {"action": "modify", "_id": answer["data"]["_id"], "include_list": [str(tmp_path / "site")]},
    )
    assert "warnings" not in again, "the key warning is for a new job only"
