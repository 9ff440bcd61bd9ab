"""SFTP failures against a real sshd: each one ends in the specific, actionable snapkeep error.

One sshd per module; tests that stop it or change its host key restart it before they end.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import require_server

from servers import KEY_PASSPHRASE, SshServer, free_port, new_rsa_key
from snapkeep.clock import FrozenClock
from snapkeep.errors import (
    HostKeyChangedError,
    PermissionDeniedError,
    StorageError,
    StorageFullError,
    TransientStorageError,
)
from snapkeep.storage.probe import probe
from snapkeep.storage.sftp import SftpStore
from snapkeep.storage.wrappers import RetryingStore


def connect(server: SshServer, **options: object) -> SftpStore:
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "username": server.username,
        "private_key": server.private_key,
        "path": server.folder_for(secrets.token_hex(6)),
        "fingerprint": server.fingerprint,
        "timeout": 5.0,
    }
    settings.update(options)
    return SftpStore(**settings)  # type: ignore[arg-type]


def test_wrong_password_is_a_permanent_authentication_error(sshd: SshServer) -> None:
    require_server(sshd.password is not None, "a password user for sshd (run the tests as root)")
    store = connect(sshd, private_key=None, password="not-the-password")
    with pytest.raises(PermissionDeniedError, match="wrong username or password") as caught:
        store.store("config", b"x")
    assert not caught.value.transient
    assert "not-the-password" not in str(caught.value)


def test_key_not_in_authorized_keys_is_refused(sshd: SshServer) -> None:
    store = connect(sshd, private_key=sshd.unauthorized_key)
    with pytest.raises(PermissionDeniedError, match="refused the private key"):
        store.list()


def test_encrypted_key_needs_its_passphrase() -> None:
    encrypted = new_rsa_key(KEY_PASSPHRASE)
    with pytest.raises(StorageError, match="privatekey: the key is encrypted"):
        SftpStore(host="127.0.0.1", username="u", path="/x", private_key=encrypted)
    with pytest.raises(StorageError, match=r"privatekey: .*wrong passphrase"):
        SftpStore(host="127.0.0.1", username="u", path="/x", private_key=encrypted, passphrase="nope")
    with pytest.raises(StorageError, match="give a password or a privatekey"):
        SftpStore(host="127.0.0.1", username="u", path="/x")


def test_connection_refused_is_transient_and_says_so() -> None:
    store = SftpStore(host="127.0.0.1", port=free_port(), username="u", password="p", path="/x")
    with pytest.raises(TransientStorageError, match=r"connection refused by 127\.0\.0\.1:\d+"):
        store.stat("config")


def test_unknown_host_is_permanent(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_name(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)  # no DNS query leaves the machine
    store = SftpStore(host="backup.example.invalid", username="u", password="p", path="/x")
    with pytest.raises(StorageError, match=r"unknown host 'backup\.example\.invalid'") as caught:
        store.load("config")
    assert not caught.value.transient


def test_changed_host_key_is_refused(sshd: SshServer) -> None:
    first = connect(sshd, fingerprint=None)
    first.store("config", b"pinned")
    recorded = first.fingerprint
    assert recorded == sshd.fingerprint
    sshd.stop()
    sshd.new_host_key()
    sshd.start()
    try:
        with pytest.raises(HostKeyChangedError, match=r"host key of 127\.0\.0\.1") as caught:
            first.load("config")  # the pooled connection died; the reconnect sees the new key
        assert recorded in str(caught.value)
        assert sshd.fingerprint in str(caught.value)
        saved = connect(sshd, fingerprint=recorded, path=first.root)
        with pytest.raises(HostKeyChangedError):
            saved.stat("config")
        assert connect(sshd, path=first.root).load("config") == b"pinned"
    finally:
        first.close()


def test_dropped_connection_is_reconnected_transparently(sshd: SshServer) -> None:
    with connect(sshd) as store:
        store.store("data/ab/one", b"before")
        assert sshd.drop_connections() >= 1
        assert store.load("data/ab/one") == b"before"
        store.store_stream("data/ab/two", [b"after ", b"the drop"])
        assert store.load("data/ab/two") == b"after the drop"


def test_server_stopped_mid_sequence_then_restarted(sshd: SshServer) -> None:
    with connect(sshd, threads=2) as store:
        retrying = RetryingStore(store, attempts=3, clock=FrozenClock())
        for number in range(3):
            retrying.store(f"data/{number:02x}/object", bytes([number]) * 1000)
        sshd.stop()
        try:
            with pytest.raises(TransientStorageError, match="connection refused") as caught:
                retrying.store("data/03/object", b"while down")
            assert "server is running" in str(caught.value)
        finally:
            sshd.start()
        retrying.store("data/03/object", b"after restart")
        assert retrying.load("data/03/object") == b"after restart"
        assert sorted(item.name for item in retrying.list("data/")) == [
            f"data/{number:02x}/object" for number in range(4)
        ]


def test_generator_write_is_not_replayed_after_a_drop(sshd: SshServer) -> None:
    with connect(sshd) as store:
        store.store("archives/kept", b"old")

        def chunks() -> Iterator[bytes]:
            yield b"x" * 100_000
            sshd.drop_connections()
            yield b"y" * 100_000

        with pytest.raises(TransientStorageError, match="connection lost during write"):
            store.store_stream("archives/kept", chunks())
        assert store.load("archives/kept") == b"old"


def test_permission_denied_fails_the_probe_at_write(sshd: SshServer) -> None:
    require_server(sshd.as_root, "root, to make a folder the test user may not write")
    locked = Path(sshd.folder_for("locked"))
    locked.mkdir(mode=0o555)
    store = connect(sshd, path=str(locked / "job"))
    report = probe(store)
    assert not report.ok
    assert report.failed_step == "write"
    assert isinstance(report.error, PermissionDeniedError)
    assert "write failed: permission denied" in report.message


def test_full_destination_is_storage_full(sshd: SshServer) -> None:
    require_server(sshd.as_root, "root, to mount a 1 MiB tmpfs as a full destination")
    small = Path(sshd.folder_for("small"))
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", str(small)])
    require_server(mounted.returncode == 0, "mount -t tmpfs (a container without CAP_SYS_ADMIN)")
    try:
        with connect(sshd, path=str(small)) as store:
            store.store("early", b"kept")
            with pytest.raises(StorageFullError, match="no space left"):
                store.store("big", os.urandom(2 * 1024 * 1024))
            assert store.load("early") == b"kept"
            assert [item.name for item in store.list()] == ["early"]
    finally:
        subprocess.run(["umount", str(small)], check=True)
