"""Destination rows to store parameters (``jobs.destinations``), and opening and closing them
(``jobs.repositories``): the wrappers, the retry count, the closing rule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from snapkeep.errors import ConfigError, RepositoryNotFoundError
from snapkeep.jobs import destinations, repositories
from snapkeep.jobs.catalog import Catalog
from snapkeep.storage import registry
from snapkeep.storage.base import Store
from snapkeep.storage.local import LocalStore
from snapkeep.storage.memory import MemoryStore
from snapkeep.storage.registry import LocalParams, S3Params, SftpParams
from snapkeep.storage.wrappers import FaultyStore, LimitedStore, RetryingStore, StoreWrapper


def sftp_row(**fields: Any) -> dict[str, Any]:
    options = {"host": "h", "username": "u", "path": "/srv/b/", "password": "pw", "port": 2200, "timeout": 7}
    return {"_id": "d1", "name": "ssh", "type": "SFTP", "threads": 3, "options": options, **fields}


def test_each_destination_type_becomes_the_parameters_of_its_store() -> None:
    local = {"name": "disk", "type": "Local", "options": {"path": "/var/backups/"}}
    assert destinations.store_params(local, "job1") == LocalParams(path="/var/backups/job1")
    assert destinations.store_params(local, "") == LocalParams(path="/var/backups")
    assert destinations.store_params(sftp_row(fingerprint="SHA256:x"), "job1") == SftpParams(
        host="h",
        port=2200,
        username="u",
        path="/srv/b/job1",
        password="pw",
        fingerprint="SHA256:x",
        timeout=7,
        threads=3,
    )
    s3 = {
        "name": "cloud",
        "type": "S3",
        "options": {
            "bucket": "b",
            "access_key": "AK",
            "secret_key": "SK",
            "endpoint": "http://e:9",
            "path": "p",
        },
    }
    assert destinations.store_params(s3, "job1", timeout=10) == S3Params(
        bucket="b",
        access_key="AK",
        secret_key="SK",
        endpoint="http://e:9",
        path="p/job1",
        threads=2,
        timeout=10,
    )


def test_bad_destinations_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown type 'Dropbox'"):
        destinations.store_params({"name": "x", "type": "Dropbox", "options": {}}, "")
    with pytest.raises(ConfigError, match="'ssh': option host is missing"):
        destinations.store_params(sftp_row(options={"username": "u"}), "")


class CountingStore(StoreWrapper):
    """Counts how often it is closed."""

    closes = 0

    def close(self) -> None:
        CountingStore.closes += 1
        super().close()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[CountingStore]]:
    """Local stores opened through the registry are counted when closed."""
    CountingStore.closes = 0
    monkeypatch.setitem(registry.BACKENDS, "local", lambda params: CountingStore(LocalStore(params.path)))
    return CountingStore


def local_row(path: Path) -> dict[str, Any]:
    return {"_id": "d2", "name": "disk", "type": "Local", "options": {"path": str(path)}}


def test_local_and_remote_stores_are_wrapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with repositories.open_destination(local_row(tmp_path), "job") as opened:
        assert isinstance(opened.store, RetryingStore)
        assert isinstance(opened.store.inner, LocalStore)
    monkeypatch.setitem(registry.BACKENDS, "sftp", lambda params: MemoryStore())
    with repositories.open_destination(sftp_row(), "job") as opened:
        assert isinstance(opened.store, RetryingStore)
        assert isinstance(opened.store.inner, LimitedStore)
        assert isinstance(opened.backend, MemoryStore)


def test_leaving_an_opened_destination_closes_its_store_once(
    tmp_path: Path, counted: type[CountingStore]
) -> None:
    with repositories.open_destination(local_row(tmp_path), "job") as opened:
        opened.store.store("x", b"1")
    opened.close()
    assert counted.closes == 1


def test_job_repository_closes_the_store_even_when_opening_fails(
    tmp_path: Path, counted: type[CountingStore]
) -> None:
    catalog = Catalog.open(tmp_path / "home")
    with repositories.job_repository(
        local_row(tmp_path), "job", catalog=catalog, encrypted=False, create=True
    ):
        pass
    assert counted.closes == 1
    with (
        pytest.raises(RepositoryNotFoundError),
        repositories.job_repository(local_row(tmp_path), "other", catalog=catalog, encrypted=False),
    ):
        pass
    assert counted.closes == 2
    catalog.close()


class ListLog:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(f"info {message}")

    def warning(self, message: str) -> None:
        self.lines.append(f"warning {message}")


def test_finish_closes_and_reports_the_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def flaky(params: LocalParams) -> Store:
        return FaultyStore(LocalStore(params.path), fail_on_call=2, transient=True)

    monkeypatch.setitem(registry.BACKENDS, "local", flaky)
    opened = repositories.open_destination(
        local_row(tmp_path), "job", retry=repositories.RetryPolicy(attempts=3, base_delay=0.0)
    )
    opened.store.store("a", b"1")
    opened.store.store("b", b"2")
    catalog = Catalog.open(tmp_path / "home")
    try:
        closed = repositories.finish(catalog, opened, "d2")
    finally:
        catalog.close()
    assert opened.closed
    assert closed.retries == 1
    assert closed.recorded_fingerprint is None
    log = ListLog()
    closed.report(log, "destination 'disk' (d2)")
    assert log.lines == [f"warning destination 'disk' (d2): 1 retries (last: {closed.last_retry})"]
    assert repositories.finish(catalog, None, "d2") == repositories.Closed()
