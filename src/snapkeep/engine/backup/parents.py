"""Parent-snapshot reuse for a backup: which snapshot is the parent, and its folders' entries.

A backup compares each entry with the same name in the parent snapshot's folder: a regular file
whose (size, mtime, ctime, inode) are unchanged keeps the parent's content list, an unchanged inode
keeps the parent's xattrs, and a folder whose entries come out equal keeps the parent's tree blob.
A parent folder that cannot be read is treated as empty (its files are then simply read again).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.data.tree import DIR, decode_entries, entry_name
from snapkeep.engine.repository import Repository
from snapkeep.errors import BlobNotFoundError, IntegrityError, ObjectNotFoundError

__all__ = [
    "AUTO_PARENT",
    "NO_PARENT",
    "ParentFolder",
    "decode_xattrs",
    "find_parent",
    "load_parent_folder",
    "parent_subtree",
    "resolve_parent",
]

#: The ``parent`` argument that asks for the usual parent (each kind of backup says which).
AUTO_PARENT = "auto"


class ParentFolder:
    """A parent snapshot's folder: its raw entries (in tree order) and the entries by name."""

    __slots__ = ("by_name", "entries", "tree_id")

    def __init__(self, tree_id: bytes | None, entries: list[dict[str, Any]]) -> None:
        self.tree_id = tree_id
        self.entries = entries
        self.by_name = {entry_name(entry): entry for entry in entries}


NO_PARENT = ParentFolder(None, [])


def resolve_parent(
    repository: Repository, parent: Snapshot | str | None, auto: Callable[[], Snapshot | None]
) -> Snapshot | None:
    """The parent snapshot ``parent`` names: ``AUTO_PARENT`` asks ``auto`` (a finder such as
    ``find_parent``), ``None`` is none (read everything), a snapshot is itself and another string a
    reference for ``repository.load_snapshot`` (which raises ``NotFoundError``)."""
    if parent == AUTO_PARENT:
        return auto()
    if isinstance(parent, str):
        return repository.load_snapshot(parent)
    return parent


def find_parent(
    repository: Repository, paths: Sequence[str], *, job_id: str | None = None, account: str | None = None
) -> Snapshot | None:
    """The latest snapshot with the same source paths (and the same job and account when given)."""
    wanted = sorted(paths)
    best: Snapshot | None = None
    for snapshot in repository.list_snapshots():
        if sorted(snapshot.paths) != wanted:
            continue
        if job_id is not None and snapshot.job_id != job_id:
            continue
        if account is not None and snapshot.account != account:
            continue
        if best is None or snapshot.time > best.time:
            best = snapshot
    return best


def load_parent_folder(repository: Repository, tree_id: bytes | None) -> ParentFolder:
    """The parent snapshot's folder; empty when there is none or it is unreadable (its files are
    then simply read again)."""
    if tree_id is None:
        return NO_PARENT
    try:
        return ParentFolder(tree_id, decode_entries(repository.load_blob(tree_id)))
    except (BlobNotFoundError, IntegrityError, ObjectNotFoundError):
        return NO_PARENT


def parent_subtree(old: dict[str, Any] | None) -> bytes | None:
    """The tree ID of a parent entry that is a folder; ``None`` when it is not one or is malformed."""
    if old is None or old.get("type") != DIR or "subtree" not in old:
        return None
    try:
        return bytes.fromhex(old["subtree"])
    except (TypeError, ValueError):
        return None


def decode_xattrs(raw: Any) -> dict[str, bytes] | None:
    """A parent entry's xattrs (name -> base64); ``None`` (read them again) when malformed."""
    try:
        return {str(key): base64.b64decode(value, validate=True) for key, value in raw.items()}
    except (AttributeError, TypeError, ValueError):
        return None
