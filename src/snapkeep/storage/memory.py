"""A store that keeps its objects in a dictionary: for tests and for ``memory://`` locations.

Every operation holds one lock, so the store is safe from several threads and each write is atomic
(the dictionary entry is replaced in one step). Objects are kept as immutable ``bytes``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from snapkeep.errors import ObjectNotFoundError
from snapkeep.storage.base import ObjectInfo, Store, StoreInfo, validate_name, validate_prefix, validate_range


class MemoryStore(Store):
    """An in-memory byte store honouring every guarantee of ``Store``.

    ``capacity`` (bytes), when given, is reported by ``info()`` as the total; writes beyond it are
    still accepted (the store never pretends to be full).
    """

    replays_writes = False

    def __init__(self, name: str = "memory", *, capacity: int | None = None) -> None:
        self.location = f"memory://{name}"
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._capacity = capacity

    def store(self, name: str, data: bytes) -> None:
        """Keep a copy of ``data`` under ``name``. Raises ``InvalidNameError``."""
        validate_name(name)
        frozen = bytes(data)
        with self._lock:
            self._objects[name] = frozen

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        """Join ``chunks`` outside the lock, then publish the whole object at once."""
        validate_name(name)
        data = b"".join(bytes(chunk) for chunk in chunks)
        with self._lock:
            self._objects[name] = data
        return len(data)

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Return the byte range; raises ``ObjectNotFoundError``, ``InvalidNameError``."""
        validate_name(name)
        validate_range(offset, length)
        with self._lock:
            data = self._objects.get(name)
        if data is None:
            raise ObjectNotFoundError(name=name)
        end = len(data) if length is None else offset + length
        return data[offset:end]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield a snapshot of the matching objects, taken when called."""
        validate_prefix(prefix)
        with self._lock:
            found = [
                ObjectInfo(name, len(data)) for name, data in self._objects.items() if name.startswith(prefix)
            ]
        return iter(found)

    def stat(self, name: str) -> ObjectInfo:
        """Name and size; raises ``ObjectNotFoundError``."""
        validate_name(name)
        with self._lock:
            data = self._objects.get(name)
        if data is None:
            raise ObjectNotFoundError(name=name)
        return ObjectInfo(name, len(data))

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        """Remove ``name``; raises ``ObjectNotFoundError`` unless ``missing_ok``."""
        validate_name(name)
        with self._lock:
            removed = self._objects.pop(name, None)
        if removed is None and not missing_ok:
            raise ObjectNotFoundError(name=name)

    def info(self) -> StoreInfo:
        """Usage is the sum of object sizes; free/total come from ``capacity`` when set."""
        with self._lock:
            usage = sum(len(data) for data in self._objects.values())
        if self._capacity is None:
            return StoreInfo(usage=usage, free=None, total=None)
        return StoreInfo(usage=usage, free=max(self._capacity - usage, 0), total=self._capacity)

    def clear(self) -> None:
        """Forget every object (tests reuse named stores)."""
        with self._lock:
            self._objects.clear()
