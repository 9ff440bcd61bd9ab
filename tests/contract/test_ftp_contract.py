"""The store contract against a real vsftpd on 127.0.0.1, over FTP and over FTPS, plus what only FTP has.

One vsftpd per module and protocol (the ``ftpd`` fixture runs each test for both); every test gets a
fresh folder on it. vsftpd has no ``MLSD``: listings go through ``LIST``, and one class forces the
``NLST`` + ``SIZE`` fallback.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest
from tests.contract.store_contract import StoreContract

from ftp_servers import FtpServer, PureFtpServer
from snapkeep.storage import ftp_listing, ftp_session
from snapkeep.storage.base import Store, StoreInfo
from snapkeep.storage.ftp import FtpStore
from snapkeep.storage.probe import probe


def ftp_store(server: FtpServer | PureFtpServer, **options: object) -> FtpStore:
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "username": server.username,
        "password": server.password,
        "path": server.folder_for(secrets.token_hex(6)),
        "tls": server.tls,
        "ca_file": str(server.ca_file) if server.ca_file else None,
        "timeout": 10.0,
    }
    settings.update(options)
    return FtpStore(**settings)  # type: ignore[arg-type]


class TestFtpStore(StoreContract):
    @pytest.fixture
    def store(self, ftpd: FtpServer) -> Iterator[Store]:
        with ftp_store(ftpd, threads=4) as store:
            yield store


class TestFtpStoreNlstListing(StoreContract):
    """The contract again with listings through ``NLST`` + ``SIZE`` (servers without ``MLSD`` whose
    ``LIST`` lines are not Unix-style)."""

    @pytest.fixture
    def store(self, ftpd: FtpServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
        monkeypatch.setattr(ftp_listing, "_unix_entries", lambda lines: None)
        with ftp_store(ftpd, threads=2) as store:
            yield store


class TestFtpStoreOnPureFtpd(StoreContract):
    """The contract against Pure-FTPd (cPanel's default FTP server), whose listings are ``MLSD``."""

    @pytest.fixture
    def store(self, pure_ftpd: PureFtpServer) -> Iterator[Store]:
        with ftp_store(pure_ftpd, threads=4) as store:
            yield store


def test_pure_ftpd_listings_use_mlsd(pure_ftpd: PureFtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    commands: list[str] = []
    lines = ftp_session.FtpSession.lines

    def recording(session: ftp_session.FtpSession, command: str) -> Iterator[str]:
        commands.append(command.split(" ")[0])
        return lines(session, command)

    monkeypatch.setattr(ftp_session.FtpSession, "lines", recording)
    with ftp_store(pure_ftpd) as store:
        store.store("data/ab/one", b"12345")
        store.store("config", b"c")
        assert sorted((item.name, item.size) for item in store.list()) == [("config", 1), ("data/ab/one", 5)]
    assert set(commands) == {"MLSD"}


def test_active_mode_transfers(ftpd: FtpServer) -> None:
    with ftp_store(ftpd, passive=False) as store:
        store.store_stream("data/ab/one", [b"a" * 70_000, b"b" * 5])
        assert store.load("data/ab/one", 69_999, 3) == b"abb"
        assert [(item.name, item.size) for item in store.list()] == [("data/ab/one", 70_005)]


def test_no_temporary_file_is_left_or_listed(ftpd: FtpServer) -> None:
    with ftp_store(ftpd) as store:
        store.store_stream("archives/a.tar", iter([b"a" * 100_000, b"b" * 100_000]))
        store.store("archives/a.tar", b"replaced")
        folder = ftpd.on_disk(store.root)
        assert [path.name for path in folder.rglob("*") if path.is_file()] == ["a.tar"]
        assert (folder / "archives" / "a.tar").read_bytes() == b"replaced"


def test_parallel_transfers_use_several_connections(ftpd: FtpServer) -> None:
    with ftp_store(ftpd, threads=3) as store:
        barrier = threading.Barrier(3)
        errors: list[BaseException] = []

        def worker(number: int) -> None:
            try:
                barrier.wait(timeout=10)
                store.store(f"data/{number:02x}/object", bytes([number]) * 300_000)
            except BaseException as error:  # noqa: BLE001 - collected and asserted below
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(number,)) for number in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(store._idle) == 3, "three writers at once opened three pooled connections"
        assert sorted(item.size for item in store.list()) == [300_000] * 3


def test_info_reports_usage(ftpd: FtpServer) -> None:
    with ftp_store(ftpd) as store:
        store.store("data/ab/one", b"x" * 1234)
        store.store("data/cd/two", b"y" * 766)
        assert store.info() == StoreInfo(usage=2000, free=None, total=None)


def test_relative_path_is_below_the_login_folder(ftpd: FtpServer) -> None:
    folder = secrets.token_hex(6)
    with ftp_store(ftpd, path=f"{folder}/repo") as store:
        assert store.root == f"./{folder}/repo"
        store.store("config", b"relative")
        assert ftpd.on_disk(f"/{folder}/repo/config").read_bytes() == b"relative"
        assert [item.name for item in store.list()] == ["config"]


def test_probe_passes(ftpd: FtpServer) -> None:
    with ftp_store(ftpd) as store:
        report = probe(store)
        assert report.ok, report.message
        assert [step.name for step in report.steps] == ["write", "read", "list", "delete"]
        assert list(store.list()) == []


def test_names_the_server_lists_that_are_not_object_names_are_skipped(ftpd: FtpServer) -> None:
    with ftp_store(ftpd) as store:
        store.store("data/ok", b"1")
        folder = ftpd.on_disk(store.root) / "data"
        for odd in ("with space", ".hidden", "semi;colon", "caf\u00e9"):
            (folder / odd).write_bytes(b"x")
        (folder / "sub dir").mkdir()
        (folder / "sub dir" / "inner").write_bytes(b"x")
        assert [item.name for item in store.list()] == ["data/ok"]


def test_repr_and_errors_mask_the_password(ftpd: FtpServer) -> None:
    store = ftp_store(ftpd, password="hunter2-password")
    text = repr(store) + str(store.__dict__)
    assert "hunter2-password" not in text
    assert "***" in repr(store)
    assert repr(store).startswith(f"FtpStore('{'ftps' if ftpd.tls else 'ftp'}://")
