"""A backup's tree, one folder at a time (``listBackupFiles``; the panel's file chooser).

An Incremental backup is a tree of tree blobs: a folder is opened by loading the blobs on its path
(one per level) and answering that one blob's entries, so a folder opens in the same few reads on a
backup of 100 files or of 100,000. An Archived or Compressed backup keeps every member in its
manifest; a folder's entries are its direct members (one pass over the manifest, no archive read).

Paths are what ``addQueueItems``' ``files[ITEM][PATH]`` takes for the same item: absolute original
paths for a Directories backup; paths inside the component for an item of an Accounts backup
(``/docs/report.txt`` in ``homedir``, ``/mariadb/shop.sql`` in ``databases``); layout paths
(``/homedir/docs``) for the backup itself. Search walks below the folder and stops at ``limit``
matches or ``SEARCH_NODES`` entries visited.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from snapkeep.engine.archive import load_manifest
from snapkeep.engine.data.tree import DIR, Node, Tree
from snapkeep.engine.repository import Repository
from snapkeep.errors import NotFoundError, ValidationError
from snapkeep.jobs import backups, repositories
from snapkeep.jobs.backups import BackupRecord
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.codes import Structure

#: a search visits at most this many entries (it says so when it stopped early)
SEARCH_NODES = 2_000_000
TYPES = {"dir": "Directory", "file": "File", "symlink": "Link"}


@dataclass(frozen=True)
class Entry:
    """One entry of a folder, in API shape."""

    name: str
    path: str
    type: str
    size: int
    mtime_ns: int

    def present(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "type": self.type,
            "size": self.size,
            "mtime": self.mtime_ns // 1_000_000_000,
        }


def clean_path(path: str, field: str = "path") -> str:
    """``path`` as an absolute, normalised folder path. Raises ValidationError for ``..``."""
    if not isinstance(path, str) or "\x00" in path:
        raise ValidationError(field=field, problem="must be a path such as /docs")
    parts = [part for part in path.split("/") if part and part != "."]
    if ".." in parts:
        raise ValidationError(field=field, problem="must not contain '..'")
    return "/" + "/".join(parts)


def item_prefix(row: BackupRecord, ident: str) -> str:
    """The layout folder item ``ident`` of backup ``row`` is ("" for the backup itself or a
    Directories backup's one item)."""
    component = backups.component_of(row, ident)
    return f"/{component}" if component else ""


def _node_type(kind: str) -> str:
    return TYPES.get(kind, kind.capitalize())


def _walk_to(repository: Repository, tree_id: bytes, path: str) -> bytes:
    """The tree blob of folder ``path`` below ``tree_id``. Raises NotFoundError."""
    for part in [part for part in path.split("/") if part]:
        node = Tree.decode(repository.load_blob(tree_id)).by_name().get(os.fsencode(part))
        if node is None or node.type != DIR or node.subtree is None:
            raise NotFoundError(kind="Folder in backup", ident=path)
        tree_id = node.subtree
    return tree_id


def _entry(node: Node, layout_path: str, prefix: str) -> Entry:
    name = os.fsdecode(node.name)
    return Entry(name, layout_path[len(prefix) :] or "/", _node_type(node.type), node.size, node.mtime_ns)


def _incremental(
    repository: Repository, row: BackupRecord, folder: str, prefix: str, search: str
) -> Iterator[Entry]:
    snapshot = repository.load_snapshot(row.engine_id)
    start = _walk_to(repository, bytes.fromhex(snapshot.tree), folder)
    if not search:
        for node in Tree.decode(repository.load_blob(start)).nodes:
            yield _entry(node, posixpath.join(folder, os.fsdecode(node.name)), prefix)
        return
    needle = search.casefold()
    pending = [(start, folder)]
    visited = 0
    while pending:
        tree_id, where = pending.pop()
        for node in Tree.decode(repository.load_blob(tree_id)).nodes:
            visited += 1
            path = posixpath.join(where, os.fsdecode(node.name))
            if needle in os.fsdecode(node.name).casefold():
                yield _entry(node, path, prefix)
            if node.type == DIR and node.subtree is not None:
                pending.append((node.subtree, path))
        if visited >= SEARCH_NODES:
            return


def _archive(
    repository: Repository, row: BackupRecord, folder: str, prefix: str, search: str
) -> Iterator[Entry]:
    manifest = load_manifest(repository, row.engine_id)
    below = folder.rstrip("/") + "/"
    seen: set[str] = set()
    needle = search.casefold()
    found_folder = folder == "/"
    for member in manifest.entries:
        path = "/" + member.path.strip("/")
        if path == folder:
            found_folder = True
        if not path.startswith(below):
            continue
        found_folder = True
        rest = path[len(below) :]
        if search:
            if needle in posixpath.basename(path).casefold():
                yield Entry(
                    posixpath.basename(path),
                    path[len(prefix) :],
                    _node_type(member.type),
                    member.size,
                    member.mtime_ns,
                )
            continue
        name, _, deeper = rest.partition("/")
        if name in seen:
            continue
        seen.add(name)
        kind = "dir" if deeper else member.type
        yield Entry(
            name,
            (below + name)[len(prefix) :],
            _node_type(kind),
            0 if deeper else member.size,
            member.mtime_ns,
        )
    if not found_folder:
        raise NotFoundError(kind="Folder in backup", ident=folder)


def list_folder(
    catalog: Catalog,
    ident: str,
    path: str,
    *,
    search: str = "",
    limit: int = 1000,
    skip: int = 0,
    hide: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The entries of folder ``path`` of backup item ``ident`` (folders first, then by name), or the
    entries below it whose name contains ``search``. ``hide``: components the caller may not open.
    Raises NotFoundError (no such backup, item or folder), ValidationError, and what opening the
    destination raises."""
    folder_in_item = clean_path(path)
    with catalog.transaction(write=False) as tx:
        row = backups.row(tx, ident)
        destination = tx.require("destinations", row.destination_id, "Destination")
    prefix = item_prefix(row, ident)
    folder = (prefix + folder_in_item).rstrip("/") or "/"
    top = folder.strip("/").split("/")[0]
    if row.account and top in hide:
        raise NotFoundError(kind="Folder in backup", ident=folder_in_item)
    with repositories.job_repository(
        destination, row.job_id, catalog=catalog, encrypted=bool(row.encrypted)
    ) as repository:
        walk = _incremental if row.structure == Structure.INCREMENTAL else _archive
        entries: list[Entry] = []
        for entry in walk(repository, row, folder, prefix, search):
            if row.account and folder == "/" and entry.name in hide:
                continue
            entries.append(entry)
            if search and len(entries) >= skip + limit:
                break
    if not search:
        entries.sort(key=lambda entry: (entry.type != "Directory", entry.name))
    page = entries[skip : skip + limit] if limit else entries[skip:]
    return {
        "_id": ident,
        "backup_id": row.id,
        "path": folder_in_item,
        "search": search,
        "entries": [entry.present() for entry in page],
        "total": len(entries),
    }
