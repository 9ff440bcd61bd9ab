"""The store contract against a real OpenSSH sshd on 127.0.0.1, plus what only SFTP has.

One sshd serves the whole module; every test gets a fresh folder on it.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import require_server
from tests.contract.store_contract import StoreContract

from servers import KEY_PASSPHRASE, SshServer
from snapkeep.storage.base import Store
from snapkeep.storage.probe import probe
from snapkeep.storage.sftp import SftpStore


def key_store(server: SshServer, **options: object) -> SftpStore:
    return SftpStore(
        host="127.0.0.1",
        port=server.port,
        username=server.username,
        private_key=server.private_key,
        path=server.folder_for(secrets.token_hex(6)),
        fingerprint=server.fingerprint,
        **options,  # type: ignore[arg-type]
    )


class TestSftpStore(StoreContract):
    @pytest.fixture
    def store(self, sshd: SshServer) -> Iterator[Store]:
        with key_store(sshd, threads=4) as store:
            yield store


def test_password_login_and_recorded_fingerprint(sshd: SshServer) -> None:
    require_server(sshd.password is not None, "a password user for sshd (run the tests as root)")
    with SftpStore(
        host="127.0.0.1",
        port=sshd.port,
        username=sshd.username,
        password=sshd.password,
        path=sshd.folder_for("password"),
    ) as store:
        assert store.fingerprint is None, "nothing is known before the first connection"
        store.store("config", b"by password")
        assert store.load("config") == b"by password"
        assert store.fingerprint == sshd.fingerprint, "the first key seen is recorded for the API to save"


def test_encrypted_rsa_key_login(sshd: SshServer) -> None:
    with SftpStore(
        host="127.0.0.1",
        port=sshd.port,
        username=sshd.username,
        private_key=sshd.encrypted_key,
        passphrase=KEY_PASSPHRASE,
        path=sshd.folder_for("rsa"),
        fingerprint=sshd.fingerprint.removeprefix("SHA256:"),
    ) as store:
        store.store("keys/k1", b"by key")
        assert [item.name for item in store.list()] == ["keys/k1"]


def test_info_reports_space_from_statvfs(sshd: SshServer) -> None:
    with key_store(sshd) as store:
        store.store("data/ab/one", b"x" * 1234)
        store.store("data/cd/two", b"y" * 766)
        info = store.info()
        assert info.usage == 2000
        assert info.total is not None
        assert info.free is not None
        assert 0 < info.free <= info.total


def test_parallel_transfers_use_several_connections(sshd: SshServer) -> None:
    with key_store(sshd, threads=3) as store:
        barrier = threading.Barrier(3)
        errors: list[BaseException] = []

        def worker(number: int) -> None:
            try:
                barrier.wait(timeout=10)
                store.store(f"data/{number:02x}/object", bytes([number]) * 200_000)
            except BaseException as error:  # noqa: BLE001 - collected and asserted below
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(number,)) for number in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        # a key login goes through the OpenSSH client: three writers at once ran three of them
        assert len(store._openssh.idle) == 3, "three writers at once opened three pooled connections"
        assert sorted(item.size for item in store.list()) == [200_000] * 3


def test_no_temporary_file_is_left_or_listed(sshd: SshServer) -> None:
    with key_store(sshd) as store:
        store.store_stream("archives/a.tar", iter([b"a" * 100_000, b"b" * 100_000]))
        store.store("archives/a.tar", b"replaced")
        files = [path.name for path in Path(store.root).rglob("*") if path.is_file()]
        assert files == ["a.tar"]


def test_probe_passes_on_sftp(sshd: SshServer) -> None:
    with key_store(sshd) as store:
        report = probe(store)
        assert report.ok, report.message
        assert [step.name for step in report.steps] == ["write", "read", "list", "delete"]
        assert list(store.list()) == []


def test_repr_masks_secrets(sshd: SshServer) -> None:
    store = SftpStore(
        host="127.0.0.1",
        port=sshd.port,
        username=sshd.username,
        private_key=sshd.encrypted_key,
        passphrase=KEY_PASSPHRASE,
        password="hunter2-password",
        path="/backups",
    )
    text = repr(store) + str(store.__dict__)
    for secret in ("hunter2-password", KEY_PASSPHRASE, sshd.encrypted_key.splitlines()[1]):
        assert secret not in text
    assert "***" in repr(store)
    assert "sftp://" in repr(store)
