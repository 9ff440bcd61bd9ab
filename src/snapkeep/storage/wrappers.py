"""Cross-cutting behaviour as stores that wrap a store: retry, limits, read-only, fault injection.

Each wrapper is itself a ``Store`` and keeps every guarantee of the one it wraps, so they stack:
``RetryingStore(LimitedStore(LocalStore(path), 4))``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO, TypeVar

from snapkeep.clock import SYSTEM, Clock
from snapkeep.errors import ReadOnlyError, StorageError, TransientStorageError
from snapkeep.storage.base import ObjectInfo, StagedObject, Store, StoreInfo

T = TypeVar("T")

#: Operation names used by ``FaultyStore(operations=...)`` and retry callbacks.
OPERATIONS = frozenset({"store", "store_stream", "load", "list", "stat", "delete", "exists", "info"})
WRITE_OPERATIONS = frozenset({"store", "store_stream", "delete"})


class StoreWrapper(Store):
    """Forwards every call to ``inner``; subclasses override what they change."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.location = inner.location
        self.replays_writes = inner.replays_writes
        self.spools_packs = inner.spools_packs

    def store(self, name: str, data: bytes) -> None:
        self.inner.store(name, data)

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        return self.inner.store_stream(name, chunks)

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.inner.load(name, offset, length)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def stat(self, name: str) -> ObjectInfo:
        return self.inner.stat(name)

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        self.inner.delete(name, missing_ok=missing_ok)

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)

    def info(self) -> StoreInfo:
        return self.inner.info()

    def cleanup_temporary(self) -> int:
        return self.inner.cleanup_temporary()

    def close(self) -> None:
        self.inner.close()


class RetryingStore(StoreWrapper):
    """Retries calls that fail with ``TransientStorageError``, with exponential backoff and jitter.

    The delay before retry ``n`` (1-based) is ``min(max_delay, base_delay * 2**(n-1))`` scaled by a
    random factor in ``[0.5, 1.0]``; it is slept on ``clock`` (tests pass a ``FrozenClock``). After
    ``attempts`` failed tries the last ``TransientStorageError`` is raised. Permanent errors are raised
    at once. ``store_stream`` is retried only when ``chunks`` is a sequence (a generator cannot be
    replayed); ``list`` is collected inside the retry so a failure half-way is retried whole.
    ``on_retry(operation, attempt, error, delay)`` is called before each sleep.
    """

    def __init__(
        self,
        inner: Store,
        attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        clock: Clock = SYSTEM,
        *,
        seed: int | None = None,
        on_retry: Callable[[str, int, StorageError, float], None] | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        super().__init__(inner)
        self.replays_writes = True  # a transient failure of a sequence is written again
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._clock = clock
        self._random = random.Random(seed)  # noqa: S311 - jitter between retries, not a secret
        self._random_lock = threading.Lock()
        self._on_retry = on_retry

    def stage(self) -> StagedObject | None:
        """The inner store's staged object, not retried: only a local folder stages, and its
        errors are not transient."""
        return self.inner.stage()

    def store_file(self, name: str, file: BinaryIO, size: int) -> int:
        return self._call("write", lambda: self.inner.store_file(name, file, size))

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        ceiling: float = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        with self._random_lock:
            factor = 0.5 + 0.5 * self._random.random()
        return ceiling * factor

    def _call(self, operation: str, function: Callable[[], T]) -> T:
        attempt = 1
        while True:
            try:
                return function()
            except TransientStorageError as error:
                if attempt >= self.attempts:
                    raise
                pause = self.delay(attempt)
                if self._on_retry is not None:
                    self._on_retry(operation, attempt, error, pause)
                self._clock.sleep(pause)
                attempt += 1

    def store(self, name: str, data: bytes) -> None:
        self._call("store", lambda: self.inner.store(name, data))

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        if isinstance(chunks, Sequence):
            replayable = chunks
            return self._call("store_stream", lambda: self.inner.store_stream(name, replayable))
        return self.inner.store_stream(name, chunks)

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._call("load", lambda: self.inner.load(name, offset, length))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter(self._call("list", lambda: [*self.inner.list(prefix)]))

    def stat(self, name: str) -> ObjectInfo:
        return self._call("stat", lambda: self.inner.stat(name))

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        self._call("delete", lambda: self.inner.delete(name, missing_ok=missing_ok))

    def exists(self, name: str) -> bool:
        return self._call("exists", lambda: self.inner.exists(name))

    def info(self) -> StoreInfo:
        return self._call("info", self.inner.info)


class _TokenBucket:
    """Bandwidth limit: ``rate`` bytes per second, bursts up to one second's worth."""

    def __init__(self, rate: int, clock: Clock) -> None:
        if rate <= 0:
            raise ValueError(f"bytes_per_second must be > 0, got {rate}")
        self.rate = rate
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(rate)
        self._stamp = clock.monotonic()

    def take(self, amount: int) -> None:
        """Block (on the clock) until ``amount`` bytes may pass."""
        with self._lock:
            now = self._clock.monotonic()
            self._tokens = min(float(self.rate), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= amount
            debt = -self._tokens
        if debt > 0:
            self._clock.sleep(debt / self.rate)


class LimitedStore(StoreWrapper):
    """At most ``max_concurrent`` calls reach ``inner`` at once; optionally ``bytes_per_second``.

    A ``store_stream`` holds its slot for the whole upload (it is one connection). The bandwidth
    limit counts bytes written and read, shared by all threads.
    """

    def __init__(
        self,
        inner: Store,
        max_concurrent: int,
        *,
        bytes_per_second: int | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}")
        super().__init__(inner)
        self.max_concurrent = max_concurrent
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._bucket = None if bytes_per_second is None else _TokenBucket(bytes_per_second, clock)

    @property
    def limits_bandwidth(self) -> bool:
        """Whether a bandwidth limit is set (another process opening the same place would not share it)."""
        return self._bucket is not None

    def _throttle(self, amount: int) -> None:
        if self._bucket is not None and amount:
            self._bucket.take(amount)

    def _metered(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self._throttle(len(chunk))
            yield chunk

    def store(self, name: str, data: bytes) -> None:
        with self._slots:
            self._throttle(len(data))
            self.inner.store(name, data)

    def store_file(self, name: str, file: BinaryIO, size: int) -> int:
        if self._bucket is not None:  # metered piece by piece
            return Store.store_file(self, name, file, size)
        with self._slots:
            return self.inner.store_file(name, file, size)

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        with self._slots:
            return self.inner.store_stream(name, self._metered(chunks))

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        with self._slots:
            data = self.inner.load(name, offset, length)
        self._throttle(len(data))
        return data

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._slots:
            return iter([*self.inner.list(prefix)])

    def stat(self, name: str) -> ObjectInfo:
        with self._slots:
            return self.inner.stat(name)

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        with self._slots:
            self.inner.delete(name, missing_ok=missing_ok)

    def exists(self, name: str) -> bool:
        with self._slots:
            return self.inner.exists(name)

    def info(self) -> StoreInfo:
        with self._slots:
            return self.inner.info()


class ReadOnlyStore(StoreWrapper):
    """Reads pass through; ``store``, ``store_stream`` and ``delete`` raise ``ReadOnlyError``."""

    def store(self, name: str, data: bytes) -> None:
        raise ReadOnlyError(operation="store", name=name)

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        raise ReadOnlyError(operation="store", name=name)

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        raise ReadOnlyError(operation="delete", name=name)

    def cleanup_temporary(self) -> int:
        return 0  # removes nothing: read-only


class FaultyStore(StoreWrapper):
    """Fault injection for tests.

    Counts calls of the ``operations`` it watches (default: all of ``OPERATIONS``). Call number
    ``fail_on_call`` (1-based) fails; independently each watched call fails with probability
    ``rate`` drawn from ``random.Random(seed)`` (reproducible). A failure raises
    ``TransientStorageError`` when ``transient`` else ``StorageError``. With ``partial_writes`` a
    failing ``store``/``store_stream`` first streams half the object into ``inner`` and then aborts,
    which must leave nothing visible (the atomicity guarantee). ``calls`` and ``failures`` count.
    """

    def __init__(
        self,
        inner: Store,
        *,
        fail_on_call: int | None = None,
        operations: Iterable[str] = OPERATIONS,
        rate: float = 0.0,
        seed: int = 0,
        transient: bool = False,
        partial_writes: bool = False,
    ) -> None:
        super().__init__(inner)
        watched = frozenset(operations)
        unknown = watched - OPERATIONS
        if unknown:
            raise ValueError(f"unknown operations {sorted(unknown)}; known: {sorted(OPERATIONS)}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], got {rate}")
        self.operations = watched
        self.fail_on_call = fail_on_call
        self.rate = rate
        self.transient = transient
        self.partial_writes = partial_writes
        self.calls = 0
        self.failures = 0
        self._random = random.Random(seed)  # noqa: S311 - which calls fail in fault tests, not a secret
        self._lock = threading.Lock()

    def _should_fail(self, operation: str) -> int | None:
        """Count the call; return its number when it must fail."""
        if operation not in self.operations:
            return None
        with self._lock:
            self.calls += 1
            number = self.calls
            hit = number == self.fail_on_call
            if self.rate > 0.0 and self._random.random() < self.rate:
                hit = True
            if hit:
                self.failures += 1
        return number if hit else None

    def _fault(self, operation: str, name: str, number: int) -> StorageError:
        message = f"injected fault on call {number}: {operation} {name!r}"
        return TransientStorageError(message) if self.transient else StorageError(message)

    def _check(self, operation: str, name: str) -> None:
        number = self._should_fail(operation)
        if number is not None:
            raise self._fault(operation, name, number)

    def _check_write(self, operation: str, name: str, chunks: Iterable[bytes]) -> None:
        """Fail (after half a write with ``partial_writes``), or return and leave ``chunks`` unread."""
        number = self._should_fail(operation)
        if number is None:
            return
        fault = self._fault(operation, name, number)
        if not self.partial_writes:
            raise fault
        data = b"".join(chunks)
        self.inner.store_stream(name, _half_then_raise(data, fault))
        raise fault  # only reached when the inner store swallowed the failing stream

    def store(self, name: str, data: bytes) -> None:
        self._check_write("store", name, (data,))
        self.inner.store(name, data)

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        self._check_write("store_stream", name, chunks)
        return self.inner.store_stream(name, chunks)

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self._check("load", name)
        return self.inner.load(name, offset, length)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self._check("list", prefix)
        return self.inner.list(prefix)

    def stat(self, name: str) -> ObjectInfo:
        self._check("stat", name)
        return self.inner.stat(name)

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        self._check("delete", name)
        self.inner.delete(name, missing_ok=missing_ok)

    def exists(self, name: str) -> bool:
        self._check("exists", name)
        return self.inner.exists(name)

    def info(self) -> StoreInfo:
        self._check("info", "")
        return self.inner.info()


def _half_then_raise(data: bytes, fault: StorageError) -> Iterator[bytes]:
    """Yield the first half of ``data``, then fail as a dropped connection would."""
    yield data[: len(data) // 2]
    raise fault
