"""A backup shared among processes: one interpreter lock each.

Why: a first backup is bound by the interpreter lock (docs/engine.md, "Issue 12, third round"):
64 % of its CPU time is Python holding the lock for each small file (walk, hashing calls, seals,
the packer), so one process keeps at most about 1.5 of 2 cores busy however many threads it has.
Two processes, each with the same walk and worker pool on part of the folders, use both.

How: before the walk, the backing-up process lists the top of the sources breadth first
(``split_folders``) down to the first depth holding at least ``MIN_TASKS`` folders; each folder at
that depth is a task, with its subtree in the parent snapshot. Tasks are shared in a work-stealing
way, as a shared restore's: the walk takes them in its own order from the front (it walks a task
folder itself when it reaches one nobody took), each worker process (``backup.child``, started
with ``sys.executable``) asks for one at a time and gets the last one nobody took. A worker gets
the repository's keys over a socket pair (nothing is written anywhere), opens the same store again
(``sharing.reopenable``: local and S3 by default, SFTP when ``SNAPKEEP_BACKUP_PROCESSES`` asks),
backs up each folder it is given with the same ``BackupWalk`` (same excludes, parent-snapshot
reuse, warnings and limits) into its own packs and index files, and reports each folder's tree
ID and its counters once all its data is stored and indexed (``Repository.flush``).

The backing-up process keeps the folders above the split and the task folders' own entries; a
folder another process backs up is waited for like a file being read (``Frame.remote``). The
snapshot is saved only after every worker has reported, so it names only stored blobs. A blob two
processes find new in the same run is stored by each (a few identical files across accounts: the
benchmark's size row measures it); a hard link whose names fall in two processes' folders keeps its
group (same ``hardlink`` key, same content) and its content is read by each. A worker that stops
unexpectedly fails the backup, naming it; one that fails before taking a task is left out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import threading
from dataclasses import dataclass
from typing import Any

from snapkeep.engine.backup import BackupWalk, Frame
from snapkeep.engine.backup.parents import load_parent_folder, parent_subtree
from snapkeep.engine.backup.pool import _MAX_WARNINGS, BackupOptions
from snapkeep.engine.backup.reading import PendingFile
from snapkeep.engine.fs.walker import Excludes, scan_directory
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository, sharing
from snapkeep.errors import RepositoryError

__all__ = ["MIN_TASKS", "SharedBackupWalk", "default_processes", "shared_walk", "split_folders"]

#: The split depth is the first holding at least this many folders (enough pieces to balance).
MIN_TASKS = 16
#: The breadth-first look at the top stops after this many levels, or this many folders a level.
_MAX_DEPTH = 8
_MAX_LISTINGS = 4096
#: Environment variable: how many processes share a backup (1 turns the sharing off).
PROCESSES_VARIABLE = "SNAPKEEP_BACKUP_PROCESSES"
#: Most backup processes in all.
MAX_PROCESSES = sharing.MAX_PROCESSES
#: What the backing-up process and its workers say to each other; a worker started from another
#: installed version (snapkeep upgraded while the service runs) refuses, and is left out.
PROTOCOL = 1
#: The workers start once the walk has queued this many files, or bytes, to read: a backup that
#: reads little (no change, a day's churn) stays in one process and holds one process's memory.
SHARE_AFTER_FILES = 4096
SHARE_AFTER_BYTES = 1024 * 1024 * 1024
#: Threads reading files in a worker process: one; two measured no faster (2 GiB into tmpfs:
#: 8.4-9.4 s against 8.6-9.9 s) and held 2-3 MiB more.
SHARED_WORKERS = 1
#: Large files each process reads at once while the backup is shared (each holds a 9 MiB buffer).
SHARED_READERS = 1
#: Counters a worker reports, added to the backup's (``BackupStats``).
_COUNTERS = (
    "files",
    "dirs",
    "others",
    "bytes",
    "unchanged_files",
    "new_blobs",
    "new_bytes",
    "read_bytes",
    "warning_count",
)


def default_processes(repository: Repository, asked: int | None = None) -> int:
    """How many processes back up into ``repository`` (``sharing.process_count``, with
    ``SNAPKEEP_BACKUP_PROCESSES``): one per core into a local folder or S3, one process to SFTP
    unless asked (each worker would add its own ``ssh`` client, and one process is within the
    bound; docs/engine.md, "Issue 12, seventh round")."""
    return sharing.process_count(repository.store, asked, PROCESSES_VARIABLE)


def _walk_order(task: tuple[bytes, bytes | None]) -> list[bytes]:
    return task[0].split(b"/")


def split_folders(
    repository: Repository, roots: list[bytes], root_parent: bytes | None, excludes: Excludes
) -> list[tuple[bytes, bytes | None]]:
    """The folders (path, subtree in the parent snapshot) at the shallowest depth below the source
    folders holding at least ``MIN_TASKS`` folders, in the walk's order; ``[]`` when the top never
    fans out so. A folder that cannot be listed here is simply not split (the walk warns)."""
    level: list[tuple[bytes, bytes | None]] = []
    for root in roots:
        try:
            if not stat.S_ISDIR(os.lstat(root).st_mode):
                continue
        except OSError:
            continue
        tree = root_parent
        for name in root.split(b"/"):
            if name:
                tree = parent_subtree(load_parent_folder(repository, tree).by_name.get(name))
        level.append((root, tree))
    for _ in range(_MAX_DEPTH):
        folders: list[tuple[bytes, bytes | None]] = []
        for path, old_tree in level:
            try:
                entries = scan_directory(path)
            except OSError:
                continue
            old = load_parent_folder(repository, old_tree)  # empty without a parent
            prefix = path if path.endswith(b"/") else path + b"/"
            for name, info in entries:
                child = prefix + name
                if not stat.S_ISDIR(info.st_mode) or (excludes and excludes.match(child)):
                    continue
                folders.append((child, parent_subtree(old.by_name.get(name))))
            if len(folders) > _MAX_LISTINGS:
                return []
        if len(folders) >= MIN_TASKS:
            folders.sort(key=_walk_order)
            return folders
        if not folders:
            return []
        level = folders
    return []


def shared_walk(
    repository: Repository,
    roots: list[bytes],
    root_parent: bytes | None,
    patterns: list[str],
    progress: Progress,
    options: BackupOptions,
    processes: int | None = None,
) -> SharedBackupWalk | None:
    """A walk shared with worker processes, started; ``None`` when the backup stays in this
    process (one process asked or chosen, a store a worker cannot open, too few folders)."""
    count = default_processes(repository, processes)
    if count <= 1:
        return None
    excludes = Excludes(patterns)
    tasks = split_folders(repository, roots, root_parent, excludes)
    if not tasks:
        return None
    return SharedBackupWalk(repository, excludes, progress, options, tasks, count - 1, patterns)


@dataclass(slots=True)
class RemoteFolder:
    """A task folder another process backs up; its ``frame`` gets the tree ID it reports."""

    frame: Frame
    finished: bool = False
    seq: int = -1


class SharedBackupWalk(BackupWalk, sharing.WorkerGroup):
    """The backing-up process's walk: takes tasks from the front as it reaches them, deals the
    others out to worker processes from the back, merges what they report."""

    role = "backup worker"

    def __init__(
        self,
        repository: Repository,
        excludes: Excludes,
        progress: Progress,
        options: BackupOptions,
        tasks: list[tuple[bytes, bytes | None]],
        count: int,
        patterns: list[str],
    ) -> None:
        super().__init__(repository, excludes, progress, options)
        self.tasks = tasks
        #: worker processes to start once enough is queued (``SHARE_AFTER_FILES``), and their excludes
        self.count = count
        self.patterns = patterns
        self.sharing = False
        self._to_read = 0
        self._to_read_bytes = 0
        self.task_index = {path: index for index, (path, _) in enumerate(tasks)}
        self._init_workers()
        self._front = 0
        self._back = len(tasks)
        #: task folders this walk reached and left to a worker, by path
        self.remote_folders: dict[bytes, RemoteFolder] = {}
        reopen = sharing.reopenable(repository.store)
        if reopen is None:
            raise ValueError("a backup into this store cannot be shared (see default_processes)")
        self.reopen = reopen

    # --- workers ----------------------------------------------------------------------------------

    def queue_file(self, pending: PendingFile) -> None:
        """Queue a file to read; start the workers once enough is queued."""
        super().queue_file(pending)
        if not self.sharing:
            self._to_read += 1
            self._to_read_bytes += pending.node.size
            if self._to_read >= SHARE_AFTER_FILES or self._to_read_bytes >= SHARE_AFTER_BYTES:
                self.start()

    def start(self) -> None:
        """Start the worker processes; from now on this process reads one large file at a time,
        as each worker does (``SHARED_READERS``), so two processes hold about one's buffers."""
        self.sharing = True
        self.limit_readers(SHARED_READERS)
        setup = {
            "protocol": PROTOCOL,
            **sharing.repository_setup(self.repository, self.reopen),
            "excludes": self.patterns,
            "options": dataclasses.replace(
                self.options, workers=SHARED_WORKERS, large_file_readers=SHARED_READERS
            ),
            "report_files": self.report_files,
        }
        self._launch(self.count, "snapkeep.engine.backup.child", setup)

    def _deal(self, worker: sharing.WorkerLink) -> None:
        """Give ``worker`` the last task nobody took, or tell it that none is left."""
        with self._lock:
            task = None
            if self.error is None and self._front < self._back:
                self._back -= 1
                task = self.tasks[self._back]
        if task is None:
            worker.send(("done",))
            return
        worker.given.append(task[0])
        worker.send(("task", task[0], task[1]))

    def _lost(self, worker: sharing.WorkerLink) -> str:
        shown = ", ".join(os.fsdecode(path) for path in worker.given[-3:])
        given = len(worker.given)
        return f"nothing was saved for the {given} folder(s) given to it (the last: {shown or 'none'})"

    # --- this process's walk ------------------------------------------------------------------------

    def walk_folder(self, frame: Frame, parent: Frame | None = None) -> None:
        """Walk a folder, unless it is a task a worker took: then ``parent`` waits for its tree
        as for a file."""
        index = self.task_index.get(frame.path)
        if index is None:
            self._walk_directory(frame)
            return
        with self._lock:
            if self.error is not None:
                raise self.error
            ours = index < self._back
            if ours:
                self._front = max(self._front, index + 1)
        if ours:
            self._walk_directory(frame)
            return
        remote = RemoteFolder(frame)
        self.remote_folders[frame.path] = remote
        if parent is None:
            raise RepositoryError(f"backup: the source {os.fsdecode(frame.path)} cannot be shared")
        parent.remote.append(remote)

    def wait_for_all(self) -> None:
        """Drain this process's files, then wait for every worker's report and give each folder
        it backed up its tree ID; raises a worker's error."""
        self.drain()
        for worker in self._workers:
            assert worker.reader is not None
            worker.reader.join()
        if self.error is not None:
            raise self.error
        trees: dict[bytes, bytes] = {}
        for worker in self._workers:
            if worker.result is not None:
                trees.update(worker.result["trees"])
                self._merge(worker.result["stats"])
                # Known here too: a next backup with this repository object finds them stored.
                self.repository.adopt_index_files(worker.result["index_files"])
        for path, remote in self.remote_folders.items():
            tree_id = trees.get(path)
            if tree_id is None:
                raise RepositoryError(f"backup: no worker reported the folder {os.fsdecode(path)}")
            node = remote.frame.node
            assert node is not None
            node.subtree = tree_id
            remote.finished = True
            if self.report_files:
                self.progress.on_file(os.fsdecode(path), 0)
        self.finish_ready_frames()

    def _merge(self, stats: dict[str, Any]) -> None:
        mine = self.stats
        with self.lock:
            for name in _COUNTERS:
                setattr(mine, name, getattr(mine, name) + int(stats[name]))
            room = _MAX_WARNINGS - len(mine.warnings)
            mine.warnings.extend(stats["warnings"][: max(0, room)])

    def shutdown(self) -> None:
        """Stop this process's pool and every worker still running."""
        try:
            super().shutdown()
        finally:
            for worker in self._workers:
                if worker.result is None:
                    worker.kill()
                worker.close()


# --- the worker's side (``backup.child``) --------------------------------------------------------------


def run_worker(fd: int) -> int:
    """A worker process's life: set up, back up the folders it is given, report. Exit status."""
    import socket
    from multiprocessing.connection import Connection

    sharing.die_with_parent()
    sock = socket.socket(fileno=fd)
    connection = Connection(os.dup(fd))
    send_lock = threading.Lock()
    repository: Repository | None = None

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            connection.send(message)

    try:
        _, setup = connection.recv()
        if setup.get("protocol") != PROTOCOL:
            raise RepositoryError(f"backup worker speaks protocol {PROTOCOL}, not {setup.get('protocol')}")
        repository = sharing.open_repository(setup)
        progress = sharing.WorkerProgress(send)
        walk = BackupWalk(repository, Excludes(setup["excludes"]), progress, setup["options"])
        walk.report_files = setup["report_files"]
        frames: list[Frame] = []
        try:
            while True:
                send(("ready",))
                message = connection.recv()
                if message[0] == "done":
                    break
                _, path, parent_tree = message
                frame = Frame(path=path, node=None, parent_tree=parent_tree)
                walk.walk_folder(frame)
                frames.append(frame)
            walk.drain()
        finally:
            walk.shutdown()
        if walk.frames:
            raise RepositoryError("backup worker: its walk ended with unfinished folders")
        repository.flush()  # every pack stored, every blob indexed: then its trees may be named
        trees = {frame.path: frame.tree_id for frame in frames}
        stats = {name: getattr(walk.stats, name) for name in _COUNTERS}
        stats["warnings"] = walk.stats.warnings
        progress.flush()
        result = {"trees": trees, "stats": stats, "index_files": repository.written_index_files}
        send(("result", result))
        return 0
    except BaseException as error:  # noqa: BLE001 (reported to the backing-up process, which raises it)
        with contextlib.suppress(Exception):
            send(sharing.error_message(error))
        return 1
    finally:
        if repository is not None:
            with contextlib.suppress(Exception):
                repository.close()
            with contextlib.suppress(Exception):
                repository.store.close()
        sock.close()
