"""A restore shared among processes: one interpreter lock each.

Why: a local restore is bound by the interpreter lock (docs/engine.md, "Issue 12, fifth round"):
its threads decode listings, open, write, time-stamp and close 80,000 files, and every system call
hands the lock over. On 2 cores one process restores at about 1.4 cores however many threads it
has; two processes, each with the same pipeline on half of the folders, use both.

How: the planning process walks the top of the snapshot breadth first (``split_depth``) down to
the first depth holding at least ``MIN_TASKS`` folders. The plan then restores everything above
that depth itself and makes each folder at that depth, leaving its contents as a ``SplitTask``.
The tasks are shared in a work-stealing way: the planning process takes them from the front,
each worker process (``restore.child``, started with ``sys.executable``) asks for one at a time
and gets it from the back, so they meet wherever the sizes put them. A worker gets the
repository's keys and the folder's descriptor over a socket pair (nothing is written anywhere),
opens the same store again from the parameters it was opened from (``Store.params``; local by
default, SFTP and S3 when ``SNAPKEEP_RESTORE_PROCESSES`` asks: see ``default_processes``),
restores the task with the same ``RestorePlanner`` (same checks, policies and limits), and reports
progress while it runs and its result when no task is left. The entry limit against a forged
fan-out is one allowance, leased ``LEASE`` entries at a time.

What stays with the planning process: every folder's metadata above and at the split depth,
applied last as before; hard links (a worker reports its groups; a group written first by two
processes keeps one copy and the other becomes a link); the folders holding hard-link members
(their metadata after the links). A worker that stops unexpectedly fails the restore, naming it:
the tasks it held are not silently redone; one that fails before it takes a task is left out.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import threading
from multiprocessing.connection import Connection
from typing import Any

from snapkeep.engine.data.tree import DIR, FILE, Node
from snapkeep.engine.repository import Repository, sharing
from snapkeep.engine.restore.plan import Filters, RestorePlanner, SplitTask
from snapkeep.engine.restore.writer import FileJob
from snapkeep.errors import RepositoryError
from snapkeep.storage.base import Store

__all__ = ["MIN_TASKS", "Splitter", "default_processes", "split_depth"]

#: The split depth is the first holding at least this many folders (enough pieces to balance).
MIN_TASKS = 16
#: The breadth-first look at the top stops after this many levels or listings.
_MAX_DEPTH = 12
_MAX_LISTINGS = 4096
#: Environment variable: how many processes share a restore (1 turns the sharing off).
PROCESSES_VARIABLE = "SNAPKEEP_RESTORE_PROCESSES"
#: Most restore processes in all (each runs a plan, two writers and two tree readers).
MAX_PROCESSES = sharing.MAX_PROCESSES
#: What the planning process and its workers say to each other; a worker started from another
#: installed version (snapkeep upgraded while the service runs) refuses, and is left out.
PROTOCOL = 1
#: Entries a process may create before it asks the restore's allowance for more.
LEASE = 1024


def default_processes(repository: Repository, asked: int | None = None) -> int:
    """How many processes restore from ``repository`` (``sharing.process_count``, with
    ``SNAPKEEP_RESTORE_PROCESSES``). From S3 (2 GiB set, loopback server), two processes restored in
    0.60-0.77 of restic's time at 0.90-0.98 of its memory, one process in 0.92-1.21 of its time (the
    server's CPU and the interpreter lock share two cores); from SFTP one process is at 0.77-0.87
    of restic's time."""
    return sharing.process_count(repository.store, asked, PROCESSES_VARIABLE)


def split_depth(planner: RestorePlanner, root: bytes, filters: Filters) -> int | None:
    """The shallowest depth (1: the entries of the root listing) holding at least ``MIN_TASKS``
    folders the restore selects, or ``None`` when the top of the snapshot never fans out so."""
    level: list[tuple[bytes, Filters]] = [(root, filters)]
    for depth in range(1, _MAX_DEPTH + 1):
        folders: list[tuple[bytes, Filters]] = []
        for tree_id, selected in level:
            for node, below in planner.choose(tree_id, selected):
                if node.type == DIR and node.subtree is not None:
                    folders.append((node.subtree, below))
        if len(folders) >= MIN_TASKS:
            return depth
        if not folders or len(folders) > _MAX_LISTINGS:
            return None
        level = folders
    return None


class Splitter(sharing.WorkerGroup):
    """The planning process's side: starts the workers, deals out the tasks, merges results."""

    role = "restore worker"

    def __init__(self, planner: RestorePlanner, count: int, target_fd: int, workers: int) -> None:
        self.planner = planner
        self.count = count
        self.target_fd = target_fd
        self.workers = workers
        self.progress = planner.progress
        self._init_workers()
        self._front = 0
        self._back = 0
        self._sealed = False
        reopen = sharing.reopenable(planner.repository.store)
        if reopen is None:
            raise ValueError("a restore from this store cannot be shared (see default_processes)")
        self.reopen = reopen
        planner.shared(local=getattr(reopen[0], "kind", "") == "local")
        #: entries the processes may still create in all (``RestorePlanner.entry_limit``)
        self.cap = planner.entry_limit
        self._left = planner.entry_limit
        if self.cap is not None:
            planner.entry_cap, planner.entry_limit, planner.lease = self.cap, planner.entries, self.lease

    def lease(self) -> int:
        """Up to ``LEASE`` more entries from the restore's allowance (0 when it is spent)."""
        with self._lock:
            if self._left is None:
                return LEASE
            granted = min(LEASE, self._left)
            self._left -= granted
            return granted

    @property
    def started(self) -> int:
        """Worker processes started."""
        return len(self._workers)

    # --- workers ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker processes (they load the index while the plan reaches the split)."""
        repository = self.planner.repository
        setup = {
            "protocol": PROTOCOL,
            **sharing.repository_setup(repository, self.reopen),
            "owners": self.planner.owners,
            "options": self.planner.options,
            "workers": self.workers,
            "entry_cap": self.cap,
        }
        self._launch(
            self.count,
            "snapkeep.engine.restore.child",
            setup,
            lambda worker: socket.send_fds(worker.sock, [b"F"], [self.target_fd]),
        )

    def _serve_more(self, worker: sharing.WorkerLink, message: tuple[Any, ...]) -> None:
        if message[0] == "lease":
            worker.send(("lease", self.lease()))

    def _lost(self, worker: sharing.WorkerLink) -> str:
        shown = ", ".join(os.fsdecode(task.shown) for task in worker.given[-3:])
        return (
            f"the {len(worker.given)} folder(s) given to it may be incomplete (the last: {shown or 'none'})"
        )

    def _deal(self, worker: sharing.WorkerLink) -> None:
        """Give ``worker`` the last task nobody took (once the plan has made them all), or
        tell it that none is left."""
        with self._lock:
            while not self._sealed and self.error is None:
                self._lock.wait()
            task = None
            if self.error is None and self._front < self._back:
                self._back -= 1
                task = self.planner.tasks[self._back]
        with worker.send_lock:
            if task is None:
                worker.connection.send(("done",))
                return
            worker.given.append(task)
            worker.connection.send(("task", task.subtree, task.parts, task.shown, task.below, task.made))
            with self.planner.folders.open(task.folder) as fd:
                socket.send_fds(worker.sock, [b"F"], [fd])

    # --- the planning process's own share -----------------------------------------------------------

    def seal(self) -> None:
        """Every task is known (the plan above the split depth is over): workers may take them."""
        with self._lock:
            self._back = len(self.planner.tasks)
            self._sealed = True
            self._lock.notify_all()

    def take(self) -> SplitTask | None:
        """The next task from the front, or ``None`` when none is left. Raises a worker's error."""
        with self._lock:
            if self.error is not None:
                raise self.error
            if self._front >= self._back:
                return None
            self._front += 1
            return self.planner.tasks[self._front - 1]

    def finish(self) -> None:
        """Wait for every worker's result and merge it into the plan's. Raises a worker's error."""
        for worker in self._workers:
            assert worker.reader is not None
            worker.reader.join()
        if self.error is not None:
            raise self.error
        for worker in self._workers:
            if worker.result is not None:
                self._merge(worker.result)
        self.planner.result.processes = 1 + sum(not worker.dropped for worker in self._workers)

    def close(self) -> None:
        """Stop what still runs (after an error) and release the workers."""
        with self._lock:
            self._sealed = True
            self._lock.notify_all()
        for worker in self._workers:
            if worker.result is None:
                worker.kill()
            worker.close()

    def _merge(self, result: dict[str, Any]) -> None:
        planner = self.planner
        mine = planner.result
        mine.files += result["files"]
        mine.dirs += result["dirs"]
        mine.others += result["others"]
        mine.bytes += result["bytes"]
        mine.failures.extend(result["failures"])
        mine.warnings.extend(result["warnings"])
        changes = mine.changes
        for action, count in result["counts"].items():
            changes.counts[action] = changes.counts.get(action, 0) + count
        for action, shown in result["entries"]:
            if len(changes.entries) < changes.limit:
                changes.entries.append((action, shown))
            else:
                changes.omitted += 1
        changes.omitted += result["omitted"]
        folders = planner.folders
        for group, (parts, name, shown, failed, kept, size) in result["firsts"].items():
            folder = folders.add_path(parts)
            if group in planner.hardlink_first:
                if not kept:  # written first elsewhere too: one copy stays, this name links to it
                    planner.links.append((folder, name, shown, group))
                    if not failed:  # counted as written by the worker; counted again when linked
                        mine.files -= 1
                        mine.bytes -= size
                # an existing file the policy kept stays as it is, as in one process
            elif failed:
                planner.hardlink_first[group] = FileJob(
                    folder, name, shown, Node(name, FILE), 0, None, failed=True
                )
            else:
                planner.hardlink_first[group] = (folder, name)
        for parts, name, shown, group in result["links"]:
            planner.links.append((folders.add_path(parts), name, shown, group))
        for parts, shown, node in result["folders"]:  # folders holding links: metadata after them
            planner.folder_nodes.append((folders.add_path(parts), shown, node))


# --- the worker's side (``restore.child``) ------------------------------------------------------------


def run_worker(fd: int) -> int:
    """A worker process's life: set up, restore the tasks it is given, report. Exit status."""
    from concurrent.futures import ThreadPoolExecutor

    from snapkeep.engine.fs.safe_target import Folders, descriptor_budget
    from snapkeep.engine.restore import _TREE_READERS

    sharing.die_with_parent()
    sock = socket.socket(fileno=fd)
    connection = Connection(os.dup(fd))
    send_lock = threading.Lock()
    closing: list[Store] = []

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            connection.send(message)

    try:
        _, setup = connection.recv()
        _, (root_fd,), _, _ = socket.recv_fds(sock, 1, 1)
        if setup.get("protocol") != PROTOCOL:
            raise RepositoryError(f"restore worker speaks protocol {PROTOCOL}, not {setup.get('protocol')}")
        repository = sharing.open_repository(setup)  # its retries are not counted above
        closing.append(repository.store)
        progress = sharing.WorkerProgress(send)
        planner = RestorePlanner(repository, progress, setup["owners"], setup["options"])
        planner.folders = Folders(root_fd, descriptor_budget())
        planner.shared(local=getattr(setup["store"], "kind", "") == "local")
        ways = max(1, setup["workers"])
        pool = ThreadPoolExecutor(max_workers=ways, thread_name_prefix="snapkeep-restore")
        tree_pool = ThreadPoolExecutor(max_workers=_TREE_READERS, thread_name_prefix="snapkeep-trees")
        try:
            planner.start(pool, tree_pool, ways, None)
            if setup["entry_cap"] is not None:

                def lease() -> int:
                    send(("lease",))
                    answer = connection.recv()
                    return int(answer[1])

                planner.entry_cap, planner.entry_limit, planner.lease = setup["entry_cap"], 0, lease
            while True:
                send(("ready",))
                message = connection.recv()
                if message[0] == "done":
                    break
                _, subtree, parts, shown, below, made = message
                _, (task_fd,), _, _ = socket.recv_fds(sock, 1, 1)
                folder = planner.folders.add(task_fd, parts)
                planner.made.append(made)
                with planner.folders.open(folder) as opened:
                    planner.inherits_group.append(bool(os.fstat(opened).st_mode & stat.S_ISGID))
                planner.plan(subtree, folder, parts, shown, below)
            planner.write_contents()
            report = _report(planner)
            planner.apply_folder_metadata(pool, ways)
        finally:
            tree_pool.shutdown(wait=True, cancel_futures=True)
            pool.shutdown(wait=True, cancel_futures=True)
        progress.flush()
        send(("result", report))
        return 0
    except BaseException as error:  # noqa: BLE001 (reported to the planning process, which raises it)
        with contextlib.suppress(Exception):
            send(sharing.error_message(error))
        return 1
    finally:
        for store in closing:
            with contextlib.suppress(Exception):
                store.close()


def _report(planner: RestorePlanner) -> dict[str, Any]:
    """What a worker did, for ``Splitter._merge``. Its hard-link groups are left to the planning
    process, and so are the metadata of the folders that hold their members (taken out of the
    worker's own folder list, which it applies itself)."""
    folders = planner.folders
    result = planner.result
    # group -> (folder, name, path shown, failed, kept: an existing file the policy left alone,
    # size counted in the result); a first name with no content (empty file, kept) is a pair
    firsts: dict[str, tuple[list[bytes], bytes, str, bool, bool, int]] = {}
    holding: set[int] = set()
    for group, first in planner.hardlink_first.items():
        if isinstance(first, FileJob):
            parts, name = folders.parts[first.folder], first.name
            firsts[group] = (parts, name, first.display, first.failed, False, first.node.size)
            holding.add(first.folder)
        else:
            firsts[group] = (folders.parts[first[0]], first[1], "", False, group in planner.kept_groups, 0)
            holding.add(first[0])
    links = []
    for folder, name, shown, group in planner.links:
        links.append((folders.parts[folder], name, shown, group))
        holding.add(folder)
    kept = [entry for entry in planner.folder_nodes if entry[0] not in holding]
    deferred = [
        (folders.parts[folder], shown, node)
        for folder, shown, node in planner.folder_nodes
        if folder in holding
    ]
    planner.folder_nodes = kept
    return {
        "files": result.files,
        "dirs": result.dirs,
        "others": result.others,
        "bytes": result.bytes,
        "failures": result.failures,
        "warnings": result.warnings,
        "counts": result.changes.counts,
        "entries": result.changes.entries,
        "omitted": result.changes.omitted,
        "firsts": firsts,
        "links": links,
        "folders": deferred,
    }
