"""Streams stored as files: content that is produced, not read from the file system.

A database dump comes from a pipe and a config record from memory; ``store_stream`` chunks such a
stream with the chunker (FastCDC, so an unchanged dump costs only the chunks that changed), adds
the blobs the repository lacks and returns a regular-file ``Node`` to place in a tree. Nothing is
written to a temporary file. Additive to the archiver: ``engine.layout`` places these nodes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from snapkeep.engine.chunker import chunk_file
from snapkeep.engine.format import BlobType
from snapkeep.engine.repository import Repository
from snapkeep.engine.tree import DIR, FILE, Node, Tree
from snapkeep.errors import NotFoundError


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


def find_node(repository: Repository, tree_id: bytes, path: str) -> Node:
    """The node at ``path`` (``databases/mariadb/x.sql``) below the tree ``tree_id``. Raises
    ``NotFoundError`` naming the path when a component is missing or not a folder, and
    ``IntegrityError`` for a damaged tree."""
    parts = [os.fsencode(part) for part in path.strip("/").split("/") if part]
    if not parts:
        raise NotFoundError(kind="snapshot path", ident=path or "/")
    current: bytes | None = tree_id
    node: Node | None = None
    for index, part in enumerate(parts):
        if current is None:
            raise NotFoundError(
                kind="snapshot path", ident="/".join(path.strip("/").split("/")[:index]) + " (not a folder)"
            )
        tree = Tree.decode(repository.load_blob(current))
        node = next((entry for entry in tree.nodes if entry.name == part), None)
        if node is None:
            raise NotFoundError(kind="snapshot path", ident=path)
        current = node.subtree if node.type == DIR else None
    assert node is not None
    return node


def read_content(repository: Repository, node: Node) -> Iterator[bytes]:
    """The content of a file node, blob by blob (verified). Raises ``IntegrityError`` (or
    ``BlobNotFoundError``) when a blob is damaged or missing."""
    for blob_id in node.content:
        yield repository.load_blob(blob_id)
