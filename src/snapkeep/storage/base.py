"""The byte-store interface every destination implements.

A store is a flat namespace of immutable-by-convention objects addressed by names such as
``data/ab/ab12...`` or ``snapshots/5f...``. Stores know nothing of backups.

Guarantees every backend gives (the contract suite in ``tests/contract/store_contract.py`` checks them):

* ``store`` and ``store_stream`` are atomic: a reader sees the old object or the whole new one,
  never a part. Replacing an existing object is allowed and atomic too.
* When ``store``/``store_stream`` return, the object is durable (local: fsync of file and folder).
* ``load(name, offset, length)`` returns exactly the requested byte range; a range past the end is
  cut at the end (``length=None`` reads to the end). A missing object raises ``ObjectNotFoundError``.
* ``list(prefix)`` yields every stored object whose name starts with ``prefix``, in no promised
  order, each once; it never yields temporary or partial objects.
* ``delete`` of a missing object raises ``ObjectNotFoundError`` unless ``missing_ok=True``.
* Names are validated in one place (``validate_name``): ``/``-separated segments of
  ``[A-Za-z0-9._-]``, no empty, ``.`` or ``..`` segment, no segment starting with ``.`` (backends
  keep their temporary files under dot names), at most 1024 characters. A bad name raises
  ``InvalidNameError``.
* Errors are snapkeep ``StorageError`` subclasses; ``TransientStorageError`` marks errors a retry
  may cure. No foreign exception (OSError, paramiko, botocore) escapes a backend.
* Backends are safe to call from several threads at once.
"""

from __future__ import annotations

import abc
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol, overload

from snapkeep.errors import InvalidNameError, ObjectNotFoundError

MAX_NAME_LENGTH = 1024
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object: its name and size in bytes."""

    name: str
    size: int


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """Space on the destination, in bytes; ``None`` where the backend cannot tell."""

    usage: int | None
    free: int | None
    total: int | None


def validate_name(name: str) -> str:
    """Return ``name`` when it is a valid object name; raise ``InvalidNameError`` otherwise."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError(name=name, reason="empty name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(name=name, reason=f"longer than {MAX_NAME_LENGTH} characters")
    for segment in name.split("/"):
        if not _SEGMENT.match(segment):
            raise InvalidNameError(
                name=name, reason=f"segment {segment!r} must be [A-Za-z0-9._-]+ and not start with '.'"
            )
    return name


def validate_prefix(prefix: str) -> str:
    """A list prefix: empty, or a name possibly ending in ``/``."""
    if prefix == "":
        return prefix
    validate_name(prefix.rstrip("/") or "x")
    return prefix


def validate_range(offset: int, length: int | None) -> None:
    """Reject a negative ``offset`` or ``length`` with ``ValueError`` (a caller's bug)."""
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    if length is not None and length < 0:
        raise ValueError(f"length must be >= 0 or None, got {length}")


class FilePieces(Sequence[bytes]):
    """The first ``size`` bytes of an open file as a sequence of ``PIECE``-byte pieces, read with
    ``os.pread`` each time one is asked for: ``store_stream`` may go through it twice (a write tried
    again) without the content in memory (``Store.store_file``)."""

    PIECE = 1024 * 1024

    def __init__(self, descriptor: int, size: int) -> None:
        self.descriptor = descriptor
        self.size = size

    def __len__(self) -> int:
        return -(-self.size // self.PIECE)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(index, slice):
            return [self[number] for number in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        start = index * self.PIECE
        wanted = min(self.PIECE, self.size - start)
        piece = os.pread(self.descriptor, wanted, start)
        if len(piece) != wanted:
            raise OSError(f"the file gave {len(piece)} of {wanted} bytes at {start}")
        return piece


class StagedObject(Protocol):
    """An object being written piece by piece before it has a name (``Store.stage``). Until
    ``publish`` it is invisible: never listed, removed by ``discard`` or, after a crash, by the
    store's ``cleanup_temporary``."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``. Raises ``StorageError``."""

    def publish(self, name: str) -> int:
        """Name the object ``name`` (atomically and durably) and return its size; it is then
        closed. Raises ``StorageError`` (the object is then discarded)."""

    def discard(self) -> None:
        """Drop the object (nothing is published). Never raises."""


class Store(abc.ABC):
    """A destination as a dumb byte store. See the module docstring for the guarantees."""

    #: A human-readable location (path or URL without secrets), for messages.
    location: str = ""
    #: Whether ``store_stream`` may iterate its chunks more than once (a write tried again after a
    #: dropped connection, when they are a sequence). A store that never does lets a caller hand
    #: over chunks it releases as they are written (``repository.packer``: a pack's memory goes as
    #: it is written instead of after).
    replays_writes: bool = True
    #: Whether a backup should write its open packs into a temporary file as they fill and store
    #: each from there (``store_file``) instead of holding them in memory: a remote store, whose
    #: uploads take long enough for several packs to wait (``repository.packer``).
    spools_packs: bool = False
    #: The ``storage.registry`` parameters this store was opened from (``open_store`` sets them):
    #: another process opens the same place from them (``engine.restore.processes``).
    params: object = None

    @abc.abstractmethod
    def store(self, name: str, data: bytes) -> None:
        """Write ``data`` under ``name`` atomically and durably."""

    def store_file(self, name: str, file: BinaryIO, size: int) -> int:
        """Write the first ``size`` bytes of ``file`` (an open file, read from its start, never
        moved) under ``name``, as ``store_stream``; return the size. Backends that can send a file
        as it is read override this (S3: one PUT with the file as its body); this default streams
        it in 1 MiB pieces (``FilePieces``)."""
        return self.store_stream(name, FilePieces(file.fileno(), size))

    def stage(self) -> StagedObject | None:
        """A new object written piece by piece and named once complete (``StagedObject.publish``:
        atomically and durably, as ``store``), or ``None`` when this store takes objects only whole
        (``store``, ``store_stream``). A local folder stages: a backup then writes each pack into it
        as the pack fills instead of holding the pack in memory (``repository.packer``). Raises
        ``StorageError``."""
        return None

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        """Write the concatenation of ``chunks`` under ``name`` atomically; return its size.

        Backends override this to avoid holding the whole object in memory (local: temporary
        file then rename; S3: multipart upload). This default joins the chunks.
        """
        data = b"".join(chunks)
        self.store(name, data)
        return len(data)

    @abc.abstractmethod
    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read ``length`` bytes (``None``: to the end) of ``name`` from ``offset``."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every object whose name starts with ``prefix``."""

    @abc.abstractmethod
    def stat(self, name: str) -> ObjectInfo:
        """Name and size of one object; ``ObjectNotFoundError`` when missing."""

    @abc.abstractmethod
    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        """Remove ``name``."""

    def exists(self, name: str) -> bool:
        """Whether ``name`` is stored."""
        try:
            self.stat(name)
        except ObjectNotFoundError:
            return False
        return True

    def info(self) -> StoreInfo:
        """Usage, free and total bytes where the backend can tell."""
        return StoreInfo(usage=None, free=None, total=None)

    def cleanup_temporary(self) -> int:
        """Remove what interrupted writes left behind, where the backend keeps such leftovers (a
        local folder's temporary files); return how many. Optional hook: most stores have none."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release connections. The store must not be used afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
