"""Folder listings are read a whole tree pack at a time, and still verified one by one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from snapkeep.engine.backup import backup
from snapkeep.engine.data.tree import DIR, Tree
from snapkeep.engine.format import BlobType, pack_name
from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import restore
from snapkeep.engine.restore.trees import TreePacks
from snapkeep.errors import IntegrityError
from snapkeep.storage.memory import MemoryStore

FAST_KDF = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}
FOLDERS = 60


class CountingStore(MemoryStore):
    """Counts the reads of each object."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: dict[str, int] = {}
        self.counter = threading.Lock()

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        with self.counter:
            self.reads[name] = self.reads.get(name, 0) + 1
        return super().load(name, offset, length)


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def repository(store: CountingStore) -> Iterator[Repository]:
    repo = Repository.init(store, password="secret", kdf_params=FAST_KDF)
    yield repo
    repo.close()


def many_folders(root: Path) -> Path:
    source = root / "source"
    for number in range(FOLDERS):
        folder = source / f"d{number:03}" / "inner"
        folder.mkdir(parents=True)
        (folder / "file.txt").write_bytes(f"content {number}".encode())
    return source


def tree_ids(repository: Repository, root: bytes) -> list[bytes]:
    found = [root]
    for node in Tree.decode(repository.load_blob(root)).nodes:
        if node.type == DIR and node.subtree is not None:
            found.extend(tree_ids(repository, node.subtree))
    return found


def test_a_restore_reads_each_tree_pack_once(
    repository: Repository, store: CountingStore, tmp_path: Path
) -> None:
    snapshot = backup(repository, [many_folders(tmp_path)])
    trees = tree_ids(repository, bytes.fromhex(snapshot.tree))
    assert len(trees) > 2 * FOLDERS
    tree_packs = {pack_name(location.pack_id) for tree in trees if (location := repository.lookup(tree))}
    store.reads.clear()

    result = restore(repository, snapshot, tmp_path / "target")

    assert result.ok
    assert result.files == FOLDERS
    assert {name: store.reads[name] for name in tree_packs} == dict.fromkeys(tree_packs, 1)
    restored = next((tmp_path / "target").rglob("d059"))
    assert (restored / "inner" / "file.txt").read_bytes() == b"content 59"


def test_every_listing_is_still_verified(
    repository: Repository, store: CountingStore, tmp_path: Path
) -> None:
    snapshot = backup(repository, [many_folders(tmp_path)])
    root = bytes.fromhex(snapshot.tree)
    location = repository.lookup(root)
    assert location is not None
    assert location.blob_type is BlobType.TREE
    name = pack_name(location.pack_id)
    damaged = bytearray(store.load(name))
    damaged[location.offset + location.length // 2] ^= 0xFF
    store.store(name, bytes(damaged))

    with pytest.raises(IntegrityError):
        TreePacks(repository).load(root)


def test_a_missing_tree_pack_is_named(repository: Repository, store: CountingStore, tmp_path: Path) -> None:
    snapshot = backup(repository, [many_folders(tmp_path)])
    root = bytes.fromhex(snapshot.tree)
    location = repository.lookup(root)
    assert location is not None
    store.delete(pack_name(location.pack_id))

    with pytest.raises(IntegrityError, match="missing"):
        TreePacks(repository).load(root)


def test_the_cache_keeps_to_its_budget(repository: Repository, store: CountingStore, tmp_path: Path) -> None:
    snapshot = backup(repository, [many_folders(tmp_path)])
    trees = tree_ids(repository, bytes.fromhex(snapshot.tree))
    loader = TreePacks(repository, budget=1)  # keeps only the pack read last

    listings = [loader.load(tree) for tree in trees]

    assert [listing.encode() for listing in listings] == [
        Tree.decode(repository.load_blob(tree)).encode() for tree in trees
    ]
    assert loader.listings == len(trees)
    assert len(loader._packs) == 1


def test_prefetch_reads_a_pack_once_in_the_pool_and_load_decodes_from_it(
    repository: Repository, store: CountingStore, tmp_path: Path
) -> None:
    snapshot = backup(repository, [many_folders(tmp_path)])
    trees = tree_ids(repository, bytes.fromhex(snapshot.tree))
    store.reads.clear()
    packs = TreePacks(repository)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for tree in trees:
            packs.prefetch(tree, pool)
    read_in_pool = dict(store.reads)
    assert read_in_pool  # the packs were read by the pool, before any listing was asked for
    assert set(read_in_pool.values()) == {1}
    for tree in trees:
        assert packs.load(tree) == Tree.decode(repository.load_blob(tree))
    # the listings came from the packs the pool read (load_blob above reads single blobs)
    assert packs.listings == len(trees)
    assert packs.packs_read == len(read_in_pool)


class BrokenStore(MemoryStore):
    """Raises an error that is not a storage error on every ranged read from offset 0."""

    broken = False

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if self.broken and name.startswith("data/") and offset == 0:
            raise RuntimeError("the disk controller is gone")
        return super().load(name, offset, length)


def test_a_pack_read_that_fails_unexpectedly_fails_its_waiters_instead_of_hanging(tmp_path: Path) -> None:
    store = BrokenStore()
    repository = Repository.init(store, password="secret", kdf_params=FAST_KDF)
    try:
        snapshot = backup(repository, [many_folders(tmp_path)])
        store.broken = True
        packs = TreePacks(repository)
        root = bytes.fromhex(snapshot.tree)
        with pytest.raises(RuntimeError, match="disk controller"):
            packs.load(root)
        with pytest.raises(RuntimeError, match="disk controller"):
            packs.load(root)  # tried again, not a future left pending forever
    finally:
        repository.close()
