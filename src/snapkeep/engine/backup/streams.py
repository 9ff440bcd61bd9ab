"""Streams stored as files: content that is produced, not read from the file system.

A database dump comes from a pipe and a config record from memory; ``store_stream`` chunks such a
stream with the chunker (FastCDC, so an unchanged dump costs only the chunks that changed), adds
the blobs the repository lacks and returns a regular-file ``Node`` to place in a tree. Nothing is
written to a temporary file. ``backup.composed`` places these nodes; reading a stored file back is
``restore.content``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from snapkeep.engine.backup.chunker import chunk_file
from snapkeep.engine.data.tree import FILE, Node
from snapkeep.engine.format import BlobType
from snapkeep.engine.repository import Repository


class Readable(Protocol):
    """A binary stream: ``readinto`` returns 0 at its end."""

    def readinto(self, buffer: bytearray | memoryview, /) -> int: ...


@dataclass(slots=True)
class StreamStats:
    """What storing one stream cost: its size, blobs it added and their bytes."""

    size: int = 0
    new_blobs: int = 0
    new_bytes: int = 0


def store_stream(
    repository: Repository,
    name: bytes,
    stream: Readable,
    *,
    mode: int = 0o600,
    mtime_ns: int = 0,
    uid: int = 0,
    gid: int = 0,
    user: str = "root",
    group: str = "root",
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[Node, StreamStats]:
    """Read ``stream`` to its end, store its chunks and return the file node named ``name`` with
    its statistics. Raises what the stream raises (``OSError``) and storage or repository errors;
    a stream that fails after this returns (a dump whose exit status is bad) is the caller's to
    check before placing the node in a tree."""
    stats = StreamStats()
    content: list[bytes] = []
    for chunk in chunk_file(stream, None):  # type: ignore[arg-type]
        blob_id = repository.blob_id(chunk)
        if repository.add_blob(BlobType.DATA, chunk, blob_id):
            stats.new_blobs += 1
            stats.new_bytes += len(chunk)
        content.append(blob_id)
        stats.size += len(chunk)
        if on_bytes is not None:
            on_bytes(len(chunk))
    node = Node(
        name=name,
        type=FILE,
        mode=mode,
        uid=uid,
        gid=gid,
        user=user,
        group=group,
        mtime_ns=mtime_ns,
        ctime_ns=mtime_ns,
        size=stats.size,
        content=content,
    )
    return node, stats
