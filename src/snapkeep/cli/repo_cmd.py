"""``snapkeep repo``: work on a repository directly, with nothing but the destination.

    snapkeep repo init PATH [--no-encryption] [--password-file F]
    snapkeep repo backup PATH SOURCE... [--exclude GLOB] [--tag T]
    snapkeep repo snapshots PATH [--account USER] [--structure S] [--json]
    snapkeep repo ls PATH SNAPSHOT [SUBPATH] [--account USER] [--component NAME] [--database NAME]
    snapkeep repo restore PATH SNAPSHOT TARGET [--include P] [--overwrite P] [--dry-run] [--special-files]
                          [--account USER] [--component NAME] [--database NAME]

The password comes from ``SNAPKEEP_PASSWORD`` or ``--password-file``, never from an argument.
All three structures are read: incremental snapshots and Archived/Compressed archives
(``repo_structures``). ``SNAPSHOT`` is ``latest``, ``latest:STRUCTURE`` or a unique prefix of a
snapshot's or an archive's ID; ``--account`` narrows ``latest`` to one hosting account, and
``--component``/``--database`` pick one component or one database dump of an account's backup.
A progress bar is drawn on a terminal only; ``--json`` prints machine-readable output. The shared
decorators and openers are ``repo_common``; the group and its credentials options are ``repo``.

Exit codes: 0 done; 3 backup saved but some files could not be read, or restore left files out;
other codes come from the error (``snapkeep.errors``), e.g. 7 for a wrong password.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from snapkeep.cli import repo_structures
from snapkeep.cli.humane import human_size, ls_long, plural
from snapkeep.cli.repo_common import (
    EXIT_INCOMPLETE,
    PASSWORD_ENV,
    emit_json,
    json_option,
    location_argument,
    make_progress,
    open_location_store,
    open_repository,
    password_option,
    read_password,
    snapshot_document,
)
from snapkeep.cli.restore_options import dry_run_option, overwrite_option, print_changes, special_files_option
from snapkeep.engine.backup import backup
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.data.tree import DIR, Node, Tree
from snapkeep.engine.fs.restore_policy import ALWAYS, RestoreOptions
from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import restore
from snapkeep.errors import ConfigError, NotFoundError


@click.command("init")
@location_argument
@click.option("--no-encryption", is_flag=True, help="Store blobs unencrypted (still verified by ID).")
@password_option
@json_option
def init_command(location: str, no_encryption: bool, password_file: Path | None, as_json: bool) -> None:
    """Create a new repository at PATH."""
    password = None if no_encryption else read_password(password_file)
    if not no_encryption and password is None and sys.stdin.isatty():
        password = click.prompt("password for the new repository", hide_input=True, confirmation_prompt=True)
    if not no_encryption and not password:
        raise ConfigError(
            f"a password is needed: set ${PASSWORD_ENV} or --password-file (or --no-encryption)"
        )
    store = open_location_store(location)
    try:
        repository = Repository.init(store, password=password)
        repository.close()
    finally:
        store.close()
    if as_json:
        emit_json({"location": location, "encrypted": not no_encryption})
    else:
        click.echo(
            f"created {'an unencrypted' if no_encryption else 'an encrypted'} repository at {location}"
        )


@click.command("backup")
@location_argument
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="GLOB",
    help="Leave out matching paths (** crosses folders).",
)
@click.option("--tag", "tags", multiple=True, help="Tag the snapshot (repeatable).")
@click.option(
    "--parent", default=None, help="Parent snapshot to compare with (default: latest with the same paths)."
)
@password_option
@json_option
def backup_command(
    location: str,
    sources: tuple[str, ...],
    excludes: tuple[str, ...],
    tags: tuple[str, ...],
    parent: str | None,
    password_file: Path | None,
    as_json: bool,
) -> None:
    """Back up SOURCE folders and files into the repository at PATH."""
    with open_repository(location, password_file) as repository, repository.lock(exclusive=False):
        progress = make_progress("backup", as_json)
        snapshot = backup(
            repository, sources, excludes=excludes, tags=tags, parent=parent or "auto", progress=progress
        )
    stats = snapshot.stats
    if as_json:
        emit_json(snapshot_document(snapshot))
    else:
        for warning in stats.get("warnings", []):
            click.echo(f"warning: {warning['path']}: {warning['message']}", err=True)
        click.echo(
            f"snapshot {snapshot.short_id} saved: {plural(stats['files'], 'file')}, "
            f"{plural(stats['dirs'], 'folder')}, {_size(stats['bytes'])} "
            f"({stats['unchanged_files']} unchanged), {_size(stats['new_bytes'])} new in "
            f"{plural(stats['new_blobs'], 'blob')}, {stats['duration']:.1f} s"
        )
    if stats.get("warning_count"):
        sys.exit(EXIT_INCOMPLETE)


@click.command("snapshots")
@location_argument
@click.option("--account", default=None, metavar="USER", help="Only this hosting account's backups.")
@click.option(
    "--structure",
    type=click.Choice(repo_structures.STRUCTURES),
    default=None,
    help="Only backups of this structure.",
)
@password_option
@json_option
def snapshots_command(
    location: str, account: str | None, structure: str | None, password_file: Path | None, as_json: bool
) -> None:
    """List the backups at PATH, oldest first: incremental snapshots and Archived/Compressed archives."""
    with open_repository(location, password_file) as repository:
        backups = [
            listed
            for listed in repo_structures.list_backups(repository)
            if (account is None or listed.account == account)
            and (structure is None or listed.structure == structure)
        ]
        authenticated = repository.authenticated
    if as_json:
        emit_json([listed.document() for listed in backups])
        return
    repo_structures.print_listing(backups)
    if not authenticated:
        click.echo("note: unencrypted repository: nothing proves who wrote these backups", err=True)


@click.command("ls")
@location_argument
@click.argument("snapshot_ref", metavar="SNAPSHOT")
@click.argument("subpath", required=False, default="/")
@click.option("--long", "-l", "long_format", is_flag=True, help="Show type, mode, owner, size and time.")
@repo_structures.selection_options
@password_option
@json_option
def ls_command(
    location: str,
    snapshot_ref: str,
    subpath: str,
    long_format: bool,
    selection: repo_structures.Selection,
    password_file: Path | None,
    as_json: bool,
) -> None:
    """List the entries of SNAPSHOT under SUBPATH (recursively).

    SNAPSHOT is latest, latest:STRUCTURE (incremental, archived, compressed) or a unique prefix of
    a snapshot's or an archive's ID."""
    with open_repository(location, password_file) as repository:
        found = repo_structures.resolve(repository, snapshot_ref, account=selection.account)
        if found.manifest is not None:
            selection.paths(repository, found)  # refuses --component/--database for an archive
            repo_structures.list_archive(found.manifest, subpath, long_format, as_json)
            return
        snapshot = found.loaded_snapshot()
        for start in selection.paths(repository, found) or [subpath]:
            for path, node in _walk_snapshot(repository, snapshot, start):
                shown = os.fsdecode(path)
                if as_json:
                    click.echo(json.dumps({"path": shown, **_node_summary(node)}))
                elif long_format:
                    click.echo(
                        ls_long(
                            str(node.type),
                            node.mode,
                            node.user or node.uid,
                            node.group or node.gid,
                            node.size,
                            node.mtime_ns,
                            shown,
                            os.fsdecode(node.target),
                        )
                    )
                else:
                    click.echo(shown)


@click.command("restore")
@location_argument
@click.argument("snapshot_ref", metavar="SNAPSHOT")
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--include", "includes", multiple=True, metavar="P", help="Restore only this path (repeatable)."
)
@overwrite_option(ALWAYS)
@dry_run_option
@special_files_option
@repo_structures.selection_options
@password_option
@json_option
def restore_command(
    location: str,
    snapshot_ref: str,
    target: Path,
    includes: tuple[str, ...],
    overwrite: str,
    dry_run: bool,
    special_files: bool,
    selection: repo_structures.Selection,
    password_file: Path | None,
    as_json: bool,
) -> None:
    """Restore SNAPSHOT (or the --include paths of it) into the folder TARGET.

    SNAPSHOT is latest, latest:STRUCTURE (incremental, archived, compressed) or a unique prefix of
    a snapshot's or an archive's ID."""
    options = RestoreOptions(
        overwrite=overwrite,
        dry_run=dry_run,
        special_files=special_files,
    )
    with open_repository(location, password_file) as repository, repository.lock(exclusive=False):
        found = repo_structures.resolve(repository, snapshot_ref, account=selection.account)
        includes = (*includes, *selection.paths(repository, found))
        if found.manifest is not None:
            repo_structures.restore_archive_command(
                repository, found.manifest, target, includes, options, as_json
            )
            return
        snapshot = found.loaded_snapshot()
        progress = make_progress("restore", as_json)
        result = restore(
            repository, snapshot, os.fsencode(target), includes=includes, progress=progress, options=options
        )
    counts = result.changes.counts
    if as_json:
        emit_json(
            {
                "snapshot": snapshot.id,
                "target": str(target),
                "dry_run": dry_run,
                "files": result.files,
                "dirs": result.dirs,
                "others": result.others,
                "bytes": result.bytes,
                "written": counts["write"],
                "overwritten": counts["overwrite"],
                "skipped": counts["skip"],
                "changes": [{"action": action, "path": path} for action, path in result.changes.entries],
                "changes_omitted": result.changes.omitted,
                "failures": [{"path": path, "message": message} for path, message in result.failures],
                "warnings": [{"path": path, "message": message} for path, message in result.warnings],
            }
        )
    else:
        for path, message in result.warnings:
            click.echo(f"warning: {path}: {message}", err=True)
        for path, message in result.failures:
            click.echo(f"error: {path}: {message}", err=True)
        print_changes(result.changes, dry_run=dry_run)
        if not dry_run:
            click.echo(
                f"restored snapshot {snapshot.short_id} to {target}: {plural(result.files, 'file')}, "
                f"{plural(result.dirs, 'folder')}, {_size(result.bytes)}"
                + (f"; {len(result.failures)} FAILED" if result.failures else "")
            )
    if result.failures:
        sys.exit(EXIT_INCOMPLETE)


# --- helpers ----------------------------------------------------------------------------------------


def _walk_snapshot(repository: Repository, snapshot: Snapshot, subpath: str) -> Iterator[tuple[bytes, Node]]:
    """``(path, node)`` of every entry at or below ``subpath``, depth first, sorted by name."""
    tree_id = bytes.fromhex(snapshot.tree)
    prefix = b""
    parts = [part for part in os.fsencode(subpath).split(b"/") if part and part != b"."]
    for index, part in enumerate(parts):
        node = Tree.decode(repository.load_blob(tree_id)).by_name().get(part)
        if node is None:
            raise NotFoundError(kind="path in snapshot", ident=subpath)
        prefix += b"/" + part
        if index + 1 == len(parts):
            yield prefix, node
        if node.type != DIR or node.subtree is None:
            return
        tree_id = node.subtree
    yield from _walk_tree(repository, tree_id, prefix)


def _walk_tree(repository: Repository, tree_id: bytes, prefix: bytes) -> Iterator[tuple[bytes, Node]]:
    for node in Tree.decode(repository.load_blob(tree_id)).nodes:
        path = prefix + b"/" + node.name
        yield path, node
        if node.type == DIR and node.subtree is not None:
            yield from _walk_tree(repository, node.subtree, path)


def _node_summary(node: Node) -> dict[str, Any]:
    return {
        "type": node.type,
        "mode": node.mode,
        "uid": node.uid,
        "gid": node.gid,
        "user": node.user,
        "group": node.group,
        "size": node.size,
        "mtime_ns": node.mtime_ns,
        "target": os.fsdecode(node.target) if node.target else None,
    }


_size = human_size


COMMANDS = [init_command, backup_command, snapshots_command, ls_command, restore_command]
