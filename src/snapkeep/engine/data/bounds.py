"""Upper bounds on what a repository may declare, so a damaged or forged one costs bounded memory.

Every length, size and count read from a repository is hostile input: an index entry may claim a
blob expands to 4 GiB, a zstd frame may expand to 10 GiB, a tree may list a million entries or a
file 8 TiB of content held by one 6-byte blob. These bounds cover everything snapkeep writes (the
backup refuses a folder listing beyond them rather than write one it could not read back) and are
checked before any allocation that depends on the declared value (docs/engine.md, "Bounds").
"""

from __future__ import annotations

from typing import Final

from snapkeep.engine.format import CHUNK_MAX_SIZE, MIB, NONCE_SIZE, TAG_SIZE, BlobType

#: Largest plaintext of a DATA blob: the chunker never cuts a larger chunk.
MAX_DATA_BLOB: Final = CHUNK_MAX_SIZE
#: Largest plaintext of a TREE blob (a folder listing): about 240,000 entries of small files, or
#: one file of 7 TiB (67 bytes per 1 MiB chunk). Decoding one costs about 5 times this in memory.
MAX_TREE_BLOB: Final = 64 * MIB
#: Most entries in one folder listing.
MAX_TREE_ENTRIES: Final = 500_000
#: Largest stored length of a blob beyond its plaintext: the sealing overhead (kept raw when zstd
#: does not shrink it, so compression never adds).
MAX_SEAL_OVERHEAD: Final = NONCE_SIZE + TAG_SIZE


def max_raw_length(blob_type: BlobType) -> int:
    """The largest plaintext a blob of ``blob_type`` may have."""
    return MAX_TREE_BLOB if blob_type is BlobType.TREE else MAX_DATA_BLOB


def location_problem(blob_type: BlobType, length: int, raw_length: int) -> str | None:
    """Why a blob's declared stored ``length`` and plaintext ``raw_length`` are impossible, or
    ``None`` when they are within bounds."""
    cap = max_raw_length(blob_type)
    if raw_length > cap:
        return f"declares {raw_length} bytes of content, above the {cap} a {blob_type.name} blob can hold"
    if length > raw_length + MAX_SEAL_OVERHEAD:
        return f"stored length {length} exceeds its content length {raw_length} plus sealing"
    return None
