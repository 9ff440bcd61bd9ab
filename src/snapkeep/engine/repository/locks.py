"""Repository locks: ``locks/<id>`` objects with a holder and a heartbeat.

Backups take shared locks (many may run at once), prune takes an exclusive one (alone). A lock
document is plain JSON (it must be breakable without the password)::

    {"holder": "snapkeep backup", "pid": 1234, "host": "web1", "exclusive": false,
     "created": 1767225600.0, "heartbeat": 1767225900.0, "timeout": 1800.0}

A heartbeat thread rewrites the document every ``refresh`` seconds. A lock is stale, and is
broken by whoever finds it, when its heartbeat is older than its timeout, or when it was taken on
this host by a process that no longer exists. Acquiring writes the lock, then looks again: when a
conflicting lock appeared meanwhile, it withdraws and raises ``LockError``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from dataclasses import asdict, dataclass
from typing import Any

from snapkeep.clock import SYSTEM, Clock
from snapkeep.engine.format import LOCKS_PREFIX
from snapkeep.errors import LockError, ObjectNotFoundError, SnapkeepError
from snapkeep.ids import new_id
from snapkeep.storage.base import Store

DEFAULT_TIMEOUT = 1800.0
DEFAULT_REFRESH = 300.0


@dataclass(frozen=True)
class LockInfo:
    """One lock document."""

    holder: str
    pid: int
    host: str
    exclusive: bool
    created: float
    heartbeat: float
    timeout: float

    def describe(self, now: float) -> str:
        """``exclusive lock held by X (pid N on H, heartbeat Ts ago)``."""
        kind = "exclusive" if self.exclusive else "shared"
        age = max(0.0, now - self.heartbeat)
        return f"{kind} lock held by {self.holder} (pid {self.pid} on {self.host}, heartbeat {age:.0f}s ago)"


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (one that belongs to another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


def is_stale(info: LockInfo, now: float, *, hostname: str | None = None) -> bool:
    """Whether ``info``'s heartbeat is older than its timeout or its process on this host is gone."""
    if now - info.heartbeat > info.timeout:
        return True
    return info.host == (hostname or socket.gethostname()) and not process_alive(info.pid)


def known_dead(info: LockInfo, *, hostname: str | None = None) -> bool:
    """Whether the process that held ``info`` is known to be gone (taken on this host, no such pid);
    a lock from another host, or whose heartbeat merely stopped, may belong to a paused process."""
    return info.host == (hostname or socket.gethostname()) and not process_alive(info.pid)


def read_lock(store: Store, name: str) -> LockInfo | None:
    """The lock stored as ``name``; ``None`` when it vanished. Raises ``LockError`` when unreadable."""
    try:
        data = store.load(name)
    except ObjectNotFoundError:
        return None
    try:
        document = json.loads(data)
        return LockInfo(
            holder=str(document["holder"]),
            pid=int(document["pid"]),
            host=str(document["host"]),
            exclusive=bool(document["exclusive"]),
            created=float(document["created"]),
            heartbeat=float(document["heartbeat"]),
            timeout=float(document["timeout"]),
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise LockError(
            reason=f"{name} is unreadable; delete it if no snapkeep process uses the repository"
        ) from None


def list_locks(store: Store) -> dict[str, LockInfo]:
    """Every lock in the repository by object name. Raises ``LockError`` for an unreadable one."""
    found = {}
    for entry in store.list(LOCKS_PREFIX):
        info = read_lock(store, entry.name)
        if info is not None:
            found[entry.name] = info
    return found


class RepositoryLock:
    """A shared or exclusive lock, held between ``acquire`` and ``release`` (or in a ``with``)."""

    def __init__(
        self,
        store: Store,
        *,
        exclusive: bool,
        holder: str = "snapkeep",
        clock: Clock = SYSTEM,
        timeout: float = DEFAULT_TIMEOUT,
        refresh: float | None = None,
        hostname: str | None = None,
    ) -> None:
        self.store = store
        self.exclusive = exclusive
        self.holder = holder
        self.clock = clock
        self.timeout = timeout
        self.refresh = refresh if refresh is not None else min(DEFAULT_REFRESH, timeout / 6)
        self.hostname = hostname or socket.gethostname()
        self.name: str | None = None
        self.broken: list[str] = []
        #: The documents of the locks in ``broken``, by name.
        self.broken_info: dict[str, LockInfo] = {}
        self._created = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None

    def _document(self) -> bytes:
        info = LockInfo(
            holder=self.holder,
            pid=os.getpid(),
            host=self.hostname,
            exclusive=self.exclusive,
            created=self._created,
            heartbeat=self.clock.time(),
            timeout=self.timeout,
        )
        return json.dumps(asdict(info), sort_keys=True).encode("utf-8")

    def _conflict(self) -> str | None:
        """The description of a live conflicting lock, breaking stale ones on the way."""
        now = self.clock.time()
        for name, info in list_locks(self.store).items():
            if name == self.name:
                continue
            if is_stale(info, now, hostname=self.hostname):
                self.store.delete(name, missing_ok=True)
                self.broken.append(name)
                self.broken_info[name] = info
                continue
            if self.exclusive or info.exclusive:
                return f"{info.describe(now)} ({name})"
        return None

    def acquire(self) -> RepositoryLock:
        """Take the lock and start the heartbeat; raises ``LockError`` naming the holder."""
        if self.name is not None:
            raise LockError(reason="this lock is already held")
        conflict = self._conflict()
        if conflict:
            raise LockError(reason=conflict)
        self._created = self.clock.time()
        self.name = f"{LOCKS_PREFIX}{new_id(self.clock)}"
        self.store.store(self.name, self._document())
        conflict = self._conflict()
        if conflict:
            self.store.delete(self.name, missing_ok=True)
            self.name = None
            raise LockError(reason=conflict)
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name="snapkeep-lock-heartbeat", daemon=True)
        self._thread.start()
        return self

    def refresh_now(self) -> None:
        """Rewrite the heartbeat; raises ``LockError`` when the lock was broken by someone else."""
        if self.name is None:
            raise LockError(reason="the lock is not held")
        if not self.store.exists(self.name):
            raise LockError(reason=f"our lock {self.name} was removed by another process")
        self.store.store(self.name, self._document())

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.refresh):
            try:
                self.refresh_now()
            except SnapkeepError as error:
                self._error = str(error)

    def check(self) -> None:
        """Raise ``LockError`` when the heartbeat failed (the lock may have been lost)."""
        if self._error is not None:
            raise LockError(reason=f"refreshing the lock failed: {self._error}")

    def release(self) -> None:
        """Stop the heartbeat and delete the lock. Raises ``StorageError`` from the delete."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.name is not None:
            name, self.name = self.name, None
            self.store.delete(name, missing_ok=True)

    def __enter__(self) -> RepositoryLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
