"""Restore writing: file contents at their offsets, holes, hard links and metadata, safely.

Content (worker threads): each worker reads a group of one pack's blobs with
``repository.load_blobs`` (ranged reads, every blob verified against its ID) and writes each blob
at its offsets in every file that uses it, skipping zero runs of sparse files. Files are created
with ``O_EXCL | O_NOFOLLOW`` relative to their folder's descriptor (``fs.safe_target``). A file
gets its metadata (owner, mode, xattrs and ACLs, mtime in ns) through its descriptor when its last
blob is written. Hard links are linked to their first member afterwards; folder metadata is
applied last, deepest first. A blob that is missing or damaged fails the files using it (their
partial content is removed) and the failure names them; every other file still restores.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from snapkeep.engine.data.tree import SYMLINK, Node
from snapkeep.engine.fs.restore_policy import (
    WRITE,
    PolicyOutcome,
    RestoreOptions,
)
from snapkeep.engine.fs.safe_target import Folders, MetadataApplier, remove_existing
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository.index import BlobLocation
from snapkeep.errors import SnapkeepError

__all__ = ["FileJob", "RestoreResult", "RestoreWriter", "Users"]

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SPARSE_BLOCK = 4096
_ZEROS = bytes(_SPARSE_BLOCK)


@dataclass
class RestoreResult(PolicyOutcome):
    """What a restore did. ``failures`` (path, message) are entries that were not restored;
    ``warnings`` are metadata that could not be applied (owner, xattr, device node). ``changes``
    counts and lists the existing entries overwritten or skipped (``fs.restore_policy``); in a dry
    run (``dry_run``) it lists every entry that would be written too, and nothing was written.
    ``processes``: how many processes shared the restore (``restore.processes``)."""

    files: int = 0
    dirs: int = 0
    others: int = 0
    bytes: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    processes: int = 1

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(slots=True, eq=False)
class FileJob:
    folder: int  # index into the restorer's folders
    name: bytes
    display: str  # path in the snapshot, for messages
    node: Node
    remaining: int
    lock: threading.Lock | None
    fd: int = -1
    failed: bool = False


#: The files (and offsets in them) that each needed blob is written to.
Users = dict[bytes, list[tuple[FileJob, int]]]


class RestoreWriter:
    """Writes a restore's files, links and metadata under its target folder (``folders``)."""

    def __init__(
        self, repository: Repository, progress: Progress, owners: bool, options: RestoreOptions | None = None
    ) -> None:
        self.repository = repository
        self.progress = progress
        self.owners = owners
        self.options = options or RestoreOptions()
        self.result = RestoreResult(dry_run=self.options.dry_run)
        self.lock = threading.Lock()
        self.hardlink_first: dict[str, FileJob | tuple[int, bytes]] = {}
        self.links: list[tuple[int, bytes, str, str]] = []  # (folder, name, display, group)
        self.folders = Folders(-1, 0)
        self.folder_nodes: list[tuple[int, str, Node]] = []
        self.metadata = MetadataApplier(owners, self.warn)
        #: Per folder: whether new files in it get a group other than ours (a set-group-ID folder).
        self.inherits_group: list[bool] = []

    def fail(self, display: str, message: str) -> None:
        with self.lock:
            self.result.failures.append((display, message))
        self.progress.on_warning(display, message)

    def warn(self, display: str, message: str) -> None:
        with self.lock:
            self.result.warnings.append((display, message))

    def note(self, action: str, display: str) -> None:
        """Count ``action`` on ``display``; listed unless it is a new entry of a real restore."""
        if action == WRITE and not self.options.dry_run:
            # Only the plan (one thread) notes new entries: a count, no lock (once per entry).
            self.result.changes.counts[WRITE] += 1
            return
        with self.lock:
            self.result.changes.add(action, display, listed=action != WRITE or self.options.dry_run)

    # --- content ----------------------------------------------------------------------------------

    def restore_pack(self, pack_id: str, locations: Sequence[BlobLocation], users: Users) -> None:
        done: set[bytes] = set()
        try:
            for blob_id, data in self.repository.load_blobs(pack_id, locations):
                done.add(blob_id)
                self.deliver(users[blob_id], data)
        except SnapkeepError:
            # Find the damaged blobs one by one; the others are still written.
            for location in locations:
                if location.blob_id in done:
                    continue
                try:
                    data = self.repository.load_blob(location.blob_id)
                except SnapkeepError as error:
                    for job, _ in users[location.blob_id]:
                        self.fail_job(job, f"blob {location.blob_id.hex()}: {error}")
                    continue
                self.deliver(users[location.blob_id], data)

    def deliver(self, users: list[tuple[FileJob, int]], data: bytes) -> None:
        for job, offset in users:
            if job.lock is None:
                self.create_and_finish(job, data)
            else:
                with job.lock:
                    self.write_part(job, data, offset)

    def create(self, job: FileJob) -> None:
        """Create the file in its folder (``O_EXCL``, never through a planted link), with its
        permission bits at once (``finish`` then needs no chmod unless the umask or special bits
        interfere): fewer inode updates, each of which may wait for the file system's journal."""
        mode = job.node.mode & 0o777
        dir_fd = self.folders.fds[job.folder]
        if dir_fd >= 0:
            try:
                job.fd = os.open(job.name, _CREATE_FLAGS, mode, dir_fd=dir_fd)
                return
            except FileExistsError:
                pass
        with self.folders.open(job.folder) as dir_fd:
            try:
                job.fd = os.open(job.name, _CREATE_FLAGS, mode, dir_fd=dir_fd)
            except FileExistsError:
                remove_existing(job.name, dir_fd)
                job.fd = os.open(job.name, _CREATE_FLAGS, mode, dir_fd=dir_fd)

    def create_and_finish(self, job: FileJob, data: bytes) -> None:
        """A file of at most one blob: create, write, finish."""
        try:
            self.create(job)
            if data:
                self.write_at(job, data, 0)
            job.remaining = 0
            self.finish(job)
        except OSError as error:
            self.fail_job(job, f"cannot write: {error.strerror or error}")

    def write_part(self, job: FileJob, data: bytes, offset: int) -> None:
        if job.failed:
            return
        try:
            if job.fd < 0:
                self.create(job)
            self.write_at(job, data, offset)
            job.remaining -= 1
            if job.remaining == 0:
                self.finish(job)
        except OSError as error:
            self.fail_job(job, f"cannot write: {error.strerror or error}")

    def write_at(self, job: FileJob, data: bytes, offset: int) -> None:
        if not job.node.sparse:
            written = os.pwrite(job.fd, data, offset)
            if written < len(data):
                _write_all(job.fd, memoryview(data)[written:], offset + written)
            self.progress.on_bytes(len(data))
            return
        # Sparse: write only the runs of blocks that hold data; zero blocks stay holes.
        view = memoryview(data)
        start = -1
        for position in range(0, len(data), _SPARSE_BLOCK):
            block = data[position : position + _SPARSE_BLOCK]
            if block == _ZEROS[: len(block)]:
                if start >= 0:
                    _write_all(job.fd, view[start:position], offset + start)
                    start = -1
            elif start < 0:
                start = position
        if start >= 0:
            _write_all(job.fd, view[start:], offset + start)
        self.progress.on_bytes(len(data))

    def finish(self, job: FileJob) -> None:
        """Truncate (sparse), apply the metadata of a file ``create`` made, close it."""
        node = job.node
        try:
            if node.sparse:
                os.ftruncate(job.fd, node.size)  # a trailing hole is not written
            self.metadata.apply_new_file(node, job.display, job.fd, self.inherits_group[job.folder])
        finally:
            os.close(job.fd)
            job.fd = -1
        with self.lock:
            self.result.files += 1
            self.result.bytes += node.size
        self.progress.on_file(job.display, node.size)

    def fail_job(self, job: FileJob, message: str) -> None:
        if job.lock is not None:
            with job.lock:
                self._fail_locked(job, message)
        else:
            self._fail_locked(job, message)

    def _fail_locked(self, job: FileJob, message: str) -> None:
        if job.failed:
            return
        job.failed = True
        if job.fd >= 0:
            os.close(job.fd)
            job.fd = -1
        with contextlib.suppress(OSError), self.folders.open(job.folder) as dir_fd:
            os.unlink(job.name, dir_fd=dir_fd)  # never leave silently wrong content behind
        self.fail(job.display, message)

    # --- links and folders ------------------------------------------------------------------------

    def link_hardlinks(self) -> None:
        for folder, name, display, group in self.links:
            first = self.hardlink_first[group]
            if isinstance(first, FileJob):
                if first.failed:
                    self.fail(display, f"hard link to {first.display}, which failed")
                    continue
                first = (first.folder, first.name)
            try:
                with self.folders.open(first[0]) as source_fd, self.folders.open(folder) as dir_fd:
                    remove_existing(name, dir_fd)
                    os.link(first[1], name, src_dir_fd=source_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            except OSError as error:
                self.fail(display, f"cannot link: {error.strerror or error}")
                continue
            self.result.files += 1
            self.progress.on_file(display, 0)

    def apply_folder_metadata(self, pool: Executor | None = None, ways: int = 1) -> None:
        """Deepest folders first, after their contents (a read-only folder is filled first).

        With ``pool``, when every folder is still open (a folder reopened by path needs its
        parents searchable, so then the order matters), the folders are shared among ``ways``
        threads: a folder's mode and times are set through its own descriptor, which changes
        nothing in its parent, and every entry is in place by now (2 GiB set: 5,300 folders, a
        chmod and a utime each, no longer one after the other on one core)."""
        nodes = self.folder_nodes[::-1]
        if (
            pool is None
            or ways < 2
            or len(nodes) < 2 * ways
            or any(self.folders.fds[folder] < 0 for folder, _, _ in nodes)
        ):
            self._apply_folders(nodes)
            return
        for future in [pool.submit(self._apply_folders, nodes[start::ways]) for start in range(ways)]:
            future.result()

    def _apply_folders(self, nodes: Sequence[tuple[int, str, Node]]) -> None:
        for folder, display, node in nodes:
            try:
                with self.folders.open(folder) as fd:
                    self.apply_metadata(node, display, fd=fd)
            except OSError as error:
                self.warn(display, f"cannot set folder metadata: {error.strerror or error}")

    def apply_metadata(
        self,
        node: Node,
        display: str,
        *,
        fd: int | None = None,
        name: bytes = b"",
        dir_fd: int | None = None,
    ) -> None:
        """Owner (as root), mode, xattrs and times, through ``fd``, or on ``name`` in ``dir_fd``
        without following a symlink (``fs.safe_target.MetadataApplier``); a file ``create`` made
        gets them in ``finish``. Raises ``OSError`` when the mode or times cannot be set."""
        self.metadata.apply(node, display, fd=fd, name=name, dir_fd=dir_fd, symlink=node.type == SYMLINK)


def _write_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
