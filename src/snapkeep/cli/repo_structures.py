"""The three structures behind ``snapkeep repo``: incremental snapshots, and Archived and Compressed
archives (``engine.archive``: ``archives/<id>.tar[.zst]`` + a sealed ``<id>.manifest`` beside the
repository, opened with the same ``config``, ``keys/`` and password).

* ``list_backups`` lists both, oldest first, each as a ``Listed`` with its structure;
* ``resolve`` turns a reference into one backup: a full ID or a unique ID prefix (of a snapshot or
  an archive), ``latest`` (the newest of any structure) or ``latest:STRUCTURE``
  (``latest:incremental``, ``latest:archived``, ``latest:compressed``); ``--account`` narrows
  ``latest`` to one hosting account's backups;
* ``Selection`` is the Accounts convenience of ``repo ls`` and ``repo restore``: ``--account A``,
  ``--component NAME`` (a top folder of an account's backup: ``homedir``, ``databases``, ``email``...)
  and ``--database NAME`` (one dump, ``databases/<engine>/NAME.sql``; ``ENGINE/NAME`` when two
  engines hold the name);
* ``list_archive`` and ``restore_archive_command`` are ``repo ls`` and ``repo restore`` for an archive.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from snapkeep.cli.humane import human_size, ls_long, plural
from snapkeep.cli.repo_common import emit_json, make_progress, snapshot_document
from snapkeep.cli.restore_options import print_changes
from snapkeep.engine.archive import ArchiveManifest, load_manifest
from snapkeep.engine.archive.reader import ArchiveRestore
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.data.tree import DIR, Tree
from snapkeep.engine.format import ARCHIVES_PREFIX, SNAPSHOTS_PREFIX
from snapkeep.engine.fs.restore_policy import RestoreOptions
from snapkeep.engine.repository import Repository
from snapkeep.errors import IntegrityError, NotFoundError, ValidationError

F = TypeVar("F", bound=Callable[..., Any])

INCREMENTAL = "incremental"
STRUCTURES = (INCREMENTAL, "archived", "compressed")
LATEST = "latest"
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Listed:
    """One backup in a repository: a snapshot or an archive."""

    structure: str
    snapshot: Snapshot | None = None
    manifest: ArchiveManifest | None = None

    @property
    def id(self) -> str:
        return self.snapshot.id if self.snapshot is not None else self._manifest.id

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def time(self) -> _dt.datetime:
        return self.snapshot.time if self.snapshot is not None else self._manifest.time

    @property
    def account(self) -> str | None:
        if self.snapshot is not None:
            return self.snapshot.account
        return self._manifest.account or None

    def loaded_snapshot(self) -> Snapshot:
        """The snapshot (``AssertionError`` for an archive: callers dispatch on ``manifest`` first)."""
        if self.snapshot is None:
            raise AssertionError("an archive has no snapshot")
        return self.snapshot

    @property
    def _manifest(self) -> ArchiveManifest:
        if self.manifest is None:
            raise AssertionError("a Listed holds a snapshot or a manifest")
        return self.manifest

    def document(self) -> dict[str, Any]:
        """The JSON of ``repo snapshots --json`` (a snapshot's fields are ``snapshot_document``'s)."""
        if self.snapshot is not None:
            return {**snapshot_document(self.snapshot), "components": self.snapshot.components}
        manifest = self._manifest
        return {
            "id": manifest.id,
            "short_id": manifest.id[:8],
            "time": manifest.time.isoformat(),
            "hostname": manifest.hostname,
            "paths": manifest.sources,
            "tags": manifest.tags,
            "job_id": manifest.job_id or None,
            "account": manifest.account or None,
            "components": manifest.components,
            "structure": manifest.structure,
            "compression": manifest.compression,
            "encryption": manifest.encryption,
            "object": manifest.archive_name,
            "stored_size": manifest.size,
            "entries": len(manifest.entries),
            "stats": manifest.stats,
        }

    def content_bytes(self) -> int:
        if self.snapshot is not None:
            return int(self.snapshot.stats.get("bytes", 0))
        return int(self._manifest.stats.get("bytes", 0))

    def paths(self) -> list[str]:
        return self.snapshot.paths if self.snapshot is not None else self._manifest.sources

    def tags(self) -> list[str]:
        return self.snapshot.tags if self.snapshot is not None else self._manifest.tags

    def hostname(self) -> str:
        return self.snapshot.hostname if self.snapshot is not None else self._manifest.hostname


def list_backups(repository: Repository) -> list[Listed]:
    """Every snapshot and every complete archive (one with a manifest), oldest first.

    A damaged snapshot or manifest is left out with a warning on stderr (``repo check`` names
    every problem), so one damaged file never hides the others."""
    found: list[Listed] = []
    for snapshot_id in repository.snapshots.ids():
        try:
            found.append(Listed(INCREMENTAL, snapshot=repository.snapshots.load(snapshot_id)))
        except (IntegrityError, NotFoundError) as error:
            click.echo(f"warning: snapshot {snapshot_id[:12]} left out: {error}", err=True)
    for item in repository.store.list(ARCHIVES_PREFIX):
        if not item.name.endswith(".manifest"):
            continue
        archive_id = item.name[len(ARCHIVES_PREFIX) : -len(".manifest")]
        try:
            manifest = load_manifest(repository, archive_id)
        except (IntegrityError, NotFoundError) as error:
            click.echo(f"warning: archive {archive_id[:12]} left out: {error}", err=True)
            continue
        found.append(Listed(manifest.structure, manifest=manifest))
    return sorted(found, key=lambda listed: (listed.time, listed.id))


def resolve(repository: Repository, reference: str, *, account: str | None = None) -> Listed:
    """The backup ``reference`` names (see the module). Raises ``NotFoundError`` (nothing matches),
    ``ValidationError`` (a bad reference, a prefix that matches several backups, or a backup of
    another account than ``account``) and ``IntegrityError`` (damaged snapshot or manifest)."""
    text = reference.strip().lower()
    if text == LATEST or text.startswith(LATEST + ":"):
        structure = text.partition(":")[2] or None
        if structure is not None and structure not in STRUCTURES:
            raise ValidationError(
                field="snapshot", problem=f"{reference!r}: the structure is one of {', '.join(STRUCTURES)}"
            )
        candidates = [
            listed
            for listed in list_backups(repository)
            if (structure is None or listed.structure == structure)
            and (account is None or listed.account == account)
        ]
        if not candidates:
            scope = " ".join(part for part in (structure, "backup") if part)
            owner = f" of account {account!r}" if account else ""
            raise NotFoundError(f"the repository has no {scope}{owner} yet", kind="backup", ident=reference)
        return candidates[-1]
    if not text or not set(text) <= _HEX:
        raise ValidationError(
            field="snapshot",
            problem=f"{reference!r} is neither 'latest', 'latest:STRUCTURE' nor a hex ID prefix",
        )
    snapshots = [
        item.name[len(SNAPSHOTS_PREFIX) :]
        for item in repository.store.list(SNAPSHOTS_PREFIX)
        if item.name[len(SNAPSHOTS_PREFIX) :].startswith(text)
    ]
    archives = [
        item.name[len(ARCHIVES_PREFIX) : -len(".manifest")]
        for item in repository.store.list(ARCHIVES_PREFIX + text)
        if item.name.endswith(".manifest")
    ]
    matches = [("snapshot", ident) for ident in sorted(snapshots)] + [
        ("archive", ident) for ident in sorted(archives)
    ]
    if not matches:
        raise NotFoundError(f"no snapshot or archive matches {reference!r}", kind="backup", ident=reference)
    if len(matches) > 1:
        shown = ", ".join(f"{kind} {ident[:12]}" for kind, ident in matches[:5])
        raise ValidationError(
            field="snapshot",
            problem=f"prefix {reference!r} matches {len(matches)} backups ({shown}); give more digits",
        )
    kind, ident = matches[0]
    if kind == "snapshot":
        snapshot = repository.load_snapshot(ident)
        listed = Listed(INCREMENTAL, snapshot=snapshot)
    else:
        manifest = load_manifest(repository, ident)
        listed = Listed(manifest.structure, manifest=manifest)
    if account is not None and listed.account != account:
        owner = f"account {listed.account!r}" if listed.account else "no account"
        raise ValidationError(
            field="account", problem=f"backup {listed.short_id} is of {owner}, not of {account!r}"
        )
    return listed


# --- the Accounts convenience: --account, --component, --database -------------------------------


@dataclass(frozen=True)
class Selection:
    """What ``--account``, ``--component`` and ``--database`` ask for."""

    account: str | None = None
    components: tuple[str, ...] = ()
    databases: tuple[str, ...] = ()

    @property
    def narrows(self) -> bool:
        """Whether components or databases were named (the paths then come from ``paths``)."""
        return bool(self.components or self.databases)

    def paths(self, repository: Repository, listed: Listed) -> list[str]:
        """The paths inside an account's snapshot that the components and databases name.

        Raises ``ValidationError`` (not an account's snapshot; a database name in several engines)
        and ``NotFoundError`` naming what the snapshot holds instead."""
        if not self.narrows:
            return []
        snapshot = listed.snapshot
        if snapshot is None or not snapshot.account:
            raise ValidationError(
                field="component",
                problem=f"--component and --database apply to Accounts backups; {listed.short_id} "
                f"is {'an archive' if snapshot is None else 'not an account backup'}",
            )
        root = _folder(repository, bytes.fromhex(snapshot.tree))
        paths: list[str] = []
        for component in self.components:
            name = component.strip("/")
            if name not in root:
                raise NotFoundError(
                    f"account {snapshot.account!r} backup {snapshot.short_id} has no component {name!r} "
                    f"(it holds: {', '.join(sorted(root)) or 'nothing'})",
                    kind="component",
                    ident=name,
                )
            paths.append("/" + name)
        if self.databases:
            dumps = _dumps(repository, root)
            for database in self.databases:
                paths.append(_dump_path(database, dumps, snapshot))
        return paths


def selection_options(function: F) -> F:
    """``--account``, ``--component`` and ``--database``, handed to the command as ``selection``."""

    @click.option(
        "--account",
        default=None,
        metavar="USER",
        help="Only this hosting account's backups (latest is its newest).",
    )
    @click.option(
        "--component",
        "components",
        multiple=True,
        metavar="NAME",
        help="Only this component of an account backup: homedir, databases, email, cron... (repeatable).",
    )
    @click.option(
        "--database",
        "databases",
        multiple=True,
        metavar="NAME",
        help="Only this database's dump of an account backup (ENGINE/NAME when ambiguous; repeatable).",
    )
    @functools.wraps(function)
    def wrapper(
        *args: Any,
        account: str | None,
        components: tuple[str, ...],
        databases: tuple[str, ...],
        **kwargs: Any,
    ) -> Any:
        selection = Selection(account or None, components, databases)
        return function(*args, selection=selection, **kwargs)

    return wrapper  # type: ignore[return-value]


def _folder(repository: Repository, tree_id: bytes) -> dict[str, Any]:
    return {os.fsdecode(node.name): node for node in Tree.decode(repository.load_blob(tree_id)).nodes}


def _dumps(repository: Repository, root: dict[str, Any]) -> dict[str, list[str]]:
    """Database name -> the engines whose ``databases/<engine>/<name>.sql`` the snapshot holds."""
    found: dict[str, list[str]] = {}
    databases = root.get("databases")
    if databases is None or databases.type != DIR or databases.subtree is None:
        return found
    for engine, node in sorted(_folder(repository, databases.subtree).items()):
        if node.type != DIR or node.subtree is None:
            continue
        for name in sorted(_folder(repository, node.subtree)):
            if name.endswith(".sql"):
                found.setdefault(name[: -len(".sql")], []).append(engine)
    return found


def _dump_path(database: str, dumps: dict[str, list[str]], snapshot: Snapshot) -> str:
    engine, _, name = database.rpartition("/")
    engines = dumps.get(name, [])
    if engine:
        engines = [item for item in engines if item == engine]
    if not engines:
        held = ", ".join(f"{item}/{dump}" for dump, items in sorted(dumps.items()) for item in items)
        raise NotFoundError(
            f"account {snapshot.account!r} backup {snapshot.short_id} has no dump of database "
            f"{database!r} (it holds: {held or 'none'})",
            kind="database",
            ident=database,
        )
    if len(engines) > 1:
        raise ValidationError(
            field="database",
            problem=f"{name!r} is dumped by {', '.join(engines)}: name one as ENGINE/NAME",
        )
    return f"/databases/{engines[0]}/{name}.sql"


# --- repo snapshots / ls / restore for archives --------------------------------------------------


def print_listing(backups: Sequence[Listed]) -> None:
    """The text of ``repo snapshots``: one line per backup, then the counts by structure."""
    for listed in backups:
        tags = listed.tags()
        click.echo(
            f"{listed.short_id}  {listed.time:%Y-%m-%d %H:%M:%S}  {listed.structure:<11}  "
            f"{listed.hostname()}  {human_size(listed.content_bytes()):>10}  {', '.join(listed.paths())}"
            + (f"  [{', '.join(tags)}]" if tags else "")
            + (f"  account {listed.account}" if listed.account else "")
        )
    snapshots = sum(1 for listed in backups if listed.structure == INCREMENTAL)
    archives = {
        structure: sum(1 for listed in backups if listed.structure == structure)
        for structure in STRUCTURES[1:]
    }
    line = plural(snapshots, "snapshot")
    if any(archives.values()):
        line += f", {plural(sum(archives.values()), 'archive')} (" + ", ".join(
            f"{count} {structure}" for structure, count in archives.items() if count
        )
        line += ")"
    click.echo(line)


def _archive_paths(manifest: ArchiveManifest, subpath: str) -> Iterator[tuple[str, Any]]:
    """``(path, entry)`` of every member at or below ``subpath`` (``/`` form), in stream order."""
    wanted = subpath.strip("/")
    matched = False
    for entry in manifest.entries:
        if not wanted or entry.path == wanted or entry.path.startswith(wanted + "/"):
            matched = True
            yield "/" + entry.path, entry
    if not matched:
        raise NotFoundError(kind="path in archive", ident=subpath)


def list_archive(manifest: ArchiveManifest, subpath: str, long_format: bool, as_json: bool) -> None:
    """``repo ls`` of an archive: its members at or below ``subpath``, from the (verified) manifest."""
    for path, entry in _archive_paths(manifest, subpath):
        if as_json:
            document = {
                "path": path,
                "type": entry.type,
                "mode": entry.mode,
                "uid": entry.uid,
                "gid": entry.gid,
                "user": None,
                "group": None,
                "size": entry.size,
                "mtime_ns": entry.mtime_ns,
                "target": entry.link or None,
            }
            click.echo(json.dumps(document))
        elif long_format:
            target = entry.link if entry.type in ("symlink", "hardlink") else ""
            click.echo(
                ls_long(
                    entry.type, entry.mode, entry.uid, entry.gid, entry.size, entry.mtime_ns, path, target
                )
            )
        else:
            click.echo(path)


def restore_archive_command(
    repository: Repository,
    manifest: ArchiveManifest,
    target: Path,
    includes: Sequence[str],
    options: RestoreOptions,
    as_json: bool,
) -> None:
    """``repo restore`` of an archive: verified member by member (``engine.archive``), with the
    same ``--overwrite``, ``--dry-run`` and ``--special-files`` as a snapshot's restore; damage
    raises ``IntegrityError`` (exit 8) and a damaged file is never left in the target."""
    progress = make_progress("restore", as_json)
    try:
        result = ArchiveRestore(
            repository, manifest, os.fsencode(target), includes=includes, progress=progress, options=options
        ).run()
    except IntegrityError:
        click.echo(
            f"error: archive {manifest.id[:12]} is damaged: files restored before the damage are "
            "complete and verified; run `snapkeep repo check --read-data` to see what is wrong",
            err=True,
        )
        raise
    # Archive members are named without the leading "/"; show them as a snapshot's restore does.
    result.changes.entries = [
        (action, path if path.startswith("/") else "/" + path) for action, path in result.changes.entries
    ]
    counts = result.changes.counts
    if as_json:
        emit_json(
            {
                "archive": manifest.id,
                "structure": manifest.structure,
                "target": str(target),
                "dry_run": options.dry_run,
                "files": result.files,
                "dirs": result.directories,
                "others": result.links,
                "bytes": result.bytes,
                "written": counts["write"],
                "overwritten": counts["overwrite"],
                "skipped": counts["skip"],
                "changes": [{"action": action, "path": path} for action, path in result.changes.entries],
                "changes_omitted": result.changes.omitted,
                "failures": [],
                "warnings": [{"path": path, "message": message} for path, message in result.warnings],
            }
        )
        return
    for path, message in result.warnings:
        click.echo(f"warning: {path}: {message}", err=True)
    print_changes(result.changes, dry_run=options.dry_run)
    if not options.dry_run:
        click.echo(
            f"restored {manifest.structure} archive {manifest.id[:8]} to {target}: {result.files} files, "
            f"{result.directories} folders, {human_size(result.bytes)}"
        )


__all__ = [
    "Listed",
    "Selection",
    "list_archive",
    "list_backups",
    "print_listing",
    "resolve",
    "restore_archive_command",
    "selection_options",
]
