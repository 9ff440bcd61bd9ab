"""restic-style conveniences (issue 14 item 6): ``repo stats``, ``repo unlock``, ``repo find``.

- ``stats``: snapshots, index entries (blobs by type), packs and their bytes, index files, and the
  stored size of the repository; ``--json`` for scripts.
- ``unlock``: remove the locks whose holder is dead (same host, process gone) or whose heartbeat is
  stale; ``--remove-all`` removes every lock (when you know nothing else is using the repository).
- ``find PATTERN``: the entries of every snapshot (or ``--snapshot``) whose path matches a glob
  (``*`` within a name, ``**`` across folders: the exclude syntax, matched in linear time).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import click

from snapkeep.cli.humane import human_size
from snapkeep.cli.repo_common import (
    emit_json,
    json_option,
    location_argument,
    open_location_store,
    open_repository,
    password_option,
)
from snapkeep.clock import SYSTEM
from snapkeep.engine.data.tree import DIR, Tree
from snapkeep.engine.format import DATA_PREFIX, INDEX_PREFIX, LOCKS_PREFIX, SNAPSHOTS_PREFIX
from snapkeep.engine.fs.globs import GlobSet
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository.locks import is_stale, known_dead, list_locks


@click.command("stats")
@location_argument
@password_option
@json_option
def stats_command(location: str, password_file: Path | None, as_json: bool) -> None:
    """How much the repository at PATH holds: snapshots, blobs, packs and bytes."""
    with open_repository(location, password_file) as repository:
        store = repository.store
        prefixes = (DATA_PREFIX, INDEX_PREFIX, SNAPSHOTS_PREFIX)
        sizes = {prefix: [info.size for info in store.list(prefix)] for prefix in prefixes}
        kinds = Counter(location_.blob_type.name.lower() for location_ in repository.index)
        by_type = dict(sorted(kinds.items()))
        pack_bytes = sum(sizes[DATA_PREFIX])
        stored = sum(sum(values) for values in sizes.values())
        report = {
            "snapshots": len(sizes[SNAPSHOTS_PREFIX]),
            "blobs": sum(kinds.values()),
            "blobs_by_type": by_type,
            "packs": len(sizes[DATA_PREFIX]),
            "pack_bytes": pack_bytes,
            "index_files": len(sizes[INDEX_PREFIX]),
            "stored_bytes": stored,
        }
    if as_json:
        emit_json(report)
        return
    click.echo(f"snapshots     {report['snapshots']}")
    click.echo(
        f"blobs         {report['blobs']} ({', '.join(f'{count} {kind}' for kind, count in by_type.items())})"
    )
    click.echo(f"packs         {report['packs']} ({human_size(pack_bytes)})")
    click.echo(f"index files   {report['index_files']}")
    click.echo(f"stored        {human_size(stored)}")


@click.command("unlock")
@location_argument
@click.option(
    "--remove-all", is_flag=True, help="Remove every lock, not only those of dead or stale holders."
)
def unlock_command(location: str, remove_all: bool) -> None:
    """Remove the stale locks of the repository at PATH (a killed backup's, say)."""
    store = open_location_store(location)
    try:
        removed = 0
        now = SYSTEM.time()
        for name, info in list_locks(store).items():
            if remove_all or known_dead(info) or is_stale(info, now):
                store.delete(LOCKS_PREFIX + name if not name.startswith(LOCKS_PREFIX) else name)
                removed += 1
                click.echo(f"removed lock {name}: {info.describe(now)}")
    finally:
        store.close()
    click.echo(f"{removed} lock(s) removed")


@click.command("find")
@location_argument
@click.argument("pattern")
@click.option("--snapshot", "snapshot_ref", default=None, help="Only this snapshot (ID, prefix or latest).")
@password_option
@json_option
def find_command(
    location: str, pattern: str, snapshot_ref: str | None, password_file: Path | None, as_json: bool
) -> None:
    """The entries whose path matches PATTERN (a glob: `*.php`, `/home/**/wp-config.php`)."""
    globs = GlobSet([pattern if pattern.startswith("/") else f"**/{pattern}"])
    found: list[dict[str, str]] = []
    with open_repository(location, password_file) as repository:
        snapshots = [repository.load_snapshot(snapshot_ref)] if snapshot_ref else repository.list_snapshots()
        for snapshot in snapshots:
            for path in _walk(repository, snapshot.tree, ""):
                if globs.match(path):
                    found.append({"snapshot": snapshot.id, "time": snapshot.time.isoformat(), "path": path})
    if as_json:
        emit_json(found)
        return
    for item in found:
        click.echo(f"{item['snapshot'][:12]}  {item['time']}  {item['path']}")
    click.echo(f"{len(found)} match(es)")


def _walk(repository: Repository, tree_id: bytes | str, prefix: str) -> Iterator[str]:
    """Every path of the tree ``tree_id`` below ``prefix`` (depth first)."""
    identifier = bytes.fromhex(tree_id) if isinstance(tree_id, str) else tree_id
    tree = Tree.decode(repository.load_blob(identifier))
    for node in tree.nodes:
        path = f"{prefix}/{os.fsdecode(node.name)}"
        yield path
        if node.type == DIR and node.subtree is not None:
            yield from _walk(repository, node.subtree, path)


COMMANDS = [stats_command, unlock_command, find_command]
