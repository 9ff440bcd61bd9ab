"""The safe restore target: no restore or clearing writes or deletes outside its target.

A symlink planted in the target (``target/.../home -> outside``), or one an earlier restore of a
backup made there, must never be followed: the incremental restore replaces it with a folder, the
tar extractor refuses it, and merge=0 clearing removes the link, never what it points at. Each test
fingerprints a temporary ``outside`` folder before and after.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.engine.archive import ArchiveKeys, restore_archive, write_archive
from snapkeep.engine.backup import backup
from snapkeep.engine.fs.safe_target import (
    Metadata,
    MetadataApplier,
    descend,
    open_folder,
    remove_below,
    split_path,
)
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository.crypto import NullCipher
from snapkeep.engine.restore import restore
from snapkeep.errors import UnsafePathError
from snapkeep.jobs.runs.restore import clear_paths
from snapkeep.storage.memory import MemoryStore

FAST_KDF = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


@pytest.fixture
def repository() -> Iterator[Repository]:
    repo = Repository.init(MemoryStore(), password="secret", kdf_params=FAST_KDF)
    yield repo
    repo.close()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside every target, holding what an escaping restore would hit."""
    folder = tmp_path / "outside"
    (folder / "a" / "sub").mkdir(parents=True)
    (folder / "a" / "x").write_bytes(b"outside x")
    (folder / "a" / "sub" / "y").write_bytes(b"outside y")
    (folder / "keep").write_bytes(b"keep")
    return folder


def fingerprint(folder: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every entry below ``folder`` (and itself): mode, size, mtime and contents or link target."""
    seen: dict[str, tuple[int, int, int, bytes]] = {}
    for path in [folder, *sorted(folder.rglob("*"))]:
        info = path.lstat()
        if stat.S_ISREG(info.st_mode):
            data = path.read_bytes()
        elif stat.S_ISLNK(info.st_mode):
            data = os.fsencode(os.readlink(path))
        else:
            data = b""
        seen[str(path.relative_to(folder))] = (info.st_mode, info.st_size, info.st_mtime_ns, data)
    return seen


def inside(target: Path, source: Path) -> Path:
    """Where ``source`` (an absolute path) lands below ``target``."""
    return target / str(source).lstrip("/")


def make_home(source: Path) -> None:
    """``source/home`` as a folder with files at the names ``outside`` also holds."""
    if source.joinpath("home").is_symlink():
        source.joinpath("home").unlink()
    (source / "home" / "a" / "sub").mkdir(parents=True)
    (source / "home" / "a" / "x").write_bytes(b"backed up x")
    (source / "home" / "a" / "sub" / "y").write_bytes(b"backed up y")


def make_link(source: Path, outside: Path) -> None:
    """``source/home`` as a symlink to ``outside``."""
    source.mkdir(parents=True, exist_ok=True)
    if source.joinpath("home").exists():
        shutil.rmtree(source / "home")
    (source / "home").symlink_to(outside)


# --- paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "empty path"),
        ("/etc/passwd", "absolute path"),
        ("a/../b", "are not allowed"),
        ("a//b", "empty name"),
        ("a/./b", "are not allowed"),
        ("a/b\x00c", "NUL"),
    ],
)
def test_strict_paths_refuse_what_could_leave_the_target(path: str, reason: str) -> None:
    with pytest.raises(UnsafePathError, match=reason):
        split_path(path)


def test_lenient_paths_drop_empty_and_dot_components_but_refuse_parents() -> None:
    assert split_path("/home//a/./x/", lenient=True) == (b"home", b"a", b"x")
    assert split_path(b"a/\xff", lenient=True) == (b"a", b"\xff")
    with pytest.raises(UnsafePathError, match="are not allowed"):
        split_path("/home/../etc", lenient=True)
    with pytest.raises(UnsafePathError, match="empty path"):
        split_path("/./", lenient=True)


def test_descend_refuses_a_symlink_on_the_way(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "home").symlink_to(outside)
    root = os.open(tmp_path / "target", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(UnsafePathError, match="'home' is a symlink or file"):
            descend(root, [b"home", b"a"], create=True, shown="home/a/x")
        with pytest.raises(OSError, match=r"Too many levels of symbolic links|Not a directory"):
            descend(root, [b"home", b"a"])
    finally:
        os.close(root)


def test_open_folder_says_whether_it_made_the_folder(tmp_path: Path, outside: Path) -> None:
    """The restore skips looking up entries only in folders it made (they held nothing)."""
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "inside").write_text("x")
    (tmp_path / "planted").symlink_to(outside)
    root = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        results = {name: open_folder(name, root) for name in (b"new", b"kept", b"planted")}
    finally:
        os.close(root)
    for fd, _ in results.values():
        os.close(fd)
    assert {name.decode(): made for name, (_, made) in results.items()} == {
        "new": True,
        "kept": False,
        "planted": True,  # the symlink was replaced by a new, empty folder
    }
    assert (tmp_path / "kept" / "inside").read_text() == "x"
    assert (tmp_path / "planted").is_dir()
    assert not (tmp_path / "planted").is_symlink()
    assert sorted(path.name for path in outside.iterdir()) == ["a", "keep"]  # nothing made through the link


# --- merge=0 clearing ----------------------------------------------------------------------------


def test_clearing_never_follows_a_symlink_out_of_the_target(tmp_path: Path, outside: Path) -> None:
    before = fingerprint(outside)
    target = tmp_path / "target"
    target.mkdir()
    (target / "home").symlink_to(outside)
    clear_paths(target, ["/home/a/x", "/home/a/sub", "/home/a", "home/keep"])
    assert fingerprint(outside) == before
    assert (target / "home").is_symlink()
    clear_paths(target, ["/home"])  # the link itself is what is at the path: it goes, its target stays
    assert not (target / "home").exists()
    assert not (target / "home").is_symlink()
    assert fingerprint(outside) == before


def test_clearing_removes_files_and_folders_below_the_target(tmp_path: Path, outside: Path) -> None:
    target = tmp_path / "target"
    (target / "data" / "sub").mkdir(parents=True)
    (target / "data" / "sub" / "link").symlink_to(outside)
    (target / "data" / "file").write_bytes(b"x")
    (target / "other").write_bytes(b"stays")
    before = fingerprint(outside)
    clear_paths(target, ["/data/sub", "/data/file", "/missing/entry"])
    assert sorted(os.listdir(target / "data")) == []
    assert (target / "other").read_bytes() == b"stays"
    assert fingerprint(outside) == before
    assert remove_below(target, "/data") is True
    assert remove_below(target, "/data") is False
    with pytest.raises(UnsafePathError):
        clear_paths(target, ["/data/../../outside"])


# --- incremental restore -------------------------------------------------------------------------


def test_incremental_restore_replaces_a_planted_symlink(
    repository: Repository, tmp_path: Path, outside: Path
) -> None:
    source = tmp_path / "source"
    make_home(source)
    snapshot = backup(repository, [source])
    before = fingerprint(outside)
    target = tmp_path / "target"
    inside(target, source).mkdir(parents=True)
    (inside(target, source) / "home").symlink_to(outside)
    result = restore(repository, snapshot, target)
    assert result.ok, result.failures
    assert fingerprint(outside) == before
    restored = inside(target, source) / "home"
    assert not restored.is_symlink()
    assert (restored / "a" / "x").read_bytes() == b"backed up x"
    assert (restored / "a" / "sub" / "y").read_bytes() == b"backed up y"


def test_incremental_restore_replaces_a_symlink_an_earlier_backup_held(
    repository: Repository, tmp_path: Path, outside: Path
) -> None:
    source = tmp_path / "source"
    make_link(source, outside)
    with_link = backup(repository, [source])
    make_home(source)
    with_folder = backup(repository, [source], parent=None)
    before = fingerprint(outside)
    target = tmp_path / "target"
    restore(repository, with_link, target)
    assert (inside(target, source) / "home").is_symlink()
    result = restore(repository, with_folder, target)
    assert result.ok, result.failures
    assert fingerprint(outside) == before
    assert (inside(target, source) / "home" / "a" / "x").read_bytes() == b"backed up x"


# --- Archived and Compressed ---------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True], ids=["archived", "compressed"])
def test_archive_extraction_refuses_a_planted_symlink(
    compressed: bool, tmp_path: Path, outside: Path
) -> None:
    destination = ArchiveKeys(MemoryStore(), NullCipher())
    source = tmp_path / "source"
    make_home(source)
    manifest = write_archive(destination, [str(source)], compressed=compressed)
    before = fingerprint(outside)
    target = tmp_path / "target"
    inside(target, source).mkdir(parents=True)
    (inside(target, source) / "home").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="symlink"):
        restore_archive(destination, manifest, str(target))
    assert fingerprint(outside) == before
    assert (inside(target, source) / "home").is_symlink()


@pytest.mark.parametrize("compressed", [False, True], ids=["archived", "compressed"])
def test_archive_extraction_refuses_a_symlink_an_earlier_archive_held(
    compressed: bool, tmp_path: Path, outside: Path
) -> None:
    destination = ArchiveKeys(MemoryStore(), NullCipher())
    source = tmp_path / "source"
    make_link(source, outside)
    with_link = write_archive(destination, [str(source)], compressed=compressed, archive_id="a" * 32)
    make_home(source)
    with_folder = write_archive(destination, [str(source)], compressed=compressed, archive_id="b" * 32)
    before = fingerprint(outside)
    target = tmp_path / "target"
    restore_archive(destination, with_link, str(target))
    assert (inside(target, source) / "home").is_symlink()
    with pytest.raises(UnsafePathError, match="symlink"):
        restore_archive(destination, with_folder, str(target))
    assert fingerprint(outside) == before


# --- metadata ------------------------------------------------------------------------------------


def test_owners_resolve_by_name_then_by_id() -> None:
    applier = MetadataApplier(True, lambda path, message: None)
    assert applier.owner(Metadata(0o644, 4321, 8765, 0, user="root", group="root")) == (0, 0)
    unknown = Metadata(0o644, 4321, 8765, 0, user="no-such-user-here", group="no-such-group-here")
    assert applier.owner(unknown) == (4321, 8765)
    assert applier.owner(Metadata(0o644, 4321, 8765, 0)) == (4321, 8765)


def test_a_refused_owner_is_a_warning_and_the_rest_is_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[tuple[str, str]] = []
    applier = MetadataApplier(True, lambda path, message: warnings.append((path, message)))
    path = tmp_path / "file"
    path.write_bytes(b"x")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chown", refuse)
    fd = os.open(path, os.O_RDONLY)
    try:
        applier.apply(Metadata(0o640, 4321, 8765, 1_600_000_000_000_000_007), "file", fd=fd)
    finally:
        os.close(fd)
    assert warnings == [("file", "cannot set owner: Operation not permitted")]
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert info.st_mtime_ns == 1_600_000_000_000_000_007
