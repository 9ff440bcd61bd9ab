"""Runs against SFTP and S3 destinations that misbehave (issue 5, "Faults").

* the SFTP server stops in the middle of a backup: the run fails with the cause and an alert, the
  repository checks clean, the next run (server back) succeeds;
* S3 answers 503 to a share of requests (``FlakyS3Proxy``, a small HTTP proxy on 127.0.0.1 in front
  of ``rclone serve s3``): the backup completes through retries, and the log counts them;
* wrong credentials, unknown host, changed host key, missing bucket: ``validateDestination`` and a run
  both fail at once with the specific message, and nothing is left on the destination;
* the destination fills up (SFTP: a small tmpfs; S3: the proxy's quota): the run fails cleanly, the
  earlier backup stays intact and restorable.
"""

from __future__ import annotations

import http.client
import os
import random
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import require_server
from tests.integration.runner_helpers import World, make_tree, tree_state
from tests.integration.test_remote_runs import restore_and_compare, s3_destination, sftp_destination

from servers import RcloneS3Server, SshServer
from snapkeep.engine.format import DATA_PREFIX
from snapkeep.engine.maintenance.check import check, open_without_index
from snapkeep.jobs import repositories
from snapkeep.storage import registry
from snapkeep.storage.base import Store
from snapkeep.storage.wrappers import StoreWrapper


@pytest.fixture(scope="module", autouse=True)
def bucket(s3_server: RcloneS3Server) -> str:
    return s3_server.make_bucket("runs")


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setattr(repositories, "DEFAULT_RETRY", repositories.RetryPolicy(attempts=4, base_delay=0.02))
    opened = World(tmp_path)
    opened.source.mkdir()
    yield opened
    opened.close()


# --- a flaky, quota-limited S3 front ----------------------------------------------------------


class FlakyS3Proxy:
    """HTTP proxy on 127.0.0.1 in front of an S3 server: answers ``503 SlowDown`` to a seeded share
    ``rate`` of requests (never more than two in a row), and ``507 InsufficientStorage`` to a PUT that
    would take the bytes stored in ``bucket_folder`` over ``quota``. Everything else is forwarded
    unchanged (the Host header included, so signatures stay valid)."""

    def __init__(self, upstream_port: int, *, rate: float = 0.0, seed: int = 5) -> None:
        self.upstream_port = upstream_port
        self.rate = rate
        self.quota: int | None = None
        self.bucket_folder: Path | None = None
        self.refused = 0
        self.requests = 0
        self._random = random.Random(seed)
        self._in_a_row = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def handle_any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                refusal = proxy.refusal(self.command, len(body))
                if refusal is not None:
                    status, code = refusal
                    document = (
                        f"<Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
                    )
                    payload = document.encode() if self.command != "HEAD" else b""
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(document.encode())))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                connection = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                try:
                    connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for key, value in self.headers.items():
                        connection.putheader(key, value)
                    connection.endheaders(body or None)
                    answer = connection.getresponse()
                    data = answer.read()
                finally:
                    connection.close()
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                length = answer.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length or "0")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def stored(self) -> int:
        folder = self.bucket_folder
        return 0 if folder is None else sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

    def refusal(self, method: str, size: int) -> tuple[int, str] | None:
        with self._lock:
            self.requests += 1
            if method == "PUT" and self.quota is not None and self.stored() + size > self.quota:
                self.refused += 1
                return 507, "InsufficientStorage"
            if self.rate and self._in_a_row < 2 and self._random.random() < self.rate:
                self._in_a_row += 1
                self.refused += 1
                return 503, "SlowDown"
            self._in_a_row = 0
            return None

    def __enter__(self) -> FlakyS3Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


# --- helpers ---------------------------------------------------------------------------------------


def repository_checks_clean(
    world: World, destination: Mapping[str, Any], job: Mapping[str, Any], **options: Any
) -> None:
    """``engine.maintenance.check.check`` with all data read, on the job's repository on ``destination``
    (``options`` override the destination's options, e.g. an S3 endpoint past the test proxy)."""
    with world.catalog.transaction(write=False) as tx:
        full = {**tx.require("destinations", destination["_id"], "Destination")}
    full["options"] = {**full["options"], **options}
    password = repositories.job_password(world.catalog, job["_id"], bool(job.get("encrypted")), create=False)
    with repositories.backend_store(full, job["_id"]) as store:
        repository = open_without_index(store, password=password)
        report = check(repository, read_data=True)
        repository.close()
    assert report.ok, report.to_dict()


def random_files(folder: Path, count: int, size: int) -> None:
    for number in range(count):
        (folder / f"random-{number}.bin").write_bytes(os.urandom(size))


# --- SFTP server stopped mid-backup --------------------------------------------------------------


class StopAfterFirstPack(StoreWrapper):
    """Stops the SSH server right after the first pack reached it (the run is mid-backup)."""

    def __init__(self, inner: Store, server: SshServer) -> None:
        super().__init__(inner)
        self.server = server
        self.fired = False

    def store(self, name: str, data: bytes) -> None:
        self.inner.store(name, data)
        self._stored(name)

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        size = self.inner.store_stream(name, chunks)
        self._stored(name)
        return size

    def _stored(self, name: str) -> None:
        if name.startswith(DATA_PREFIX) and not self.fired:
            self.fired = True
            self.server.stop()


def test_sftp_server_stopped_mid_backup_then_back(
    world: World, sshd: SshServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    destination = sftp_destination(world, sshd, threads=2)
    job = world.job(destination)
    make_tree(world.source, 1)
    status, group = world.run(job)
    assert status == 100, world.log_text(group)
    random_files(world.source, 3, 9 * 1024 * 1024)  # 27 MiB: more than one 16 MiB pack
    hooks: list[StopAfterFirstPack] = []
    open_sftp = registry.BACKENDS["sftp"]

    def wrapped_sftp(params: registry.SftpParams) -> Store:
        hooks.append(StopAfterFirstPack(open_sftp(params), sshd))
        return hooks[-1]

    monkeypatch.setitem(registry.BACKENDS, "sftp", wrapped_sftp)  # the registry is the one route to a store
    try:
        status, group = world.run(job)
    finally:
        monkeypatch.setitem(registry.BACKENDS, "sftp", open_sftp)
        sshd.start()
    text = world.log_text(group)
    assert hooks
    assert hooks[0].fired
    assert status == 102, text
    assert "backup failed" in text
    assert "connection refused" in text
    assert "retries" in text
    alerts = world.ok("listAlerts", {"limit": 0})["alerts"]
    assert any(group["_id"] in alert["message"] for alert in alerts)
    repository_checks_clean(world, destination, job)
    status, group = world.run(job)
    assert status == 100, world.log_text(group)
    repository_checks_clean(world, destination, job)
    restore_and_compare(world, job, tree_state(world.source))
    assert world.ok("listBackups", {"find": {"job_id": job["_id"]}})["total"] == 2


# --- S3 answering 503 -------------------------------------------------------------------------------


def test_s3_503_answers_are_retried_and_counted(world: World, s3_server: RcloneS3Server) -> None:
    with FlakyS3Proxy(s3_server.port, rate=0.25, seed=11) as proxy:
        destination = s3_destination(world, s3_server, endpoint=proxy.endpoint, threads=2)
        job = world.job(destination, encrypted=1)
        make_tree(world.source, 2)
        random_files(world.source, 2, 300_000)
        status, group = world.run(job)
        text = world.log_text(group)
        assert status == 100, text
        assert proxy.refused > 0
        counted = [line for line in text.splitlines() if " retries (last: " in line]
        assert counted
        assert "503" in counted[0] or "SlowDown" in counted[0]
        number = int(counted[0].split(" retries (last: ")[0].rsplit(" ", 1)[-1])
        assert 1 <= number <= proxy.refused
        restore_and_compare(world, job, tree_state(world.source))
    repository_checks_clean(world, destination, job, endpoint=s3_server.endpoint)


# --- refusals that must fail at once ---------------------------------------------------------------


def fails_at_once(world: World, destination: dict[str, Any], expected: str) -> None:
    """validateDestination and a run both fail within seconds with ``expected`` in the message."""
    started = time.monotonic()
    message = world.fails("validateDestination", {"_id": destination["_id"]})
    assert expected in message, message
    job = world.job(destination)
    make_tree(world.source, 1)
    status, group = world.run(job)
    text = world.log_text(group)
    assert status == 102, text
    assert expected in text, text
    assert " retries" not in text
    assert time.monotonic() - started < 20
    assert world.ok("listBackups", {"find": {"job_id": job["_id"]}})["total"] == 0


def test_sftp_wrong_password(world: World, sshd: SshServer) -> None:
    destination = sftp_destination(world, sshd, password="not-the-password")
    fails_at_once(world, destination, "wrong username or password")
    assert not Path(destination["options"]["path"]).exists()


def test_sftp_unknown_host(world: World, monkeypatch: pytest.MonkeyPatch, sshd: SshServer) -> None:
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host).endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)  # no DNS query leaves the machine
    destination = sftp_destination(world, sshd, host="backup.example.invalid")
    fails_at_once(world, destination, "unknown host 'backup.example.invalid'")


def test_sftp_changed_host_key(world: World, sshd: SshServer) -> None:
    destination = sftp_destination(world, sshd)
    first = world.ok("validateDestination", {"_id": destination["_id"]})["fingerprint"]
    sshd.stop()
    sshd.new_host_key()
    sshd.start()
    assert sshd.fingerprint != first
    fails_at_once(world, destination, "host key of 127.0.0.1")
    assert world.ok("getDestination", {"_id": destination["_id"]})["options"]["fingerprint"] == first
    # the administrator accepts the new key: options[fingerprint]= forgets the old one
    shown = world.ok("getDestination", {"_id": destination["_id"]})["options"]
    modified = {"action": "modify", "_id": destination["_id"], "options": {**shown, "fingerprint": ""}}
    assert world.ok("manageDestination", modified)["options"]["fingerprint"] == ""
    assert world.ok("validateDestination", {"_id": destination["_id"]})["fingerprint"] == sshd.fingerprint


def test_s3_wrong_secret_key(world: World, s3_server: RcloneS3Server) -> None:
    destination = s3_destination(world, s3_server, secret_key="wrong-secret-key-value")
    fails_at_once(world, destination, "secret_key is wrong")
    assert not (s3_server.root / "runs" / destination["options"]["path"]).exists()


def test_s3_missing_bucket(world: World, s3_server: RcloneS3Server) -> None:
    destination = s3_destination(world, s3_server, bucket="no-such-bucket")
    fails_at_once(world, destination, "bucket 'no-such-bucket' does not exist")
    assert not (s3_server.root / "no-such-bucket").exists()


# --- destinations that fill up ----------------------------------------------------------------------


def fills_up(world: World, destination: dict[str, Any], expected: str, **check_options: Any) -> None:
    """A first small backup succeeds; a second that does not fit fails cleanly; the first stays good."""
    job = world.job(destination, encrypted=1)
    make_tree(world.source, 1)
    status, group = world.run(job)
    assert status == 100, world.log_text(group)
    first = tree_state(world.source)
    random_files(world.source, 2, 3 * 1024 * 1024)
    status, group = world.run(job)
    text = world.log_text(group)
    assert status == 102, text
    assert expected in text, text
    listed = world.ok("listBackups", {"find": {"job_id": job["_id"]}})
    assert listed["total"] == 1
    for number in range(2):
        (world.source / f"random-{number}.bin").unlink()
    restore_and_compare(world, job, first)
    repository_checks_clean(world, destination, job, **check_options)


def test_sftp_destination_fills_up(world: World, sshd: SshServer) -> None:
    require_server(sshd.as_root, "root, to mount a small tmpfs as the destination folder")
    small = Path(sshd.folder_for(f"small-{secrets.token_hex(4)}"))
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0777", "tmpfs", str(small)])
    require_server(mounted.returncode == 0, "mount -t tmpfs (a container without CAP_SYS_ADMIN)")
    try:
        destination = sftp_destination(world, sshd, path=str(small))
        fills_up(world, destination, "no space left")
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_s3_destination_fills_up(world: World, s3_server: RcloneS3Server) -> None:
    with FlakyS3Proxy(s3_server.port) as proxy:
        destination = s3_destination(world, s3_server, endpoint=proxy.endpoint)
        proxy.bucket_folder = s3_server.root / "runs" / destination["options"]["path"]
        proxy.quota = 2 * 1024 * 1024
        fills_up(world, destination, "over its quota or full", endpoint=s3_server.endpoint)
        assert proxy.refused > 0
