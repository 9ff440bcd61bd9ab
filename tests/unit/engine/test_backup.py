"""Backup: dedup, parent reuse without reading, warnings for unreadable files, excludes, links."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.engine import backup as backup_module
from snapkeep.engine.backup import BackupOptions, backup, reading
from snapkeep.engine.backup import pool as backup_pool
from snapkeep.engine.data.tree import DIR, Node, Tree
from snapkeep.engine.progress import ProgressCounter
from snapkeep.engine.repository import Repository
from snapkeep.errors import NotFoundError
from snapkeep.storage.memory import MemoryStore

FAST_KDF = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


@pytest.fixture
def repository() -> Iterator[Repository]:
    repo = Repository.init(MemoryStore(), password="secret", kdf_params=FAST_KDF)
    yield repo
    repo.close()


def entries(repository: Repository, tree_hex: str, *path: bytes) -> dict[bytes, Node]:
    """The nodes of the folder at ``path`` (components) below a snapshot's root tree."""
    tree_id = bytes.fromhex(tree_hex)
    for part in path:
        node = Tree.decode(repository.load_blob(tree_id)).by_name()[part]
        assert node.type == DIR
        assert node.subtree is not None
        tree_id = node.subtree
    return Tree.decode(repository.load_blob(tree_id)).by_name()


def components(path: Path) -> list[bytes]:
    return [part for part in os.fsencode(path).split(b"/") if part]


def test_same_file_in_two_places_is_stored_once(repository: Repository, tmp_path: Path) -> None:
    data = random.Random(1).randbytes(3 * 1024 * 1024)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "copy").write_bytes(data)
    (tmp_path / "two" / "copy").write_bytes(data)
    snapshot = backup(repository, [tmp_path])
    one = entries(repository, snapshot.tree, *components(tmp_path), b"one")[b"copy"]
    two = entries(repository, snapshot.tree, *components(tmp_path), b"two")[b"copy"]
    assert one.content == two.content
    assert len(one.content) >= 2  # multi-chunk
    assert snapshot.stats["new_bytes"] < len(data) + 64 * 1024  # data once, plus small trees
    data_blobs = snapshot.stats["new_blobs"] - (len(components(tmp_path)) + 3)  # minus one tree per folder
    assert data_blobs == len(one.content)


def test_insertion_near_the_start_shares_all_but_a_chunk_or_two(
    repository: Repository, tmp_path: Path
) -> None:
    data = random.Random(2).randbytes(20 * 1024 * 1024)
    big = tmp_path / "big"
    big.write_bytes(data)
    first = backup(repository, [tmp_path])
    big.write_bytes(data[:1000] + b"inserted bytes" + data[1000:])
    second = backup(repository, [tmp_path])
    old = entries(repository, first.tree, *components(tmp_path))[b"big"].content
    new = entries(repository, second.tree, *components(tmp_path))[b"big"].content
    assert len(old) >= 10
    assert len(set(new) - set(old)) <= 2
    assert second.stats["new_bytes"] < 9 * 1024 * 1024 + 64 * 1024


def test_unchanged_files_are_not_read_again(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(20):
        (tmp_path / f"f{index}").write_bytes(os.urandom(100 + index))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep").write_bytes(b"deep")
    reads: list[bytes] = []
    original = reading.read_file_content

    def counting(pending: reading.PendingFile, *args: object) -> None:
        reads.append(pending.path)
        original(pending, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(backup_pool, "read_file_content", counting)
    first = backup(repository, [tmp_path])
    assert len(reads) == 21
    reads.clear()
    second = backup(repository, [tmp_path])
    assert reads == []
    assert second.parent == first.id
    assert second.tree == first.tree  # identical trees dedup
    assert second.stats["unchanged_files"] == 21
    assert second.stats["new_blobs"] == 0
    (tmp_path / "sub" / "deep").write_bytes(b"changed")
    third = backup(repository, [tmp_path])
    assert reads == [os.fsencode(tmp_path / "sub" / "deep")]
    assert third.stats["unchanged_files"] == 20
    without_parent = backup(repository, [tmp_path], parent=None)
    assert without_parent.parent is None
    assert without_parent.stats["read_bytes"] == without_parent.stats["bytes"]


def test_vanished_and_unreadable_files_become_warnings(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "keep").write_bytes(b"keep")
    (tmp_path / "vanishes").write_bytes(b"soon gone")
    (tmp_path / "locked").write_bytes(b"secret")
    original = reading._open_for_reading

    def opener(path: bytes) -> int:
        if path.endswith(b"/vanishes"):
            os.unlink(path)  # deleted between the listing and the read
        if path.endswith(b"/locked"):
            raise PermissionError(13, "Permission denied")  # root reads everything: simulate the refusal
        return original(path)

    monkeypatch.setattr(reading, "_open_for_reading", opener)
    progress = ProgressCounter()
    missing = tmp_path.with_name(tmp_path.name + "-missing")
    snapshot = backup(repository, [tmp_path, missing], progress=progress)
    messages = {warning["path"]: warning["message"] for warning in snapshot.stats["warnings"]}
    assert "No such file" in messages[str(tmp_path / "vanishes")]
    assert "Permission denied" in messages[str(tmp_path / "locked")]
    assert "does not exist" in messages[str(missing)]
    assert snapshot.stats["warning_count"] == 3
    assert len(progress.warnings) == 3
    assert set(entries(repository, snapshot.tree, *components(tmp_path))) == {b"keep"}
    assert snapshot.stats["files"] == 1


def test_no_existing_source_is_an_error(repository: Repository, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        backup(repository, [tmp_path / "nothing"])


def test_excludes(repository: Repository, tmp_path: Path) -> None:
    for relative in ["a/keep.txt", "a/drop.log", "a/cache/x", "a/b/cache/y", "b/keep.log.txt", "b/c/d.tmp"]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    snapshot = backup(repository, [tmp_path], excludes=["*.log", "**/cache", f"{tmp_path}/b/**/*.tmp"])
    base = components(tmp_path)
    assert set(entries(repository, snapshot.tree, *base, b"a")) == {b"keep.txt", b"b"}
    assert set(entries(repository, snapshot.tree, *base, b"a", b"b")) == set()
    assert set(entries(repository, snapshot.tree, *base, b"b")) == {b"keep.log.txt", b"c"}
    assert set(entries(repository, snapshot.tree, *base, b"b", b"c")) == set()


def test_hardlinks_share_a_group_and_content(repository: Repository, tmp_path: Path) -> None:
    (tmp_path / "first").write_bytes(b"linked content")
    (tmp_path / "sub").mkdir()
    os.link(tmp_path / "first", tmp_path / "sub" / "second")
    (tmp_path / "single").write_bytes(b"alone")
    snapshot = backup(repository, [tmp_path], options=BackupOptions(workers=2))
    top = entries(repository, snapshot.tree, *components(tmp_path))
    below = entries(repository, snapshot.tree, *components(tmp_path), b"sub")
    assert top[b"first"].hardlink
    assert top[b"first"].hardlink == below[b"second"].hardlink
    assert top[b"first"].content == below[b"second"].content
    assert top[b"single"].hardlink == ""
    assert snapshot.stats["read_bytes"] == len(b"linked content") + len(b"alone")  # read once


def test_special_files_are_recorded_never_opened(repository: Repository, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")  # opening it for reading would block forever
    snapshot = backup(repository, [tmp_path])
    node = entries(repository, snapshot.tree, *components(tmp_path))[b"pipe"]
    assert node.type == "fifo"
    assert snapshot.stats["other_entries"] == 1


def test_tags_paths_and_stats(repository: Repository, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"12345")
    progress = ProgressCounter()
    snapshot = backup(repository, [str(tmp_path)], tags=["b", "a", "a"], job_id="job1", progress=progress)
    assert snapshot.tags == ["a", "b"]
    assert snapshot.paths == [str(tmp_path)]
    assert snapshot.job_id == "job1"
    assert snapshot.stats["files"] == 1
    assert snapshot.stats["bytes"] == 5
    assert progress.bytes == 5
    assert progress.finished
    assert repository.load_snapshot("latest").id == snapshot.id
    other_job = backup(repository, [str(tmp_path)], job_id="job2")
    assert other_job.parent is None


def test_root_source_walks_the_root_folder(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "only").write_bytes(b"x")
    walked: list[bytes] = []
    original = backup_module.scan_directory

    inside = os.fsencode(tmp_path)

    def scan(path: bytes) -> list[tuple[bytes, os.stat_result]]:
        walked.append(path)
        if not path.startswith(inside):  # keep the test small: only the folders leading to tmp_path
            wanted = inside[len(path.rstrip(b"/")) + 1 :].split(b"/")[0]
            return [(name, info) for name, info in original(path) if name == wanted]
        return original(path)

    monkeypatch.setattr(backup_module, "scan_directory", scan)
    snapshot = backup(repository, ["/"])
    assert walked[0] == b"/"
    assert snapshot.paths == ["/"]
    assert b"only" in entries(repository, snapshot.tree, *components(tmp_path))


def test_xattrs_of_unchanged_files_come_from_the_parent_and_changes_are_seen(
    repository: Repository, tmp_path: Path
) -> None:
    kept, changed = tmp_path / "kept", tmp_path / "changed"
    kept.write_bytes(b"k")
    changed.write_bytes(b"c")
    os.setxattr(kept, "user.note", b"one")
    os.setxattr(changed, "user.note", b"one")
    first = backup(repository, [tmp_path])
    os.setxattr(changed, "user.note", b"two")  # changes the ctime, not the contents
    second = backup(repository, [tmp_path])
    assert second.stats["unchanged_files"] == 1
    nodes = entries(repository, second.tree, *os.fsencode(tmp_path).strip(b"/").split(b"/"))
    assert nodes[b"kept"].xattrs == {"user.note": b"one"}
    assert nodes[b"changed"].xattrs == {"user.note": b"two"}
    assert first.tree != second.tree


def test_every_backup_tunes_the_allocator_once_per_process(repository: Repository, tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    backup_pool.tune_memory.cache_clear()
    backup(repository, [tmp_path])
    backup(repository, [tmp_path])
    info = backup_pool.tune_memory.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    assert backup_pool.tune_memory() is True  # glibc: the threshold was set


def test_a_folder_waiting_on_batched_files_hands_the_batch_over(
    repository: Repository, tmp_path: Path
) -> None:
    """A folder whose small files are still in the unsubmitted batch gets that batch handed to a
    worker when its walk ends, and is finished once they are stored; a folder that waits on none
    of the batch leaves the batch to grow."""
    excludes = backup_module.Excludes(())
    walk = backup_module.BackupWalk(repository, excludes, ProgressCounter(), BackupOptions())
    try:
        (tmp_path / "a").mkdir()
        for number in range(5):
            (tmp_path / "a" / f"f{number}").write_bytes(b"x%d" % number * 100)
        empty = backup_module.Frame(path=os.fsencode(tmp_path / "b"), node=None, parent_tree=None)
        folder = backup_module.Frame(path=os.fsencode(tmp_path / "a"), node=None, parent_tree=None)
        for number in range(5):
            path = os.fsencode(tmp_path / "a" / f"f{number}")
            walk.add_entry(folder, b"f%d" % number, path, os.lstat(path), None)
        assert len(walk.batch) == 5  # queued, not yet handed over
        walk.close_frame(empty)  # waits on nothing: finished, the batch stays
        assert empty.tree_id is not None
        assert len(walk.batch) == 5
        walk.close_frame(folder)
        assert walk.batch == []  # the folder waits on them: handed over at once
        assert [pending.seq for pending in folder.waiting] == [0, 1, 2, 3, 4]
        walk.drain()
        assert folder.tree_id is not None
        assert not walk.frames
        assert folder.checked == 5
        repository.flush()
        stored = Tree.decode(repository.load_blob(folder.tree_id)).by_name()
        assert sorted(stored) == [b"f0", b"f1", b"f2", b"f3", b"f4"]
        assert all(node.content for node in stored.values())
    finally:
        walk.shutdown()


def test_an_unchanged_file_keeps_its_entry_and_every_metadata_change_is_seen(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unchanged file keeps its parent entry as it is (``Kept``), exactly what describing it
    again writes; a change of mode, owner, owner name, times, size, link count or xattrs makes it
    described again."""
    names = ["same", "mode", "owner", "times", "grown", "linked", "xattr", "renamed-owner", "empty"]
    for name in names:
        (tmp_path / name).write_bytes(b"" if name == "empty" else name.encode() * 100)
    first = backup(repository, [tmp_path])
    fresh = backup(repository, [tmp_path], parent=None)  # every file described again
    assert fresh.tree == first.tree  # the same entries either way
    kept = backup(repository, [tmp_path])
    assert kept.tree == first.tree
    assert kept.stats["unchanged_files"] == len(names)
    assert kept.stats["read_bytes"] == 0
    (tmp_path / "mode").chmod(0o600)
    os.chown(tmp_path / "owner", os.getuid(), os.getgid() + 1)
    os.utime(tmp_path / "times", ns=(1, 2))
    (tmp_path / "grown").write_bytes(b"grown" * 101)
    os.link(tmp_path / "linked", tmp_path / "second-name")
    os.setxattr(tmp_path / "xattr", "user.note", b"new")
    # The same uid under another name (the passwd file changed): the entry names the new one.
    original_user = backup_module.Describer.__init__

    def renamed(self: backup_module.Describer) -> None:
        original_user(self)
        self.user = lambda uid: "renamed" if uid == os.getuid() else ""

    monkeypatch.setattr(backup_module.Describer, "__init__", renamed)
    after = backup(repository, [tmp_path])
    nodes = entries(repository, after.tree, *components(tmp_path))
    assert nodes[b"mode"].mode == 0o600
    assert nodes[b"owner"].gid == os.getgid() + 1
    assert nodes[b"times"].mtime_ns == 2
    assert nodes[b"grown"].size == 505
    assert nodes[b"linked"].links == 2
    assert nodes[b"xattr"].xattrs == {"user.note": b"new"}
    assert {nodes[name].user for name in nodes} == {"renamed"}
    monkeypatch.undo()
    again = backup(repository, [tmp_path], parent=None)
    assert again.tree == backup(repository, [tmp_path]).tree  # kept and described alike
