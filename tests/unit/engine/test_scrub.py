"""scrub and verify_archive: whole-object reads that name damage, and the map from damaged blobs to
the snapshots that use them (with a bounded memo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snapkeep.engine.archive import archive_name, manifest_name, write_archive
from snapkeep.engine.archive.manifest import ArchiveKeys
from snapkeep.engine.archive.verify import verify_archive
from snapkeep.engine.backup import backup
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.data.tree import Tree
from snapkeep.engine.format import CipherId, pack_name
from snapkeep.engine.maintenance import scrub
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository.crypto import NullCipher, make_cipher
from snapkeep.errors import IntegrityError, NotFoundError
from snapkeep.storage.memory import MemoryStore

FAST = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


@pytest.fixture(params=["secret", None], ids=["encrypted", "plain"])
def password(request: pytest.FixtureRequest) -> str | None:
    return request.param  # type: ignore[no-any-return]


def three_snapshots(
    tmp_path: Path, password: str | None
) -> tuple[MemoryStore, Repository, list[Snapshot], Path]:
    """Snapshot 1: docs/a, docs/b; 2 adds new.bin; 3 drops docs/a (small packs: one blob each)."""
    store = MemoryStore()
    repository = Repository.init(store, password=password, kdf_params=FAST, pack_size=4096)
    source = tmp_path / "src"
    (source / "docs").mkdir(parents=True)
    (source / "docs" / "a.txt").write_bytes(os.urandom(5000))
    (source / "docs" / "b.txt").write_bytes(os.urandom(5000))
    first = backup(repository, [str(source)])
    (source / "new.bin").write_bytes(os.urandom(5000))
    second = backup(repository, [str(source)])
    (source / "docs" / "a.txt").unlink()
    third = backup(repository, [str(source)])
    return store, repository, [first, second, third], source


def pack_of(repository: Repository, snapshot: Snapshot, *names: bytes) -> tuple[bytes, str]:
    tree_id = bytes.fromhex(snapshot.tree)
    node = None
    for name in (*repository_path(snapshot), *names):
        node = Tree.decode(repository.load_blob(tree_id)).by_name()[name]
        if node.subtree is not None:
            tree_id = node.subtree
    assert node is not None
    location = repository.lookup(node.content[0])
    assert location is not None
    return node.content[0], location.pack_id


def repository_path(snapshot: Snapshot) -> list[bytes]:
    return os.fsencode(snapshot.paths[0]).strip(b"/").split(b"/")


def flip(store: MemoryStore, name: str, offset: int) -> bytes:
    original = store.load(name)
    data = bytearray(original)
    data[offset] ^= 0x40
    store.store(name, bytes(data))
    return original


def test_clean_packs_pass(tmp_path: Path, password: str | None) -> None:
    _store, repository, _snapshots, _source = three_snapshots(tmp_path, password)
    packs = scrub.stored_packs(repository)
    assert len(packs) >= 4
    report = scrub.verify_packs(repository, packs)
    assert report.damaged == {}
    assert report.bytes_read == sum(packs.values())
    assert scrub.affected_snapshots(repository, set()) == {}


@pytest.mark.parametrize("memo_limit", [scrub.MEMO_LIMIT, 1])
def test_a_flipped_byte_names_the_blob_and_exactly_the_snapshots_using_it(
    tmp_path: Path, password: str | None, memo_limit: int
) -> None:
    store, repository, (first, second, _third), _source = three_snapshots(tmp_path, password)
    blob, pack = pack_of(repository, first, b"docs", b"a.txt")  # used by snapshots 1 and 2 only
    location = repository.lookup(blob)
    assert location is not None
    original = flip(store, pack_name(pack), location.offset + location.length // 2)
    report = scrub.verify_packs(repository, [pack])
    verdict = report.packs[pack]
    assert not verdict.ok
    assert "contents do not match the pack ID" in verdict.reason
    assert verdict.damaged_blobs == {blob}
    affected = scrub.affected_snapshots(repository, report.damaged_blobs, memo_limit=memo_limit)
    assert set(affected) == {first.id, second.id}
    assert "a.txt" in affected[first.id]
    store.store(pack_name(pack), original)
    assert scrub.verify_packs(repository, [pack]).damaged == {}


def test_a_damaged_folder_listing_hurts_every_snapshot_using_it(tmp_path: Path, password: str | None) -> None:
    _store, repository, (first, _second, _third), _source = three_snapshots(tmp_path, password)
    tree_id = bytes.fromhex(first.tree)
    affected = scrub.affected_snapshots(repository, {tree_id})
    assert set(affected) == {first.id}
    assert "folder listing" in affected[first.id]


def test_a_missing_indexed_pack_is_damage_an_unindexed_one_only_vanished(
    tmp_path: Path, password: str | None
) -> None:
    store, repository, (first, _second, _third), _source = three_snapshots(tmp_path, password)
    blob, pack = pack_of(repository, first, b"docs", b"b.txt")
    store.delete(pack_name(pack))
    verdict = scrub.verify_packs(repository, [pack, "ab" * 32]).packs
    assert "missing" in verdict[pack].reason
    assert verdict[pack].damaged_blobs == {blob}
    assert verdict["ab" * 32].ok
    assert verdict["ab" * 32].vanished


def test_an_oversized_pack_is_refused_unread(tmp_path: Path) -> None:
    store, repository, (first, _second, _third), _source = three_snapshots(tmp_path, None)
    _blob, pack = pack_of(repository, first, b"docs", b"b.txt")
    limit = scrub.pack_limit(repository)
    store.store(pack_name(pack), store.load(pack_name(pack)) + bytes(limit))
    verdict = scrub.verify_packs(repository, [pack]).packs[pack]
    assert "more than any pack holds" in verdict.reason
    assert verdict.size == 0


def test_an_unreadable_snapshot_file_is_affected(tmp_path: Path) -> None:
    store, repository, (first, _second, _third), _source = three_snapshots(tmp_path, "secret")
    name = f"snapshots/{first.id}"
    flip(store, name, 40)
    affected = scrub.affected_snapshots(repository, set())
    assert set(affected) == {first.id}
    assert "snapshot file" in affected[first.id]


@pytest.mark.parametrize("compressed", [False, True], ids=["archived", "compressed"])
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_verify_archive_reads_it_whole_and_names_damage(
    tmp_path: Path, compressed: bool, encrypted: bool
) -> None:
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "data.bin").write_bytes(os.urandom(200_000))
    (source / "text.txt").write_text("hello\n" * 500)
    (source / "link").symlink_to("text.txt")
    cipher = make_cipher(CipherId.AES_256_GCM, os.urandom(32)) if encrypted else NullCipher()
    store = MemoryStore()
    destination = ArchiveKeys(store, cipher)
    manifest = write_archive(destination, [str(source)], compressed=compressed, segment_size=65536)
    assert verify_archive(destination, manifest.id).id == manifest.id
    name = archive_name(manifest.id, compressed)
    original = flip(store, name, len(store.load(name)) // 2)
    with pytest.raises(IntegrityError):
        verify_archive(destination, manifest.id)
    store.store(name, original[: len(original) - 700])  # cut short
    with pytest.raises(IntegrityError):
        verify_archive(destination, manifest.id)
    store.delete(name)
    with pytest.raises(IntegrityError, match="missing"):
        verify_archive(destination, manifest.id)
    store.store(name, original)
    flip(store, manifest_name(manifest.id), 40)
    with pytest.raises(IntegrityError):
        verify_archive(destination, manifest.id)
    with pytest.raises(NotFoundError):
        verify_archive(destination, "ff" * 32)


def test_verify_archive_compares_file_contents_with_the_manifest(tmp_path: Path) -> None:
    """A plain Archived tar edited consistently (a byte of a file changed) still fails: the file's
    hash is in the manifest."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "file.txt").write_bytes(b"A" * 4096)
    store = MemoryStore()
    destination = ArchiveKeys(store, NullCipher())
    manifest = write_archive(destination, [str(source)], compressed=False)
    name = archive_name(manifest.id, False)
    data = store.load(name)
    offset = data.index(b"A" * 4096)
    flip(store, name, offset + 10)
    with pytest.raises(IntegrityError, match="contents of"):
        verify_archive(destination, manifest.id)
