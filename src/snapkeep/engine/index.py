"""The blob index: blob ID -> (pack, offset, length, raw length, type, compression).

On disk (``index/<id>``, sealed with ``format.AD_INDEX``; the ID is the BLAKE3 hash of the stored
bytes) an index file's plaintext is::

    b"SKIX" | version (u8) | pack count (u32 LE) | pack IDs (32 raw bytes each)
           | entry count (u32 LE) | entries (``format.INDEX_ENTRY_FORMAT``, 50 bytes each)

where an entry's pack number points into the file's own pack table.

In memory the index is compact, not a dict of Python objects per blob: one sorted ``bytes`` of
32-byte IDs and a parallel ``bytes`` of 17-byte packed locations (pack number into a pack table,
offset, length, raw length, type|compression<<4), searched with ``bisect``; new entries wait in a
small dict and are merged in batches. About 49 bytes per blob (measured in docs/engine.md).

Not thread-safe: the repository serialises access.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from snapkeep.engine.format import (
    BLOB_ID_SIZE,
    INDEX_ENTRY_FORMAT,
    INDEX_FILE_VERSION,
    INDEX_MAGIC,
    BlobType,
    Compression,
)
from snapkeep.errors import IntegrityError

_VALUE = struct.Struct("<IIIIB")
_FILE_ENTRY = struct.Struct(INDEX_ENTRY_FORMAT)
_HEADER = struct.Struct("<4sBI")
_COUNT = struct.Struct("<I")
#: Pending entries are merged into the sorted arrays once there are this many (or an eighth of them).
MERGE_THRESHOLD = 4096
#: Bulk loads (index files at open) merge every this many entries, bounding the transient memory.
BULK_BATCH = 512 * 1024


class BlobLocation(NamedTuple):
    """Where a blob is stored and how to read it."""

    blob_id: bytes
    pack_id: str
    offset: int
    length: int
    raw_length: int
    blob_type: BlobType
    compression: Compression


class _Keys:
    """A read-only sequence view of 32-byte IDs in one bytes object, for ``bisect``."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __len__(self) -> int:
        return len(self._data) // BLOB_ID_SIZE

    def __getitem__(self, position: int) -> bytes:
        start = position * BLOB_ID_SIZE
        return self._data[start : start + BLOB_ID_SIZE]


class Index:
    """The in-memory blob index of a repository."""

    def __init__(self) -> None:
        self._pack_ids: list[str] = []
        self._pack_numbers: dict[str, int] = {}
        self._ids = b""
        self._values = b""
        self._pending: dict[bytes, bytes] = {}

    def __len__(self) -> int:
        self._merge()
        return len(self._ids) // BLOB_ID_SIZE

    def __contains__(self, blob_id: object) -> bool:
        return isinstance(blob_id, bytes) and self._find(blob_id) is not None

    def _pack_number(self, pack_id: str) -> int:
        number = self._pack_numbers.get(pack_id)
        if number is None:
            number = len(self._pack_ids)
            self._pack_ids.append(pack_id)
            self._pack_numbers[pack_id] = number
        return number

    def _pack(self, location: BlobLocation) -> bytes:
        return _VALUE.pack(
            self._pack_number(location.pack_id),
            location.offset,
            location.length,
            location.raw_length,
            int(location.blob_type) | int(location.compression) << 4,
        )

    def add(self, location: BlobLocation) -> None:
        """Record ``location``; a blob already indexed keeps its first location."""
        if self._find(location.blob_id) is not None:
            return
        self._pending[location.blob_id] = self._pack(location)
        if len(self._pending) >= max(MERGE_THRESHOLD, len(self._ids) // BLOB_ID_SIZE // 8):
            self._merge()

    def add_many(self, locations: Iterable[BlobLocation]) -> None:
        """Record many locations (index files at open): duplicates are resolved when merging."""
        pending = self._pending
        for location in locations:
            if location.blob_id not in pending:
                pending[location.blob_id] = self._pack(location)
                if len(pending) >= BULK_BATCH:
                    self._merge()
                    pending = self._pending
        if len(pending) >= max(MERGE_THRESHOLD, len(self._ids) // BLOB_ID_SIZE // 8):
            self._merge()

    def _find(self, blob_id: bytes) -> bytes | None:
        keys = _Keys(self._ids)
        position = bisect.bisect_left(keys, blob_id)
        if position < len(keys) and keys[position] == blob_id:
            start = position * _VALUE.size
            return self._values[start : start + _VALUE.size]
        return self._pending.get(blob_id)

    def lookup(self, blob_id: bytes) -> BlobLocation | None:
        """The location of ``blob_id``, or ``None`` when it is not indexed."""
        value = self._find(blob_id)
        return None if value is None else self._location(blob_id, value)

    def _location(self, blob_id: bytes, value: bytes) -> BlobLocation:
        pack_number, offset, length, raw_length, flags = _VALUE.unpack(value)
        return BlobLocation(
            blob_id,
            self._pack_ids[pack_number],
            offset,
            length,
            raw_length,
            BlobType(flags & 0x0F),
            Compression(flags >> 4),
        )

    def _merge(self) -> None:
        """Fold the pending entries into the sorted arrays; an already indexed blob keeps its entry.

        A few pending entries are spliced in (one bisect each, the arrays copied once); many are
        merged by sorting everything again, which is cheaper than a bisect per entry.
        """
        if not self._pending:
            return
        count = len(self._ids) // BLOB_ID_SIZE
        if len(self._pending) * 8 >= count:
            self._rebuild(count)
        else:
            self._splice()
        self._pending = {}

    def _rebuild(self, count: int) -> None:
        ids, values, width = self._ids, self._values, _VALUE.size
        rows = [
            (ids[n * BLOB_ID_SIZE : (n + 1) * BLOB_ID_SIZE], 0, values[n * width : (n + 1) * width])
            for n in range(count)
        ]
        rows.extend((blob_id, 1, value) for blob_id, value in self._pending.items())
        rows.sort()
        kept = [row for n, row in enumerate(rows) if n == 0 or rows[n - 1][0] != row[0]]
        self._ids = b"".join(row[0] for row in kept)
        self._values = b"".join(row[2] for row in kept)

    def _splice(self) -> None:
        keys = _Keys(self._ids)
        id_parts: list[bytes] = []
        value_parts: list[bytes] = []
        previous = 0
        for blob_id, value in sorted(self._pending.items()):
            position = bisect.bisect_left(keys, blob_id, previous)
            if position < len(keys) and keys[position] == blob_id:
                continue
            id_parts.append(self._ids[previous * BLOB_ID_SIZE : position * BLOB_ID_SIZE])
            value_parts.append(self._values[previous * _VALUE.size : position * _VALUE.size])
            id_parts.append(blob_id)
            value_parts.append(value)
            previous = position
        id_parts.append(self._ids[previous * BLOB_ID_SIZE :])
        value_parts.append(self._values[previous * _VALUE.size :])
        self._ids = b"".join(id_parts)
        self._values = b"".join(value_parts)

    def __iter__(self) -> Iterator[BlobLocation]:
        """Every indexed location, sorted by blob ID."""
        self._merge()
        ids, values = self._ids, self._values
        for position in range(len(ids) // BLOB_ID_SIZE):
            blob_id = ids[position * BLOB_ID_SIZE : (position + 1) * BLOB_ID_SIZE]
            yield self._location(blob_id, values[position * _VALUE.size : (position + 1) * _VALUE.size])

    def pack_ids(self) -> set[str]:
        """The packs that hold at least one indexed blob."""
        self._merge()
        used = {
            _VALUE.unpack_from(self._values, offset)[0] for offset in range(0, len(self._values), _VALUE.size)
        }
        return {self._pack_ids[number] for number in used}

    def remove_packs(self, pack_ids: Iterable[str]) -> int:
        """Forget every blob stored in ``pack_ids`` (after prune deleted them); returns how many."""
        doomed = {self._pack_numbers[pack] for pack in pack_ids if pack in self._pack_numbers}
        if not doomed:
            return 0
        kept = [location for location in self if self._pack_numbers[location.pack_id] not in doomed]
        removed = len(self) - len(kept)
        self._ids, self._values = b"", b""
        self.add_many(kept)
        self._merge()
        return removed

    def memory_bytes(self) -> int:
        """Bytes held by the sorted arrays (the per-blob cost), for measurements."""
        return len(self._ids) + len(self._values)


def encode_index_file(locations: Iterable[BlobLocation]) -> bytes:
    """The plaintext of an index file listing ``locations``."""
    numbers: dict[str, int] = {}
    rows: list[bytes] = []
    for location in locations:
        number = numbers.setdefault(location.pack_id, len(numbers))
        rows.append(
            _FILE_ENTRY.pack(
                location.blob_id,
                number,
                location.offset,
                location.length,
                location.raw_length,
                location.blob_type,
                location.compression,
            )
        )
    packs = b"".join(bytes.fromhex(pack_id) for pack_id in numbers)
    return b"".join(
        [_HEADER.pack(INDEX_MAGIC, INDEX_FILE_VERSION, len(numbers)), packs, _COUNT.pack(len(rows)), *rows]
    )


def decode_index_file(plaintext: bytes, *, what: str) -> list[BlobLocation]:
    """The locations in an index file's plaintext; raises ``IntegrityError`` naming ``what``."""
    try:
        magic, version, pack_count = _HEADER.unpack_from(plaintext, 0)
        if magic != INDEX_MAGIC or version != INDEX_FILE_VERSION:
            raise ValueError(f"unknown header {magic!r} version {version}")
        offset = _HEADER.size
        pack_ids = [
            plaintext[offset + i * BLOB_ID_SIZE : offset + (i + 1) * BLOB_ID_SIZE].hex()
            for i in range(pack_count)
        ]
        offset += pack_count * BLOB_ID_SIZE
        (count,) = _COUNT.unpack_from(plaintext, offset)
        offset += _COUNT.size
        if len(plaintext) != offset + count * _FILE_ENTRY.size:
            raise ValueError(f"length does not match {count} entries")
        return [
            BlobLocation(
                blob_id, pack_ids[number], start, length, raw_length, BlobType(kind), Compression(compression)
            )
            for blob_id, number, start, length, raw_length, kind, compression in _FILE_ENTRY.iter_unpack(
                plaintext[offset:]
            )
        ]
    except (struct.error, ValueError, IndexError) as problem:
        raise IntegrityError(what=what, reason=f"malformed index file: {problem}") from None
