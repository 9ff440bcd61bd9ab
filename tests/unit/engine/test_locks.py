"""Shared and exclusive repository locks with heartbeat and stale-lock breaking."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from snapkeep.clock import FrozenClock
from snapkeep.engine.repository.locks import RepositoryLock, list_locks
from snapkeep.errors import LockError
from snapkeep.storage.memory import MemoryStore


def test_shared_locks_coexist_and_exclusive_waits_for_none() -> None:
    store = MemoryStore()
    clock = FrozenClock()
    with (
        RepositoryLock(store, exclusive=False, holder="backup A", clock=clock),
        RepositoryLock(store, exclusive=False, holder="backup B", clock=clock),
    ):
        assert len(list_locks(store)) == 2
        with pytest.raises(LockError, match=r"shared lock held by backup (A|B) \(pid \d+ on "):
            RepositoryLock(store, exclusive=True, holder="prune", clock=clock).acquire()
    assert list_locks(store) == {}
    with (
        RepositoryLock(store, exclusive=True, holder="prune", clock=clock),
        pytest.raises(LockError, match="exclusive lock held by prune"),
    ):
        RepositoryLock(store, exclusive=False, holder="backup", clock=clock).acquire()
    assert list_locks(store) == {}


def test_lock_with_an_old_heartbeat_is_broken() -> None:
    store = MemoryStore()
    clock = FrozenClock()
    old = RepositoryLock(
        store, exclusive=True, holder="crashed prune", clock=clock, timeout=60, hostname="other"
    )
    old.acquire()
    old._stop.set()  # the holder died: no more heartbeats
    clock.advance(30)
    with pytest.raises(LockError, match="crashed prune"):
        RepositoryLock(store, exclusive=False, clock=clock).acquire()
    clock.advance(31)
    fresh = RepositoryLock(store, exclusive=False, holder="backup", clock=clock)
    fresh.acquire()
    assert fresh.broken == [old.name]
    fresh.release()


def test_lock_of_a_dead_process_on_this_host_is_broken() -> None:
    store = MemoryStore()
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    dead_pid = int(child.stdout)
    lock = RepositoryLock(store, exclusive=True, holder="killed backup")
    lock.acquire()
    lock._stop.set()
    document = json.loads(store.load(lock.name or ""))
    document["pid"] = dead_pid
    store.store(lock.name or "", json.dumps(document).encode())
    with RepositoryLock(store, exclusive=True) as mine:
        assert mine.broken == [lock.name]


def test_heartbeat_refreshes_and_notices_a_broken_lock() -> None:
    store = MemoryStore()
    lock = RepositoryLock(store, exclusive=False, refresh=0.02)
    lock.acquire()
    first = json.loads(store.load(lock.name or ""))["heartbeat"]
    deadline = time.monotonic() + 5
    while json.loads(store.load(lock.name or ""))["heartbeat"] == first and time.monotonic() < deadline:
        time.sleep(0.01)
    assert json.loads(store.load(lock.name or ""))["heartbeat"] > first
    lock.check()
    store.delete(lock.name or "")
    deadline = time.monotonic() + 5
    while lock._error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(LockError, match="was removed by another process"):
        lock.check()
    lock.release()
    assert list_locks(store) == {}


def test_unreadable_lock_is_named_and_double_acquire_refused() -> None:
    store = MemoryStore()
    store.store("locks/garbage", b"{not json")
    with pytest.raises(LockError, match="locks/garbage is unreadable"):
        RepositoryLock(store, exclusive=False).acquire()
    store.delete("locks/garbage")
    lock = RepositoryLock(store, exclusive=False).acquire()
    with pytest.raises(LockError, match="already held"):
        lock.acquire()
    lock.release()
