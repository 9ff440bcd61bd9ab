"""Overwrite policies, dry runs and special files of both restores (incremental and tar), and the
safe target against symlinks the backup itself holds.

Every test plants, in the target, a locally edited file, an identical file and a symlink that
points outside, and fingerprints an ``outside`` folder before and after: nothing there may change.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.engine.archive import ArchiveKeys, load_manifest, write_archive
from snapkeep.engine.archive.extract import SafeExtractor
from snapkeep.engine.archive.reader import ArchiveRestore
from snapkeep.engine.backup import backup
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.data.tree import DIR, FILE, SYMLINK, Node, Tree
from snapkeep.engine.format import BlobType
from snapkeep.engine.fs.safe_target import Metadata
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository.crypto import NullCipher
from snapkeep.engine.restore import RestoreOptions, restore
from snapkeep.engine.restore.plan import RestorePlanner
from snapkeep.errors import UnsafePathError, ValidationError
from snapkeep.jobs.runs.restore import clear_paths
from snapkeep.storage.memory import MemoryStore

FAST_KDF = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}
OLD = 1_000_000_000  # 2001: the backed-up files' mtime
NEW = 2_000_000_000  # 2033: a local edit newer than the backup


@pytest.fixture
def repository() -> Iterator[Repository]:
    repo = Repository.init(MemoryStore(), password="secret", kdf_params=FAST_KDF)
    yield repo
    repo.close()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    (folder / "sub").mkdir(parents=True)
    (folder / "passwd").write_bytes(b"root:x:0:0")
    (folder / "sub" / "x").write_bytes(b"outside x")
    return folder


def fingerprint(folder: Path) -> dict[str, tuple[int, int, int, bytes]]:
    seen: dict[str, tuple[int, int, int, bytes]] = {}
    for path in [folder, *sorted(folder.rglob("*"))]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            content = os.readlink(path).encode()
        elif stat.S_ISREG(info.st_mode):
            content = path.read_bytes()
        else:
            content = b""
        seen[str(path)] = (info.st_mode, info.st_size, info.st_mtime_ns, content)
    return seen


def make_source(root: Path) -> Path:
    """edited.txt (to be edited locally), same.txt (left identical), data/big.bin (3 chunks),
    data/new.txt (absent from the target), link -> data/new.txt."""
    source = root / "source"
    (source / "data").mkdir(parents=True)
    (source / "edited.txt").write_bytes(b"backed up version\n")
    (source / "same.txt").write_bytes(b"identical\n" * 100)
    (source / "data" / "big.bin").write_bytes(os.urandom(20 * 1024 * 1024))
    (source / "data" / "new.txt").write_bytes(b"new")
    (source / "link").symlink_to("data/new.txt")
    for path in [*source.rglob("*"), source]:
        os.utime(path, ns=(OLD, OLD), follow_symlinks=False)
    return source


def plant(target: Path, source: Path, outside: Path) -> None:
    """The target as a user left it: an edited file (newer), identical files, a symlink that
    points outside where the backup has a folder, and one where it has a file."""
    base = target / source.relative_to("/")
    (base / "data").parent.mkdir(parents=True, exist_ok=True)
    (base / "edited.txt").write_bytes(b"LOCAL EDIT\n")
    os.utime(base / "edited.txt", ns=(NEW, NEW))
    (base / "same.txt").write_bytes((source / "same.txt").read_bytes())
    os.utime(base / "same.txt", ns=(NEW, NEW))  # mtime differs: content decides
    (base / "data").symlink_to(outside)  # where the backup has a folder
    (base / "link").symlink_to(outside / "passwd")  # where the backup has a symlink


@pytest.fixture
def saved(repository: Repository, tmp_path: Path) -> tuple[Path, Snapshot]:
    source = make_source(tmp_path)
    return source, backup(repository, [str(source)])


EXPECTED = {
    # policy: (edited.txt content, same.txt action, edited action, data/ action)
    "always": (b"backed up version\n", "overwrite", "overwrite", "overwrite"),
    "if-changed": (b"backed up version\n", "skip", "overwrite", "overwrite"),
    "if-newer": (b"LOCAL EDIT\n", "skip", "skip", "skip"),  # the planted link is newer
    "never": (b"LOCAL EDIT\n", "skip", "skip", "skip"),
}


@pytest.mark.parametrize("policy", list(EXPECTED))
def test_incremental_policies(
    repository: Repository, saved: tuple[Path, Snapshot], tmp_path: Path, outside: Path, policy: str
) -> None:
    source, snapshot = saved
    target = tmp_path / "target"
    plant(target, source, outside)
    before = fingerprint(outside)
    base = target / source.relative_to("/")
    same_before = (base / "same.txt").stat().st_mtime_ns

    dry = restore(repository, snapshot, str(target), options=RestoreOptions(overwrite=policy, dry_run=True))
    assert dry.dry_run
    assert dry.files == 0
    assert (base / "edited.txt").read_bytes() == b"LOCAL EDIT\n"
    assert (base / "data").is_symlink()

    result = restore(repository, snapshot, str(target), options=RestoreOptions(overwrite=policy))
    assert result.ok, result.failures
    assert fingerprint(outside) == before
    edited, same_action, edited_action, data_action = EXPECTED[policy]
    assert (base / "edited.txt").read_bytes() == edited
    seen = {path.removeprefix(str(source)): action for action, path in result.changes.entries}
    assert seen["/same.txt"] == same_action
    assert seen["/edited.txt"] == edited_action
    assert seen["/data"] == data_action
    # the dry run predicted exactly what the restore then did, with new entries listed too
    assert [entry for entry in dry.changes.entries if entry[0] != "write"] == result.changes.entries
    assert dry.overwritten == result.overwritten
    assert dry.skipped == result.skipped
    if same_action == "skip":
        assert (base / "same.txt").stat().st_mtime_ns == same_before  # not rewritten
    if data_action == "skip":
        assert (base / "data").is_symlink()
        assert os.readlink(base / "data") == str(outside)
    else:
        assert not (base / "data").is_symlink()
        assert (base / "data" / "big.bin").read_bytes() == (source / "data" / "big.bin").read_bytes()
    assert (base / "link").is_symlink()
    if policy in ("always", "if-changed", "if-newer"):
        # the planted symlink (mtime now) is newer than the backed-up one for if-newer: kept
        expected_link = str(outside / "passwd") if policy == "if-newer" else "data/new.txt"
        assert os.readlink(base / "link") == expected_link


def test_if_changed_same_size_different_content_is_rewritten(
    repository: Repository, saved: tuple[Path, Snapshot], tmp_path: Path
) -> None:
    source, snapshot = saved
    target = tmp_path / "target"
    restore(repository, snapshot, str(target))
    big = target / source.relative_to("/") / "data" / "big.bin"
    data = bytearray(big.read_bytes())
    data[15 * 1024 * 1024] ^= 0xFF  # same size, same mtime: only the content tells
    big.write_bytes(bytes(data))
    os.utime(big, ns=(OLD, OLD))
    result = restore(repository, snapshot, str(target), options=RestoreOptions(overwrite="if-changed"))
    assert big.read_bytes() == (source / "data" / "big.bin").read_bytes()
    assert ("overwrite", f"{source}/data/big.bin") in result.changes.entries
    assert result.skipped == 5 - 1  # every other non-folder entry already matched


def test_dry_run_into_a_missing_target_creates_nothing(
    repository: Repository, saved: tuple[Path, Snapshot], tmp_path: Path
) -> None:
    _, snapshot = saved
    target = tmp_path / "nowhere"
    result = restore(repository, snapshot, str(target), options=RestoreOptions(dry_run=True))
    assert not target.exists()
    assert result.written == 5
    assert result.overwritten == 0
    assert {action for action, _ in result.changes.entries} == {"write"}


def test_dry_run_list_is_bounded(repository: Repository, tmp_path: Path) -> None:
    source = tmp_path / "many"
    source.mkdir()
    for number in range(30):
        (source / f"f{number}").write_bytes(b"x")
    snapshot = backup(repository, [str(source)])
    planner = RestorePlanner(repository, Progress(), False, RestoreOptions(dry_run=True))
    planner.result.changes.limit = 10
    planner.dry_plan(bytes.fromhex(snapshot.tree), None, b"", None)
    assert len(planner.result.changes.entries) == 10
    assert planner.result.changes.omitted == 20
    assert planner.result.written == 30


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValidationError, match="overwrite: must be one of always, if-changed"):
        RestoreOptions(overwrite="sometimes")


def save_tree(repository: Repository, nodes: list[Node]) -> Snapshot:
    data = Tree(nodes=nodes).encode()
    tree_id = repository.blob_id(data)
    repository.add_blob(BlobType.TREE, data, tree_id)
    snapshot = Snapshot(id="", time=dt.datetime.now(dt.UTC), hostname="h", paths=["/x"], tree=tree_id.hex())
    snapshot.id = repository.save_snapshot(snapshot)
    return snapshot


def test_special_files_are_left_out_unless_asked(repository: Repository, tmp_path: Path) -> None:
    blob = repository.blob_id(b"#!/bin/sh\n")
    repository.add_blob(BlobType.DATA, b"#!/bin/sh\n", blob)
    snapshot = save_tree(
        repository,
        [
            Node(name=b"fifo", type="fifo", mode=0o644),
            Node(name=b"suid", type=FILE, mode=0o6755, size=10, content=[blob]),
        ],
    )
    target = tmp_path / "target"
    result = restore(repository, snapshot, str(target), restore_owners=False)
    assert not (target / "fifo").exists()
    assert stat.S_IMODE((target / "suid").stat().st_mode) == 0o755
    assert {path for path, _ in result.warnings} == {"/fifo", "/suid"}
    asked = restore(
        repository,
        snapshot,
        str(tmp_path / "asked"),
        restore_owners=False,
        options=RestoreOptions(special_files=True),
    )
    assert stat.S_ISFIFO((tmp_path / "asked" / "fifo").lstat().st_mode)
    assert stat.S_IMODE((tmp_path / "asked" / "suid").stat().st_mode) & 0o6000
    assert asked.warnings == []


# --- symlinks the backup itself holds ---------------------------------------------------------


def test_backup_symlink_then_folder_of_the_same_path_never_escapes(
    repository: Repository, tmp_path: Path, outside: Path
) -> None:
    """Backup 1 holds ``a -> outside``; backup 2 holds ``a/passwd``. Restoring both into one
    target (and clearing with merge=0 between) never writes through the link."""
    blob = repository.blob_id(b"evil")
    repository.add_blob(BlobType.DATA, b"evil", blob)
    linked = save_tree(repository, [Node(name=b"a", type=SYMLINK, target=os.fsencode(outside), mtime_ns=NEW)])
    sub = Node(name=b"passwd", type=FILE, mode=0o644, size=4, content=[blob])
    sub_data = Tree(nodes=[sub]).encode()
    sub_id = repository.blob_id(sub_data)
    repository.add_blob(BlobType.TREE, sub_data, sub_id)
    folder = save_tree(repository, [Node(name=b"a", type=DIR, mode=0o755, subtree=sub_id, mtime_ns=OLD)])
    before = fingerprint(outside)
    target = tmp_path / "target"
    restore(repository, linked, str(target))
    assert (target / "a").is_symlink()
    clear_paths(target, ["/a/passwd", "/a/sub/x"])  # merge=0 clearing through the restored link
    assert fingerprint(outside) == before
    for policy in ("if-newer", "never"):
        result = restore(repository, folder, str(target), options=RestoreOptions(overwrite=policy))
        assert (target / "a").is_symlink()
        assert result.skipped == 1
    result = restore(repository, folder, str(target), options=RestoreOptions(overwrite="always"))
    assert not (target / "a").is_symlink()
    assert (target / "a" / "passwd").read_bytes() == b"evil"
    assert fingerprint(outside) == before
    clear_paths(target, ["/a"])
    assert not (target / "a").exists()
    assert fingerprint(outside) == before


def tar_setup(tmp_path: Path, source: Path) -> tuple[ArchiveKeys, str]:
    keys = ArchiveKeys(MemoryStore(), NullCipher())
    manifest = write_archive(keys, [str(source)], compressed=True)
    return keys, manifest.id


@pytest.mark.parametrize("policy", list(EXPECTED))
def test_tar_policies(tmp_path: Path, outside: Path, policy: str) -> None:
    source = make_source(tmp_path)
    keys, archive_id = tar_setup(tmp_path, source)
    manifest = load_manifest(keys, archive_id)
    target = tmp_path / "target"
    base = target / source.relative_to("/")
    base.mkdir(parents=True)
    (base / "edited.txt").write_bytes(b"LOCAL EDIT\n")
    os.utime(base / "edited.txt", ns=(NEW, NEW))
    (base / "same.txt").write_bytes((source / "same.txt").read_bytes())
    (base / "link").symlink_to(outside / "passwd")
    before = fingerprint(outside)
    same_before = (base / "same.txt").stat().st_mtime_ns

    dry = ArchiveRestore(
        keys, manifest, str(target), options=RestoreOptions(overwrite=policy, dry_run=True)
    ).run()
    assert (base / "edited.txt").read_bytes() == b"LOCAL EDIT\n"
    assert not (base / "data").exists()
    result = ArchiveRestore(keys, manifest, str(target), options=RestoreOptions(overwrite=policy)).run()
    assert fingerprint(outside) == before
    edited, same_action, edited_action, _ = EXPECTED[policy]
    assert (base / "edited.txt").read_bytes() == edited
    seen = {path.removeprefix(str(source).lstrip("/")): action for action, path in result.changes.entries}
    assert seen["/edited.txt"] == edited_action
    assert seen["/same.txt"] == same_action
    assert [entry for entry in dry.changes.entries if entry[0] != "write"] == result.changes.entries
    if same_action == "skip":
        assert (base / "same.txt").stat().st_mtime_ns == same_before
    assert (base / "data" / "big.bin").read_bytes() == (source / "data" / "big.bin").read_bytes()


def test_tar_symlink_in_the_archive_is_never_followed(tmp_path: Path, outside: Path) -> None:
    """Members ``a -> outside`` then ``a/passwd`` (as a crafted archive would hand them to the
    extractor): the second is refused, nothing is written through the link."""
    before = fingerprint(outside)
    extractor = SafeExtractor(tmp_path / "target")
    meta = Metadata(0o644, 0, 0, OLD)
    extractor.symlink((b"a",), str(outside), meta, "a")
    with pytest.raises(UnsafePathError):
        extractor.file((b"a", b"passwd"), [b"evil"], 4, "", meta, "a/passwd")
    extractor.close()
    assert fingerprint(outside) == before
    assert (tmp_path / "target" / "a").is_symlink()


def test_tar_kept_folder_leaves_its_members_and_their_hard_links_out(tmp_path: Path, outside: Path) -> None:
    """``never`` keeps a planted link where the archive has ``data/``: ``data/f`` is left out, and
    a hard link to it elsewhere is a warning, not a failure of the whole restore."""
    source = tmp_path / "source"
    (source / "data").mkdir(parents=True)
    (source / "data" / "f").write_bytes(b"linked")
    (source / "other").mkdir()
    os.link(source / "data" / "f", source / "other" / "g")
    keys, archive_id = tar_setup(tmp_path, source)
    manifest = load_manifest(keys, archive_id)
    target = tmp_path / "target"
    base = target / source.relative_to("/")
    base.mkdir(parents=True)
    (base / "data").symlink_to(outside)
    before = fingerprint(outside)
    result = ArchiveRestore(keys, manifest, str(target), options=RestoreOptions(overwrite="never")).run()
    assert fingerprint(outside) == before
    assert (base / "data").is_symlink()
    assert not (base / "other" / "g").exists()
    assert any("kept out of the restore" in message for _, message in result.warnings)
    assert result.skipped == 1
