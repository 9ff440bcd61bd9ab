"""restic-style conveniences (issue 14 item 6): ``repo stats``, ``unlock``, ``find``, ``diff``, ``key``.

- ``stats``: snapshots, index entries (blobs by type), packs and their bytes, index files, and the
  stored size of the repository; ``--json`` for scripts.
- ``unlock``: remove the locks whose holder is dead (same host, process gone) or whose heartbeat is
  stale; ``--remove-all`` removes every lock (when you know nothing else is using the repository).
- ``find PATTERN``: the entries of every snapshot (or ``--snapshot``) whose path matches a glob
  (``*`` within a name, ``**`` across folders: the exclude syntax, matched in linear time).
- ``diff FIRST SECOND``: entries added, removed, changed in content, changed in metadata only.
- ``key passwd``: a new key file for the same master key, then the old password's key files go.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import blake3
import click

from snapkeep.cli.humane import human_size, plural
from snapkeep.cli.repo_common import (
    emit_json,
    json_option,
    location_argument,
    open_location_store,
    open_repository,
    password_option,
    read_password,
)
from snapkeep.clock import SYSTEM
from snapkeep.engine.data.tree import DIR, Node, Tree
from snapkeep.engine.format import DATA_PREFIX, INDEX_PREFIX, KEYS_PREFIX, LOCKS_PREFIX, SNAPSHOTS_PREFIX
from snapkeep.engine.fs.globs import GlobSet
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository import keys as keyfiles
from snapkeep.engine.repository.locks import is_stale, known_dead, list_locks
from snapkeep.errors import SnapkeepError


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
    click.echo(f"{plural(removed, 'lock')} removed")


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
    for path, _node in _entries(repository, tree_id, prefix):
        yield path


@click.group("key")
def key_group() -> None:
    """The repository's key files."""


@key_group.command("passwd")
@location_argument
@password_option
@click.option(
    "--new-password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Read the new password from this file (else asked twice on a terminal).",
)
def passwd_command(location: str, password_file: Path | None, new_password_file: Path | None) -> None:
    """Change the password of the repository at PATH: a new key file for the same master key is
    written first, then the key files the old password opened are removed."""
    if new_password_file is not None:
        text = new_password_file.read_text(encoding="utf-8")
        new_password = text.splitlines()[0] if text.strip() else ""
    elif sys.stdin.isatty():
        new_password = click.prompt("new password", hide_input=True, confirmation_prompt=True)
    else:
        raise click.UsageError("give --new-password-file (or run on a terminal to be asked)")
    if not new_password:
        raise click.UsageError("the new password is empty")
    with open_repository(location, password_file) as repository:
        if not repository.config.encrypted:
            raise click.ClickException("the repository is not encrypted: it has no password")
        old_password = read_password(password_file)
        store = repository.store
        old_files = []
        for info in store.list(KEYS_PREFIX):
            try:
                keyfiles.unwrap(store.load(info.name), old_password, name=info.name)
            except SnapkeepError:
                continue  # another password's key file: kept
            old_files.append(info.name)
        key_file = keyfiles.wrap(
            repository.master_key, new_password, repository_id=repository.config.repository_id
        )
        new_name = f"{KEYS_PREFIX}{blake3.blake3(key_file).hexdigest()}"
        store.store(new_name, key_file)
        keyfiles.unwrap(store.load(new_name), new_password, name=new_name)  # it opens before the old go
        for name in old_files:
            if name != new_name:
                store.delete(name)
    click.echo(
        f"password changed: key file {new_name.rsplit('/', 1)[-1][:12]} added, {len(old_files)} removed"
    )


@click.command("diff")
@location_argument
@click.argument("first")
@click.argument("second")
@password_option
@json_option
def diff_command(location: str, first: str, second: str, password_file: Path | None, as_json: bool) -> None:
    """What changed from snapshot FIRST to SECOND: + added, - removed, M changed content, U changed
    metadata (mode, owner, time)."""
    with open_repository(location, password_file) as repository:
        old = dict(_entries(repository, repository.load_snapshot(first).tree, ""))
        new = dict(_entries(repository, repository.load_snapshot(second).tree, ""))
    changes = [("-", path) for path in sorted(old.keys() - new.keys())]
    changes += [("+", path) for path in sorted(new.keys() - old.keys())]
    for path in sorted(old.keys() & new.keys()):
        before, after = old[path], new[path]
        if before.content != after.content or before.type != after.type or before.target != after.target:
            changes.append(("M", path))
        elif (before.mode, before.uid, before.gid, before.mtime_ns) != (
            after.mode,
            after.uid,
            after.gid,
            after.mtime_ns,
        ):
            changes.append(("U", path))
    changes.sort(key=lambda change: change[1])
    if as_json:
        emit_json([{"change": change, "path": path} for change, path in changes])
        return
    for change, path in changes:
        click.echo(f"{change}  {path}")
    counts = {mark: sum(1 for change, _ in changes if change == mark) for mark in "+-MU"}
    click.echo(
        f"{counts['+']} added, {counts['-']} removed, {counts['M']} changed, {counts['U']} metadata only"
    )


def _entries(repository: Repository, tree_id: bytes | str, prefix: str) -> Iterator[tuple[str, Node]]:
    """Every (path, node) of the tree ``tree_id`` below ``prefix``."""
    identifier = bytes.fromhex(tree_id) if isinstance(tree_id, str) else tree_id
    for node in Tree.decode(repository.load_blob(identifier)).nodes:
        path = f"{prefix}/{os.fsdecode(node.name)}"
        yield path, node
        if node.type == DIR and node.subtree is not None:
            yield from _entries(repository, node.subtree, path)


COMMANDS = [stats_command, unlock_command, find_command, key_group, diff_command]
