"""The blob index: blob ID -> (pack, offset, length, raw length, type, compression).

On disk (``index/<id>``, sealed with ``format.AD_INDEX``; the ID is the BLAKE3 hash of the stored
bytes) an index file's plaintext is::

    b"SKIX" | version (u8) | pack count (u32 LE) | pack IDs (32 raw bytes each)
           | entry count (u32 LE) | entries (``format.INDEX_ENTRY_FORMAT``, 50 bytes each)

where an entry's pack number points into the file's own pack table.

In memory the index is compact, not a dict of Python objects per blob: a hash table of ``2**k``
buckets selected by the first bits of the blob ID, each bucket one ``bytes`` of 49-byte records
(32-byte ID, then pack number into a pack table, offset, length, raw length as u32 and
type|compression<<4 as u8). A lookup picks the bucket and finds the ID with ``bytes.find`` at a
record boundary: C-level work, O(1) (the table doubles past ``BUCKET_LOAD`` records per bucket on
average). About 50 bytes per blob (figures in docs/engine.md). Buckets follow ID order, so
iteration sorts each bucket only.

Not thread-safe: the repository serialises access.
"""

from __future__ import annotations

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
#: ``type | compression << 4`` -> the two enums (enum calls are slow on the lookup path).
_FLAGS = {int(kind) | int(method) << 4: (kind, method) for kind in BlobType for method in Compression}
_new_tuple = tuple.__new__

_COMPRESSIONS = frozenset(int(kind) for kind in Compression)
#: The table doubles its bucket count when it holds more than this many records per bucket on
#: average (about 1.5 KiB per bucket scanned by ``bytes.find``; 41 bytes of overhead per bucket).
BUCKET_LOAD = 32
#: Most buckets the table grows to (2**24: far beyond any real repository).
_MAX_BITS = 24


class BlobLocation(NamedTuple):
    """Where a blob is stored and how to read it."""

    blob_id: bytes
    pack_id: str
    offset: int
    length: int
    raw_length: int
    blob_type: BlobType
    compression: Compression


def _position(bucket: bytes, blob_id: bytes) -> int:
    """Where the record of ``blob_id`` starts in ``bucket``, or -1."""
    position = bucket.find(blob_id)
    while position >= 0:
        if position % _RECORD == 0:
            return position
        position = bucket.find(blob_id, position + 1)  # a match across records: look on
    return -1


class Index:
    """The in-memory blob index of a repository."""

    def __init__(self) -> None:
        self._pack_ids: list[str] = []
        self._pack_numbers: dict[str, int] = {}
        self._bits = 0
        self._shift = 32
        self._buckets: list[bytes] = [b""]
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, blob_id: object) -> bool:
        return isinstance(blob_id, bytes) and self._find(blob_id) is not None

    def _pack_number(self, pack_id: str) -> int:
        number = self._pack_numbers.get(pack_id)
        if number is None:
            number = len(self._pack_ids)
            self._pack_ids.append(pack_id)
            self._pack_numbers[pack_id] = number
        return number

    def _record(self, location: BlobLocation) -> bytes:
        return location.blob_id + _VALUE.pack(
            self._pack_number(location.pack_id),
            location.offset,
            location.length,
            location.raw_length,
            int(location.blob_type) | int(location.compression) << 4,
        )

    def _find(self, blob_id: bytes) -> tuple[bytes, int] | None:
        """The bucket holding ``blob_id`` and the record's position in it, or ``None``."""
        if len(blob_id) != BLOB_ID_SIZE:
            return None
        bucket = self._buckets[int.from_bytes(blob_id[:4], "big") >> self._shift]
        position = _position(bucket, blob_id)
        return None if position < 0 else (bucket, position)

    def _insert(self, record: bytes) -> bool:
        """Append ``record`` to its bucket unless its blob is indexed already; returns whether new."""
        blob_id = record[:BLOB_ID_SIZE]
        if self._find(blob_id) is not None:
            return False
        slot = int.from_bytes(blob_id[:4], "big") >> self._shift
        self._buckets[slot] += record
        self._count += 1
        if self._count > BUCKET_LOAD << self._bits and self._bits < _MAX_BITS:
            self._resize(self._bits + 1)
        return True

    def _reserve(self, count: int) -> None:
        """Grow the table once so ``count`` records fit without doubling on the way."""
        bits = self._bits
        while count > BUCKET_LOAD << bits and bits < _MAX_BITS:
            bits += 1
        if bits != self._bits:
            self._resize(bits)

    def _resize(self, bits: int) -> None:
        """Split every bucket by the ID's leading ``bits`` bits (buckets stay in ID order)."""
        shift = 32 - bits
        groups: list[list[bytes]] = [[] for _ in range(1 << bits)]
        for bucket in self._buckets:
            for start in range(0, len(bucket), _RECORD):
                groups[int.from_bytes(bucket[start : start + 4], "big") >> shift].append(
                    bucket[start : start + _RECORD]
                )
        self._buckets = [b"".join(group) for group in groups]
        self._bits = bits
        self._shift = shift

    def add(self, location: BlobLocation) -> None:
        """Record ``location``; a blob already indexed keeps its first location."""
        self._insert(self._record(location))

    def add_many(self, locations: Iterable[BlobLocation]) -> None:
        """Record many locations; a blob indexed twice keeps its first location."""
        for location in locations:
            self._insert(self._record(location))

    def add_index_file(self, plaintext: bytes, *, what: str) -> int:
        """Record the entries of an index file's plaintext; returns how many.

        The fast path used at open: no per-entry objects beyond the record bytes. Raises
        ``IntegrityError`` naming ``what`` for a malformed file.
        """
        pack_ids, entries = _split_index_file(plaintext, what=what)
        numbers = [self._pack_number(pack_id) for pack_id in pack_ids]
        self._reserve(self._count + len(entries) // _FILE_ENTRY.size)
        pack = _VALUE.pack
        shift = self._shift
        # Records are grouped by bucket and each bucket is joined once (appending one record at a
        # time copies the bucket each time: reload_index of 75,000 blobs 137 ms against 157 ms).
        groups: dict[int, list[bytes]] = {}
        try:
            for blob_id, number, offset, length, raw_length, kind, compression in _FILE_ENTRY.iter_unpack(
                entries
            ):
                if kind not in _BLOB_TYPES or compression not in _COMPRESSIONS:
                    raise ValueError(f"entry {blob_id.hex()} has an unknown type or compression")
                record = blob_id + pack(numbers[number], offset, length, raw_length, kind | compression << 4)
                slot = int.from_bytes(blob_id[:4], "big") >> shift
                group = groups.get(slot)
                if group is None:
                    groups[slot] = [record]
                else:
                    group.append(record)
        except (IndexError, ValueError) as problem:
            raise IntegrityError(what=what, reason=f"malformed index file: {problem}") from None
        seen: set[bytes] = set()  # a blob listed twice in this file keeps its first location
        for slot, records in groups.items():
            bucket = self._buckets[slot]
            fresh = []
            for record in records:
                blob_id = record[:BLOB_ID_SIZE]
                if blob_id in seen or (bucket and _position(bucket, blob_id) >= 0):
                    continue
                seen.add(blob_id)
                fresh.append(record)
            self._buckets[slot] = bucket + b"".join(fresh)
            self._count += len(fresh)
        return len(entries) // _FILE_ENTRY.size

    def lookup(self, blob_id: bytes) -> BlobLocation | None:
        """The location of ``blob_id``, or ``None`` when it is not indexed."""
        found = self._find(blob_id)
        if found is None:
            return None
        bucket, position = found
        pack_number, offset, length, raw_length, flags = _VALUE.unpack_from(bucket, position + BLOB_ID_SIZE)
        blob_type, compression = _FLAGS[flags]
        location: BlobLocation = _new_tuple(
            BlobLocation,
            (blob_id, self._pack_ids[pack_number], offset, length, raw_length, blob_type, compression),
        )
        return location

    def _location(self, record: bytes) -> BlobLocation:
        pack_number, offset, length, raw_length, flags = _VALUE.unpack_from(record, BLOB_ID_SIZE)
        blob_type, compression = _FLAGS[flags]
        location: BlobLocation = _new_tuple(
            BlobLocation,
            (
                record[:BLOB_ID_SIZE],
                self._pack_ids[pack_number],
                offset,
                length,
                raw_length,
                blob_type,
                compression,
            ),
        )
        return location

    def _records(self) -> Iterator[bytes]:
        """Every record, sorted by blob ID (buckets are in ID order; each is sorted here)."""
        for bucket in self._buckets:
            rows = [bucket[start : start + _RECORD] for start in range(0, len(bucket), _RECORD)]
            rows.sort()
            yield from rows

    def __iter__(self) -> Iterator[BlobLocation]:
        """Every indexed location, sorted by blob ID."""
        for record in self._records():
            yield self._location(record)

    def pack_ids(self) -> set[str]:
        """The packs that hold at least one indexed blob."""
        used: set[int] = set()
        for bucket in self._buckets:
            used.update(
                _PACK_NUMBER.unpack_from(bucket, start + BLOB_ID_SIZE)[0]
                for start in range(0, len(bucket), _RECORD)
            )
        return {self._pack_ids[number] for number in used}


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
