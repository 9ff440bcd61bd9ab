"""The long-running service must not leak SFTP connections or S3 clients (issue 9, item 5).

Against a real sshd and a real S3 server, backups are run, then 100 API calls that open a destination
go through the API dispatcher in this process, as the service makes them: ``validateDestination``,
``getDestination`` and ``listDestinations`` (disk usage asks the server) and ``deleteSnapshot``.
Afterwards this process holds exactly as many established TCP connections to the two servers, and
as many live paramiko transports and OpenSSH clients, as before the first store was opened: every
store opened was closed (no pool is kept between calls).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from tests.integration.runner_helpers import World, make_tree
from tests.integration.test_remote_runs import s3_destination, sftp_destination

from servers import RcloneS3Server, SshServer

ESTABLISHED = "01"
CALLS = 100


@pytest.fixture(scope="module", autouse=True)
def bucket(s3_server: RcloneS3Server) -> str:
    return s3_server.make_bucket("runs")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    made.source.mkdir()
    yield made
    made.close()


def own_socket_inodes() -> set[str]:
    """The inodes of the sockets among this process's open file descriptors."""
    inodes = set()
    for descriptor in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{descriptor}")
        except OSError:  # closed between listing and reading
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def connections_to(ports: set[int]) -> int:
    """Established TCP connections of this process whose remote port is one of ``ports``."""
    inodes = own_socket_inodes()
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if fields[3] == ESTABLISHED and remote_port in ports and fields[9] in inodes:
                count += 1
    return count


def live_transports() -> int:
    """paramiko transports (one per SSH connection) still running in this process."""
    return sum(
        1 for thread in threading.enumerate() if isinstance(thread, paramiko.Transport) and thread.is_active()
    )


def ssh_clients() -> int:
    """OpenSSH clients (``sftp_openssh``: one per connection of a key login) still running as our
    children; their TCP connections are theirs, not this process's, so they are counted here."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if fields[1] == str(os.getpid()) and command == "ssh":
            count += 1
    return count


def test_hundred_api_calls_leave_no_connection_open(
    world: World, sshd: SshServer, s3_server: RcloneS3Server
) -> None:
    ports = {sshd.port, s3_server.port}
    baseline = (connections_to(ports), live_transports(), ssh_clients())
    sftp = sftp_destination(world, sshd, key="plain", threads=2)
    s3 = s3_destination(world, s3_server, threads=3)
    backup_ids = []
    for destination in (sftp, s3):
        job = world.job(destination)
        for version in range(4):
            make_tree(world.source, version)
            status, group = world.run(job)
            assert status == 100, world.log_text(group)
        backups = world.ok("listBackups", {"find": {"job_id": job["_id"]}, "limit": 0})["backups"]
        backup_ids += [backup["_id"] for backup in backups]
    assert len(backup_ids) == 8
    now = (connections_to(ports), live_transports(), ssh_clients())
    assert now == baseline, "a run left a connection open"

    calls: list[tuple[str, dict[str, str]]] = [("deleteSnapshot", {"_id": ident}) for ident in backup_ids]
    for _ in range(20):
        for destination in (sftp, s3):
            calls.append(("validateDestination", {"_id": destination["_id"]}))
            calls.append(("getDestination", {"_id": destination["_id"]}))
    calls += [("listDestinations", {})] * (CALLS - len(calls))
    assert len(calls) == CALLS
    seen = 0
    for function, params in calls:
        answer = world.api.call(function, params)
        assert answer["success"] == 1, (function, answer["message"])
        if function == "getDestination":  # the server was asked: the repository's files are counted
            assert answer["data"]["disk_usage"]["usage"] > 0
        seen = max(seen, connections_to(ports) + ssh_clients())
    assert seen == baseline[0] + baseline[2], "no call may keep a connection after it answered"
    assert (connections_to(ports), live_transports(), ssh_clients()) == baseline
    assert world.ok("listBackups", {"limit": 0})["total"] == 0
