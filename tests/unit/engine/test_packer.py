"""Pack streaming: small blobs are joined into pieces, large ones pass through, nothing is lost."""

from __future__ import annotations

import os

from snapkeep.engine.repository.packer import STREAM_PIECE, coalesce


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
