"""check: a clean repository passes; each kind of damage is named with the snapshots and files it hurts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snapkeep.engine.backup import backup
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.data.tree import Node, Tree
from snapkeep.engine.format import DATA_PREFIX, INDEX_PREFIX, SNAPSHOTS_PREFIX, BlobType, pack_name
from snapkeep.engine.maintenance.check import check, open_without_index, subset_of
from snapkeep.engine.repository import Repository
from snapkeep.errors import WrongPasswordError
from snapkeep.storage.memory import MemoryStore

FAST = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


@pytest.fixture(params=["secret", None], ids=["encrypted", "plain"])
def password(request: pytest.FixtureRequest) -> str | None:
    return request.param  # type: ignore[no-any-return]


def make_tree(root: Path) -> Path:
    source = root / "src"
    (source / "docs").mkdir(parents=True)
    (source / "docs" / "a.txt").write_bytes(os.urandom(3000))
    (source / "docs" / "b.txt").write_bytes(os.urandom(3000))
    (source / "top.bin").write_bytes(os.urandom(5000))
    return source


def two_snapshots(
    tmp_path: Path, password: str | None
) -> tuple[MemoryStore, Repository, Path, Snapshot, Snapshot]:
    """Snapshot 1 of docs/a, docs/b, top.bin; snapshot 2 adds new.bin (one index file each)."""
    store = MemoryStore()
    repository = Repository.init(store, password=password, kdf_params=FAST, pack_size=4096)
    source = make_tree(tmp_path)
    first = backup(repository, [str(source)])
    (source / "new.bin").write_bytes(os.urandom(5000))
    second = backup(repository, [str(source)])
    return store, repository, source, first, second


def flip(store: MemoryStore, name: str, offset: int = 0) -> None:
    data = bytearray(store.load(name))
    data[offset] ^= 0x40
    store.store(name, bytes(data))


def node_at(repository: Repository, snapshot: Snapshot, path: Path) -> Node:
    """The tree node of the absolute ``path`` in ``snapshot``."""
    tree_id = bytes.fromhex(snapshot.tree)
    node = None
    for part in os.fsencode(path).strip(b"/").split(b"/"):
        node = Tree.decode(repository.load_blob(tree_id)).by_name()[part]
        if node.subtree is not None:
            tree_id = node.subtree
    assert node is not None
    return node


def content_pack(repository: Repository, snapshot: Snapshot, path: Path) -> tuple[bytes, str]:
    """The first content blob of the file at ``path`` and its pack."""
    node = node_at(repository, snapshot, path)
    assert node.content
    location = repository.lookup(node.content[0])
    assert location is not None
    return node.content[0], location.pack_id


def paths_of(report, snapshot_id: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {a.path for a in report.affected if a.snapshot == snapshot_id}


def test_clean_repository_passes_structure_and_data(tmp_path: Path, password: str | None) -> None:
    _, repository, _, _, _ = two_snapshots(tmp_path, password)
    report = check(repository)
    assert report.ok, report.problems
    assert report.snapshots == 2
    assert report.trees >= 3
    assert report.packs_read == 0
    full = check(repository, read_data=True)
    assert full.ok, full.problems
    assert full.packs_read == full.packs > 1
    assert full.blobs_verified >= len(full.used_blobs)
    assert full.affected == []
    assert full.unindexed_packs == []


def test_unindexed_pack_is_reported_but_not_an_error(tmp_path: Path) -> None:
    store, _, _, _, _ = two_snapshots(tmp_path, "secret")
    before = {info.name for info in store.list(INDEX_PREFIX)}
    crashed = Repository.open(store, password="secret")
    crashed.add_blob(BlobType.DATA, os.urandom(5000))
    crashed.flush()  # a pack and its index file, but no snapshot: then the index file is lost
    for info in list(store.list(INDEX_PREFIX)):
        if info.name not in before:
            store.delete(info.name)
    report = check(Repository.open(store, password="secret"), read_data=True)
    assert report.ok, report.problems
    assert len(report.unindexed_packs) == 1


def test_flipped_pack_byte_names_pack_blob_snapshots_and_file(tmp_path: Path, password: str | None) -> None:
    store, repository, source, first, second = two_snapshots(tmp_path, password)
    blob_id, pack_id = content_pack(repository, first, source / "docs" / "a.txt")
    location = repository.lookup(blob_id)
    assert location is not None
    flip(store, pack_name(pack_id), location.offset + 5)
    assert check(repository).ok, "structure alone does not read the data"
    report = check(repository, read_data=True)
    assert not report.ok
    named = {(p.kind, p.name) for p in report.problems}
    assert ("pack", pack_id) in named
    assert ("blob", blob_id.hex()) in named
    for snapshot in (first, second):
        assert "/src/docs/a.txt" in "".join(paths_of(report, snapshot.id)), report.affected
        assert not any("b.txt" in path for path in paths_of(report, snapshot.id))


def test_missing_pack_is_found_without_reading_data(tmp_path: Path) -> None:
    store, repository, source, first, second = two_snapshots(tmp_path, None)
    _, pack_id = content_pack(repository, second, source / "new.bin")
    store.delete(pack_name(pack_id))
    report = check(repository)
    assert ("pack", pack_id) in {(p.kind, p.name) for p in report.problems}
    assert any(path.endswith("/new.bin") for path in paths_of(report, second.id)), report.affected
    assert paths_of(report, first.id) == set()


def test_damaged_snapshot_file_is_named(tmp_path: Path, password: str | None) -> None:
    store, repository, _, first, _ = two_snapshots(tmp_path, password)
    flip(store, f"{SNAPSHOTS_PREFIX}{first.id}", 10)
    report = check(repository, read_data=True)
    assert [(p.kind, p.name) for p in report.problems] == [("snapshot", first.id)]
    assert paths_of(report, first.id) == {"*"}


def test_damaged_index_file_is_named_and_blobs_found_in_pack_trailers(
    tmp_path: Path, password: str | None
) -> None:
    store, repository, source, first, second = two_snapshots(tmp_path, password)
    index_names = sorted(info.name for info in store.list(INDEX_PREFIX))
    # the index file written by the second backup lists new.bin's blob
    blob_id, _ = content_pack(repository, second, source / "new.bin")
    second_index = next(
        name
        for name in index_names
        if any(loc.blob_id == blob_id for loc in repository.load_index_file(name.split("/")[1]))
    )
    flip(store, second_index, 30)
    recovered = Repository.open(store, password=password)
    assert recovered.damaged_index_files == [second_index.split("/")[1]]
    assert (
        recovered.load_blob(blob_id) == (source / "new.bin").read_bytes()[: len(recovered.load_blob(blob_id))]
    )
    reopened = open_without_index(store, password=password)
    report = check(reopened, read_data=True)
    named = {(p.kind, p.name) for p in report.problems}
    assert ("index", second_index.split("/")[1]) in named
    assert ("blob", blob_id.hex()) in named
    assert any(path.endswith("/new.bin") for path in paths_of(report, second.id)), report.affected
    assert not any("a.txt" in path for path in paths_of(report, first.id))


def test_damaged_tree_blob_names_the_folder(tmp_path: Path) -> None:
    store, repository, source, first, second = two_snapshots(tmp_path, "secret")
    docs = node_at(repository, first, source / "docs")
    assert docs.subtree is not None
    location = repository.lookup(docs.subtree)
    assert location is not None
    flip(store, pack_name(location.pack_id), location.offset + 3)
    report = check(repository)
    assert ("tree", docs.subtree.hex()) in {(p.kind, p.name) for p in report.problems}
    for snapshot in (first, second):
        affected = [a for a in report.affected if a.snapshot == snapshot.id]
        assert [a.path for a in affected] == [str(source / "docs")], affected
        assert "everything below" in affected[0].reason


def test_open_without_index_needs_the_password() -> None:
    store = MemoryStore()
    Repository.init(store, password="right", kdf_params=FAST).close()
    with pytest.raises(WrongPasswordError):
        open_without_index(store, password="wrong")
    assert open_without_index(store, password="right").config.encrypted


def test_subset_is_deterministic_and_sized() -> None:
    packs = [f"{number:064x}" for number in range(40)]
    assert subset_of(packs, 10, "seed") == subset_of(list(reversed(packs)), 10, "seed")
    assert len(subset_of(packs, 10, "seed")) == 4
    assert len(subset_of(packs, 0.1, "seed")) == 1
    assert subset_of(packs, 100, "seed") == packs
    assert subset_of(packs, 50, "a") != subset_of(packs, 50, "b")


def test_read_data_subset_reads_that_share(tmp_path: Path) -> None:
    store, repository, _, _, _ = two_snapshots(tmp_path, "secret")
    packs = len(list(store.list(DATA_PREFIX)))
    report = check(repository, subset_percent=50)
    assert report.ok
    assert report.packs_read == -(-packs // 2)
    with pytest.raises(ValueError, match="0-100"):
        check(repository, subset_percent=120)
