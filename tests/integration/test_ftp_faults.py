"""FTP and FTPS failures against a real vsftpd: each one ends in the specific, actionable snapkeep error,
and no interrupted write ever shows a partial object.

The ``ftpd`` fixture runs every test once on a plain server and once on one that requires TLS; tests
that stop the server restart it before they end.
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftp_servers import FtpServer, self_signed_certificate
from servers import free_port
from snapkeep.clock import FrozenClock
from snapkeep.errors import ConfigError, PermissionDeniedError, StorageError, TransientStorageError
from snapkeep.storage import ftp_listing, ftp_session
from snapkeep.storage.ftp import FtpStore
from snapkeep.storage.locations import Credentials, open_location
from snapkeep.storage.wrappers import RetryingStore


def connect(server: FtpServer, **options: object) -> FtpStore:
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "username": server.username,
        "password": server.password,
        "path": server.folder_for(secrets.token_hex(6)),
        "tls": server.tls,
        "ca_file": str(server.ca_file) if server.ca_file else None,
        "timeout": 5.0,
    }
    settings.update(options)
    return FtpStore(**settings)  # type: ignore[arg-type]


def visible_files(server: FtpServer, store: FtpStore) -> list[str]:
    folder = server.on_disk(store.root)
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_wrong_password_is_a_permanent_authentication_error(ftpd: FtpServer) -> None:
    store = connect(ftpd, password="not-the-password")
    with pytest.raises(
        PermissionDeniedError, match="authentication failed for user 'snapkeep-ftp'"
    ) as caught:
        store.store("config", b"x")
    assert not caught.value.transient
    assert "not-the-password" not in str(caught.value)
    assert "530" in str(caught.value)


def test_tls_mismatch_says_which_way(ftpd: FtpServer) -> None:
    if ftpd.tls:
        with pytest.raises(PermissionDeniedError, match=r"must use encryption.*tls=1"):
            connect(ftpd, tls=False).stat("config")
    else:
        with pytest.raises(StorageError, match=r"does not offer FTPS.*set tls=0"):
            connect(ftpd, tls=True, ca_file=None).stat("config")


@pytest.mark.parametrize("ftpd", ["ftps"], indirect=True)
def test_certificate_checks(ftpd: FtpServer, tmp_path: Path) -> None:
    assert ftpd.tls
    with pytest.raises(
        StorageError, match=r"TLS certificate of 127\.0\.0\.1:\d+ is not trusted.*ca_file"
    ) as caught:
        connect(ftpd, ca_file=None).stat("config")
    assert not caught.value.transient
    other, _ = self_signed_certificate(tmp_path)
    with pytest.raises(StorageError, match="is not trusted"):
        connect(ftpd, ca_file=str(other)).stat("config")
    with pytest.raises(StorageError, match=r"ca_file .*absent\.pem: cannot read"):
        connect(ftpd, ca_file=str(tmp_path / "absent.pem"))
    with connect(ftpd, ca_file=None, verify=False) as unchecked:
        unchecked.store("config", b"unchecked")
        assert unchecked.load("config") == b"unchecked"


def test_connection_refused_is_transient_and_says_so() -> None:
    store = FtpStore(host="127.0.0.1", port=free_port(), username="u", password="p", path="/x")
    with pytest.raises(TransientStorageError, match=r"connection refused by 127\.0\.0\.1:\d+: no FTP server"):
        store.stat("config")


def test_unknown_host_is_permanent(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_name(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)  # no DNS query leaves the machine
    store = FtpStore(host="backup.example.invalid", username="u", password="p", path="/x")
    with pytest.raises(StorageError, match=r"unknown host 'backup\.example\.invalid'") as caught:
        store.load("config")
    assert not caught.value.transient


def test_not_an_ftp_server_is_named() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        store = FtpStore(host="127.0.0.1", port=port, username="u", password="p", path="/x", timeout=2)

        def speak_imap() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"* OK IMAP4rev1 ready\r\n")
                conn.recv(100)

        thread = threading.Thread(target=speak_imap)
        thread.start()
        with pytest.raises(StorageError, match="does not answer as an FTP server") as caught:
            store.stat("config")
        thread.join()
        assert not caught.value.transient


def test_control_characters_are_refused_before_connecting() -> None:
    with pytest.raises(ConfigError, match="path must not contain control characters"):
        FtpStore(host="127.0.0.1", username="u", password="p", path="/x\r\nDELE config")
    with pytest.raises(ConfigError, match="password must not contain control characters"):
        FtpStore(host="127.0.0.1", username="u", password="p\nQUIT", path="/x")


def test_dropped_connection_is_reconnected_transparently(ftpd: FtpServer) -> None:
    with connect(ftpd) as store:
        store.store("data/ab/one", b"before")
        assert ftpd.drop_connections() >= 1
        assert store.load("data/ab/one") == b"before"
        ftpd.drop_connections()
        store.store_stream("data/ab/two", [b"after ", b"the drop"])
        assert store.load("data/ab/two") == b"after the drop"
        ftpd.drop_connections()
        assert sorted(item.name for item in store.list()) == ["data/ab/one", "data/ab/two"]


def test_server_stopped_mid_sequence_then_restarted(ftpd: FtpServer) -> None:
    with connect(ftpd, threads=2) as store:
        retrying = RetryingStore(store, attempts=3, clock=FrozenClock())
        for number in range(3):
            retrying.store(f"data/{number:02x}/object", bytes([number]) * 1000)
        ftpd.stop()
        try:
            with pytest.raises(TransientStorageError, match="connection refused") as caught:
                retrying.store("data/03/object", b"while down")
            assert "server is running" in str(caught.value)
        finally:
            ftpd.start()
        retrying.store("data/03/object", b"after restart")
        assert retrying.load("data/03/object") == b"after restart"
        assert sorted(item.name for item in retrying.list("data/")) == [
            f"data/{n:02x}/object" for n in range(4)
        ]


def test_server_killed_mid_write_leaves_no_partial_object(ftpd: FtpServer) -> None:
    with connect(ftpd) as store:
        store.store("archives/kept", b"old")

        def chunks() -> Iterator[bytes]:
            yield b"x" * 200_000
            ftpd.stop()  # the server and every connection die half-way through the upload
            yield b"y" * 200_000

        try:
            with pytest.raises(TransientStorageError, match="during write 'archives/kept'"):
                store.store_stream("archives/kept", chunks())
            with pytest.raises(TransientStorageError):
                store.store_stream("archives/new", chunks())
        finally:
            ftpd.start()
        assert store.load("archives/kept") == b"old"
        assert sorted(item.name for item in store.list()) == ["archives/kept"]
        assert not store.exists("archives/new")
        leftovers = [name for name in visible_files(ftpd, store) if name != "archives/kept"]
        assert all(Path(name).name.startswith(".tmp-") for name in leftovers), leftovers


def test_generator_write_is_not_replayed_after_a_drop(ftpd: FtpServer) -> None:
    with connect(ftpd) as store:
        store.store("archives/kept", b"old")

        def chunks() -> Iterator[bytes]:
            yield b"x" * 200_000
            ftpd.drop_connections()
            yield b"y" * 200_000

        with pytest.raises(TransientStorageError, match="during write"):
            store.store_stream("archives/kept", chunks())
        assert store.load("archives/kept") == b"old"
        assert [item.name for item in store.list()] == ["archives/kept"]


def test_listings_are_bounded(ftpd: FtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with connect(ftpd) as store:
        for number in range(6):
            store.store(f"data/{number}", b"x")
        monkeypatch.setattr(ftp_listing, "MAX_LIST_ENTRIES", 5)
        with pytest.raises(StorageError, match="listed more than 5 entries"):
            list(store.list())
        monkeypatch.setattr(ftp_listing, "MAX_LIST_ENTRIES", 100)
        monkeypatch.setattr(ftp_session, "MAX_LINE", 40)
        with pytest.raises(StorageError, match="listing line longer than 40 bytes"):
            list(store.list())
        monkeypatch.setattr(ftp_session, "MAX_LINE", 8192)
        assert len(list(store.list())) == 6, "the store still works after refusing a listing"


def test_refused_write_is_a_permission_error(ftpd: FtpServer) -> None:
    folder = secrets.token_hex(6)
    locked = ftpd.data / folder
    locked.mkdir(mode=0o555)  # owned by root: the FTP user may not write there
    with (
        connect(ftpd, path=f"/{folder}") as store,
        pytest.raises(PermissionDeniedError, match=r"refused write 'config'.*rights"),
    ):
        store.store("config", b"x")


def test_ftp_locations_open_the_store(ftpd: FtpServer) -> None:
    folder = secrets.token_hex(6)
    scheme = "ftps" if ftpd.tls else "ftp"
    query = f"?ca_file={ftpd.ca_file}" if ftpd.ca_file else ""
    location = f"{scheme}://{ftpd.username}@127.0.0.1:{ftpd.port}/{folder}/jobs/5f{query}"
    with open_location(location, Credentials(password=ftpd.password)) as store:
        store.store("snapshots/abc", b"x" * 100)
        assert store.stat("snapshots/abc").size == 100
    assert (ftpd.data / folder / "jobs" / "5f" / "snapshots" / "abc").read_bytes() == b"x" * 100


def test_every_pooled_connection_dropped_at_once_costs_one_reconnect(ftpd: FtpServer) -> None:
    with connect(ftpd, threads=3) as store:
        barrier = threading.Barrier(3)

        def writer(number: int) -> None:
            barrier.wait(timeout=10)
            store.store(f"data/{number}", b"x" * 100_000)

        threads = [threading.Thread(target=writer, args=(number,)) for number in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(store._idle) == 3
        ftpd.stop()  # like a restart: every pooled connection is gone
        ftpd.start()
        assert store.load("data/1") == b"x" * 100_000, "no retry wrapper: the store reconnects by itself"
        assert len(store._idle) == 1, "the dead connections were dropped, not tried one by one"
