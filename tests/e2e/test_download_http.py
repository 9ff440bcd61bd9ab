"""``GET /download/GROUP_ID`` on a real ``snapkeep serve`` (docs/http.md, docs/restores.md).

A backup of a folder holding a symlink to outside is queued for download (``addQueueItems`` type 4)
and run by the service; the download is then fetched over HTTP: streamed with a Content-Length
equal to the file's size, byte for byte the file the group names, a tar.zst whose members keep
their modes, times and the symlink as a link. A wrong token is 401; an unknown group, a group
that is not finished and a removed file are 404 with the envelope; a restore group is refused.
"""

from __future__ import annotations

import io
import os
import secrets
import stat
import tarfile
from pathlib import Path

import pytest
import zstandard
from tests.e2e.conftest import Server
from tests.e2e.test_runs_http import ok, run_through_service, wait_for

OLD = 1_000_000_000


@pytest.fixture
def backup_id(server: Server, tmp_path: Path) -> str:
    tag = secrets.token_hex(3)
    source = tmp_path / "source"
    source.mkdir()
    (source / "script.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (source / "script.sh").chmod(0o750)
    (source / "out").symlink_to(tmp_path)  # outside the folder that is backed up
    for path in (source / "script.sh", source / "out", source):
        os.utime(path, ns=(OLD, OLD), follow_symlinks=False)
    destination = ok(
        server,
        "manageDestination",
        {
            "action": "create",
            "name": f"Downloads {tag}",
            "type": "Local",
            "options": {"path": str(tmp_path / "store")},
        },
    )
    job = ok(
        server,
        "manageBackupJob",
        {
            "action": "create",
            "name": f"Download {tag}",
            "type": "2",
            "contains": "1",
            "structure": "1",
            "destination": [destination["_id"]],
            "include_list": [str(source)],
        },
    )
    run_through_service(server, job["_id"])
    return str(ok(server, "listBackups", {"account_id": job["_id"], "limit": "1"})["backups"][0]["_id"])


def finished(server: Server, group_id: str) -> dict:
    def done() -> dict | None:
        answer = ok(server, "getQueueGroup", {"_id": group_id})
        return answer if answer["status"] >= 100 else None

    return wait_for(f"group {group_id}", done)


def test_download_is_streamed_with_its_length(server: Server, backup_id: str, tmp_path: Path) -> None:
    group = ok(server, "addQueueItems", {"type": "4", "snapshot_id": backup_id})
    done = finished(server, group["_id"])
    assert done["status"] == 100
    path = Path(done["data"]["file"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    with server.client.stream("GET", f"/download/{group['_id']}", headers=server.auth()) as response:
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == path.stat().st_size
        assert group["_id"] in response.headers["content-disposition"]
        body = b"".join(response.iter_bytes())
    assert body == path.read_bytes()
    with (
        zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body)) as stream,
        tarfile.open(fileobj=stream, mode="r|") as archive,
    ):
        members = {member.name.rsplit("/", 1)[-1]: member for member in archive}
    assert members["script.sh"].mode & 0o777 == 0o750
    assert int(members["script.sh"].mtime) == OLD // 1_000_000_000
    assert members["out"].issym()
    assert members["out"].linkname == str(tmp_path)

    # the file removed (expired or cleaned up): a clear 404 envelope
    path.unlink()
    gone = server.client.get(f"/download/{group['_id']}", headers=server.auth())
    assert gone.status_code == 404
    assert gone.json()["success"] == 0
    assert "removed" in gone.json()["message"]


def test_download_refusals(server: Server, backup_id: str, tmp_path: Path) -> None:
    missing = server.client.get(f"/download/{'f' * 24}", headers=server.auth())
    assert missing.status_code == 404
    assert missing.json()["success"] == 0
    assert "f" * 24 in missing.json()["message"]

    wrong = server.client.get(f"/download/{'f' * 24}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401

    restore = ok(
        server,
        "addQueueItems",
        {"type": "2", "snapshot_id": backup_id, "options": {"target": str(tmp_path / "restored")}},
    )
    finished(server, restore["_id"])
    not_download = server.client.get(f"/download/{restore['_id']}", headers=server.auth())
    assert not_download.status_code == 400
    assert "not a download" in not_download.json()["message"]

    # the same rule through the function itself
    answer = server.call("downloadBackupFile", {"_id": "f" * 24})
    assert answer["success"] == 0
