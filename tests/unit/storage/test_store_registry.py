"""open_store: locations to stores through the scheme table."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapkeep.errors import ConfigError, StorageError
from snapkeep.storage.local import LocalStore
from snapkeep.storage.memory import MemoryStore
from snapkeep.storage.registry import SCHEMES, forget_memory_store, open_store, register_scheme, scheme_of


def test_plain_path_and_file_url_open_local_stores(tmp_path: Path) -> None:
    by_path = open_store(str(tmp_path / "plain"))
    by_url = open_store(f"file://{tmp_path}/url%20dir")
    assert isinstance(by_path, LocalStore)
    assert isinstance(by_url, LocalStore)
    assert by_path.root == tmp_path / "plain"
    assert by_url.root == tmp_path / "url dir"


def test_options_reach_the_backend(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="folder does not exist"):
        open_store(str(tmp_path / "absent"), create=False)


def test_memory_stores_are_shared_by_name() -> None:
    forget_memory_store("shared")
    first = open_store("memory://shared")
    first.store("config", b"c")
    assert isinstance(first, MemoryStore)
    assert open_store("memory://shared").load("config") == b"c"
    assert not open_store("memory://other").exists("config")
    forget_memory_store("shared")
    assert not open_store("memory://shared").exists("config")
    forget_memory_store("shared")
    forget_memory_store("other")


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("sftp://host/path", "needs a user"),
        ("sftp://backup@host/", "needs a path"),
        ("sftp://backup@host/path", "needs credentials"),
        ("s3://endpoint", "needs a bucket"),
        ("S3://endpoint/bucket", "needs credentials"),
    ],
)
def test_incomplete_remote_locations_name_what_is_missing(
    location: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("SNAPKEEP_SFTP_KEY_FILE", "SNAPKEEP_SFTP_PASSWORD", "SNAPKEEP_S3_ACCESS_KEY"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ConfigError, match=message):
        open_store(location)


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("", "empty"),
        ("ftp://host/x", "unknown scheme 'ftp'"),
        ("memory://", "needs a name"),
        ("file://otherhost/x", "local path"),
    ],
)
def test_bad_locations(location: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(location)


def test_register_scheme_extends_the_table() -> None:
    opened: list[str] = []

    def opener(location: str, **options: object) -> MemoryStore:
        opened.append(location)
        return MemoryStore()

    previous = SCHEMES["sftp"]
    register_scheme("sftp", opener)
    try:
        assert isinstance(open_store("sftp://host/path"), MemoryStore)
        assert opened == ["sftp://host/path"]
    finally:
        register_scheme("sftp", previous)


def test_scheme_of() -> None:
    assert scheme_of("/var/backups") == ""
    assert scheme_of("relative/dir://odd") == ""
    assert scheme_of("MEMORY://x") == "memory"
