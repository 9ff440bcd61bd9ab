"""Runs and restores to an FTP and an FTPS destination on a real vsftpd, through the API.

A Directories job writes to an FTP destination made with ``manageDestination``; the run goes through
``execute_group`` as the daemon runs it, the restore through ``addQueueItems``. The password never
reaches an answer, the run's log file or its log items.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.runner_helpers import World, make_tree, tree_state
from tests.integration.test_remote_faults_runs import (
    StopAfterFirstPack,
    random_files,
    repository_checks_clean,
)
from tests.integration.test_remote_runs import create, restore_and_compare, secrets_absent
from tests.integration.test_store_leaks import connections_to

from ftp_servers import FtpServer
from snapkeep.jobs import repositories
from snapkeep.jobs.models.destination import SECRET_MASK
from snapkeep.storage import registry
from snapkeep.storage.base import Store


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setattr(repositories, "DEFAULT_RETRY", repositories.RetryPolicy(attempts=3, base_delay=0.02))
    opened = World(tmp_path)
    opened.source.mkdir()
    yield opened
    opened.close()


def ftp_destination(world: World, server: FtpServer, **options: Any) -> dict[str, Any]:
    """An FTP destination on ``server`` (FTPS when the server requires TLS) in a fresh folder."""
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "username": server.username,
        "password": server.password,
        "path": server.folder_for(secrets.token_hex(6)),
        "tls": 1 if server.tls else 0,
        "timeout": 5,
    }
    if server.ca_file:
        settings["ca_file"] = str(server.ca_file)
    return create(world, "FTP", settings, options)


@pytest.mark.parametrize("structure", [1, 4])
def test_ftp_destination_validates_runs_and_restores(world: World, ftpd: FtpServer, structure: int) -> None:
    destination = ftp_destination(world, ftpd, threads=3)
    assert destination["type"] == "FTP"
    assert destination["options"]["password"] == SECRET_MASK
    validated = world.ok("validateDestination", {"_id": destination["_id"]})
    assert [step["ok"] for step in validated["steps"]] == [1, 1, 1, 1]
    job = world.job(destination, structure=structure, encrypted=1)
    groups = []
    for version in (1, 2):
        make_tree(world.source, version)
        status, group = world.run(job)
        assert status == 100, world.log_text(group)
        groups.append(group)
    restored = restore_and_compare(world, job, tree_state(world.source))
    folder = ftpd.on_disk(destination["options"]["path"]) / job["_id"]
    stored = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert stored > 0
    assert not [path for path in folder.rglob(".tmp-*")], "no temporary file is left behind"
    usage = world.ok("getDestination", {"_id": destination["_id"]})["disk_usage"]
    assert usage == {"usage": stored, "free": 0, "total": 0}
    backups = world.ok("listBackups", {"find": {"job_id": job["_id"]}})["backups"]
    assert len(backups) == 2
    for group in (*groups, restored):
        secrets_absent(world, group, ftpd.password)


def test_wrong_ftp_password_fails_validation_and_the_run_at_once(world: World, ftpd: FtpServer) -> None:
    destination = ftp_destination(world, ftpd, password="not-the-password")
    message = world.fails("validateDestination", {"_id": destination["_id"]})
    assert "failed validation" in message
    assert "authentication failed for user 'snapkeep-ftp'" in message
    assert "not-the-password" not in message
    job = world.job(destination)
    make_tree(world.source, 1)
    status, group = world.run(job)
    assert status != 100
    text = world.log_text(group)
    assert "authentication failed" in text
    assert "retries" not in text, "a wrong password is not retried"
    secrets_absent(world, group, "not-the-password")
    assert world.ok("listBackups", {"find": {"job_id": job["_id"]}})["total"] == 0


def test_api_calls_and_runs_leave_no_ftp_connection_open(world: World, ftpd: FtpServer) -> None:
    before = connections_to({ftpd.port})
    destination = ftp_destination(world, ftpd, threads=2)
    job = world.job(destination)
    make_tree(world.source, 1)
    status, group = world.run(job)
    assert status == 100, world.log_text(group)
    for number in range(30):
        function = ("validateDestination", "getDestination", "listDestinations")[number % 3]
        params = {} if function == "listDestinations" else {"_id": destination["_id"]}
        world.ok(function, params)
    assert connections_to({ftpd.port}) == before, "every FTP store opened was closed"


def test_ftp_server_stopped_mid_backup_then_back(
    world: World, ftpd: FtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    destination = ftp_destination(world, ftpd, threads=2)
    job = world.job(destination)
    make_tree(world.source, 1)
    status, group = world.run(job)
    assert status == 100, world.log_text(group)
    random_files(world.source, 3, 9 * 1024 * 1024)  # 27 MiB: more than one 16 MiB pack
    hooks: list[StopAfterFirstPack] = []
    open_ftp = registry.BACKENDS["ftp"]

    def wrapped_ftp(params: registry.FtpParams) -> Store:
        hooks.append(StopAfterFirstPack(open_ftp(params), ftpd))  # type: ignore[arg-type]
        return hooks[-1]

    monkeypatch.setitem(registry.BACKENDS, "ftp", wrapped_ftp)  # the registry is the one route to a store
    try:
        status, group = world.run(job)
    finally:
        monkeypatch.setitem(registry.BACKENDS, "ftp", open_ftp)
        ftpd.start()
    text = world.log_text(group)
    assert hooks
    assert hooks[0].fired
    assert status == 102, text
    assert "backup failed" in text
    assert "connection refused" in text
    assert "retries" in text
    repository_checks_clean(world, destination, job)
    folder = ftpd.on_disk(destination["options"]["path"]) / job["_id"]
    status, group = world.run(job)
    assert status == 100, world.log_text(group)
    repository_checks_clean(world, destination, job)
    restore_and_compare(world, job, tree_state(world.source))
    assert world.ok("listBackups", {"find": {"job_id": job["_id"]}})["total"] == 2
    assert all(path.name.startswith(".tmp-") for path in folder.rglob(".*")), "only dot-names are leftovers"
