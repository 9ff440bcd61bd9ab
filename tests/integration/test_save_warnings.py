"""Issue 14 item 4: warnings before the run, not after it: the save succeeds and the envelope's
``warnings`` says what will go wrong or what to do."""

from __future__ import annotations

from pathlib import Path

from servers import RcloneS3Server, SshServer, free_port
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


def test_a_new_remote_destination_is_probed_and_problems_warned(
    tmp_path: Path, sshd: SshServer, s3_server: RcloneS3Server
) -> None:
    """Creating an SFTP or S3 destination runs validateDestination's probe: one that answers and
    takes a probe object saves quietly; one that is unreachable, refuses the credentials or cannot be
    written saves with a warning naming the problem (never a refusal: the server may come later)."""
    api = Api(Catalog.open(tmp_path / "home"))
    bucket = s3_server.make_bucket("warned")
    s3 = {
        "bucket": bucket,
        "endpoint": s3_server.endpoint,
        "access_key": s3_server.access_key,
        "secret_key": s3_server.secret_key,
        "path": "b",
    }
    sftp = {
        "host": "127.0.0.1",
        "port": sshd.port,
        "username": sshd.username,
        "privatekey": sshd.private_key,
        "path": sshd.folder_for("warned"),
        "timeout": 5,
    }

    def create(kind: str, options: dict[str, object]) -> dict[str, object]:
        answer = api.call(
            "manageDestination",
            {"action": "create", "name": f"{kind} {len(options)}", "type": kind, "options": options},
        )
        assert answer["success"] == 1, answer["message"]
        return answer

    assert "warnings" not in create("S3", s3)
    assert "warnings" not in create("SFTP", sftp)

    closed = free_port()
    for kind, options in (
        ("S3", {**s3, "endpoint": f"http://127.0.0.1:{closed}"}),
        ("S3", {**s3, "secret_key": "not-the-secret-key"}),
        ("S3", {**s3, "bucket": "no-such-bucket-here"}),
        ("SFTP", {**sftp, "port": closed}),
    ):
        answer = create(kind, options)
        assert "warnings" in answer, (kind, options)
        (warning,) = answer["warnings"]
        assert warning.startswith("destination: "), warning
        assert f"validateDestination _id={answer['data']['_id']}" in warning
        assert "backups to it fail until this is fixed" in warning
    # modify does not probe again (validateDestination does, on request)
    created = create("S3", {**s3, "secret_key": "wrong-again"})
    modified = api.call(
        "manageDestination", {"action": "modify", "_id": created["data"]["_id"], "name": "renamed"}
    )
    assert "warnings" not in modified
