"""A backup's worker pool: the file-content path, its bounded queue, its stats and warnings.

The walk (``backup.BackupWalk``) queues each regular file that must be read; small files go in batches (one
hand-off per batch, not per file), large ones alone. A worker reads, chunks (``chunker``), hashes
(``repository.blob_id``) and adds the blobs the repository lacks (``repository.add_blob`` compresses
and seals in the worker; full packs upload on the repository's own threads). At most
``max_pending`` tasks and ``max_pending_bytes`` of file size are queued at once, and a worker holds
one chunk at a time. A file that cannot be read keeps its error on its ``PendingFile``; the walk
turns it into a warning when it finishes the file's folder (``finish_ready_frames``).

Every pool first calls ``tune_memory`` (once per process), so each backup path (``snapkeep repo
backup``, ``snapkeep run``, the service) gets the same allocator setting.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from snapkeep.engine.backup.chunker import buffer_size
from snapkeep.engine.backup.reading import PendingFile, read_file_content
from snapkeep.engine.format import CHUNK_MIN_SIZE, BlobType
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository

__all__ = ["BackupOptions", "BackupPool", "BackupStats"]

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
    #: Workers that may read a large file at the same time (each holds a 9 MiB buffer).
    large_file_readers: int = 2


@dataclass
class BackupStats:
    """A backup run's counters (the snapshot's ``stats``)."""

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

    def as_dict(self, duration: float) -> dict[str, Any]:
        """The snapshot's ``stats``: these counters and the run's ``duration`` in seconds."""
        return {
            "files": self.files,
            "dirs": self.dirs,
            "other_entries": self.others,
            "bytes": self.bytes,
            "unchanged_files": self.unchanged_files,
            "read_bytes": self.read_bytes,
            "new_blobs": self.new_blobs,
            "new_bytes": self.new_bytes,
            "warnings": self.warnings,
            "warning_count": self.warning_count,
            "duration": round(duration, 3),
        }


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
_MMAP_THRESHOLD = 128 * 1024


@functools.cache
def tune_memory() -> bool:
    """Give freed buffers back to the system at once (glibc only; skipped elsewhere). Runs once per
    process (later calls return the first result); returns whether the setting was applied.

    Backup passes many 1-16 MiB buffers between threads. glibc raises its mmap threshold
    after the first such buffer is freed, and the later ones then fragment the per-thread heaps:
    peak RSS doubled in the benchmark. A fixed threshold keeps big buffers in mmap, unmapped when
    freed. (A restore in the same process, in the service, then maps its big buffers afresh too.)
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False


class BackupPool:
    """One backup run's worker pool and the queue of files waiting for it.

    ``finish_ready_frames`` is called after every hand-off and every retired task: the walk driver
    overrides it to finish the folders whose files are all stored."""

    def __init__(self, repository: Repository, progress: Progress, options: BackupOptions) -> None:
        tune_memory()
        self.repository = repository
        self.progress = progress
        #: Whether anyone listens to per-file events (saves a path decode per file otherwise).
        self.report_files = type(progress).on_file is not Progress.on_file
        self.options = options
        self.stats = BackupStats()
        self.pool = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="snapkeep-backup")
        self.lock = threading.Lock()
        self.readers = max(1, options.large_file_readers)
        self.large_files = threading.BoundedSemaphore(self.readers)
        #: Read buffers of large files, reused (no fresh allocation and page faults per file).
        self.buffers: list[bytearray] = []
        self.pending: deque[tuple[Future[None], int]] = deque()
        self.pending_bytes = 0
        self.batch: list[PendingFile] = []
        self.batch_bytes = 0
        #: Files queued so far (each one's ``seq``).
        self.queued = 0

    def limit_readers(self, readers: int) -> None:
        """From now on, at most ``readers`` large files are read at once (and as many buffers
        kept); reads under way finish as they are."""
        self.readers = max(1, readers)
        self.large_files = threading.BoundedSemaphore(self.readers)
        del self.buffers[self.readers :]

    def finish_ready_frames(self) -> None:
        """Finish whatever waited for the tasks done so far (the walk driver's hook; nothing here)."""

    # --- warnings and worker-side callbacks -------------------------------------------------------

    def warn(self, path: bytes, message: str) -> None:
        """Record a per-entry warning (the first ``_MAX_WARNINGS`` are kept) and report it."""
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
                    # Large files are read into 9 MiB buffers, reused: cap how many exist.
                    with self.large_files:
                        buffer = self.buffers.pop() if self.buffers else bytearray(buffer_size())
                        try:
                            read_file_content(pending, self.store_chunk, on_bytes, buffer)
                        finally:
                            if len(self.buffers) < self.readers:
                                self.buffers.append(buffer)
                else:
                    read_file_content(pending, self.store_chunk, on_bytes)
            except OSError as error:
                pending.error = error.strerror or str(error)
            else:
                read += pending.node.size
            pending.finished = True
            if self.report_files:
                self.progress.on_file(os.fsdecode(pending.path), pending.node.size)
        with self.lock:
            self.stats.read_bytes += read

    # --- submission with bounded queue ------------------------------------------------------------

    def submit(self, files: list[PendingFile], size: int) -> None:
        """Hand ``files`` to a worker, first waiting for the oldest tasks while the queue is full.
        Raises what a retired task raised (storage errors)."""
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
        self.finish_ready_frames()

    def _retire_oldest(self) -> None:
        future, size = self.pending.popleft()
        future.result()
        self.pending_bytes -= size
        self.finish_ready_frames()

    def flush_batch(self) -> None:
        """Hand the batch of small files collected so far to a worker."""
        if self.batch:
            batch, size = self.batch, self.batch_bytes
            self.batch, self.batch_bytes = [], 0
            self.submit(batch, size)

    def queue_file(self, pending: PendingFile) -> None:
        """Queue a file to be read: a large one at once, a small one in the current batch."""
        size = pending.node.size
        pending.seq = self.queued
        self.queued += 1
        if size >= CHUNK_MIN_SIZE:
            self.submit([pending], size)
            return
        self.batch.append(pending)
        self.batch_bytes += size
        if len(self.batch) >= _BATCH_FILES or self.batch_bytes >= _BATCH_BYTES:
            self.flush_batch()

    def drain(self) -> None:
        """Hand over the last batch and wait for every task; raises what a task raised."""
        self.flush_batch()
        while self.pending:
            self._retire_oldest()
        self.finish_ready_frames()

    def shutdown(self) -> None:
        """Stop the worker threads (queued tasks are cancelled)."""
        self.pool.shutdown(wait=True, cancel_futures=True)
