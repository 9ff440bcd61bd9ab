"""``sftp://`` and ``s3://`` locations open the real stores (the disaster-recovery path)."""

from __future__ import annotations

import secrets
from pathlib import Path

from servers import RcloneS3Server, SshServer
from snapkeep.storage.locations import Credentials, open_location


def test_sftp_location_with_key_file(sshd: SshServer, tmp_path: Path) -> None:
    key_file = tmp_path / "id"
    key_file.write_text(sshd.private_key)
    credentials = Credentials(key_file=str(key_file), fingerprint=sshd.fingerprint)
    folder = sshd.folder_for(secrets.token_hex(6))
    location = f"sftp://{sshd.username}@127.0.0.1:{sshd.port}/{folder.lstrip('/')}"
    with open_location(location, credentials) as store:
        store.store("config", b"hello")
        assert store.load("config") == b"hello"
        assert [item.name for item in store.list()] == ["config"]


def test_s3_location_with_credentials(s3_server: RcloneS3Server) -> None:
    bucket = s3_server.make_bucket("dr-" + secrets.token_hex(4))
    credentials = Credentials(access_key=s3_server.access_key, secret_key=s3_server.secret_key)
    location = f"s3+http://127.0.0.1:{s3_server.port}/{bucket}/jobs/5f00"
    with open_location(location, credentials) as store:
        store.store("snapshots/abc", b"x" * 100)
        assert store.stat("snapshots/abc").size == 100
    assert (s3_server.root / bucket / "jobs" / "5f00" / "snapshots" / "abc").read_bytes() == b"x" * 100
