"""Backup: walk the sources, store new file contents and one tree blob per folder, save a snapshot.

The main thread walks (``walker``) in byte-sorted order and builds nodes. A regular file whose
(size, mtime, ctime, inode) equal its node in the parent snapshot keeps that node's content list
and is not read. Other files go to a pool of worker threads, small files in batches (one hand-off
per batch, not per file), large ones alone: a worker reads, chunks (``chunker``), hashes
(``repository.blob_id``) and adds blobs the repository lacks (``repository.add_blob`` compresses
and seals in the worker; full packs upload on the repository's own threads). Folders are finished
in post-order once the files under them are done, so a tree blob only names stored blobs; the
snapshot is saved last. Memory stays bounded: at most ``max_pending`` tasks and
``max_pending_bytes`` of file size are queued at once, and a worker holds one chunk at a time.

Files that vanish or cannot be read, and folders that cannot be listed, become warnings (path and
message) in the snapshot's stats and are left out of the tree; the backup still completes.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from snapkeep.clock import SYSTEM, Clock
from snapkeep.engine.chunker import buffer_size
from snapkeep.engine.format import CHUNK_MIN_SIZE, BlobType
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.engine.snapshot import Snapshot
from snapkeep.engine.tree import DIR, FILE, Node, decode_entries, encode_entries, entry_name
from snapkeep.engine.walker import (
    Describer,
    Excludes,
    PendingFile,
    prepare_sources,
    read_file_content,
    scan_directory,
)
from snapkeep.errors import BlobNotFoundError, IntegrityError, NotFoundError, ObjectNotFoundError

__all__ = ["BackupOptions", "backup", "find_parent"]

AUTO_PARENT = "auto"
_BATCH_FILES = 64
_BATCH_BYTES = 4 * 1024 * 1024
_MAX_WARNINGS = 1000


@dataclass
class BackupOptions:
    """Tuning knobs; the defaults suit a 2-4 core server."""

    #: Two, not four: on 2 cores, more threads only fight over the GIL (2 GiB set: 12.6 s with 2,
    #: 13.8 s with 3, 15.0 s with 4; the kernel's context-switch time grew from 5.2 to 7.5 s).
    workers: int = 2
    max_pending: int = 512
    max_pending_bytes: int = 256 * 1024 * 1024
    read_xattrs: bool = True
    #: Workers that may read a large file at the same time (each holds a 12 MiB buffer).
    large_file_readers: int = 2


@dataclass(slots=True)
class Frame:
    """A folder being backed up: its nodes, the files still being read, hard links to resolve."""

    path: bytes
    node: Node | None
    parent_tree: bytes | None
    old: ParentFolder | None = None
    nodes: list[Node] = field(default_factory=list)
    files: list[PendingFile] = field(default_factory=list)
    links: list[tuple[Node, PendingFile | Node]] = field(default_factory=list)
    tree_id: bytes | None = None

    def waiting_on(self) -> list[PendingFile]:
        """The files this folder waits for (its own and the first members of its hard links)."""
        waiting = list(self.files)
        waiting.extend(first for _, first in self.links if isinstance(first, PendingFile))
        return waiting


class ParentFolder:
    """A parent snapshot's folder: its raw entries (in tree order) and the entries by name."""

    __slots__ = ("by_name", "entries", "tree_id")

    def __init__(self, tree_id: bytes | None, entries: list[dict[str, Any]]) -> None:
        self.tree_id = tree_id
        self.entries = entries
        self.by_name = {entry_name(entry): entry for entry in entries}


NO_PARENT = ParentFolder(None, [])


def load_parent_folder(repository: Repository, tree_id: bytes | None) -> ParentFolder:
    """The parent snapshot's folder; empty when there is none or it is unreadable (its files are
    then simply read again)."""
    if tree_id is None:
        return NO_PARENT
    try:
        return ParentFolder(tree_id, decode_entries(repository.load_blob(tree_id)))
    except (BlobNotFoundError, IntegrityError, ObjectNotFoundError):
        return NO_PARENT


def _subtree(old: dict[str, Any] | None) -> bytes | None:
    if old is None or old.get("type") != DIR or "subtree" not in old:
        return None
    try:
        return bytes.fromhex(old["subtree"])
    except (TypeError, ValueError):
        return None


@dataclass
class _Stats:
    files: int = 0
    dirs: int = 0
    others: int = 0
    bytes: int = 0
    unchanged_files: int = 0
    new_blobs: int = 0
    new_bytes: int = 0
    read_bytes: int = 0
    warnings: list[dict[str, str]] = field(default_factory=list)
    warning_count: int = 0


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


def backup(
    repository: Repository,
    sources: Iterable[str | bytes],
    *,
    excludes: Iterable[str] = (),
    tags: Iterable[str] = (),
    parent: Snapshot | str | None = AUTO_PARENT,
    job_id: str | None = None,
    account: str | None = None,
    hostname: str | None = None,
    extra: dict[str, Any] | None = None,
    progress: Progress | None = None,
    options: BackupOptions | None = None,
    clock: Clock = SYSTEM,
) -> Snapshot:
    """Back up ``sources`` (made absolute) and return the saved snapshot.

    ``parent`` is ``"auto"`` (the latest snapshot with the same paths, job and account), ``None``
    (read everything), a snapshot, or a reference for ``repository.load_snapshot``. ``extra`` holds
    further snapshot fields (components, schedules, structure). Raises ``NotFoundError`` when no
    source exists, and storage or repository errors, which are fatal.
    """
    started = clock.monotonic()
    progress = progress or Progress()
    options = options or BackupOptions()
    roots, missing = prepare_sources(sources)
    paths = [os.fsdecode(root) for root in roots]
    if not roots:
        raise NotFoundError(kind="backup source", ident=", ".join(os.fsdecode(m) for m in missing))
    if parent == AUTO_PARENT:
        parent_snapshot = find_parent(repository, paths, job_id=job_id, account=account)
    elif isinstance(parent, str):
        parent_snapshot = repository.load_snapshot(parent)
    else:
        parent_snapshot = parent
    walker = _Archiver(repository, Excludes(excludes), progress, options)
    for path in missing:
        walker.warn(path, "source does not exist")
    progress.on_start(None, None)
    try:
        root_parent = bytes.fromhex(parent_snapshot.tree) if parent_snapshot else None
        tree_id = walker.run(roots, root_parent)
    finally:
        walker.shutdown()
        progress.on_finish()
    stats = walker.stats
    snapshot = Snapshot(
        id="",
        time=clock.now(),
        hostname=hostname or socket.gethostname(),
        paths=paths,
        tags=sorted(set(tags)),
        tree=tree_id.hex(),
        parent=parent_snapshot.id if parent_snapshot else None,
        job_id=job_id,
        account=account,
        stats={
            "files": stats.files,
            "dirs": stats.dirs,
            "other_entries": stats.others,
            "bytes": stats.bytes,
            "unchanged_files": stats.unchanged_files,
            "read_bytes": stats.read_bytes,
            "new_blobs": stats.new_blobs,
            "new_bytes": stats.new_bytes,
            "warnings": stats.warnings,
            "warning_count": stats.warning_count,
            "duration": round(clock.monotonic() - started, 3),
        },
        **(extra or {}),
    )
    snapshot_id = repository.save_snapshot(snapshot)
    snapshot.id = snapshot_id
    return snapshot


class _Archiver:
    """One backup run's walking state (main thread) and its worker pool."""

    def __init__(
        self, repository: Repository, excludes: Excludes, progress: Progress, options: BackupOptions
    ) -> None:
        self.repository = repository
        self.excludes = excludes
        self.progress = progress
        #: Whether anyone listens to per-file events (saves a path decode per file otherwise).
        self.report_files = type(progress).on_file is not Progress.on_file
        self.options = options
        self.describer = Describer()
        self.describer.read_xattrs = options.read_xattrs
        self.stats = _Stats()
        self.pool = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="snapkeep-backup")
        self.lock = threading.Lock()
        self.large_files = threading.BoundedSemaphore(max(1, options.large_file_readers))
        #: Read buffers of large files, reused (no fresh allocation and page faults per file).
        self.buffers: list[bytearray] = []
        self.pending: deque[tuple[Future[None], int]] = deque()
        self.pending_bytes = 0
        self.batch: list[PendingFile] = []
        self.batch_bytes = 0
        self.frames: deque[Frame] = deque()
        self.hardlinks: dict[str, PendingFile | Node] = {}

    # --- warnings and worker-side callbacks -------------------------------------------------------

    def warn(self, path: bytes, message: str) -> None:
        text = os.fsdecode(path)
        with self.lock:
            self.stats.warning_count += 1
            if len(self.stats.warnings) < _MAX_WARNINGS:
                self.stats.warnings.append({"path": text, "message": message})
        self.progress.on_warning(text, message)

    def store_chunk(self, data: bytes | memoryview) -> bytes:
        """Hash one chunk and add it when the repository lacks it; returns its ID."""
        blob_id = self.repository.blob_id(data)
        if self.repository.add_blob(BlobType.DATA, data, blob_id):  # skips (False) a known blob
            with self.lock:
                self.stats.new_blobs += 1
                self.stats.new_bytes += len(data)
        return blob_id

    def _work(self, files: list[PendingFile]) -> None:
        on_bytes = self.progress.on_bytes
        read = 0
        for pending in files:
            try:
                if pending.node.size >= CHUNK_MIN_SIZE:
                    # Large files are read into 12 MiB buffers, reused: cap how many exist.
                    with self.large_files:
                        buffer = self.buffers.pop() if self.buffers else bytearray(buffer_size())
                        try:
                            read_file_content(pending, self.store_chunk, on_bytes, buffer)
                        finally:
                            self.buffers.append(buffer)
                else:
                    read_file_content(pending, self.store_chunk, on_bytes)
            except OSError as error:
                pending.error = error.strerror or str(error)
            else:
                read += pending.node.size
            if self.report_files:
                self.progress.on_file(os.fsdecode(pending.path), pending.node.size)
        with self.lock:
            self.stats.read_bytes += read

    # --- submission with bounded queue ------------------------------------------------------------

    def submit(self, files: list[PendingFile], size: int) -> None:
        while self.pending and (
            len(self.pending) >= self.options.max_pending
            or self.pending_bytes + size > self.options.max_pending_bytes
        ):
            self._retire_oldest()
        future = self.pool.submit(self._work, files)
        for pending in files:
            pending.future = future
        self.pending.append((future, size))
        self.pending_bytes += size
        self._finish_ready_frames()

    def _retire_oldest(self) -> None:
        future, size = self.pending.popleft()
        future.result()
        self.pending_bytes -= size
        self._finish_ready_frames()

    def flush_batch(self) -> None:
        if self.batch:
            batch, size = self.batch, self.batch_bytes
            self.batch, self.batch_bytes = [], 0
            self.submit(batch, size)

    def queue_file(self, pending: PendingFile) -> None:
        size = pending.node.size
        if size >= CHUNK_MIN_SIZE:
            self.submit([pending], size)
            return
        self.batch.append(pending)
        self.batch_bytes += size
        if len(self.batch) >= _BATCH_FILES or self.batch_bytes >= _BATCH_BYTES:
            self.flush_batch()

    # --- walking ----------------------------------------------------------------------------------

    def run(self, roots: list[bytes], parent_tree: bytes | None) -> bytes:
        """Walk every root, finish every folder; returns the root tree's ID."""
        root = Frame(path=b"/", node=None, parent_tree=parent_tree)
        if roots == [b"/"]:
            self.stats.dirs += 1
            self._walk_directory(root)  # the whole file system: the root tree is "/" itself
        else:
            self._walk_synthetic(root, roots, b"/")
        self.flush_batch()
        while self.pending:
            self._retire_oldest()
        self._finish_ready_frames()
        if self.frames:
            raise RuntimeError("backup walk ended with unfinished folders")
        assert root.tree_id is not None
        return root.tree_id

    def _walk_synthetic(self, frame: Frame, roots: list[bytes], prefix: bytes) -> None:
        """A folder above (or equal to) the sources: only the components leading to sources."""
        children: dict[bytes, list[bytes]] = {}
        for root in roots:
            rest = root[len(prefix) :]
            head, _, tail = rest.partition(b"/")
            children.setdefault(head, []).append(tail)
        entries = []
        for name in sorted(children):
            path = prefix + name
            try:
                entries.append((name, os.lstat(path)))
            except OSError as error:
                self.warn(path, f"cannot read: {error.strerror or error}")
        frame.old = load_parent_folder(self.repository, frame.parent_tree)
        for name, info in entries:
            path = prefix + name
            tails = children[name]
            if b"" in tails:
                self._add_entry(frame, name, path, info, frame.old.by_name.get(name))
                continue
            node = self._describe(frame, name, path, info)
            if node is None:
                continue
            node.type = DIR
            child = Frame(path=path, node=node, parent_tree=_subtree(frame.old.by_name.get(name)))
            self._walk_synthetic(child, [path + b"/" + tail for tail in tails], path + b"/")
            frame.nodes.append(node)
        self._close_frame(frame)

    def _walk_directory(self, frame: Frame) -> None:
        try:
            entries = scan_directory(frame.path)
        except OSError as error:
            self.warn(frame.path, f"cannot list folder: {error.strerror or error}")
            entries = []
        frame.old = old = load_parent_folder(self.repository, frame.parent_tree)
        prefix = frame.path if frame.path.endswith(b"/") else frame.path + b"/"
        for name, info in entries:
            path = prefix + name
            if self.excludes and self.excludes.match(path):
                continue
            self._add_entry(frame, name, path, info, old.by_name.get(name))
        self._close_frame(frame)

    def _describe(
        self,
        frame: Frame,
        name: bytes,
        path: bytes,
        info: os.stat_result,
        old: dict[str, Any] | None = None,
    ) -> Node | None:
        xattrs = None
        if (
            old is not None
            and old.get("ctime") == info.st_ctime_ns
            and old.get("inode") == info.st_ino
            and self.describer.read_xattrs
        ):
            # Unchanged inode and ctime: its xattrs are the parent's (setting one changes ctime).
            raw = old.get("xattrs")
            xattrs = _decode_xattrs(raw) if raw else {}
        try:
            return self.describer.describe(name, path, info, xattrs)
        except OSError as error:
            self.warn(path, f"cannot read metadata: {error.strerror or error}")
            return None

    def _add_entry(
        self, frame: Frame, name: bytes, path: bytes, info: os.stat_result, old: dict[str, Any] | None
    ) -> None:
        node = self._describe(frame, name, path, info, old)
        if node is None:
            return
        frame.nodes.append(node)
        if node.type == DIR:
            self.stats.dirs += 1
            self._walk_directory(Frame(path=path, node=node, parent_tree=_subtree(old)))
            return
        if node.type != FILE:
            self.stats.others += 1
            if self.report_files:
                self.progress.on_file(os.fsdecode(path), 0)
            return
        self.stats.files += 1
        self.stats.bytes += node.size
        if node.links > 1:
            node.hardlink = f"{node.device}:{node.inode}"
            first = self.hardlinks.get(node.hardlink)
            if first is not None:
                frame.links.append((node, first))
                return
        if (
            old is not None
            and old.get("type") == FILE
            and old.get("size", 0) == node.size
            and old.get("mtime") == node.mtime_ns
            and old.get("ctime") == node.ctime_ns
            and old.get("inode") == node.inode
            and ("content" in old or not node.size)
        ):
            node.content = [bytes.fromhex(blob_id) for blob_id in old.get("content", ())]
            node.sparse = bool(old.get("sparse", False))
            self.stats.unchanged_files += 1
            if self.report_files:
                self.progress.on_file(os.fsdecode(path), node.size)
            if node.hardlink:
                self.hardlinks[node.hardlink] = node
            return
        pending = PendingFile(path=path, node=node)
        frame.files.append(pending)
        if node.hardlink:
            self.hardlinks[node.hardlink] = pending
        self.queue_file(pending)

    def _close_frame(self, frame: Frame) -> None:
        """The walk of ``frame`` is over; it is finished once its files are stored."""
        self.frames.append(frame)
        self._finish_ready_frames()

    def _finish_ready_frames(self) -> None:
        while self.frames:
            frame = self.frames[0]
            waiting = frame.waiting_on()
            if not all(pending.done() for pending in waiting):
                if any(pending.future is None for pending in waiting):
                    self.flush_batch()
                return
            self.frames.popleft()
            self._finish_frame(frame)

    def _finish_frame(self, frame: Frame) -> None:
        failed: set[int] = set()
        for pending in frame.files:
            if pending.error is not None:
                self.warn(pending.path, f"cannot read: {pending.error}")
                failed.add(id(pending.node))
                with self.lock:
                    self.stats.files -= 1
                    self.stats.bytes -= pending.node.size
        for node, first in frame.links:
            source = first.node if isinstance(first, PendingFile) else first
            if isinstance(first, PendingFile) and first.error is not None:
                self.warn(frame.path + b"/" + node.name, f"hard link to an unreadable file: {first.error}")
                failed.add(id(node))
                continue
            node.content = source.content
            node.size = source.size
            node.sparse = source.sparse
        nodes = [node for node in frame.nodes if id(node) not in failed] if failed else frame.nodes
        nodes.sort(key=_by_name)
        entries = [node.to_json() for node in nodes]
        if frame.old is not None and frame.old.tree_id is not None and entries == frame.old.entries:
            tree_id = frame.old.tree_id  # unchanged folder: same blob, no encoding
        else:
            tree_id = self._store_tree(entries)
        frame.tree_id = tree_id
        if frame.node is not None:
            frame.node.subtree = tree_id
            self.progress.on_file(os.fsdecode(frame.path), 0)

    def _store_tree(self, entries: list[dict[str, Any]]) -> bytes:
        data = encode_entries(entries)
        tree_id = self.repository.blob_id(data)
        if self.repository.add_blob(BlobType.TREE, data, tree_id):
            with self.lock:
                self.stats.new_blobs += 1
                self.stats.new_bytes += len(data)
        return tree_id

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _by_name(node: Node) -> bytes:
    return node.name


def _decode_xattrs(raw: Any) -> dict[str, bytes] | None:
    """A parent entry's xattrs (name -> base64); ``None`` (read them again) when malformed."""
    try:
        return {str(key): base64.b64decode(value, validate=True) for key, value in raw.items()}
    except (AttributeError, TypeError, ValueError):
        return None
