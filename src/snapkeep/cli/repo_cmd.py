"""``snapkeep repo``: work on a repository directly, with nothing but the destination.

    snapkeep repo init PATH [--no-encryption] [--password-file F]
    snapkeep repo backup PATH SOURCE... [--exclude GLOB] [--tag T]
    snapkeep repo snapshots PATH [--json]
    snapkeep repo ls PATH SNAPSHOT [SUBPATH]
    snapkeep repo restore PATH SNAPSHOT TARGET [--include P]

The password comes from ``SNAPKEEP_PASSWORD`` or ``--password-file``, never from an argument.
``SNAPSHOT`` is ``latest`` or a unique ID prefix. A progress bar is drawn on a terminal only;
``--json`` prints machine-readable output. New sub-commands (check, forget, prune) use the shared
decorators ``location_argument``, ``password_option`` and ``json_option`` and ``open_repository``.

Exit codes: 0 done; 3 backup saved but some files could not be read, or restore left files out;
other codes come from the error (``snapkeep.errors``), e.g. 7 for a wrong password.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from snapkeep.engine.backup import backup
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.data.tree import DIR, Node, Tree
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import restore
from snapkeep.errors import ConfigError, NotFoundError
from snapkeep.storage.base import Store
from snapkeep.storage.locations import NO_CREDENTIALS, Credentials, open_location

F = TypeVar("F", bound=Callable[..., Any])
PASSWORD_ENV = "SNAPKEEP_PASSWORD"
#: Secrets for sftp:// locations read only from the environment (never an argument other users could see).
SFTP_PASSWORD_ENV = "SNAPKEEP_SFTP_PASSWORD"
SFTP_PASSPHRASE_ENV = "SNAPKEEP_SFTP_PASSPHRASE"
_CREDENTIALS = "snapkeep.repo.credentials"
EXIT_INCOMPLETE = 3


# --- shared pieces for every repo sub-command -----------------------------------------------------


def location_argument(function: F) -> F:
    """The repository location: a path, or an sftp://, s3:// (s3+http://) or memory:// URL."""
    return click.argument("location", metavar="PATH")(function)


def password_option(function: F) -> F:
    return click.option(
        "--password-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help=f"Read the repository password from this file (else ${PASSWORD_ENV}).",
    )(function)


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(function)


def read_password(password_file: Path | None) -> str | None:
    """The password from ``--password-file`` (first line) or ``$SNAPKEEP_PASSWORD``; ``None`` if neither."""
    if password_file is not None:
        text = password_file.read_text(encoding="utf-8")
        return text.splitlines()[0] if text.strip() else ""
    return os.environ.get(PASSWORD_ENV)


def open_location_store(location: str) -> Store:
    """Open the store at ``location`` with the credentials given to ``snapkeep repo`` (the caller
    closes it). Raises ``ConfigError`` for a bad location or missing credentials, ``StorageError``."""
    context = click.get_current_context(silent=True)
    credentials = context.meta.get(_CREDENTIALS, NO_CREDENTIALS) if context is not None else NO_CREDENTIALS
    return open_location(location, credentials)


@contextmanager
def open_repository(
    location: str,
    password_file: Path | None,
    *,
    opener: Callable[..., Repository] = Repository.open,
) -> Iterator[Repository]:
    """Open the repository at ``location`` with ``opener`` (``maintenance.check.open_without_index``
    for a repository whose index may be damaged); closes it (and its store) afterwards.

    Raises ``RepositoryNotFoundError`` and ``WrongPasswordError`` (exit codes 6 and 7)."""
    store = open_location_store(location)
    try:
        repository = opener(store, password=read_password(password_file))
        try:
            yield repository
        finally:
            repository.close()
    finally:
        store.close()


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def snapshot_document(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "id": snapshot.id,
        "short_id": snapshot.short_id,
        "time": snapshot.time.isoformat(),
        "hostname": snapshot.hostname,
        "paths": snapshot.paths,
        "tags": snapshot.tags,
        "tree": snapshot.tree,
        "parent": snapshot.parent,
        "job_id": snapshot.job_id,
        "account": snapshot.account,
        "structure": snapshot.structure,
        "stats": snapshot.stats,
    }


class _BarProgress(Progress):
    """Engine callbacks drawn as a rich progress bar on stderr (terminals only)."""

    def __init__(self, description: str) -> None:
        # rich is imported only when a terminal shows the bar: piped runs start faster.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeElapsedColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[files]} files"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.files = 0
        self.task = self.bar.add_task(description, total=None, files=0)
        self.bar.start()

    def on_start(self, total_files: int | None, total_bytes: int | None) -> None:
        self.bar.update(self.task, total=total_bytes)

    def on_file(self, path: str, size: int) -> None:
        self.files += 1
        if self.files % 64 == 0:
            self.bar.update(self.task, files=self.files)

    def on_bytes(self, count: int) -> None:
        self.bar.advance(self.task, count)

    def on_finish(self) -> None:
        self.bar.update(self.task, files=self.files)
        self.bar.stop()


def make_progress(description: str, as_json: bool) -> Progress:
    """A progress bar when stderr is a terminal and the output is not JSON; silence otherwise."""
    if not as_json and sys.stderr.isatty():
        return _BarProgress(description)
    return Progress()


# --- commands ---------------------------------------------------------------------------------------


@click.group("repo")
@click.option(
    "--sftp-key-file",
    type=click.Path(dir_okay=False),
    envvar="SNAPKEEP_SFTP_KEY_FILE",
    default=None,
    help="Private key file for sftp:// locations (else $SNAPKEEP_SFTP_KEY_FILE).",
)
@click.option(
    "--sftp-fingerprint",
    envvar="SNAPKEEP_SFTP_FINGERPRINT",
    default=None,
    help="Expected SSH host key (SHA256:...) for sftp:// locations (else $SNAPKEEP_SFTP_FINGERPRINT).",
)
@click.option(
    "--s3-access-key",
    envvar="SNAPKEEP_S3_ACCESS_KEY",
    default=None,
    help="Access key for s3:// locations (else $SNAPKEEP_S3_ACCESS_KEY).",
)
@click.option(
    "--s3-secret-key",
    envvar="SNAPKEEP_S3_SECRET_KEY",
    default=None,
    help="Secret key for s3:// locations (else $SNAPKEEP_S3_SECRET_KEY, which other users cannot see in ps).",
)
@click.option(
    "--s3-region",
    envvar="SNAPKEEP_S3_REGION",
    default=None,
    help="Region for s3:// locations (else $SNAPKEEP_S3_REGION, else us-east-1).",
)
@click.pass_context
def repo_group(
    ctx: click.Context,
    sftp_key_file: str | None,
    sftp_fingerprint: str | None,
    s3_access_key: str | None,
    s3_secret_key: str | None,
    s3_region: str | None,
) -> None:
    """Work on a repository directly (disaster recovery: needs only the destination).

    PATH may also be sftp://USER@HOST:PORT/PATH or s3://ENDPOINT/BUCKET/PREFIX (s3+http:// for plain HTTP).
    An SFTP password or key passphrase is read from $SNAPKEEP_SFTP_PASSWORD / $SNAPKEEP_SFTP_PASSPHRASE.
    """
    ctx.meta[_CREDENTIALS] = Credentials(
        key_file=sftp_key_file or None,
        password=os.environ.get(SFTP_PASSWORD_ENV) or None,
        passphrase=os.environ.get(SFTP_PASSPHRASE_ENV) or None,
        fingerprint=sftp_fingerprint or None,
        access_key=s3_access_key or None,
        secret_key=s3_secret_key or None,
        region=s3_region or None,
    )


@repo_group.command("init")
@location_argument
@click.option("--no-encryption", is_flag=True, help="Store blobs unencrypted (still verified by ID).")
@password_option
@json_option
def init_command(location: str, no_encryption: bool, password_file: Path | None, as_json: bool) -> None:
    """Create a new repository at PATH."""
    password = None if no_encryption else read_password(password_file)
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


@repo_group.command("backup")
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
            f"snapshot {snapshot.short_id} saved: {stats['files']} files, {stats['dirs']} folders, "
            f"{_size(stats['bytes'])} ({stats['unchanged_files']} unchanged), "
            f"{_size(stats['new_bytes'])} new in {stats['new_blobs']} blobs, {stats['duration']:.1f} s"
        )
    if stats.get("warning_count"):
        sys.exit(EXIT_INCOMPLETE)


@repo_group.command("snapshots")
@location_argument
@password_option
@json_option
def snapshots_command(location: str, password_file: Path | None, as_json: bool) -> None:
    """List the snapshots of the repository at PATH, oldest first."""
    with open_repository(location, password_file) as repository:
        snapshots = sorted(repository.list_snapshots(), key=lambda snapshot: snapshot.time)
    if as_json:
        emit_json([snapshot_document(snapshot) for snapshot in snapshots])
        return
    for snapshot in snapshots:
        stats = snapshot.stats
        click.echo(
            f"{snapshot.short_id}  {snapshot.time:%Y-%m-%d %H:%M:%S}  {snapshot.hostname}  "
            f"{_size(int(stats.get('bytes', 0))):>10}  {', '.join(snapshot.paths)}"
            + (f"  [{', '.join(snapshot.tags)}]" if snapshot.tags else "")
        )
    click.echo(f"{len(snapshots)} snapshots")


@repo_group.command("ls")
@location_argument
@click.argument("snapshot_ref", metavar="SNAPSHOT")
@click.argument("subpath", required=False, default="/")
@click.option("--long", "-l", "long_format", is_flag=True, help="Show type, mode, owner, size and time.")
@password_option
@json_option
def ls_command(
    location: str,
    snapshot_ref: str,
    subpath: str,
    long_format: bool,
    password_file: Path | None,
    as_json: bool,
) -> None:
    """List the entries of SNAPSHOT under SUBPATH (recursively)."""
    with open_repository(location, password_file) as repository:
        snapshot = repository.load_snapshot(snapshot_ref)
        for path, node in _walk_snapshot(repository, snapshot, subpath):
            shown = os.fsdecode(path)
            if as_json:
                click.echo(json.dumps({"path": shown, **_node_summary(node)}))
            elif long_format:
                click.echo(
                    f"{node.type:8} {node.mode:04o} {node.user or node.uid}/{node.group or node.gid} "
                    f"{node.size:>12} {node.mtime_ns // 1_000_000_000:>11} {shown}"
                )
            else:
                click.echo(shown)


@repo_group.command("restore")
@location_argument
@click.argument("snapshot_ref", metavar="SNAPSHOT")
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--include", "includes", multiple=True, metavar="P", help="Restore only this path (repeatable)."
)
@password_option
@json_option
def restore_command(
    location: str,
    snapshot_ref: str,
    target: Path,
    includes: tuple[str, ...],
    password_file: Path | None,
    as_json: bool,
) -> None:
    """Restore SNAPSHOT (or the --include paths of it) into the folder TARGET."""
    with open_repository(location, password_file) as repository, repository.lock(exclusive=False):
        snapshot = repository.load_snapshot(snapshot_ref)
        progress = make_progress("restore", as_json)
        result = restore(repository, snapshot, os.fsencode(target), includes=includes, progress=progress)
    if as_json:
        emit_json(
            {
                "snapshot": snapshot.id,
                "target": str(target),
                "files": result.files,
                "dirs": result.dirs,
                "others": result.others,
                "bytes": result.bytes,
                "failures": [{"path": path, "message": message} for path, message in result.failures],
                "warnings": [{"path": path, "message": message} for path, message in result.warnings],
            }
        )
    else:
        for path, message in result.warnings:
            click.echo(f"warning: {path}: {message}", err=True)
        for path, message in result.failures:
            click.echo(f"error: {path}: {message}", err=True)
        click.echo(
            f"restored snapshot {snapshot.short_id} to {target}: {result.files} files, "
            f"{result.dirs} folders, {_size(result.bytes)}"
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


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"
