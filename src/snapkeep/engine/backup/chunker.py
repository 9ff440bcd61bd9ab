"""Content-defined chunking of file contents with FastCDC (``pyfastcdc``).

Parameters come from ``format.py`` (min 512 KiB, mean about 1 MiB, max 8 MiB); they are part of the
repository format because changing them changes every chunk boundary and so defeats dedup.

Reading strategy (measured): a file up to ``WHOLE_READ_LIMIT`` is read with one ``readinto`` into
a buffer and cut in place; the chunks are zero-copy ``memoryview`` slices of that buffer. Larger
files are read in pieces, each cut in place; only the unfinished last chunk of a piece is
copied into the next one. (pyfastcdc's own stream chunker moves up to 8 MiB per chunk inside its
sliding buffer and must copy every chunk out: 300 MB/s against 940 MB/s here.) The gear loop runs
without the GIL. Files are read, never memory-mapped: a file truncated while it is being backed up
must not kill the process with SIGBUS.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO, Protocol, cast

from pyfastcdc import FastCDC

from snapkeep.engine.format import (
    CHUNK_FASTCDC_AVG_PARAMETER,
    CHUNK_MAX_SIZE,
    CHUNK_MIN_SIZE,
    CHUNK_NORMALIZATION,
    CHUNK_SEED,
)

#: Files up to this size are read whole and cut in place (no per-chunk copy).
WHOLE_READ_LIMIT = CHUNK_MAX_SIZE
#: Streams (``chunk_file`` past ``WHOLE_READ_LIMIT``) are read in fresh pieces of this size plus
#: the carried-over unfinished chunk. Measured on a 205 MiB file from the page cache with
#: ``chunk_into``'s reused buffer: 2.3-2.4 GB/s with 4 or 8 MiB pieces alike (0.9 GB/s with fresh
#: 32 MiB buffers as before). Files of a backup go through ``chunk_into`` (``INTO_PIECE_SIZE``).
PIECE_SIZE = 4 * 1024 * 1024
#: Chunk type: zero-copy views for whole-read files, ``bytes`` for streamed ones.
Chunk = bytes | memoryview


def _new_fastcdc() -> FastCDC:
    # A FastCDC object must not be shared between threads (pyfastcdc docs); construction is cheap.
    return FastCDC(
        CHUNK_FASTCDC_AVG_PARAMETER,
        min_size=CHUNK_MIN_SIZE,
        max_size=CHUNK_MAX_SIZE,
        normalized_chunking=CHUNK_NORMALIZATION,
        seed=CHUNK_SEED,
    )


def chunk_buffer(data: bytes | bytearray | memoryview) -> Iterator[memoryview]:
    """Cut an in-memory buffer; yields views into ``data``. Empty data yields nothing."""
    if len(data) == 0:
        return
    if len(data) <= CHUNK_MIN_SIZE:
        yield memoryview(data)
        return
    for chunk in _new_fastcdc().cut_buf(data):
        yield chunk.data


def _read_exactly(source: BinaryIO, size: int) -> memoryview:
    """Read up to ``size`` bytes (fewer at end of file) into one buffer without extra copies."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    while filled < size:
        count = cast(_Reader, source).readinto(view[filled:])
        if not count:
            break
        filled += count
    return view[:filled]


def chunk_file(source: BinaryIO, size_hint: int | None = None) -> Iterator[Chunk]:
    """Cut an open binary file from its current position to its end.

    ``size_hint`` (the size from ``stat``) selects the whole-read path for small files; a file that
    grew meanwhile is still read to its end. Raises ``OSError`` from reading: the backup, which
    opened the file, turns it into a per-file warning.
    """
    if size_hint is None:
        try:
            size_hint = os.fstat(source.fileno()).st_size - source.tell()
        except (OSError, AttributeError, ValueError):
            size_hint = None
    if size_hint is not None and size_hint < WHOLE_READ_LIMIT:
        head = _read_exactly(source, size_hint + 1)
        if len(head) <= size_hint:
            yield from chunk_buffer(head)
            return
        # The file grew past its stat size: fall back to streaming what follows.
        yield from _chunk_pieces(_Prepended(head, cast(_Reader, source)))
        return
    yield from _chunk_pieces(cast(_Reader, source))


def _chunk_pieces(source: _Reader) -> Iterator[memoryview]:
    """Cut a stream read in ``PIECE_SIZE`` pieces, carrying the last (unfinished) chunk over.

    Every chunk but the last of a piece ends at a real cut point: FastCDC decides a cut from the
    bytes between the chunk start and at most ``CHUNK_MAX_SIZE`` after it, all inside the piece.
    The last one may have been cut by the end of the piece, so its bytes start the next piece.
    Each piece is a fresh buffer, so the views handed out stay valid.
    """
    carry: memoryview = memoryview(b"")
    while True:
        buffer = bytearray(len(carry) + PIECE_SIZE)
        view = memoryview(buffer)
        view[: len(carry)] = carry
        filled = len(carry)
        while filled < len(buffer):
            count = source.readinto(view[filled:])
            if not count:
                break
            filled += count
        at_end = filled < len(buffer)
        pieces = list(chunk_buffer(view[:filled]))
        if at_end:
            yield from pieces
            return
        yield from pieces[:-1]
        carry = pieces[-1]


#: ``chunk_into`` reads at least this much per fill beyond the carried-over chunk: its buffer is
#: the longest chunk plus this (9 MiB). Any size above ``CHUNK_MAX_SIZE`` cuts the same; the carry
#: is about 1 MiB on average, so a fill still reads about 8 MiB. It was 4 MiB (12 MiB buffers, one
#: per large-file reader): 6 MiB less peak memory for the same speed (docs/engine.md, "Issue 12,
#: third round").
INTO_PIECE_SIZE = 1024 * 1024


def buffer_size() -> int:
    """The size of a buffer for ``chunk_into``: the longest carried-over chunk plus
    ``INTO_PIECE_SIZE``."""
    return INTO_PIECE_SIZE + CHUNK_MAX_SIZE


def chunk_into(source: _Reader, buffer: bytearray) -> Iterator[memoryview]:
    """Cut ``source`` to its end, reading it into ``buffer`` (``buffer_size()`` bytes) again and
    again: no allocation per file or piece. A chunk is a view into ``buffer`` that is valid only
    until the next chunk is requested (the backup stores each chunk before asking for the next).

    Cuts are those of ``chunk_buffer`` over the whole contents (the unfinished last chunk of a
    fill is moved to the front and cut again with what follows). Raises ``OSError`` from reading.
    """
    if len(buffer) < buffer_size():
        raise ValueError(f"chunk_into needs a buffer of {buffer_size()} bytes, got {len(buffer)}")
    view = memoryview(buffer)
    filled = 0
    while True:
        while filled < len(buffer):
            count = source.readinto(view[filled:])
            if not count:
                break
            filled += count
        if filled < len(buffer):  # the end of the file
            yield from chunk_buffer(view[:filled])
            return
        last: memoryview | None = None
        for chunk in chunk_buffer(view[:filled]):
            if last is not None:
                yield last
            last = chunk
        assert last is not None
        carried = len(last)
        view[:carried] = view[filled - carried : filled]  # memmove; overlapping is safe
        filled = carried


def chunks(source: str | os.PathLike[str] | bytes | BinaryIO) -> Iterator[Chunk]:
    """Chunks of a path, an open binary file or an in-memory ``bytes`` value.

    Files smaller than the minimum chunk size are one chunk; an empty file has none. Raises
    ``OSError`` when a path cannot be opened or read.
    """
    if isinstance(source, bytes):
        yield from chunk_buffer(source)
        return
    if isinstance(source, str | os.PathLike):
        with open(source, "rb", buffering=0) as handle:
            yield from chunk_file(handle)
        return
    yield from chunk_file(source)


class _Reader(Protocol):
    def readinto(self, target: memoryview) -> int: ...


class _Prepended:
    """A reader that first returns ``head`` then continues with ``rest`` (``readinto`` only)."""

    def __init__(self, head: memoryview, rest: _Reader) -> None:
        self._head = head
        self._rest = rest

    def readinto(self, target: memoryview) -> int:
        if self._head:
            count = min(len(target), len(self._head))
            target[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        return self._rest.readinto(target)
