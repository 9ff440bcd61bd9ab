"""Runs and restores to SFTP and S3 destinations on real servers (sshd, ``rclone serve s3``).

Destinations are made through the API, runs go through ``execute_group`` as the daemon runs them,
restores through ``addQueueItems``. Secrets must never reach an answer, the run's log file or its log
items. The helpers here (``sftp_destination``, ``s3_destination``, ``secrets_absent``) are shared
with the fault tests.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import require_server
from tests.integration.runner_helpers import World, make_tree, tree_state

from servers import KEY_PASSPHRASE, RcloneS3Server, SshServer
from snapkeep.jobs.models.destination import SECRET_MASK
from snapkeep.jobs.runs import execute_group


@pytest.fixture(scope="module", autouse=True)
def bucket(s3_server: RcloneS3Server) -> str:
    return s3_server.make_bucket("runs")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    opened = World(tmp_path)
    opened.source.mkdir()
    yield opened
    opened.close()


def sftp_destination(
    world: World, server: SshServer, *, key: str = "password", **options: Any
) -> dict[str, Any]:
    """An SFTP destination on ``server`` in a fresh folder: by password, ``key="plain"`` (Ed25519
    key text) or ``key="encrypted"`` (RSA key text + passphrase)."""
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "username": server.username,
        "path": server.folder_for(secrets.token_hex(6)),
        "timeout": 5,
    }
    if key == "password":
        require_server(server.password is not None, "a password user for sshd (run the tests as root)")
        settings["password"] = server.password
    elif key == "plain":
        settings["privatekey"] = server.private_key
    else:
        settings["privatekey"] = server.encrypted_key
        settings["passphrase"] = KEY_PASSPHRASE
    return create(world, "SFTP", settings, options)


def s3_destination(world: World, server: RcloneS3Server, **options: Any) -> dict[str, Any]:
    """An S3 destination in bucket ``runs`` of ``server`` under a fresh prefix."""
    settings: dict[str, Any] = {
        "bucket": "runs",
        "endpoint": server.endpoint,
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "path": f"backups/{secrets.token_hex(6)}",
    }
    return create(world, "S3", settings, options)


TOP_LEVEL = ("threads", "disk_limit", "disabled", "readonly")


def create(world: World, kind: str, settings: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """manageDestination create; ``extra`` overrides options, or sets the top-level fields."""
    fields = {key: value for key, value in extra.items() if key in TOP_LEVEL}
    settings.update({key: value for key, value in extra.items() if key not in TOP_LEVEL})
    params = {"action": "create", "name": f"{kind} {secrets.token_hex(3)}", "type": kind, "options": settings}
    return world.ok("manageDestination", {**params, **fields})


def secrets_absent(world: World, group: dict[str, Any], *values: str | None) -> None:
    """None of ``values`` is in the run's log file, its log items, or any file below ``<home>/logs``."""
    log_id = group["data"]["log_id"]
    text = world.log_text(group)
    items = world.ok("listLogItems", {"log_id": log_id, "limit": 0})["items"]
    files = "".join(
        path.read_text(errors="replace") for path in (world.home / "logs").rglob("*") if path.is_file()
    )
    for value in values:
        if not value:
            continue
        for line in value.splitlines():
            if len(line.strip()) < 8 or line.startswith("-----"):
                continue
            assert line not in text
            assert line not in files
            assert all(line not in item["message"] for item in items)


def restore_and_compare(world: World, job: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """Restore the job's newest backup into a fresh folder through the API; compare with ``expected``."""
    backup = world.ok("listBackups", {"find": {"job_id": job["_id"]}})["backups"][0]
    target = world.root / f"restored-{secrets.token_hex(4)}"
    group = world.ok(
        "addQueueItems", {"type": 2, "snapshot_id": backup["_id"], "options": {"target": str(target)}}
    )
    status = execute_group(world.catalog, world.home, group["_id"], stop=threading.Event())
    finished = world.ok("getQueueGroup", {"_id": group["_id"]})
    assert status == 100, world.log_text(finished)
    assert tree_state(target / str(world.source).lstrip("/")) == expected
    return finished


def test_sftp_password_destination_validates_runs_and_restores(world: World, sshd: SshServer) -> None:
    destination = sftp_destination(world, sshd)
    assert destination["options"]["password"] == SECRET_MASK
    assert destination["options"]["fingerprint"] == ""
    validated = world.ok("validateDestination", {"_id": destination["_id"]})
    assert [step["name"] for step in validated["steps"]] == ["write", "read", "list", "delete"]
    assert validated["fingerprint"] == sshd.fingerprint
    shown = world.ok("getDestination", {"_id": destination["_id"]})
    assert shown["options"]["fingerprint"] == sshd.fingerprint
    assert shown["options"]["password"] == SECRET_MASK
    job = world.job(destination, encrypted=1)
    make_tree(world.source, 1)
    expected = tree_state(world.source)
    status, group = world.run(job)
    assert status == 100, world.log_text(group)
    assert "backup" in world.log_text(group)
    assert "stored" in world.log_text(group)
    restored = restore_and_compare(world, job, expected)
    usage = world.ok("getDestination", {"_id": destination["_id"]})["disk_usage"]
    assert usage["usage"] > 0
    assert usage["total"] > usage["free"] > 0
    listed = world.ok("listDestinations")["destinations"]
    assert [item["disk_usage"]["usage"] for item in listed if item["_id"] == destination["_id"]] == [
        usage["usage"]
    ]
    secrets_absent(world, group, sshd.password)
    secrets_absent(world, restored, sshd.password)


@pytest.mark.parametrize("key", ["plain", "encrypted"])
def test_sftp_private_key_text_destination_runs_and_records_the_host_key(
    world: World, sshd: SshServer, key: str
) -> None:
    destination = sftp_destination(world, sshd, key=key, threads=3)
    assert destination["options"]["privatekey"] == SECRET_MASK
    job = world.job(destination, structure=1)
    logs = []
    for version in (1, 2):
        make_tree(world.source, version)
        status, group = world.run(job)
        logs.append(world.log_text(group))
        assert status == 100, logs[-1]
    assert f"host key {sshd.fingerprint} recorded" in logs[0]
    assert "recorded" not in logs[1]
    shown = world.ok("getDestination", {"_id": destination["_id"]})
    assert shown["options"]["fingerprint"] == sshd.fingerprint
    assert shown["options"]["privatekey"] == SECRET_MASK
    restore_and_compare(world, job, tree_state(world.source))
    private = sshd.private_key if key == "plain" else sshd.encrypted_key
    secrets_absent(world, group, private, KEY_PASSPHRASE if key == "encrypted" else None)


@pytest.mark.parametrize("structure", [1, 4])
def test_s3_destination_validates_runs_and_restores(
    world: World, s3_server: RcloneS3Server, structure: int
) -> None:
    destination = s3_destination(world, s3_server, threads=4)
    assert destination["options"]["secret_key"] == SECRET_MASK
    assert world.ok("validateDestination", {"_id": destination["_id"]})["steps"][-1]["ok"] == 1
    job = world.job(destination, structure=structure, encrypted=1)
    make_tree(world.source, 3)
    status, group = world.run(job)
    assert status == 100, world.log_text(group)
    restored = restore_and_compare(world, job, tree_state(world.source))
    prefix = destination["options"]["path"]
    stored = sum(
        path.stat().st_size for path in (s3_server.root / "runs" / prefix).rglob("*") if path.is_file()
    )
    usage = world.ok("getDestination", {"_id": destination["_id"]})["disk_usage"]
    assert usage == {"usage": stored, "free": 0, "total": 0}
    assert stored > 0
    secrets_absent(world, group, s3_server.secret_key)
    secrets_absent(world, restored, s3_server.secret_key)
