"""Reading a regular file's content for a backup: one worker, one file, chunk by chunk.

``read_file_content`` opens the file without following a symlink (and without touching its access
time when allowed), notes whether it has holes, and hands every chunk to the caller's
``store_chunk``. Files under the minimum chunk size are one read into a per-thread buffer.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from snapkeep.engine.backup.chunker import buffer_size, chunk_into
from snapkeep.engine.data.tree import Node
from snapkeep.engine.format import CHUNK_MIN_SIZE
from snapkeep.engine.fs.walker import has_holes

_local = threading.local()


@dataclass(slots=True)
class PendingFile:
    """A regular file waiting for a worker: its node receives content, size and sparse flag."""

    path: bytes
    node: Node
    future: Future[None] | None = None
    error: str | None = None
    #: Set by the worker once the file is stored or has failed (``error``); a plain attribute, so
    #: the walk's checks cost no lock (``Future.done`` takes one).
    finished: bool = False
    #: The order in which the walk queued the file (``BackupPool.queue_file``).
    seq: int = -1

    def done(self) -> bool:
        return self.finished


_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0)


def _open_for_reading(path: bytes) -> int:
    try:
        return os.open(path, _OPEN_FLAGS)
    except PermissionError:
        # O_NOATIME needs ownership of the file (or CAP_FOWNER); retry without it.
        return os.open(path, _OPEN_FLAGS & ~getattr(os, "O_NOATIME", 0))


def small_buffer() -> bytearray:
    """This thread's buffer for files under the minimum chunk size (one read, one chunk)."""
    buffer: bytearray | None = getattr(_local, "small", None)
    if buffer is None:
        buffer = _local.small = bytearray(CHUNK_MIN_SIZE + 1)
    return buffer


def read_file_content(
    pending: PendingFile,
    store_chunk: Callable[[bytes | memoryview], bytes],
    on_bytes: Callable[[int], None],
    buffer: bytearray | None = None,
) -> None:
    """Read ``pending``'s file, hand every chunk to ``store_chunk`` (which returns the blob ID and
    must not keep the chunk: it is a view into a reused buffer) and set the node's content, size
    and sparse flag. A file under the minimum chunk size is one ``preadv`` into this thread's
    small buffer; larger ones are cut by ``chunk_into`` in ``buffer`` (``chunker.buffer_size()``
    bytes; allocated here when not given). Raises ``OSError`` when the file cannot be opened or
    read, or is no longer a regular file."""
    node = pending.node
    fd = _open_for_reading(pending.path)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "no longer a regular file")
        size = info.st_size
        node.sparse = has_holes(fd, size, info)
        content: list[bytes] = []
        total = 0
        count = -1
        if size < CHUNK_MIN_SIZE:
            small = memoryview(small_buffer())
            count = os.preadv(fd, [small[: size + 1]], 0)
            if count <= size:
                if count:
                    content.append(store_chunk(small[:count]))
                    on_bytes(count)
                total = count
        if count < 0 or count > size:  # a large file, or a small one that grew meanwhile
            os.lseek(fd, 0, os.SEEK_SET)  # has_holes may have moved the offset
            with os.fdopen(fd, "rb", buffering=0, closefd=False) as handle:
                for chunk in chunk_into(handle, buffer or bytearray(buffer_size())):
                    content.append(store_chunk(chunk))
                    total += len(chunk)
                    on_bytes(len(chunk))
        node.content = content
        node.size = total
    finally:
        os.close(fd)
