"""Retry, limit, read-only and fault-injection wrappers."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from snapkeep.clock import FrozenClock
from snapkeep.errors import (
    ObjectNotFoundError,
    ReadOnlyError,
    StorageError,
    TransientStorageError,
)
from snapkeep.storage.base import ObjectInfo, Store
from snapkeep.storage.local import LocalStore
from snapkeep.storage.memory import MemoryStore
from snapkeep.storage.wrappers import FaultyStore, LimitedStore, ReadOnlyStore, RetryingStore, StoreWrapper


class FlakyStore(StoreWrapper):
    """Fails the first ``failures`` calls of every operation with the given error."""

    def __init__(self, inner: Store, failures: int, error: type[StorageError]) -> None:
        super().__init__(inner)
        self.remaining = failures
        self.error = error
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.remaining > 0:
            self.remaining -= 1
            raise self.error("flaky")

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self._maybe_fail()
        return super().load(name, offset, length)

    def store(self, name: str, data: bytes) -> None:
        self._maybe_fail()
        super().store(name, data)

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        self._maybe_fail()
        return super().store_stream(name, chunks)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self._maybe_fail()
        return super().list(prefix)


# --- RetryingStore -----------------------------------------------------------------------------


def test_retry_succeeds_after_transient_failures() -> None:
    inner = MemoryStore()
    inner.store("config", b"data")
    flaky = FlakyStore(inner, failures=3, error=TransientStorageError)
    clock = FrozenClock()
    retries: list[tuple[str, int, float]] = []
    store = RetryingStore(
        flaky,
        attempts=5,
        base_delay=1.0,
        max_delay=3.0,
        clock=clock,
        seed=3,
        on_retry=lambda operation, attempt, error, delay: retries.append((operation, attempt, delay)),
    )
    assert store.load("config") == b"data"
    assert flaky.calls == 4
    assert [attempt for _, attempt, _ in retries] == [1, 2, 3]
    assert all(operation == "load" for operation, _, _ in retries)
    # exponential backoff with jitter in [0.5, 1.0] of 1, 2, then min(4, max_delay=3)
    for (_, attempt, delay), ceiling in zip(retries, (1.0, 2.0, 3.0), strict=True):
        assert ceiling * 0.5 <= delay <= ceiling, (attempt, delay)
    assert clock.monotonic() == pytest.approx(sum(delay for _, _, delay in retries))


def test_retry_permanent_error_fails_fast() -> None:
    flaky = FlakyStore(MemoryStore(), failures=1, error=StorageError)
    clock = FrozenClock()
    store = RetryingStore(flaky, attempts=5, clock=clock)
    with pytest.raises(StorageError, match="flaky"):
        store.store("x", b"1")
    assert flaky.calls == 1
    assert clock.monotonic() == 0.0


def test_retry_does_not_retry_missing_objects() -> None:
    flaky = FlakyStore(MemoryStore(), failures=0, error=StorageError)
    store = RetryingStore(flaky, attempts=5, clock=FrozenClock())
    with pytest.raises(ObjectNotFoundError):
        store.load("nothing")
    assert flaky.calls == 1


def test_retry_gives_up_after_attempts() -> None:
    flaky = FlakyStore(MemoryStore(), failures=100, error=TransientStorageError)
    store = RetryingStore(flaky, attempts=4, clock=FrozenClock())
    with pytest.raises(TransientStorageError):
        store.list("data/")
    assert flaky.calls == 4


def test_retry_replays_sequences_but_not_generators() -> None:
    flaky = FlakyStore(MemoryStore(), failures=1, error=TransientStorageError)
    store = RetryingStore(flaky, attempts=3, clock=FrozenClock())
    assert store.store_stream("a", [b"12", b"34"]) == 4
    assert store.load("a") == b"1234"
    flaky.remaining = 1
    with pytest.raises(TransientStorageError):
        store.store_stream("b", iter([b"12"]))


def test_retry_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryingStore(MemoryStore(), attempts=0)


# --- LimitedStore --------------------------------------------------------------------------------


WAIT = 60.0


class GatedStore(StoreWrapper):
    """Holds every ``store`` call inside until ``release`` is set; counts the calls inside."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.inside = 0
        self.peak = 0
        self.changed = threading.Condition()
        self.release = threading.Event()

    def store(self, name: str, data: bytes) -> None:
        with self.changed:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            self.changed.notify_all()
        try:
            assert self.release.wait(WAIT), "the test never released the gate"
            super().store(name, data)
        finally:
            with self.changed:
                self.inside -= 1
                self.changed.notify_all()

    def wait_inside(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.inside == count, WAIT), (self.inside, count)


def waiting_for_a_slot(thread: threading.Thread) -> bool:
    """Whether ``thread`` is blocked in ``LimitedStore.store`` taking a slot (its semaphore), not
    inside the wrapped store."""
    frame = sys._current_frames().get(thread.ident or -1)
    names = []
    while frame is not None:
        names.append(frame.f_code.co_qualname)
        frame = frame.f_back
    if "LimitedStore.store" not in names or "GatedStore.store" in names:
        return False
    return names[names.index("LimitedStore.store") - 1] == "Semaphore.acquire"


def test_limit_caps_concurrency() -> None:
    gated = GatedStore(MemoryStore())
    store = LimitedStore(gated, max_concurrent=3)
    threads = [threading.Thread(target=store.store, args=(f"o/{number}", b"x")) for number in range(6)]
    for thread in threads[:3]:
        thread.start()
    gated.wait_inside(3)  # three calls are inside the wrapped store at once
    for thread in threads[3:]:
        thread.start()
    deadline = time.monotonic() + WAIT
    while not all(waiting_for_a_slot(thread) for thread in threads[3:]):
        assert time.monotonic() < deadline, "the other calls never reached the limit"
        time.sleep(0.001)
    assert gated.inside == 3, "the fourth and later calls wait outside"
    gated.release.set()
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive()
    assert gated.peak == 3
    assert len(list(store.list("o/"))) == 6


def test_bandwidth_limit_sleeps_on_the_clock() -> None:
    clock = FrozenClock()
    store = LimitedStore(MemoryStore(), max_concurrent=2, bytes_per_second=1000, clock=clock)
    store.store("a", b"x" * 1000)  # the first second's burst
    assert clock.monotonic() == 0.0
    store.store("b", b"x" * 3000)
    assert clock.monotonic() == pytest.approx(3.0)
    store.store_stream("c", [b"x" * 500, b"x" * 500])
    assert clock.monotonic() == pytest.approx(4.0)
    store.load("b")
    assert clock.monotonic() == pytest.approx(7.0)


def test_limit_rejects_zero() -> None:
    with pytest.raises(ValueError, match="max_concurrent"):
        LimitedStore(MemoryStore(), 0)


# --- ReadOnlyStore --------------------------------------------------------------------------------


def test_read_only_refuses_writes_and_deletes() -> None:
    inner = MemoryStore()
    inner.store("config", b"c")
    store = ReadOnlyStore(inner)
    assert store.load("config") == b"c"
    assert [item.name for item in store.list()] == ["config"]
    assert store.exists("config")
    with pytest.raises(ReadOnlyError, match="cannot store snapshots/x"):
        store.store("snapshots/x", b"1")
    with pytest.raises(ReadOnlyError):
        store.store_stream("snapshots/x", iter([b"1"]))
    with pytest.raises(ReadOnlyError, match="cannot delete config"):
        store.delete("config")
    assert inner.load("config") == b"c"
    assert not inner.exists("snapshots/x")


# --- FaultyStore ------------------------------------------------------------------------------------


def test_fault_on_the_nth_call() -> None:
    store = FaultyStore(MemoryStore(), fail_on_call=3, operations={"store"})
    store.store("a", b"1")
    store.load("a")  # not watched: not counted
    store.store("b", b"2")
    with pytest.raises(StorageError, match="injected fault on call 3: store 'c'") as caught:
        store.store("c", b"3")
    assert not isinstance(caught.value, TransientStorageError)
    store.store("d", b"4")
    assert sorted(item.name for item in store.list()) == ["a", "b", "d"]
    assert (store.calls, store.failures) == (4, 1)


def test_fault_transient_flag() -> None:
    store = FaultyStore(MemoryStore(), fail_on_call=1, transient=True)
    with pytest.raises(TransientStorageError):
        store.info()


def _failure_pattern(seed: int) -> list[bool]:
    store = FaultyStore(MemoryStore(), rate=0.3, seed=seed, operations={"exists"})
    pattern = []
    for _ in range(100):
        try:
            store.exists("x")
            pattern.append(False)
        except StorageError:
            pattern.append(True)
    return pattern


def test_random_faults_are_reproducible_with_a_seed() -> None:
    first, again, other = _failure_pattern(11), _failure_pattern(11), _failure_pattern(12)
    assert first == again
    assert first != other
    assert 10 <= sum(first) <= 50


def test_faulty_rejects_unknown_operations() -> None:
    with pytest.raises(ValueError, match="unknown operations"):
        FaultyStore(MemoryStore(), operations={"upload"})


def _write(store: Store, operation: str, name: str, payload: bytes) -> None:
    if operation == "store":
        store.store(name, payload)
    else:
        store.store_stream(name, iter([payload[: len(payload) // 3], payload[len(payload) // 3 :]]))


@pytest.mark.parametrize("operation", ["store", "store_stream"])
def test_half_written_object_is_never_visible_on_local_store(tmp_path: Path, operation: str) -> None:
    local = LocalStore(tmp_path / "destination")
    local.store("data/ab/pack", b"old pack contents")
    store = FaultyStore(local, fail_on_call=1, partial_writes=True, operations={operation})
    with pytest.raises(StorageError, match="injected fault on call 1"):
        _write(store, operation, "data/ab/pack", b"N" * 100_000)
    store.fail_on_call = 2
    with pytest.raises(StorageError, match="injected fault on call 2"):
        _write(store, operation, "data/cd/new", b"Y" * 100_000)
    assert local.load("data/ab/pack") == b"old pack contents"
    assert not local.exists("data/cd/new")
    assert sorted(item.name for item in local.list()) == ["data/ab/pack"]
    assert list(local.temporary_files()) == [], "the aborted write left its temporary file"
    _write(store, operation, "data/cd/new", b"Y" * 100_000)
    assert local.load("data/cd/new") == b"Y" * 100_000
