"""What an account restore reads from a backup, whichever structure stored it.

``runs.account_restore`` restores an account from its layout (``config/``, ``homedir/``,
``databases/<engine>/<name>.sql`` ...). That layout is an Incremental snapshot's tree or an
Archived/Compressed archive's members (``sources.account_archive``); ``open_content`` gives the one
small interface the restore uses for both, so the restore logic (databases recreated from the
dumps, users and grants, files placed with the safe placer) exists once:

* ``components``: the component names the backup holds;
* ``read(path)``: a small layout file (``config/account.json``, ``database_users/<engine>.sql``);
* ``stream(path)``: a layout file's contents as chunks (a dump, fed to the database client);
* ``dumps(engine)``: the databases with a complete dump;
* ``extract(staging, paths, progress)``: layout paths restored below a private staging folder.

An archive is read sequentially: ``read``/``stream`` go through the stored stream from its start
and stop after the file (databases and users are written before the account's files, so this
stays short), ``extract`` reads it once whole. A dump stored in parts (``engine.archive.layout``)
is joined: ``stream`` yields its parts in order, and ``layout_includes``/``join_parts`` let a
download or a restore into a folder write it as the one ``.sql`` file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from snapkeep.engine.archive import ArchiveManifest, load_manifest
from snapkeep.engine.archive.layout import layout_files, read_member, stream_parts
from snapkeep.engine.archive.reader import ArchiveRestore
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.data.tree import DIR, Tree
from snapkeep.engine.fs.restore_policy import RestoreOptions
from snapkeep.engine.fs.safe_target import descend, split_path
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import restore
from snapkeep.engine.restore.content import find_node, read_content
from snapkeep.errors import NotFoundError
from snapkeep.jobs.backups import BackupRecord
from snapkeep.jobs.codes import Structure

#: (path, message) problems of an extraction, and how many files could not be read at all
Extracted = tuple[list[tuple[str, str]], int]


class AccountContent(Protocol):
    """The layout of one account backup, read back (see the module)."""

    @property
    def components(self) -> list[str]: ...

    def read(self, path: str) -> bytes: ...

    def stream(self, path: str) -> Iterator[bytes]: ...

    def dumps(self, engine: str) -> list[str]: ...

    def extract(self, staging: Path, paths: list[str], progress: Progress) -> Extracted: ...


class SnapshotContent:
    """An Incremental account snapshot."""

    def __init__(self, repository: Repository, snapshot: Snapshot) -> None:
        self.repository = repository
        self.snapshot = snapshot
        self.tree = bytes.fromhex(snapshot.tree)

    @property
    def components(self) -> list[str]:
        return list(self.snapshot.components)

    def stream(self, path: str) -> Iterator[bytes]:
        node = find_node(self.repository, self.tree, path.strip("/"))
        return iter(read_content(self.repository, node))

    def read(self, path: str) -> bytes:
        return b"".join(self.stream(path))

    def dumps(self, engine: str) -> list[str]:
        try:
            node = find_node(self.repository, self.tree, f"databases/{engine}")
        except NotFoundError:
            return []
        if node.type != DIR or node.subtree is None:
            return []
        names = [
            os.fsdecode(entry.name) for entry in Tree.decode(self.repository.load_blob(node.subtree)).nodes
        ]
        return sorted(name.removesuffix(".sql") for name in names if name.endswith(".sql"))

    def extract(self, staging: Path, paths: list[str], progress: Progress) -> Extracted:
        # into a fresh private folder: every entry is new; never special files in an account
        result = restore(
            self.repository,
            self.snapshot,
            str(staging),
            includes=paths,
            progress=progress,
            options=RestoreOptions(),
        )
        return [*result.failures, *result.warnings], len(result.failures)


class ArchiveContent:
    """An Archived or Compressed account archive."""

    def __init__(self, repository: Repository, manifest: ArchiveManifest) -> None:
        self.repository = repository
        self.manifest = manifest

    @property
    def components(self) -> list[str]:
        return list(self.manifest.components)

    def stream(self, path: str) -> Iterator[bytes]:
        if not stream_parts(self.manifest, path):  # raised now, not at the first chunk
            raise NotFoundError(f"{path!r} is not in archive {self.manifest.id}", kind="path", ident=path)
        return read_member(self.repository, self.manifest, path)

    def read(self, path: str) -> bytes:
        return b"".join(self.stream(path))

    def dumps(self, engine: str) -> list[str]:
        names = layout_files(self.manifest, f"databases/{engine}")
        return [name.removesuffix(".sql") for name in names if name.endswith(".sql")]

    def extract(self, staging: Path, paths: list[str], progress: Progress) -> Extracted:
        done = ArchiveRestore(
            self.repository,
            self.manifest,
            str(staging),
            includes=layout_includes(self.manifest, paths),
            progress=progress,
            options=RestoreOptions(),
        ).run()
        join_parts(staging, self.manifest, paths)
        return list(done.warnings), 0


def open_content(repository: Repository, row: BackupRecord) -> AccountContent:
    """The content of account backup ``row`` in ``repository``. Raises NotFoundError, IntegrityError."""
    if row.structure == Structure.INCREMENTAL:
        return SnapshotContent(repository, repository.load_snapshot(row.engine_id))
    return ArchiveContent(repository, load_manifest(repository, row.engine_id))


# --- dumps stored in parts, restored as files ------------------------------------------------------


def _streams(manifest: ArchiveManifest) -> dict[str, list[str]]:
    found = manifest.stats.get("streams") or {}
    return (
        {str(path): [str(name) for name in names] for path, names in found.items()}
        if isinstance(found, dict)
        else {}
    )


def layout_includes(manifest: ArchiveManifest, paths: Sequence[str]) -> list[str]:
    """``paths`` for ``ArchiveRestore``: a dump stored in parts, named itself, becomes its parts."""
    streams = _streams(manifest)
    chosen: list[str] = []
    for path in paths:
        key = path.strip("/")
        chosen += [f"/{name}" for name in streams[key]] if key in streams else [path]
    return chosen


def _selected(path: str, paths: Sequence[str]) -> bool:
    wanted = [item.strip("/") for item in paths]
    return not wanted or any(path == item or path.startswith(item + "/") for item in wanted)


def join_parts(
    target: Path | str, manifest: ArchiveManifest, paths: Sequence[str], *, dry_run: bool = False
) -> None:
    """After ``paths`` of ``manifest`` were restored below ``target``: each dump stored in parts
    becomes its one file again (parts concatenated, then removed). Folders are opened without
    following symlinks (``fs.safe_target.descend``); a dump whose parts are not all there is left
    as it is."""
    if dry_run:
        return
    streams = {path: names for path, names in _streams(manifest).items() if _selected(path, paths)}
    if not streams:
        return
    root = os.open(os.fsencode(target), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for path, names in streams.items():
            parts = split_path(path)
            try:
                folder = descend(root, parts[:-1])
            except OSError:
                continue
            try:
                _join(folder, parts[-1], [split_path(name)[-1] for name in names])
            finally:
                os.close(folder)
    finally:
        os.close(root)


def _join(folder: int, name: bytes, parts: list[bytes]) -> None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        sources = [os.open(part, flags, dir_fd=folder) for part in parts]
    except OSError:
        return
    temporary = b".snapkeep-join-" + secrets.token_hex(8).encode()
    try:
        output = os.open(
            temporary,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=folder,
        )
        try:
            for source in sources:
                while block := os.read(source, 1024 * 1024):
                    view = memoryview(block)
                    while view:
                        view = view[os.write(output, view) :]
        finally:
            os.close(output)
        os.rename(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=folder)
        raise
    finally:
        for source in sources:
            os.close(source)
    for part in parts:
        os.unlink(part, dir_fd=folder)
