"""What a backup or a restore shared among processes needs on both sides (``backup.processes``,
``restore.processes``): which stores a worker process can open again, starting a worker, opening
the repository in it, its progress and its errors on the way back.

A worker is ``sys.executable -m <module> FD``: FD is its end of a socket pair, over which it gets
its setup (the store's parameters, the repository's configuration and master key: nothing is
written anywhere) and speaks ``multiprocessing.connection`` messages with the process that
started it. Both ends are the same installed snapkeep (``PROTOCOL`` in the setup guards an
upgrade while the service runs).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from snapkeep import errors
from snapkeep.clock import SYSTEM
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.errors import RepositoryError, SnapkeepError
from snapkeep.storage.base import Store
from snapkeep.storage.local import LocalStore
from snapkeep.storage.registry import LocalParams, StoreParams, open_store
from snapkeep.storage.wrappers import LimitedStore, RetryingStore

__all__ = [
    "PROGRESS_INTERVAL",
    "Reopen",
    "WorkerGroup",
    "WorkerLink",
    "WorkerProgress",
    "die_with_parent",
    "open_repository",
    "plain_fields",
    "rebuild_error",
    "reopenable",
    "start_worker",
]

#: How often a worker reports its progress.
PROGRESS_INTERVAL = 0.1
#: Backends a worker opens again from their parameters: each worker has its own connection (SFTP:
#: an SSH session; S3: a client). FTP servers often allow few sessions per user; not shared.
_SHARED_KINDS = frozenset({"local", "sftp", "s3"})

#: A store's backend parameters and the retry and concurrency wrappers around it (outermost first).
Reopen = tuple[object, list[tuple[str, float, float, float]]]


def reopenable(store: Store) -> Reopen | None:
    """How a worker opens ``store`` again, or ``None`` when it cannot (a store built without
    ``storage.registry``, a bandwidth limit the processes would each get, a wrapper that counts or
    alters what is read)."""
    chain: list[tuple[str, float, float, float]] = []
    while True:
        if type(store) is RetryingStore:
            chain.append(("retry", store.attempts, store.base_delay, store.max_delay))
            store = store.inner
        elif type(store) is LimitedStore and not store.limits_bandwidth:
            chain.append(("limit", store.max_concurrent, 0.0, 0.0))
            store = store.inner
        else:
            break
    params = store.params
    if params is None and type(store) is LocalStore:
        params = LocalParams(path=store.location, create=False)
    if params is None or getattr(params, "kind", "") not in _SHARED_KINDS:
        return None
    return params, chain


#: Most processes a backup or a restore is shared by.
MAX_PROCESSES = 4
#: Stores a backup or a restore is shared for without being asked: a local folder and S3 (SFTP:
#: each worker would add its own ``ssh`` client, and one process is within its bounds; measured in
#: docs/engine.md, "Issue 12, seventh round").
SHARED_BY_DEFAULT = frozenset({"local", "s3"})


def process_count(store: Store, asked: int | None, variable: str) -> int:
    """How many processes share a backup or a restore with ``store``: ``asked`` (at most
    ``MAX_PROCESSES``) when a worker can open the same store itself (``reopenable``), else 1.
    Without ``asked``: the environment ``variable`` (1 never shares); else one per core for the
    stores in ``SHARED_BY_DEFAULT``, 1 for the others."""
    found = reopenable(store)
    if found is None:
        return 1
    if asked is not None:
        return max(1, min(MAX_PROCESSES, asked))
    wanted = os.environ.get(variable, "")
    if wanted.isdigit() and int(wanted) >= 1:
        return min(MAX_PROCESSES, int(wanted))
    if getattr(found[0], "kind", "") not in SHARED_BY_DEFAULT:
        return 1
    return max(1, min(MAX_PROCESSES, os.cpu_count() or 1))


def is_local(reopen: Reopen) -> bool:
    """Whether the reopened store is a local folder."""
    return getattr(reopen[0], "kind", "") == "local"


def reopen_store(params: StoreParams, chain: list[tuple[str, float, float, float]]) -> Store:
    """The store a worker uses: ``params`` opened, wrapped as its starter's was."""
    store = open_store(params)
    for kind, first, second, third in reversed(chain):
        if kind == "retry":
            store = RetryingStore(store, int(first), second, third)
        else:
            store = LimitedStore(store, int(first))
    return store


def repository_setup(repository: Repository, reopen: Reopen) -> dict[str, Any]:
    """The part of a worker's setup that opens ``repository`` again (``open_repository``)."""
    return {
        "store": reopen[0],
        "wrappers": reopen[1],
        "config": repository.config.to_json(),
        "key": repository.master_key.to_bytes(),
    }


def open_repository(setup: dict[str, Any]) -> Repository:
    """The worker's side of ``repository_setup``: the store opened, its index loaded."""
    from snapkeep.engine.repository import keys
    from snapkeep.engine.repository.config import RepositoryConfig

    store = reopen_store(setup["store"], setup["wrappers"])
    try:
        config = RepositoryConfig.from_json(setup["config"], location=store.location)
        repository = Repository(store, config, keys.MasterKey.from_bytes(setup["key"]))
        repository.reload_index()
    except BaseException:
        store.close()
        raise
    return repository


@dataclass
class WorkerLink:
    """The starting process's end of one worker: its process, socket and messages."""

    process: subprocess.Popen[bytes]
    connection: Connection
    sock: socket.socket
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    reader: threading.Thread | None = None
    #: what it reported when its work was over
    result: dict[str, Any] | None = None
    #: the tasks it was given (for the message when it ends unexpectedly)
    given: list[Any] = field(default_factory=list)
    #: it asked for a task (its setup went well); one that fails before is dropped, not fatal
    ready: bool = False
    dropped: bool = False

    def send(self, message: tuple[Any, ...]) -> None:
        """Send one message (several threads may send)."""
        with self.send_lock:
            self.connection.send(message)

    def kill(self) -> None:
        """Stop the worker (it may have ended already)."""
        with contextlib.suppress(OSError):
            self.process.kill()

    def close(self) -> None:
        """Wait for the process and its reader thread; close the socket."""
        self.process.wait()
        if self.reader is not None:
            self.reader.join()
        self.connection.close()
        self.sock.close()


def start_worker(module: str) -> WorkerLink | None:
    """Start ``python -m module FD``; ``None`` when no process can be started (limits, memory)."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", module, str(child.fileno())],
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
    except OSError:
        parent.close()
        return None
    finally:
        child.close()
    return WorkerLink(process, Connection(os.dup(parent.fileno())), parent)


#: Seconds a worker whose messages ended may take to exit before it is killed.
_END_WAIT = 10.0


class WorkerGroup:
    """The starting process's side of a sharing (``backup.processes.SharedBackupWalk``,
    ``restore.processes.Splitter``): starts the workers, serves each one's messages on a thread of
    its own (``ready`` asks for a task, ``progress`` and ``warning`` go to ``progress``, ``result``
    ends it, ``error`` fails the whole), and keeps the first failure in ``error``. A subclass deals
    the tasks (``_deal``), says what a worker that ended unexpectedly leaves undone (``_lost``) and
    may serve more kinds of message (``_serve_more``)."""

    #: names the workers in messages: "backup worker", "restore worker"
    role = "worker"
    progress: Progress

    def _init_workers(self) -> None:
        self._lock = threading.Condition()
        self.error: BaseException | None = None
        self._workers: list[WorkerLink] = []

    def _launch(
        self,
        count: int,
        module: str,
        setup: dict[str, Any],
        after: Callable[[WorkerLink], object] | None = None,
    ) -> None:
        """Start ``count`` workers of ``module`` and send each its ``setup`` (then ``after`` it, with
        its send lock held); fewer when no process can be started."""
        for _ in range(count):
            worker = start_worker(module)
            if worker is None:  # no process to spare (limits, memory): fewer workers, same work
                break
            self._workers.append(worker)
            # A worker that ended at once is reported by its reader (end of its messages).
            with worker.send_lock, contextlib.suppress(ConnectionError):
                worker.connection.send(("setup", setup))
                if after is not None:
                    after(worker)
            worker.reader = threading.Thread(
                target=self._read, args=(worker,), name=f"snapkeep-{self.role.split()[0]}-split", daemon=True
            )
            worker.reader.start()

    def _read(self, worker: WorkerLink) -> None:
        """Serve one worker's messages until it reports its result, fails or ends."""
        try:
            while self._serve(worker, worker.connection.recv()):
                pass
        except (EOFError, ConnectionError):  # its socket closed: it ended (a send or a receive)
            if not worker.ready:
                self._drop(worker)
            else:
                self._failed(self._ended(worker))
        except BaseException as error:  # noqa: BLE001 (a stop asked for, a worker's error: raised by the caller)
            self._failed(error)

    def _serve(self, worker: WorkerLink, message: tuple[Any, ...]) -> bool:
        """Handle one message of ``worker``; whether more follow."""
        kind = message[0]
        if kind == "error" and not worker.ready:
            self._drop(worker)
            return False
        if kind == "ready":
            worker.ready = True
            self._deal(worker)
        elif forward_progress(self.progress, message):
            pass
        elif kind == "result":
            worker.result = message[1]
            return False
        elif kind == "error":
            raise rebuild_error(message[1], message[2], message[3], self.role)
        else:
            self._serve_more(worker, message)
        return True

    def _serve_more(self, worker: WorkerLink, message: tuple[Any, ...]) -> None:
        """Handle a message only this kind of sharing knows (none here)."""

    def _deal(self, worker: WorkerLink) -> None:
        """Give ``worker`` its next task, or tell it that none is left."""
        raise NotImplementedError

    def _lost(self, worker: WorkerLink) -> str:
        """What a worker that ended before its report leaves undone, for the error."""
        raise NotImplementedError

    def _drop(self, worker: WorkerLink) -> None:
        """A worker that could not set up (another snapkeep version installed meanwhile, an index it
        cannot read, no memory) took no task: the others go on without it."""
        worker.dropped = True
        worker.kill()

    def _ended(self, worker: WorkerLink) -> RepositoryError:
        try:
            code = worker.process.wait(timeout=_END_WAIT)
        except subprocess.TimeoutExpired:  # its socket closed, yet it runs: it is stopped
            worker.kill()
            code = worker.process.wait()
        return RepositoryError(
            f"{self.role} process {worker.process.pid} ended unexpectedly (exit status {code}) "
            f"before reporting its result; {self._lost(worker)}"
        )

    def _failed(self, error: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = error
            self._lock.notify_all()
        for worker in self._workers:
            worker.kill()


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to kill this worker when the thread that started it ends (a killed backup leaves
    no worker writing packs no lock covers). Does nothing where ``prctl`` is missing."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the parent was gone before the request took effect
            os._exit(1)


def rebuild_error(kind: str, message: str, fields: dict[str, Any], who: str) -> BaseException:
    """A worker's error as the same ``SnapkeepError`` class when it can be rebuilt."""
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, SnapkeepError):
        with contextlib.suppress(TypeError, KeyError, ValueError):
            return cls(message, **fields)
    return RepositoryError(f"{who}: {kind}: {message}")


def plain_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields of an error that travel back (strings, numbers and bytes only)."""
    return {key: value for key, value in fields.items() if isinstance(value, (str, int, float, bytes))}


def error_message(error: BaseException) -> tuple[str, str, str, dict[str, Any]]:
    """The ``("error", ...)`` message a worker sends for ``error`` (``rebuild_error`` reads it)."""
    fields = error.fields if isinstance(error, SnapkeepError) else {}
    return ("error", type(error).__name__, str(error), plain_fields(fields))


class WorkerProgress(Progress):
    """Sends a worker's progress to the process that started it, at most every
    ``PROGRESS_INTERVAL``: ``("progress", files, bytes, last path)`` and ``("warning", path,
    message)``."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._files = 0
        self._bytes = 0
        self._shown = ""
        self._due = SYSTEM.monotonic() + PROGRESS_INTERVAL

    def on_file(self, path: str, size: int) -> None:
        with self._lock:
            self._files += 1
            self._shown = path
        self._maybe_flush()

    def on_bytes(self, count: int) -> None:
        with self._lock:
            self._bytes += count
        self._maybe_flush()

    def on_warning(self, path: str, message: str) -> None:
        self._send(("warning", path, message))

    def _maybe_flush(self) -> None:
        if SYSTEM.monotonic() >= self._due:
            self.flush()

    def flush(self) -> None:
        """Send what was counted since the last report."""
        with self._lock:
            files, count, shown = self._files, self._bytes, self._shown
            self._files = self._bytes = 0
            self._due = SYSTEM.monotonic() + PROGRESS_INTERVAL
        if files or count:
            self._send(("progress", files, count, shown))


def forward_progress(progress: Progress, message: tuple[Any, ...]) -> bool:
    """Pass a worker's ``progress`` or ``warning`` message on to ``progress``; whether it was one."""
    if message[0] == "progress":
        _, files, count, shown = message
        if count:
            progress.on_bytes(count)
        for _ in range(files):
            progress.on_file(shown, 0)
        return True
    if message[0] == "warning":
        progress.on_warning(message[1], message[2])
        return True
    return False
