"""Crash: ``kill -9`` of ``snapkeep serve`` in the middle of a backup run, then a restart.

The run left Processing reads 104 Never Finished after the restart, the next run of the job succeeds,
and ``snapkeep repo check --read-data`` finds the repository clean (the dead run's lock is released and
its packs without an index are leftovers, not damage).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from tests.e2e.conftest import Instance, Server, printed_token, start_server

DATA_FILES = 10
FILE_SIZE = 16 * 1024 * 1024  # 160 MiB of incompressible data: the run lasts a few seconds
WAIT = 180.0


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    """A SQLite instance (the daemon's crash handling does not depend on the catalog backend)."""
    return Instance("sqlite", tmp_path / "home", None)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160 MiB of incompressible data: a run lasts a few seconds."""
    source = tmp_path_factory.mktemp("crash-source") / "source"
    source.mkdir()
    for index in range(DATA_FILES):
        with (source / f"blob-{index:02}.bin").open("wb") as handle:
            for _ in range(FILE_SIZE // (1024 * 1024)):
                handle.write(os.urandom(1024 * 1024))
    return source


@pytest.fixture
def long_source(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``source`` plus a 32 GiB sparse file of zeros walked after it: the run writes its first packs,
    then reads zeros for well over a minute, so a signal always lands in the middle of the run
    however fast the machine is (the zeros take no disk space)."""
    long = tmp_path_factory.mktemp("long-source") / "source"
    long.mkdir()
    for path in source.iterdir():
        os.link(path, long / path.name)
    with (long / "zz-zeros.bin").open("wb") as handle:
        handle.truncate(32 * 1024**3)
    return long


def wait_for(condition, what: str, log: Path) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.05)


def ok(server: Server, function: str, params: dict) -> dict:
    answer = server.call(function, params)
    assert answer["success"] == 1, (function, answer["message"])
    return answer["data"]


def start_mid_run(instance: Instance, source: Path) -> tuple[Server, dict, str]:
    """Start the service, create a job of ``source`` and run it; return once it has written a pack
    and is still running: (server, job, queue group ID)."""
    root = instance.home.parent
    backups = root / "backups"
    log = root / "serve.log"
    process, base_url, output = start_server(instance, log)
    token = printed_token(output)
    assert token, output
    server = Server(instance, process, base_url, log, token)
    try:
        destination = ok(
            server,
            "manageDestination",
            {"action": "create", "name": "Disk", "type": "Local", "options": {"path": str(backups)}},
        )
        job = ok(
            server,
            "manageBackupJob",
            {
                "action": "create",
                "name": "Big",
                "type": 2,
                "destination": [destination["_id"]],
                "contains": 511,
                "structure": 1,
                "include_list": [str(source)],
            },
        )
        ok(server, "runBackupJobManually", {"_id": job["_id"]})
        data = backups / job["_id"] / "data"
        wait_for(lambda: data.is_dir() and any(data.rglob("*")), "the run to write its first pack", log)
        groups = ok(server, "listQueueGroups", {})["groups"]
        assert [group["status"] for group in groups] == [2], "stopped in the middle of the run"
    except BaseException:
        server.stop()
        raise
    return server, job, groups[0]["_id"]


def check_repository(instance: Instance, job: dict) -> None:
    repository = instance.home.parent / "backups" / job["_id"]
    check = instance.cli("repo", "check", "--read-data", str(repository))
    assert check.returncode == 0, check.stdout + check.stderr
    assert not list((repository / "locks").iterdir()), "no lock is left behind"


def test_kill_9_mid_run_then_restart(instance: Instance, long_source: Path) -> None:
    server, job, crashed = start_mid_run(instance, long_source)
    log, token, process = server.log, server.token, server.process
    try:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        server.stop()
    (long_source / "zz-zeros.bin").unlink()  # the next run need not read 32 GiB of zeros

    process, base_url, output = start_server(instance, log)
    server = Server(instance, process, base_url, log, token)
    try:
        assert f"queue group {crashed} was interrupted" in output
        assert ok(server, "getQueueGroup", {"_id": crashed})["status"] == 104
        assert ok(server, "getBackupJob", {"_id": job["_id"]})["running"] is None, "the flag is cleared"
        ok(server, "runBackupJobManually", {"_id": job["_id"]})

        def finished() -> bool:
            groups = ok(server, "listQueueGroups", {})["groups"]
            return all(group["status"] >= 100 for group in groups) and len(groups) == 2

        wait_for(finished, "the next run", log)
        statuses = sorted(group["status"] for group in ok(server, "listQueueGroups", {})["groups"])
        assert statuses == [100, 104]
        assert len(ok(server, "listBackups", {"type": 2, "account_id": job["_id"]})["backups"]) == 1
    finally:
        server.stop()
    assert process.returncode == 0, log.read_text()[-4000:]
    check_repository(instance, job)


def test_sigterm_mid_run_stops_the_run_cleanly_and_exits_0(instance: Instance, long_source: Path) -> None:
    server, job, group_id = start_mid_run(instance, long_source)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) == 0, server.log.read_text()[-4000:]
    server.stop()
    catalog = instance.dump()
    group = next(row for row in catalog["queue_groups"] if row["id"] == group_id)
    assert group["status"] == 103, "stopped: Aborted, not Never Finished"
    assert catalog["backups"] == [], "no backup is committed for a stopped run"
    check_repository(instance, job)
