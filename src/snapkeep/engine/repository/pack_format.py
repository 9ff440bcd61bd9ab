"""Pack files: sealed blobs one after another, then a sealed trailer that lists them.

Layout of ``data/<2 hex>/<pack id>``::

    blob 0 | blob 1 | ... | sealed trailer | trailer length (u32 LE) | b"SKPACK01"

The trailer plaintext is ``b"SKTR" | count (u32 LE) | count entries | BLAKE3(all before)``, an
entry being ``blob id (32) | type (u8) | compression (u8) | offset | length | raw length (u32 LE)``
(``format.PACK_TRAILER_ENTRY_FORMAT``). It is sealed with the repository cipher and the associated
data ``format.AD_PACK_TRAILER``; the checksum catches damage in unencrypted repositories. Because
every pack describes itself, the index can always be rebuilt from the packs alone
(``read_pack_trailer``).

The pack ID is the (unkeyed) BLAKE3 hash of the whole pack in hex, so anyone can verify a pack
against its name without the password.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import blake3

from snapkeep.engine.format import (
    AD_PACK_TRAILER,
    PACK_MAGIC,
    PACK_TRAILER_ENTRY_FORMAT,
    PACK_TRAILER_LENGTH_SIZE,
    PACK_TRAILER_MAGIC,
    BlobType,
    Compression,
    pack_name,
)
from snapkeep.engine.repository.crypto import Cipher
from snapkeep.engine.repository.index import BlobLocation
from snapkeep.errors import IntegrityError
from snapkeep.storage.base import StagedObject, Store

_ENTRY = struct.Struct(PACK_TRAILER_ENTRY_FORMAT)
_COUNT = struct.Struct("<I")
_CHECKSUM_SIZE = 32
_TAIL_SIZE = PACK_TRAILER_LENGTH_SIZE + len(PACK_MAGIC)
#: First guess of how much of a pack's end to read to get its trailer in one request.
_TAIL_GUESS = 64 * 1024


class PackEntry(NamedTuple):
    """One blob in a pack: where it is and how to read it."""

    blob_id: bytes
    blob_type: BlobType
    compression: Compression
    offset: int
    length: int
    raw_length: int

    def located_in(self, pack_id: str) -> BlobLocation:
        """This entry as an index location in pack ``pack_id``."""
        return BlobLocation(
            self.blob_id, pack_id, self.offset, self.length, self.raw_length, self.blob_type, self.compression
        )


#: Blobs smaller than this are joined into pieces of about this size before they are streamed
#: (fewer writes, fewer SFTP requests); larger ones are written as they are.
STREAM_PIECE = 1024 * 1024


def coalesce(parts: list[bytes]) -> list[bytes]:
    """``parts`` with runs of small ones joined into pieces of about ``STREAM_PIECE`` bytes.

    Consumes ``parts`` (emptied as it goes), so a pack is never held twice while it is joined."""
    out: list[bytes] = []
    run: list[bytes] = []
    run_size = 0
    parts.reverse()
    while parts:
        part = parts.pop()
        if len(part) >= STREAM_PIECE:
            if run:
                out.append(b"".join(run))
                run, run_size = [], 0
            out.append(part)
            continue
        run.append(part)
        run_size += len(part)
        if run_size >= STREAM_PIECE:
            out.append(b"".join(run))
            run, run_size = [], 0
    if run:
        out.append(b"".join(run))
    return out


#: A sealed blob: its bytes, or two halves stored one after the other (``Cipher.seal_split``: the
#: nonce, then the rest), which saves joining them.
Sealed = bytes | tuple[bytes, bytes]


class _OpenPack:
    """The blobs of a pack being filled: their entries and size; ``_put`` keeps each part."""

    def __init__(self) -> None:
        self.entries: list[PackEntry] = []
        self.size = 0

    def __len__(self) -> int:
        return len(self.entries)

    def add(
        self, blob_id: bytes, blob_type: BlobType, compression: Compression, sealed: Sealed, raw_length: int
    ) -> PackEntry:
        """Append a sealed blob (two halves are kept as two parts, never joined); returns its entry."""
        head, rest = (b"", sealed) if isinstance(sealed, bytes) else sealed
        length = len(head) + len(rest)
        entry = PackEntry(blob_id, blob_type, compression, self.size, length, raw_length)
        if head:
            self._put(head)
        self._put(rest)
        self.entries.append(entry)
        self.size += length
        return entry

    def _put(self, part: bytes) -> None:
        raise NotImplementedError


class PackBuilder(_OpenPack):
    """Collects sealed blobs for one pack in memory. Not thread-safe: the repository serialises
    appends."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def _put(self, part: bytes) -> None:
        self._parts.append(part)

    def finish(self, cipher: Cipher) -> tuple[str, bytes]:
        """The pack's ID and bytes (blobs, trailer, length, magic)."""
        pack_id, parts = self.finish_parts(cipher)
        return pack_id, b"".join(parts)

    def finish_parts(self, cipher: Cipher) -> tuple[str, list[bytes]]:
        """The pack's ID and its bytes as the list of parts to write one after another (no
        pack-sized copy: the uploader streams them, ``store_stream``), small blobs joined into
        pieces of about ``STREAM_PIECE`` (``coalesce``) before the pack is hashed, so the hash is a
        few calls that release the GIL instead of one per blob and nonce. The builder is emptied."""
        parts, self._parts = self._parts, []
        parts.extend(trailer_parts(cipher, self.entries))
        parts = coalesce(parts)
        hasher = blake3.blake3()
        for part in parts:
            hasher.update(part)
        return hasher.hexdigest(), parts


class StagedPack(_OpenPack):
    """Collects sealed blobs for one pack straight into the store (``Store.stage``: a local folder)
    instead of memory: small parts are joined into pieces of about ``STREAM_PIECE`` and each piece
    is hashed and written as it is complete, so an open pack holds at most one piece. The bytes,
    and so the pack ID, are the same as ``PackBuilder``'s. Not thread-safe: the repository
    serialises appends. Raises ``StorageError`` from the store's writes."""

    def __init__(self, staged: StagedObject) -> None:
        super().__init__()
        self.staged = staged
        self._hasher = blake3.blake3()
        self._piece = bytearray()

    def _put(self, part: bytes) -> None:
        if len(part) >= STREAM_PIECE:
            self._write_piece()
            self._write(part)
            return
        self._piece += part
        if len(self._piece) >= STREAM_PIECE:
            self._write_piece()

    def _write_piece(self) -> None:
        if self._piece:
            self._write(self._piece)
            self._piece = bytearray()

    def _write(self, data: bytes | bytearray) -> None:
        self._hasher.update(data)
        self.staged.write(data)

    def finish(self, cipher: Cipher) -> str:
        """Write the trailer and return the pack's ID; ``staged.publish`` then names it."""
        for part in trailer_parts(cipher, self.entries):
            self._put(part)
        self._write_piece()
        return str(self._hasher.hexdigest())


def trailer_parts(cipher: Cipher, entries: list[PackEntry]) -> tuple[bytes, bytes]:
    """What ends a pack after its blobs: the sealed trailer, then its length and the magic."""
    trailer = cipher.seal(encode_trailer(entries), AD_PACK_TRAILER)
    return trailer, _COUNT.pack(len(trailer)) + PACK_MAGIC


def encode_trailer(entries: list[PackEntry]) -> bytes:
    """The trailer plaintext for ``entries``."""
    body = b"".join(
        [
            PACK_TRAILER_MAGIC,
            _COUNT.pack(len(entries)),
            *(
                _ENTRY.pack(e.blob_id, e.blob_type, e.compression, e.offset, e.length, e.raw_length)
                for e in entries
            ),
        ]
    )
    return body + blake3.blake3(body).digest()


def decode_trailer(plaintext: bytes, *, what: str, blobs_end: int) -> list[PackEntry]:
    """Parse a trailer plaintext; raises ``IntegrityError`` naming ``what`` when it is damaged.

    ``blobs_end`` is where the blob area ends; every entry must lie inside it.
    """
    minimum = len(PACK_TRAILER_MAGIC) + _COUNT.size + _CHECKSUM_SIZE
    if len(plaintext) < minimum or not plaintext.startswith(PACK_TRAILER_MAGIC):
        raise IntegrityError(what=what, reason="pack trailer has a wrong header")
    body, checksum = plaintext[:-_CHECKSUM_SIZE], plaintext[-_CHECKSUM_SIZE:]
    if blake3.blake3(body).digest() != checksum:
        raise IntegrityError(what=what, reason="pack trailer checksum mismatch")
    (count,) = _COUNT.unpack_from(body, len(PACK_TRAILER_MAGIC))
    start = len(PACK_TRAILER_MAGIC) + _COUNT.size
    if len(body) != start + count * _ENTRY.size:
        raise IntegrityError(what=what, reason=f"pack trailer length does not match its {count} entries")
    entries = []
    for blob_id, blob_type, compression, offset, length, raw_length in _ENTRY.iter_unpack(body[start:]):
        if offset + length > blobs_end:
            raise IntegrityError(what=what, reason=f"trailer entry {blob_id.hex()} lies past the blobs")
        try:
            entries.append(
                PackEntry(blob_id, BlobType(blob_type), Compression(compression), offset, length, raw_length)
            )
        except ValueError:
            raise IntegrityError(
                what=what, reason=f"trailer entry {blob_id.hex()} has an unknown type or compression"
            ) from None
    return entries


def _split_tail(tail: bytes, pack_size: int, what: str) -> int:
    """The sealed trailer's length, from the last bytes of a pack."""
    if pack_size < _TAIL_SIZE or tail[-len(PACK_MAGIC) :] != PACK_MAGIC:
        raise IntegrityError(what=what, reason="not a pack (magic bytes missing)")
    (length,) = _COUNT.unpack_from(tail, len(tail) - _TAIL_SIZE)
    if length + _TAIL_SIZE > pack_size:
        raise IntegrityError(what=what, reason=f"trailer length {length} exceeds the pack size")
    return int(length)


def parse_pack(data: bytes, cipher: Cipher, *, pack_id: str | None = None) -> list[PackEntry]:
    """The entries of a whole pack held in memory.

    With ``pack_id`` the data is also checked against its name. Raises ``IntegrityError``.
    """
    what = f"pack {pack_id}" if pack_id else "pack"
    if pack_id is not None and blake3.blake3(data).hexdigest() != pack_id:
        raise IntegrityError(what=what, reason="contents do not match the pack ID")
    length = _split_tail(data[-_TAIL_SIZE:], len(data), what)
    blobs_end = len(data) - _TAIL_SIZE - length
    plaintext = cipher.open(memoryview(data)[blobs_end : len(data) - _TAIL_SIZE], AD_PACK_TRAILER, what=what)
    return decode_trailer(plaintext, what=what, blobs_end=blobs_end)


def read_pack_trailer(store: Store, pack_id: str, cipher: Cipher) -> list[PackEntry]:
    """The entries of a stored pack, reading only its end (one or two ranged reads).

    Raises ``IntegrityError`` for a damaged trailer and ``StorageError`` from the store.
    """
    name = pack_name(pack_id)
    what = f"pack {pack_id}"
    size = store.stat(name).size
    tail_start = max(0, size - _TAIL_GUESS)
    tail = store.load(name, tail_start)
    length = _split_tail(tail, size, what)
    blobs_end = size - _TAIL_SIZE - length
    if blobs_end >= tail_start:
        sealed = tail[blobs_end - tail_start : len(tail) - _TAIL_SIZE]
    else:
        sealed = store.load(name, blobs_end, length)
    plaintext = cipher.open(sealed, AD_PACK_TRAILER, what=what)
    return decode_trailer(plaintext, what=what, blobs_end=blobs_end)
