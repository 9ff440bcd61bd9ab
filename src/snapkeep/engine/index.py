"""The blob index: blob ID -> (pack, offset, length, raw length, type, compression).

On disk (``index/<id>``, sealed with ``format.AD_INDEX``; the ID is the BLAKE3 hash of the stored
bytes) an index file's plaintext is::

    b"SKIX" | version (u8) | pack count (u32 LE) | pack IDs (32 raw bytes each)
           | entry count (u32 LE) | entries (``format.INDEX_ENTRY_FORMAT``, 50 bytes each)

where an entry's pack number points into the file's own pack table.

In memory the index is compact, not a dict of Python objects per blob: one ``bytes`` of 49-byte
records sorted by blob ID (32-byte ID, then pack number into a pack table, offset, length, raw
length as u32 and type|compression<<4 as u8), searched with ``bisect``; new entries wait in a small
dict and are merged in batches. 49 bytes per blob (figures in docs/engine.md).

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
_PACK_NUMBER = struct.Struct("<I")
#: One in-memory record: blob ID then packed location.
_RECORD = BLOB_ID_SIZE + _VALUE.size
_BLOB_TYPES = frozenset(int(kind) for kind in BlobType)
_COMPRESSIONS = frozenset(int(kind) for kind in Compression)
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
    """A read-only sequence view of the IDs in the record array, for ``bisect``."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __len__(self) -> int:
        return len(self._data) // _RECORD

    def __getitem__(self, position: int) -> bytes:
        start = position * _RECORD
        return self._data[start : start + BLOB_ID_SIZE]


class Index:
    """The in-memory blob index of a repository."""

    def __init__(self) -> None:
        self._pack_ids: list[str] = []
        self._pack_numbers: dict[str, int] = {}
        self._records = b""
        self._pending: dict[bytes, bytes] = {}

    def __len__(self) -> int:
        self._merge()
        return len(self._records) // _RECORD

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

    def _count(self) -> int:
        return len(self._records) // _RECORD

    def _after_add(self, bulk: bool) -> None:
        pending = len(self._pending)
        if pending >= BULK_BATCH or (not bulk and pending >= max(MERGE_THRESHOLD, self._count() // 8)):
            self._merge()

    def add(self, location: BlobLocation) -> None:
        """Record ``location``; a blob already indexed keeps its first location."""
        if self._find(location.blob_id) is not None:
            return
        self._pending[location.blob_id] = self._pack(location)
        self._after_add(bulk=False)

    def add_many(self, locations: Iterable[BlobLocation]) -> None:
        """Record many locations; a blob indexed twice keeps one of its (equally valid) locations."""
        for location in locations:
            self._pending.setdefault(location.blob_id, self._pack(location))
            self._after_add(bulk=True)
        self._after_add(bulk=False)

    def add_index_file(self, plaintext: bytes, *, what: str) -> int:
        """Record the entries of an index file's plaintext; returns how many.

        The fast path used at open: no per-entry objects beyond the pending dict. Raises
        ``IntegrityError`` naming ``what`` for a malformed file.
        """
        pack_ids, entries = _split_index_file(plaintext, what=what)
        numbers = [self._pack_number(pack_id) for pack_id in pack_ids]
        pending = self._pending
        pack = _VALUE.pack
        try:
            for blob_id, number, offset, length, raw_length, kind, compression in _FILE_ENTRY.iter_unpack(
                entries
            ):
                if kind not in _BLOB_TYPES or compression not in _COMPRESSIONS:
                    raise ValueError(f"entry {blob_id.hex()} has an unknown type or compression")
                pending.setdefault(
                    blob_id, pack(numbers[number], offset, length, raw_length, kind | compression << 4)
                )
                if len(pending) >= BULK_BATCH:
                    self._merge()
                    pending = self._pending
        except (IndexError, ValueError) as problem:
            raise IntegrityError(what=what, reason=f"malformed index file: {problem}") from None
        self._after_add(bulk=False)
        return len(entries) // _FILE_ENTRY.size

    def _find(self, blob_id: bytes) -> bytes | None:
        keys = _Keys(self._records)
        position = bisect.bisect_left(keys, blob_id)
        if position < len(keys) and keys[position] == blob_id:
            start = position * _RECORD + BLOB_ID_SIZE
            return self._records[start : start + _VALUE.size]
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
        """Fold the pending entries into the sorted record array.

        A few pending entries are spliced in (one bisect each, the array copied once); many are
        merged by sorting all records again (one 49-byte object per record while it runs), which
        is far cheaper than a bisect per entry. A blob already in the array keeps its record.
        """
        if not self._pending:
            return
        if len(self._pending) * 8 >= self._count():
            self._rebuild()
        else:
            self._splice()
        self._pending = {}

    def _rebuild(self) -> None:
        records = self._records
        rows = [records[start : start + _RECORD] for start in range(0, len(records), _RECORD)]
        rows.extend(blob_id + value for blob_id, value in self._pending.items())
        self._pending.clear()
        self._records = records = b""
        rows.sort()
        duplicates = [n for n in range(1, len(rows)) if rows[n - 1][:BLOB_ID_SIZE] == rows[n][:BLOB_ID_SIZE]]
        for position in reversed(duplicates):
            del rows[position]
        self._records = b"".join(rows)

    def _splice(self) -> None:
        keys = _Keys(self._records)
        records = self._records
        parts: list[bytes] = []
        previous = 0
        for blob_id, value in sorted(self._pending.items()):
            position = bisect.bisect_left(keys, blob_id, previous)
            if position < len(keys) and keys[position] == blob_id:
                continue
            parts.append(records[previous * _RECORD : position * _RECORD])
            parts.append(blob_id + value)
            previous = position
        parts.append(records[previous * _RECORD :])
        self._records = b"".join(parts)

    def __iter__(self) -> Iterator[BlobLocation]:
        """Every indexed location, sorted by blob ID."""
        self._merge()
        records = self._records
        for start in range(0, len(records), _RECORD):
            yield self._location(
                records[start : start + BLOB_ID_SIZE], records[start + BLOB_ID_SIZE : start + _RECORD]
            )

    def pack_ids(self) -> set[str]:
        """The packs that hold at least one indexed blob."""
        self._merge()
        used = {
            _PACK_NUMBER.unpack_from(self._records, start + BLOB_ID_SIZE)[0]
            for start in range(0, len(self._records), _RECORD)
        }
        return {self._pack_ids[number] for number in used}

    def remove_packs(self, pack_ids: Iterable[str]) -> int:
        """Forget every blob stored in ``pack_ids`` (after prune deleted them); returns how many."""
        doomed = {self._pack_numbers[pack] for pack in pack_ids if pack in self._pack_numbers}
        if not doomed:
            return 0
        self._merge()
        records = self._records
        kept = [
            records[start : start + _RECORD]
            for start in range(0, len(records), _RECORD)
            if _PACK_NUMBER.unpack_from(records, start + BLOB_ID_SIZE)[0] not in doomed
        ]
        removed = self._count() - len(kept)
        self._records = b"".join(kept)
        return removed

    def memory_bytes(self) -> int:
        """Bytes held by the sorted record array (the per-blob cost), for measurements."""
        return len(self._records)


def _split_index_file(plaintext: bytes, *, what: str) -> tuple[list[str], bytes]:
    """The pack table and the raw entry bytes of an index file's plaintext."""
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
        return pack_ids, plaintext[offset:]
    except (struct.error, ValueError) as problem:
        raise IntegrityError(what=what, reason=f"malformed index file: {problem}") from None


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
    pack_ids, entries = _split_index_file(plaintext, what=what)
    try:
        return [
            BlobLocation(
                blob_id, pack_ids[number], start, length, raw_length, BlobType(kind), Compression(compression)
            )
            for blob_id, number, start, length, raw_length, kind, compression in _FILE_ENTRY.iter_unpack(
                entries
            )
        ]
    except (ValueError, IndexError) as problem:
        raise IntegrityError(what=what, reason=f"malformed index file: {problem}") from None
