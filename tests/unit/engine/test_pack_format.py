"""Packs: sealed blobs, a sealed trailer that lists them, magic; rebuildable from the trailer."""

from __future__ import annotations

import os

import blake3
import pytest

from snapkeep.engine.format import PACK_MAGIC, BlobType, Compression, pack_name
from snapkeep.engine.repository.crypto import AesGcmCipher, Cipher, NullCipher
from snapkeep.engine.repository.pack_format import (
    STREAM_PIECE,
    PackBuilder,
    StagedPack,
    parse_pack,
    read_pack_trailer,
)
from snapkeep.errors import IntegrityError
from snapkeep.storage.memory import MemoryStore

CIPHERS = [AesGcmCipher(bytes(32)), NullCipher()]


def build(cipher: Cipher, blobs: list[bytes]) -> tuple[str, bytes, PackBuilder]:
    builder = PackBuilder()
    for number, blob in enumerate(blobs):
        kind = BlobType.TREE if number % 2 else BlobType.DATA
        builder.add(blake3.blake3(blob).digest(), kind, Compression.NONE, blob, len(blob) + 5)
    pack_id, data = builder.finish(cipher)
    return pack_id, data, builder


@pytest.mark.parametrize("cipher", CIPHERS, ids=["aes", "none"])
def test_pack_lists_its_blobs_and_is_named_by_its_hash(cipher: Cipher) -> None:
    blobs = [os.urandom(n) for n in (10, 0, 3000, 77)]
    pack_id, data, builder = build(cipher, blobs)
    assert pack_id == blake3.blake3(data).hexdigest()
    assert data.endswith(PACK_MAGIC)
    entries = parse_pack(data, cipher, pack_id=pack_id)
    assert entries == builder.entries
    for entry, blob in zip(entries, blobs, strict=True):
        assert data[entry.offset : entry.offset + entry.length] == blob
        assert entry.raw_length == len(blob) + 5
    assert [e.blob_type for e in entries] == [BlobType.DATA, BlobType.TREE, BlobType.DATA, BlobType.TREE]


@pytest.mark.parametrize("cipher", CIPHERS, ids=["aes", "none"])
@pytest.mark.parametrize("count", [1, 3000])
def test_read_pack_trailer_from_the_store_with_ranged_reads(cipher: Cipher, count: int) -> None:
    # 3000 entries make a trailer larger than the first 64 KiB tail read.
    blobs = [os.urandom(40) for _ in range(count)]
    pack_id, data, builder = build(cipher, blobs)
    store = MemoryStore()
    store.store(pack_name(pack_id), data)
    assert read_pack_trailer(store, pack_id, cipher) == builder.entries


def test_damage_in_the_trailer_or_the_body_is_detected() -> None:
    cipher = AesGcmCipher(bytes(32))
    pack_id, data, _ = build(cipher, [b"a" * 100, b"b" * 100])
    with pytest.raises(IntegrityError, match=f"pack {pack_id}: contents do not match"):
        parse_pack(b"X" + data[1:], cipher, pack_id=pack_id)
    damaged = bytearray(data)
    damaged[-20] ^= 1
    with pytest.raises(IntegrityError, match="authentication failed"):
        parse_pack(bytes(damaged), cipher)
    with pytest.raises(IntegrityError, match="magic bytes missing"):
        parse_pack(data[:-1], cipher)
    with pytest.raises(IntegrityError, match="not a pack"):
        parse_pack(b"tiny", cipher)


def test_plain_trailer_damage_is_caught_by_its_checksum() -> None:
    cipher = NullCipher()
    _, data, _ = build(cipher, [b"a" * 100, b"b" * 100])
    damaged = bytearray(data)
    damaged[-20] ^= 1
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        parse_pack(bytes(damaged), cipher)


def test_trailer_length_beyond_the_pack_is_refused() -> None:
    cipher = NullCipher()
    _, data, _ = build(cipher, [b"x"])
    forged = data[:-12] + (10**6).to_bytes(4, "little") + PACK_MAGIC
    with pytest.raises(IntegrityError, match="exceeds the pack size"):
        parse_pack(forged, cipher)


@pytest.mark.parametrize("cipher", CIPHERS, ids=["aes", "none"])
def test_a_blob_added_in_two_halves_makes_the_same_pack(cipher: Cipher) -> None:
    """The backup adds a blob as its nonce and the rest: byte for byte the pack of the
    joined blob, with the same entries and ID, whether the parts are joined or streamed."""
    blobs = [os.urandom(n) for n in (10, 3000, 2 * 1024 * 1024, 77, 12)]
    whole, halves = PackBuilder(), PackBuilder()
    for blob in blobs:
        blob_id = blake3.blake3(blob).digest()
        whole.add(blob_id, BlobType.DATA, Compression.ZSTD, blob, len(blob) + 1)
        halves.add(blob_id, BlobType.DATA, Compression.ZSTD, (blob[:12], blob[12:]), len(blob) + 1)
    assert halves.entries == whole.entries
    assert halves.size == whole.size
    trailer_cipher = NullCipher()  # the same trailer bytes for both (AES would draw two nonces)
    whole_id, whole_parts = whole.finish_parts(trailer_cipher)
    halves_id, halves_parts = halves.finish_parts(trailer_cipher)
    assert halves_id == whole_id == blake3.blake3(b"".join(whole_parts)).hexdigest()
    assert b"".join(halves_parts) == b"".join(whole_parts)
    assert parse_pack(b"".join(halves_parts), trailer_cipher, pack_id=halves_id) == whole.entries


class _Collected:
    """A staged object that keeps what is written, in the pieces it came in."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.pieces.append(bytes(data))

    def publish(self, name: str) -> int:
        return sum(len(piece) for piece in self.pieces)

    def discard(self) -> None:
        self.pieces = []


def test_a_pack_staged_as_it_fills_is_the_pack_built_in_memory() -> None:
    """Written into the store blob by blob (``StagedPack``), a pack has the same bytes, entries and
    ID as one collected in memory; small blobs go out joined into pieces of about a MiB, so an
    open pack holds at most one piece."""
    sizes = (10, 3000, 2 * STREAM_PIECE, 77, 12, STREAM_PIECE - 5, 600_000, 600_000, 40)
    blobs = [os.urandom(n) for n in sizes]
    memory, staged_object = PackBuilder(), _Collected()
    staged = StagedPack(staged_object)
    for blob in blobs:
        blob_id = blake3.blake3(blob).digest()
        memory.add(blob_id, BlobType.DATA, Compression.ZSTD, (blob[:12], blob[12:]), len(blob) + 1)
        staged.add(blob_id, BlobType.DATA, Compression.ZSTD, (blob[:12], blob[12:]), len(blob) + 1)
    assert staged.entries == memory.entries
    assert staged.size == memory.size
    # Written so far: [10, 3000, the 2 MiB blob's head], its rest alone, [77, 12, the next blob]
    # once they reach a MiB, the two 600 KB blobs; the last 40 bytes wait for the trailer.
    assert [len(piece) for piece in staged_object.pieces] == [
        10 + 3000 + 12,
        2 * STREAM_PIECE - 12,
        77 + 12 + STREAM_PIECE - 5,
        1_200_000,
    ]
    cipher = NullCipher()
    memory_id, memory_parts = memory.finish_parts(cipher)
    staged_id = staged.finish(cipher)
    assert staged_id == memory_id
    assert b"".join(staged_object.pieces) == b"".join(memory_parts)
    assert all(len(piece) < 2 * STREAM_PIECE + 12 for piece in staged_object.pieces)
