"""The compact in-memory index and the index file encoding."""

from __future__ import annotations

import os

import pytest

from snapkeep.engine.format import BlobType, Compression
from snapkeep.engine.repository import index as index_module
from snapkeep.engine.repository.index import BlobLocation, Index, decode_index_file, encode_index_file
from snapkeep.errors import IntegrityError


def location(pack: str, offset: int = 0, blob_id: bytes | None = None) -> BlobLocation:
    return BlobLocation(
        blob_id or os.urandom(32), pack, offset, 100 + offset, 200 + offset, BlobType.TREE, Compression.ZSTD
    )


def test_lookup_before_and_after_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "BUCKET_LOAD", 7)
    index = Index()
    packs = [f"{n:064x}" for n in range(5)]
    locations = [location(packs[n % 5], n) for n in range(200)]
    for loc in locations:
        index.add(loc)
    assert len(index) == 200
    for loc in locations:
        assert index.lookup(loc.blob_id) == loc
        assert loc.blob_id in index
    assert index.lookup(os.urandom(32)) is None
    assert os.urandom(32) not in index
    assert [loc.blob_id for loc in index] == sorted(loc.blob_id for loc in locations)
    assert index.pack_ids() == set(packs)


def test_first_location_of_a_blob_wins() -> None:
    index = Index()
    first = location("a" * 64, 1)
    index.add(first)
    index.add(location("b" * 64, 2, blob_id=first.blob_id))
    assert index.lookup(first.blob_id) == first
    assert len(index) == 1


def test_index_file_round_trip() -> None:
    locations = [location(f"{n % 3:064x}", n) for n in range(50)]
    assert decode_index_file(encode_index_file(locations), what="index file x") == locations
    assert decode_index_file(encode_index_file([]), what="x") == []


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_malformed_index_file_is_an_integrity_error(cut: int) -> None:
    data = encode_index_file([location("a" * 64)])
    with pytest.raises(IntegrityError, match="index file 42: malformed"):
        decode_index_file(data[:-cut], what="index file 42")
    with pytest.raises(IntegrityError, match="unknown header"):
        decode_index_file(b"XXXX" + data[4:], what="index file 42")
