"""prune: deletes unused packs, rewrites mostly-garbage ones, and stays valid when interrupted anywhere."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from restore_trees import describe
from snapkeep.engine.backup import backup
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.format import DATA_PREFIX, LOCKS_PREFIX, BlobType, pack_name
from snapkeep.engine.maintenance.check import check
from snapkeep.engine.maintenance.forget import forget
from snapkeep.engine.maintenance.prune import prune
from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import restore
from snapkeep.errors import LockError, RepositoryError, StorageError
from snapkeep.storage.memory import MemoryStore
from snapkeep.storage.wrappers import FaultyStore

FAST = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


def assert_restores(
    repository: Repository, snapshot: Snapshot, source: Path, expected: dict, target: Path
) -> None:
    result = restore(repository, snapshot, str(target))
    assert result.ok, result.failures
    assert describe(target / source.relative_to("/")) == expected


def build(tmp_path: Path, password: str | None) -> tuple[MemoryStore, Path, list[Snapshot], dict[str, dict]]:
    """Three snapshots of a changing tree of small files; the first two are forgotten."""
    store = MemoryStore()
    repository = Repository.init(store, password=password, kdf_params=FAST, pack_size=5000)
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    for number in range(24):
        (source / ("sub" if number % 3 else "") / f"f{number}").write_bytes(os.urandom(1200 + number))
    (source / "link").symlink_to("f0")
    snapshots, expected = [], {}
    for round_ in range(3):
        if round_:
            for number in range(round_, 24, 2):
                (source / ("sub" if number % 3 else "") / f"f{number}").write_bytes(os.urandom(1300))
        snapshots.append(backup(repository, [str(source)]))
        expected[snapshots[-1].id] = describe(source)
    forget(repository, keep_last=1)
    repository.close()
    return store, source, snapshots, expected


def add_unindexed_pack(store: MemoryStore, password: str | None) -> None:
    """A pack no index lists, as a backup killed before writing its index file leaves."""
    before = {info.name for info in store.list("index/")}
    leftover = Repository.open(store, password=password)
    leftover.add_blob(BlobType.DATA, os.urandom(7000))
    leftover.flush()
    leftover.close()
    for info in list(store.list("index/")):
        if info.name not in before:
            store.delete(info.name)


def packs(store: MemoryStore) -> set[str]:
    return {info.name for info in store.list(DATA_PREFIX)}


@pytest.mark.parametrize("password", ["secret", None], ids=["encrypted", "plain"])
def test_prune_deletes_and_repacks_and_keeps_every_used_blob(tmp_path: Path, password: str | None) -> None:
    store, source, snapshots, expected = build(tmp_path, password)
    repository = Repository.open(store, password=password)
    before = packs(store)
    dry = prune(repository, dry_run=True)
    assert packs(store) == before
    assert dry.deleted_packs
    assert dry.repacked_packs
    report = prune(repository)
    assert report.deleted_packs == dry.deleted_packs
    assert report.repacked_packs == dry.repacked_packs
    assert report.new_packs
    assert report.blobs_repacked > 0
    assert report.bytes_freed > 0
    after = packs(store)
    assert not after & {pack_name(p) for p in report.deleted_packs + report.repacked_packs}
    assert list(store.list(LOCKS_PREFIX)) == []
    checked = check(repository, read_data=True)
    assert checked.ok, checked.problems
    assert_restores(repository, snapshots[2], source, expected[snapshots[2].id], tmp_path / "out")
    again = prune(Repository.open(store, password=password))
    assert (again.deleted_packs, again.repacked_packs, again.unindexed_deleted) == ([], [], [])


def test_unindexed_leftovers_are_deleted_unless_a_recent_lock_was_broken(tmp_path: Path) -> None:
    store, _, _, _ = build(tmp_path, "secret")
    add_unindexed_pack(store, "secret")
    now = time.time()
    lock = {"holder": "backup", "pid": 1, "host": "elsewhere", "exclusive": False, "created": now - 2000}
    store.store("locks/0001", json.dumps({**lock, "heartbeat": now - 2000, "timeout": 1800.0}).encode())
    kept = prune(Repository.open(store, password="secret"))
    assert len(kept.unindexed_kept) == 1
    assert kept.unindexed_deleted == []
    assert pack_name(kept.unindexed_kept[0]) in packs(store)
    store.store("locks/0002", json.dumps({**lock, "heartbeat": now - 7200, "timeout": 1800.0}).encode())
    removed = prune(Repository.open(store, password="secret"))
    assert removed.unindexed_deleted == kept.unindexed_kept
    assert pack_name(kept.unindexed_kept[0]) not in packs(store)
    assert check(Repository.open(store, password="secret")).ok


def test_prune_refuses_a_damaged_repository_and_a_locked_one(tmp_path: Path) -> None:
    store, _, snapshots, _ = build(tmp_path, None)
    repository = Repository.open(store, password=None)
    with repository.lock(exclusive=False, holder="a running backup"), pytest.raises(LockError):
        prune(repository)
    root = repository.lookup(bytes.fromhex(snapshots[2].tree))
    assert root is not None
    store.delete(pack_name(root.pack_id))
    before = packs(store)
    with pytest.raises(RepositoryError, match="prune refuses to run on a damaged repository"):
        prune(repository)
    assert packs(store) == before


def copy_store(source: MemoryStore) -> MemoryStore:
    copy = MemoryStore()
    for info in source.list(""):
        copy.store(info.name, source.load(info.name))
    return copy


@pytest.mark.parametrize("password", ["secret", None], ids=["encrypted", "plain"])
def test_prune_interrupted_at_every_store_call_leaves_a_valid_repository(
    tmp_path: Path, password: str | None
) -> None:
    base, source, snapshots, expected = build(tmp_path, password)
    leftover = Repository.open(base, password=password)  # an unindexed pack, as a crashed backup leaves
    leftover.add_blob(BlobType.DATA, os.urandom(3000))
    leftover._packer.flush()
    leftover.close()
    kept = snapshots[2]
    completed = None
    for number in range(1, 2000):
        inner = copy_store(base)
        faulty = FaultyStore(inner, partial_writes=True)
        repository = Repository.open(faulty, password=password)
        faulty.calls, faulty.fail_on_call = 0, number
        problem = ""
        try:
            prune(repository)
        except StorageError as error:
            problem = str(error)
        else:
            completed = number
        if completed != number:
            assert f"injected fault on call {number}" in problem or "uploading a pack failed" in problem
        repository.close()
        for info in list(inner.list(LOCKS_PREFIX)):  # a failed release leaves this live process's lock
            inner.delete(info.name)
        reopened = Repository.open(inner, password=password)
        report = check(reopened, read_data=True)
        assert report.ok, (number, report.problems)
        assert_restores(reopened, kept, source, expected[kept.id], tmp_path / f"out{number}")
        finished = prune(reopened)  # a rerun always completes the job
        assert check(reopened).ok
        assert check(reopened).unindexed_packs == []
        assert not finished.damaged_packs
        if completed:
            break
    assert completed is not None, "prune never completed"
    assert completed > 20, completed
