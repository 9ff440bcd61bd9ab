"""Snapshots with a composed layout: named folders filled from several sources.

A Directories backup mirrors absolute paths; an account backup instead holds a fixed layout
(``homedir/``, ``databases/mariadb/x.sql``, ``cron/crontab``...). ``LayoutBackup`` builds one: each
target path inside the snapshot receives either a file-system path (walked exactly as the incremental backup
walks, with its exclude globs, parent reuse of unchanged files and per-file warnings), a stream
(``backup.streams``: a dump from a pipe) or bytes. Folders between targets are synthetic (mode
0700, owned by root). ``save()`` writes the snapshot last, like ``backup.backup``.

Streams are stored when added (``add_stream``), so the caller checks a dump's exit status before
the node is placed; paths are walked by ``finish()``.
"""

from __future__ import annotations

import io
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from snapkeep.clock import SYSTEM, Clock
from snapkeep.engine.backup import BackupWalk, Frame
from snapkeep.engine.backup.parents import load_parent_folder, parent_subtree
from snapkeep.engine.backup.pool import BackupOptions
from snapkeep.engine.backup.streams import Readable, store_stream
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.data.tree import DIR, Node
from snapkeep.engine.fs.safe_target import split_path
from snapkeep.engine.fs.walker import Excludes
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.errors import UnsafePathError, ValidationError


@dataclass(slots=True)
class _PathSource:
    source: bytes


@dataclass(slots=True)
class _Folder:
    children: dict[bytes, _Folder | _PathSource | Node] = field(default_factory=dict)


def split_target(target: str) -> list[bytes]:
    """The components of a relative target path (``/`` at either end ignored); raises
    ``ValidationError`` for an empty or unsafe one (``..``, empty or ``.`` components:
    ``fs.safe_target.split_path``)."""
    try:
        return list(split_path(target.strip("/")))
    except UnsafePathError as error:
        raise ValidationError(field="target", problem=f"{target!r}: {error}") from None


def find_layout_parent(repository: Repository, *, job_id: str | None, account: str | None) -> Snapshot | None:
    """The newest snapshot of this job and account (whatever its paths): the parent whose
    unchanged files are reused."""
    best: Snapshot | None = None
    for snapshot in repository.list_snapshots():
        mine = snapshot.job_id == job_id and snapshot.account == account
        if mine and (best is None or snapshot.time > best.time):
            best = snapshot
    return best


class LayoutBackup:
    """One composed snapshot being built. Not thread-safe: one caller adds, then saves."""

    def __init__(
        self,
        repository: Repository,
        *,
        parent: Snapshot | None = None,
        progress: Progress | None = None,
        options: BackupOptions | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.repository = repository
        self.parent = parent
        self.clock = clock
        self.started = clock.monotonic()
        self.progress = progress or Progress()
        self.root = _Folder()
        self.paths: list[str] = []
        self.excludes: list[str] = []
        self.stream_bytes = 0
        self.walk = BackupWalk(repository, Excludes(()), self.progress, options or BackupOptions())
        self.progress.on_start(None, None)
        self._finished = False

    def _place(self, target: str, item: _PathSource | Node | _Folder) -> None:
        parts = split_target(target)
        folder = self.root
        for part in parts[:-1]:
            child = folder.children.setdefault(part, _Folder())
            if not isinstance(child, _Folder):
                raise ValidationError(field="target", problem=f"{target!r}: {part!r} is already a file")
            folder = child
        existing = folder.children.get(parts[-1])
        if existing is not None and not (isinstance(existing, _Folder) and isinstance(item, _Folder)):
            raise ValidationError(field="target", problem=f"{target!r} is given twice")
        if existing is None:
            folder.children[parts[-1]] = item

    def add_path(self, target: str, source: str, *, excludes: tuple[str, ...] | list[str] = ()) -> None:
        """Back up ``source`` (a folder or a file, absolute) as ``target``; ``excludes`` are absolute
        exclude globs (restic rules). A missing source becomes a warning when walked."""
        self._place(target, _PathSource(os.fsencode(source)))
        self.paths.append(source)
        self.excludes.extend(excludes)

    def add_folder(self, target: str) -> None:
        """An (empty unless filled later) synthetic folder at ``target``."""
        self._place(target, _Folder())

    def add_stream(self, target: str, stream: Readable, *, mode: int = 0o600) -> Node:
        """Read ``stream`` to its end now and store it; the node is placed at ``target`` only when
        ``commit`` is called with it (check the producer first). Raises ``ValidationError`` for a
        bad target, what the stream raises, and storage errors."""
        parts = split_target(target)
        node, stats = store_stream(
            self.repository,
            parts[-1],
            stream,
            mode=mode,
            mtime_ns=self._now_ns(),
            on_bytes=self.progress.on_bytes,
        )
        with self.walk.lock:
            self.walk.stats.new_blobs += stats.new_blobs
            self.walk.stats.new_bytes += stats.new_bytes
        return node

    def commit(self, target: str, node: Node) -> None:
        """Place a stored stream's ``node`` at ``target`` (counted as a file of the snapshot)."""
        self._place(target, node)
        self.walk.stats.files += 1
        self.walk.stats.bytes += node.size
        self.stream_bytes += node.size
        self.progress.on_file("/" + target.strip("/"), node.size)

    def add_bytes(self, target: str, data: bytes, *, mode: int = 0o600) -> Node:
        """Store ``data`` as the file ``target`` and place it."""
        node = self.add_stream(target, io.BytesIO(data), mode=mode)
        self.commit(target, node)
        return node

    def warn(self, path: str, message: str) -> None:
        """Record a per-entry warning in the snapshot's stats (a component that could not be read)."""
        self.walk.warn(os.fsencode(path), message)

    def abort(self) -> None:
        """Give up (nothing is saved): stop the worker threads. Blobs already added stay unreferenced
        until a prune."""
        if not self._finished:
            self._finished = True
            self.walk.shutdown()
            self.progress.on_finish()

    def finish(self) -> bytes:
        """Walk every path source, store every folder; returns the root tree ID."""
        if self._finished:
            raise RuntimeError("LayoutBackup.finish called twice")
        self._finished = True
        walk = self.walk
        walk.excludes = Excludes(self.excludes)
        root_parent = bytes.fromhex(self.parent.tree) if self.parent else None
        try:
            root = self._walk(self.root, b"", None, root_parent)
            walk.drain()
        finally:
            walk.shutdown()
            self.progress.on_finish()
        if root.tree_id is None or walk.frames:
            raise RuntimeError("layout backup ended with unfinished folders")
        return root.tree_id

    def _walk(self, folder: _Folder, path: bytes, node: Node | None, parent_tree: bytes | None) -> Frame:
        walk = self.walk
        frame = Frame(path=path or b"/", node=node, parent_tree=parent_tree)
        frame.old = load_parent_folder(self.repository, parent_tree)
        for name in sorted(folder.children):
            item = folder.children[name]
            old = frame.old.by_name.get(name)
            if isinstance(item, Node):
                frame.nodes.append(item)
            elif isinstance(item, _Folder):
                child = Node(
                    name=name, type=DIR, mode=0o700, user="root", group="root", mtime_ns=self._now_ns()
                )
                walk.stats.dirs += 1
                self._walk(item, path + b"/" + name, child, parent_subtree(old))
                frame.nodes.append(child)
            else:
                try:
                    info = os.lstat(item.source)
                except OSError as error:
                    walk.warn(item.source, f"cannot read: {error.strerror or error}")
                    continue
                walk.add_entry(frame, name, item.source, info, old)
        walk.close_frame(frame)
        return frame

    def _now_ns(self) -> int:
        return int(self.clock.now().timestamp() * 1_000_000_000)

    def save(
        self,
        *,
        tags: list[str] | tuple[str, ...] = (),
        job_id: str | None = None,
        account: str | None = None,
        components: list[str] | tuple[str, ...] = (),
        hostname: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Snapshot:
        """Finish and save the snapshot (written last); returns it with its ID. ``extra`` adds
        snapshot fields (schedules, structure) and ``stats`` keys (under ``extra["stats"]``)."""
        tree_id = self.finish()
        stats = self.walk.stats
        fields = dict(extra or {})
        more_stats = fields.pop("stats", {})
        snapshot = Snapshot(
            id="",
            time=self.clock.now(),
            hostname=hostname or socket.gethostname(),
            paths=sorted(set(self.paths)),
            tree=tree_id.hex(),
            tags=sorted(set(tags)),
            parent=self.parent.id if self.parent else None,
            job_id=job_id,
            account=account,
            components=list(components),
            stats={
                **stats.as_dict(self.clock.monotonic() - self.started),
                "read_bytes": stats.read_bytes + self.stream_bytes,  # dumps are read too
                **more_stats,
            },
            **fields,
        )
        snapshot.id = self.repository.save_snapshot(snapshot)
        return snapshot
