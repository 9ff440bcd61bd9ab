"""Issue 5 "Show": one Directories job with three destinations (Local, SFTP, S3), end to end.

Everything goes through the installed ``snapkeep`` command in subprocesses, on real servers on
127.0.0.1 (OpenSSH sshd, ``rclone serve s3``):

1. the destinations are made with ``snapkeep api`` (SFTP logs in with a private key's text), validated
   (the SFTP host key is recorded), and one encrypted job writes to all three (``snapkeep run JOB``);
2. each destination holds one backup, and each restores byte for byte through the API restore path
   (``addQueueItems`` then ``snapkeep runs execute GROUP``);
3. disaster recovery: on a "fresh server" (a new, empty ``--home``), with nothing but the
   destinations' details and the exported job password (``snapkeep keys export JOB``),
   ``snapkeep repo snapshots`` and ``snapkeep repo restore`` open ``sftp://`` and ``s3+http://``
   locations and restore the backup.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import CLI_TIMEOUT, SNAPKEEP, Instance
from tests.integration.runner_helpers import make_tree, tree_state

from servers import RcloneS3Server, SshServer


def ok(instance: Instance, function: str, params: dict[str, Any]) -> dict[str, Any]:
    code, answer = instance.api(function, params)
    assert code == 0, (function, answer)
    assert answer["success"] == 1, (function, answer)
    data: dict[str, Any] = answer["data"]
    return data


def cli_ok(instance: Instance, *args: str, **env: str) -> str:
    done = _cli_env(instance, args, env)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def _cli_env(instance: Instance, args: tuple[str, ...], env: dict[str, str]) -> Any:
    return subprocess.run(
        [str(SNAPKEEP), *args],
        env=instance.env(**env),
        cwd=instance.home.parent,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def test_one_job_three_destinations_restore_each_and_recover_on_a_fresh_server(
    tmp_path: Path, sshd: SshServer, s3_server: RcloneS3Server
) -> None:
    instance = Instance("sqlite", tmp_path / "home", None)
    source = tmp_path / "source"
    source.mkdir()
    make_tree(source, 1)
    (source / "big.bin").write_bytes(os.urandom(2_000_000))
    expected = tree_state(source)

    sftp_path = sshd.folder_for(secrets.token_hex(6))
    s3_prefix = f"hosting/{secrets.token_hex(6)}"
    sftp_options = {
        "host": "127.0.0.1",
        "port": sshd.port,
        "username": sshd.username,
        "path": sftp_path,
        "privatekey": sshd.private_key,
    }
    s3_options = {
        "bucket": "e2e",
        "endpoint": s3_server.endpoint,
        "access_key": s3_server.access_key,
        "secret_key": s3_server.secret_key,
        "path": s3_prefix,
    }
    wanted = [
        {"name": "Local disk", "type": "Local", "options": {"path": str(tmp_path / "local")}},
        {"name": "Backup server", "type": "SFTP", "threads": 2, "options": sftp_options},
        {"name": "Bucket", "type": "S3", "threads": 4, "options": s3_options},
    ]
    made = [ok(instance, "manageDestination", {"action": "create", **fields}) for fields in wanted]
    for destination in made:
        ok(instance, "validateDestination", {"_id": destination["_id"]})
    shown = ok(instance, "getDestination", {"_id": made[1]["_id"]})
    assert shown["options"]["fingerprint"] == sshd.fingerprint
    assert sshd.private_key.splitlines()[1] not in json.dumps(shown)

    job = ok(instance, "manageBackupJob", {
        "action": "create", "name": "Sites", "type": 2, "contains": 511, "structure": 1, "encrypted": 1,
        "destination": [item["_id"] for item in made], "include_list": [str(source)],
    })  # fmt: skip
    cli_ok(instance, "run", job["_id"])

    backups = ok(instance, "listBackups", {"find": {"job_id": job["_id"]}, "limit": 0})["backups"]
    assert sorted(item["destination"] for item in backups) == sorted(item["_id"] for item in made)
    for backup in backups:
        target = tmp_path / f"restored-{backup['_id']}"
        group = ok(instance, "addQueueItems", {"type": 2, "snapshot_id": backup["_id"],
                                               "options": {"target": str(target)}})  # fmt: skip
        cli_ok(instance, "runs", "execute", group["_id"])
        assert ok(instance, "getQueueGroup", {"_id": group["_id"]})["status"] == 100
        assert tree_state(target / str(source).lstrip("/")) == expected, backup["destination"]

    # --- disaster recovery on a fresh server -------------------------------------------------------
    password_file = tmp_path / "job-password"
    password_file.write_text(cli_ok(instance, "keys", "export", job["_id"]))
    key_file = tmp_path / "id_backup"
    key_file.write_text(sshd.private_key)
    key_file.chmod(0o600)
    fresh = Instance("sqlite", tmp_path / "fresh-home", None)
    sftp_location = f"sftp://{sshd.username}@127.0.0.1:{sshd.port}/{sftp_path.lstrip('/')}/{job['_id']}"
    s3_location = f"s3+http://127.0.0.1:{s3_server.port}/e2e/{s3_prefix}/{job['_id']}"
    recoveries = [  # (location, options of `snapkeep repo`, environment): flags and variables both work
        (sftp_location, ["--sftp-key-file", str(key_file)], {"SNAPKEEP_SFTP_FINGERPRINT": sshd.fingerprint}),
        (
            s3_location,
            [],
            {"SNAPKEEP_S3_ACCESS_KEY": s3_server.access_key, "SNAPKEEP_S3_SECRET_KEY": s3_server.secret_key},
        ),
        (s3_location, ["--s3-access-key", s3_server.access_key, "--s3-secret-key", s3_server.secret_key], {}),
    ]
    for number, (location, flags, env) in enumerate(recoveries):
        password = ["--password-file", str(password_file)]
        listed = json.loads(cli_ok(fresh, "repo", *flags, "snapshots", location, *password, "--json", **env))
        assert len(listed) == 1
        assert listed[0]["paths"] == [str(source)]
        target = tmp_path / f"recovered-{number}"
        cli_ok(fresh, "repo", *flags, "restore", location, "latest", str(target), *password, **env)
        assert tree_state(target / str(source).lstrip("/")) == expected, location
    assert not (fresh.home / "keys").exists()  # nothing of the old server was needed


@pytest.fixture(scope="module", autouse=True)
def bucket(s3_server: RcloneS3Server) -> str:
    return s3_server.make_bucket("e2e")
