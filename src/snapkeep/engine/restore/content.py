"""Reading one file of a snapshot back as a stream, without restoring it to disk.

``find_node`` walks a snapshot's trees to a path; ``read_content`` yields a file node's content
blob by blob. Account restores use them to feed a database dump back to its server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from snapkeep.engine.data.tree import DIR, Node, Tree
from snapkeep.engine.repository import Repository
from snapkeep.errors import NotFoundError


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
