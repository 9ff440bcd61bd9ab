"""LocalStore specifics: error translation, leftovers of crashed writes, folder handling."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from snapkeep.clock import FrozenClock
from snapkeep.errors import (
    ObjectNotFoundError,
    PermissionDeniedError,
    StorageError,
    StorageFullError,
    TransientStorageError,
)
from snapkeep.storage.local import LocalStore


def test_missing_folder_without_create(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="folder does not exist"):
        LocalStore(tmp_path / "absent", create=False)
    assert not (tmp_path / "absent").exists()


def test_objects_are_plain_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.store("data/ab/ab12", b"pack")
    assert (tmp_path / "data" / "ab" / "ab12").read_bytes() == b"pack"
    assert (tmp_path / "data" / "ab" / "ab12").stat().st_mode & 0o777 == 0o600


def test_crash_leftovers_are_hidden_and_cleaned(tmp_path: Path) -> None:
    clock = FrozenClock()
    store = LocalStore(tmp_path, clock=clock)
    store.store("data/ab/ab12", b"pack")
    leftover = tmp_path / "data" / "ab" / ".tmp-deadbeef"
    leftover.write_bytes(b"half a pack")
    old = clock.time() - 7200
    os.utime(leftover, (old, old))
    fresh = tmp_path / ".tmp-cafe"
    fresh.write_bytes(b"in flight")
    os.utime(fresh, (clock.time(), clock.time()))
    assert [item.name for item in store.list()] == ["data/ab/ab12"]
    assert sorted(path.name for path in store.temporary_files()) == [".tmp-cafe", ".tmp-deadbeef"]
    assert store.cleanup_temporary(older_than=3600) == 1
    assert not leftover.exists()
    assert fresh.exists()
    assert store.load("data/ab/ab12") == b"pack"


def test_unrelated_dot_files_are_ignored(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / ".snapshot").mkdir()
    (tmp_path / ".snapshot" / "x").write_bytes(b"nfs snapshot dir")
    store.store("config", b"c")
    assert [item.name for item in store.list()] == ["config"]


def test_symlinks_are_not_objects(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.store("config", b"c")
    (tmp_path / "link").symlink_to(tmp_path / "config")
    assert [item.name for item in store.list()] == ["config"]
    with pytest.raises(ObjectNotFoundError):
        store.stat("link")


def test_object_where_a_folder_is_fails_clearly(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.store("data/ab/ab12", b"pack")
    with pytest.raises(StorageError, match="'data/ab'"):
        store.store("data/ab", b"clash")
    assert list(store.temporary_files()) == []


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.ENOSPC, StorageFullError),
        (errno.EDQUOT, StorageFullError),
        (errno.EACCES, PermissionDeniedError),
        (errno.EPERM, PermissionDeniedError),
        (errno.EIO, StorageError),
        (errno.ETIMEDOUT, TransientStorageError),
        (errno.ESTALE, TransientStorageError),
    ],
)
def test_os_errors_are_translated_on_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, expected: type[StorageError]
) -> None:
    store = LocalStore(tmp_path)

    def broken_write(descriptor: int, data: object) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "write", broken_write)
    with pytest.raises(expected, match="data/ab/ab12") as caught:
        store.store("data/ab/ab12", b"pack")
    assert type(caught.value) is expected
    assert isinstance(caught.value.__cause__, OSError)
    monkeypatch.undo()
    assert list(store.list()) == []
    assert list(store.temporary_files()) == []


def test_read_errors_are_translated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path)
    store.store("index/i1", b"index")

    def broken_pread(descriptor: int, size: int, offset: int) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "pread", broken_pread)
    with pytest.raises(StorageError, match="read 'index/i1': Input/output error"):
        store.load("index/i1")


def test_info_reports_file_system_space(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.store("a", b"x" * 5000)
    store.store("b/c", b"y" * 3000)
    info = store.info()
    assert info.usage == 8000
    assert info.total is not None
    assert info.free is not None
    assert 0 <= info.free <= info.total


def test_a_staged_object_appears_only_once_published(tmp_path: Path) -> None:
    """``stage``: written piece by piece into a hidden temporary file (0600), named atomically by
    ``publish`` (its folders made as ``store`` makes them); ``discard`` leaves nothing."""
    store = LocalStore(tmp_path)
    staged = store.stage()
    staged.write(b"half ")
    staged.write(bytearray(b"a pack"))
    assert list(store.list()) == []
    [temporary] = list(store.temporary_files())
    assert temporary.parent == tmp_path
    assert temporary.stat().st_mode & 0o777 == 0o600
    assert staged.publish("data/cd/cd34") == len(b"half a pack")
    assert store.load("data/cd/cd34") == b"half a pack"
    assert [item.name for item in store.list()] == ["data/cd/cd34"]
    assert list(store.temporary_files()) == []
    with pytest.raises(StorageError, match="after it was closed"):
        staged.write(b"more")
    dropped = store.stage()
    dropped.write(b"never named")
    dropped.discard()
    dropped.discard()  # twice is harmless
    assert list(store.temporary_files()) == []
    assert [item.name for item in store.list()] == ["data/cd/cd34"]


def test_a_staged_object_that_cannot_be_named_is_removed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / "data").write_bytes(b"a file where a folder should be")
    staged = store.stage()
    staged.write(b"pack")
    with pytest.raises(StorageError):
        staged.publish("data/ef/ef56")
    assert list(store.temporary_files()) == []
