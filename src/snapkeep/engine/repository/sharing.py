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
from typing import Any, TypeVar

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


LinkT = TypeVar("LinkT", bound=WorkerLink)


def start_worker(module: str, link: type[LinkT]) -> LinkT | None:
    """Start ``python -m module FD``, its end kept as a ``link``; ``None`` when no process can be
    started (limits, memory)."""
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
    return link(process, Connection(os.dup(parent.fileno())), parent)


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
