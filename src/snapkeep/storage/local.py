"""A store in a local folder (a mounted disk, NFS, anything with POSIX file semantics).

Object ``a/b/c`` is the file ``<root>/a/b/c``. A write goes to a temporary dot-name in the target
folder (``.tmp-<random>``), is fsynced, renamed over the final name (atomic on POSIX), and then the
folder is fsynced so the rename itself survives a crash. Temporary files a crash leaves behind are
never listed (dot names are not valid object names) and ``cleanup_temporary`` removes old ones.

Every ``OSError`` is translated at this edge (see ``_translate``): nothing foreign escapes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat as stat_module
from collections.abc import Iterable, Iterator
from pathlib import Path

from snapkeep.clock import SYSTEM, Clock
from snapkeep.errors import (
    ObjectNotFoundError,
    PermissionDeniedError,
    StorageError,
    StorageFullError,
    TransientStorageError,
)
from snapkeep.storage.base import (
    ObjectInfo,
    StagedObject,
    Store,
    StoreInfo,
    validate_name,
    validate_prefix,
    validate_range,
)

TEMPORARY_PREFIX = ".tmp-"
_READ_BLOCK = 4 * 1024 * 1024
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}
_TRANSIENT = {errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE, errno.EBUSY, errno.ENOLCK}


def _translate(error: OSError, operation: str, name: str, *, missing_is_not_found: bool) -> StorageError:
    """Turn an ``OSError`` into the matching ``StorageError`` subclass, naming the object."""
    code = error.errno
    detail = f"{operation} {name!r}: {error.strerror or error}"
    if missing_is_not_found and code in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
        return ObjectNotFoundError(name=name)
    if code in _FULL:
        return StorageFullError(f"no space left on the destination: {detail}")
    if code in _DENIED:
        return PermissionDeniedError(f"permission denied: {detail}")
    if code in _TRANSIENT:
        return TransientStorageError(f"temporary failure: {detail}")
    return StorageError(f"local storage failed: {detail}")


def _write_all(descriptor: int, data: bytes | bytearray | memoryview) -> None:
    """``os.write`` until every byte is written (writes may be partial)."""
    view = memoryview(data).cast("B")
    while view:
        written = os.write(descriptor, view)
        view = view[written:]


def _fsync_folder(folder: Path) -> None:
    """Make a rename or a new entry in ``folder`` durable."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class LocalStore(Store):
    """Objects as files under ``path``. A write is never tried again (``replays_writes``).

    ``create`` makes the folder (and its parents) when missing; otherwise a missing folder raises
    ``StorageError``. ``sync=False`` skips the fsyncs (only for throwaway data such as tests).
    """

    replays_writes = False

    def __init__(
        self, path: str | os.PathLike[str], *, create: bool = True, sync: bool = True, clock: Clock = SYSTEM
    ):
        self.root = Path(path).absolute()
        self.location = str(self.root)
        self._sync = sync
        self._clock = clock
        try:
            if create:
                self.root.mkdir(parents=True, exist_ok=True)
            elif not self.root.is_dir():
                raise StorageError(f"local store {self.location!r}: folder does not exist")
        except OSError as error:
            raise _translate(error, "create folder", self.location, missing_is_not_found=False) from error

    # --- writing ---------------------------------------------------------------------------------

    def store(self, name: str, data: bytes) -> None:
        """Write ``data`` atomically and durably. Raises ``StorageError`` subclasses."""
        self.store_stream(name, (data,))

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        """Stream ``chunks`` into a temporary file, then publish it under ``name`` atomically.

        An exception raised by ``chunks`` itself propagates unchanged; the temporary file is
        removed and no object appears. Raises ``StorageError`` subclasses for disk failures.
        """
        validate_name(name)
        target = self.root / name
        folder = target.parent
        temporary = folder / f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}"
        descriptor = self._open_temporary(name, temporary)
        size = 0
        published = False
        try:
            try:
                for chunk in chunks:
                    _write_all(descriptor, chunk)
                    size += len(chunk)
                if self._sync:
                    os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.replace(temporary, target)
            published = True
            if self._sync:
                _fsync_folder(folder)
        except OSError as error:
            raise _translate(error, "write", name, missing_is_not_found=False) from error
        finally:
            if not published:
                temporary.unlink(missing_ok=True)
        return size

    def stage(self) -> StagedObject:
        """A temporary file at the root (``.tmp-<random>``, 0600) that ``publish`` fsyncs and renames
        to its name. Raises ``StorageError``."""
        temporary = self.root / f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}"
        return _StagedFile(self, temporary, self._open_temporary("(staged object)", temporary))

    def _publish(self, temporary: Path, name: str) -> None:
        """Rename the complete, closed ``temporary`` file to ``name`` and make the rename durable."""
        validate_name(name)
        target = self.root / name
        try:
            try:
                os.replace(temporary, target)
            except FileNotFoundError:
                if not temporary.exists():
                    raise
                self._make_folders(target.parent)
                os.replace(temporary, target)
            if self._sync:
                _fsync_folder(target.parent)
        except OSError as error:
            raise _translate(error, "write", name, missing_is_not_found=False) from error

    def _open_temporary(self, name: str, temporary: Path) -> int:
        """Create the temporary file, making missing folders (durably) on the first failure."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            try:
                return os.open(temporary, flags, 0o600)
            except FileNotFoundError:
                self._make_folders(temporary.parent)
                return os.open(temporary, flags, 0o600)
        except OSError as error:
            raise _translate(error, "write", name, missing_is_not_found=False) from error

    def _make_folders(self, folder: Path) -> None:
        """Create ``folder`` and missing parents up to the root, fsyncing each parent."""
        missing: list[Path] = []
        current = folder
        while current != self.root and not current.is_dir():
            missing.append(current)
            current = current.parent
        for path in reversed(missing):
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:
                if not path.is_dir():
                    raise
                continue
            if self._sync:
                _fsync_folder(path.parent)

    # --- reading ---------------------------------------------------------------------------------

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read a byte range with ``os.pread``. Raises ``ObjectNotFoundError``, ``StorageError``."""
        validate_name(name)
        validate_range(offset, length)
        try:
            descriptor = os.open(self.root / name, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            raise _translate(error, "read", name, missing_is_not_found=True) from error
        try:
            size = os.fstat(descriptor).st_size
            end = size if length is None else min(size, offset + length)
            parts: list[bytes] = []
            position = offset
            while position < end:
                part = os.pread(descriptor, min(end - position, _READ_BLOCK), position)
                if not part:
                    break
                parts.append(part)
                position += len(part)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        except OSError as error:
            raise _translate(error, "read", name, missing_is_not_found=True) from error
        finally:
            os.close(descriptor)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Walk the folders below ``prefix`` lazily, skipping dot names (temporary files)."""
        validate_prefix(prefix)
        head, _, _ = prefix.rpartition("/")
        start = self.root / head if head else self.root
        return self._walk(start, f"{head}/" if head else "", prefix)

    def _walk(self, folder: Path, relative: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as error:
            raise _translate(error, "list", relative or "/", missing_is_not_found=False) from error
        for entry in entries:
            if entry.name.startswith("."):
                continue
            name = relative + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if name.startswith(prefix) or prefix.startswith(name + "/"):
                        yield from self._walk(Path(entry.path), name + "/", prefix)
                elif name.startswith(prefix) and entry.is_file(follow_symlinks=False):
                    yield ObjectInfo(name, entry.stat(follow_symlinks=False).st_size)
            except FileNotFoundError:
                continue  # deleted while we walked: it is no longer stored
            except OSError as error:
                raise _translate(error, "list", name, missing_is_not_found=False) from error

    def stat(self, name: str) -> ObjectInfo:
        """Name and size; a folder is not an object. Raises ``ObjectNotFoundError``."""
        validate_name(name)
        try:
            result = os.stat(self.root / name, follow_symlinks=False)
        except OSError as error:
            raise _translate(error, "stat", name, missing_is_not_found=True) from error
        if not stat_module.S_ISREG(result.st_mode):
            raise ObjectNotFoundError(name=name)
        return ObjectInfo(name, result.st_size)

    # --- removing and housekeeping ---------------------------------------------------------------

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        """Unlink the file. Raises ``ObjectNotFoundError`` unless ``missing_ok``."""
        validate_name(name)
        try:
            os.unlink(self.root / name)
        except OSError as error:
            translated = _translate(error, "delete", name, missing_is_not_found=True)
            if isinstance(translated, ObjectNotFoundError) and missing_ok:
                return
            raise translated from error
        if self._sync:
            try:
                _fsync_folder((self.root / name).parent)
            except OSError as error:
                raise _translate(error, "delete", name, missing_is_not_found=False) from error

    def info(self) -> StoreInfo:
        """Usage (sum of object sizes), free and total bytes of the file system."""
        try:
            vfs = os.statvfs(self.root)
        except OSError as error:
            raise _translate(error, "statvfs", self.location, missing_is_not_found=False) from error
        usage = sum(item.size for item in self.list())
        return StoreInfo(usage=usage, free=vfs.f_bavail * vfs.f_frsize, total=vfs.f_blocks * vfs.f_frsize)

    def temporary_files(self) -> Iterator[Path]:
        """Every temporary file below the root (left by writes in flight or by a crash)."""
        for folder, _, files in os.walk(self.root):
            for file_name in files:
                if file_name.startswith(TEMPORARY_PREFIX):
                    yield Path(folder) / file_name

    def cleanup_temporary(self, older_than: float = 24 * 3600) -> int:
        """Remove temporary files not modified for ``older_than`` seconds; return how many.

        A write in flight keeps touching its file, so a generous age never removes live ones.
        """
        limit = self._clock.time() - older_than
        removed = 0
        for path in self.temporary_files():
            try:
                if path.stat().st_mtime <= limit:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
            except OSError as error:
                raise _translate(error, "remove temporary", str(path), missing_is_not_found=False) from error
        return removed


class _StagedFile:
    """``LocalStore.stage``: a temporary file written as it comes, renamed when published."""

    def __init__(self, store: LocalStore, temporary: Path, descriptor: int) -> None:
        self._store = store
        self._temporary = temporary
        self._descriptor: int | None = descriptor
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._descriptor is None:
            raise StorageError(f"staged object {self._temporary.name}: written after it was closed")
        try:
            _write_all(self._descriptor, data)
        except OSError as error:
            raise _translate(error, "write", self._temporary.name, missing_is_not_found=False) from error
        self.size += len(data)

    def publish(self, name: str) -> int:
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is None:
            raise StorageError(f"staged object {self._temporary.name}: published after it was closed")
        try:
            try:
                if self._store._sync:
                    os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except OSError as error:
            self._temporary.unlink(missing_ok=True)
            raise _translate(error, "write", name, missing_is_not_found=False) from error
        try:
            self._store._publish(self._temporary, name)
        except BaseException:
            self._temporary.unlink(missing_ok=True)
            raise
        return self.size

    def discard(self) -> None:
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            with contextlib.suppress(OSError):
                os.close(descriptor)
        with contextlib.suppress(OSError):
            self._temporary.unlink(missing_ok=True)
