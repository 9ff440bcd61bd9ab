"""The checked-in repositories of format version 1 must stay readable (tests/fixtures/golden-v1)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from snapkeep.clock import UTC
from snapkeep.engine.data.tree import DIR, FILE, SYMLINK, Tree
from snapkeep.engine.format import CipherId, Compression
from snapkeep.engine.repository import Repository
from snapkeep.errors import WrongPasswordError
from snapkeep.storage.local import LocalStore
from snapkeep.storage.wrappers import ReadOnlyStore

GOLDEN = Path(__file__).parents[2] / "fixtures" / "golden-v1"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())


def open_golden(kind: str) -> Repository:
    store = ReadOnlyStore(LocalStore(GOLDEN / kind, create=False))
    password = EXPECTED["password"] if kind == "encrypted" else None
    return Repository.open(store, password=password)


def walk(repository: Repository, tree_id: bytes, prefix: str = "") -> dict[str, tuple[str, object]]:
    found: dict[str, tuple[str, object]] = {}
    for node in Tree.decode(repository.load_blob(tree_id)).nodes:
        path = prefix + node.name.decode()
        if node.type == DIR:
            assert node.subtree is not None
            found.update(walk(repository, node.subtree, path + "/"))
        elif node.type == FILE:
            data = b"".join(repository.load_blob(blob_id) for blob_id in node.content)
            assert len(data) == node.size
            found[path] = (FILE, hashlib.sha256(data).hexdigest())
        elif node.type == SYMLINK:
            found[path] = (SYMLINK, node.target.decode())
    return found


@pytest.mark.parametrize("kind", ["encrypted", "plain"])
def test_golden_repository_opens_and_restores_known_contents(kind: str) -> None:
    repository = open_golden(kind)
    assert repository.config.version == EXPECTED["format_version"] == 1
    assert repository.config.cipher is (CipherId.AES_256_GCM if kind == "encrypted" else CipherId.NONE)
    snapshot = repository.load_snapshot("latest")
    assert snapshot.id == EXPECTED["snapshots"][kind]
    assert repository.load_snapshot(snapshot.id[:8]).id == snapshot.id
    assert snapshot.time == dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert (snapshot.hostname, snapshot.paths, snapshot.tags) == ("golden-host", ["/srv/golden"], ["golden"])
    found = walk(repository, bytes.fromhex(snapshot.tree))
    expected = {path: (FILE, digest) for path, digest in EXPECTED["files"].items()}
    expected.update({path: (SYMLINK, target) for path, target in EXPECTED["symlinks"].items()})
    assert found == expected
    repository.close()


@pytest.mark.parametrize("kind", ["encrypted", "plain"])
def test_golden_packs_describe_themselves_and_match_the_index(kind: str) -> None:
    repository = open_golden(kind)
    pack_ids = repository.index.pack_ids()
    assert pack_ids
    from_trailers = {}
    for pack_id in pack_ids:
        for entry in repository.read_pack_trailer(pack_id):
            from_trailers[entry.blob_id] = (pack_id, entry.offset, entry.length, entry.raw_length)
    from_index = {
        loc.blob_id: (loc.pack_id, loc.offset, loc.length, loc.raw_length) for loc in repository.index
    }
    assert from_trailers == from_index
    assert any(loc.compression is Compression.ZSTD for loc in repository.index)
    big = next(loc for loc in repository.index if loc.raw_length > 512 * 1024)
    assert next(iter(repository.load_blobs(big.pack_id, [big])))[0] == big.blob_id
    repository.close()


def test_golden_encrypted_repository_refuses_a_wrong_password() -> None:
    with pytest.raises(WrongPasswordError):
        Repository.open(ReadOnlyStore(LocalStore(GOLDEN / "encrypted", create=False)), password="wrong")
