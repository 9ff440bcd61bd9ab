"""Pack streaming: small blobs are joined into pieces, large ones pass through, nothing is lost."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import blake3

from snapkeep.engine.format import BlobType, Compression, pack_name
from snapkeep.engine.repository.crypto import NullCipher
from snapkeep.engine.repository.pack_format import STREAM_PIECE, coalesce
from snapkeep.engine.repository.packer import Packer
from snapkeep.storage.memory import MemoryStore


def test_coalesce_joins_small_parts_and_keeps_large_ones_in_order() -> None:
    sizes = [
        10,
        2 * STREAM_PIECE,
        STREAM_PIECE // 3,
        STREAM_PIECE // 3,
        STREAM_PIECE // 2,
        7,
        STREAM_PIECE,
        5,
    ]
    parts = [os.urandom(size) for size in sizes]
    expected = b"".join(parts)
    given = list(parts)
    pieces = coalesce(given)
    assert b"".join(pieces) == expected
    assert given == []  # consumed: the pack is not held twice while it is joined
    assert [len(piece) for piece in pieces] == [
        10,
        2 * STREAM_PIECE,
        STREAM_PIECE // 3 * 2 + STREAM_PIECE // 2,
        7,
        STREAM_PIECE,
        5,
    ]
    assert coalesce([]) == []


class _Recording(MemoryStore):
    """A memory store that records, per write, how many parts were still held by the packer."""

    def __init__(self, replays: bool) -> None:
        super().__init__()
        self.replays_writes = replays
        self.kinds: list[str] = []

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        self.kinds.append("sequence" if isinstance(chunks, Sequence) else "released")
        return super().store_stream(name, chunks)


def _two_part_pack(store: MemoryStore) -> list[str]:
    uploaded: list[str] = []
    packer = Packer(store, NullCipher(), lambda pack_id, entries: uploaded.append(pack_id), pack_size=1)
    for number in range(2):
        data = os.urandom(2 * STREAM_PIECE)  # large blobs: each its own part
        packer.add(bytes([number]) * 32, BlobType.DATA, Compression.NONE, data, len(data))
    packer.flush()
    packer.close()
    return uploaded


def test_a_store_that_never_writes_twice_gets_the_parts_released_as_written() -> None:
    """Parts handed out one by one (the pack's memory goes as it is written); a store that may
    write a sequence again after a dropped connection still gets the whole list."""
    for replays, kind in ((False, "released"), (True, "sequence")):
        store = _Recording(replays)
        uploaded = _two_part_pack(store)
        assert len(uploaded) == 2
        assert set(store.kinds) == {kind}
        for pack_id in uploaded:  # what was written is the whole pack, whatever the way
            assert blake3.blake3(store.load(pack_name(pack_id))).hexdigest() == pack_id
