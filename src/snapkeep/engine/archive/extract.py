"""Writing archive members into a restore target without ever leaving it.

``tarfile.extractall`` is not used. Every member path is split and checked by
``fs.safe_target.split_path`` (no absolute path, no empty, ``.`` or ``..`` segment, no NUL), and
every file operation is relative to a folder descriptor opened component by component with
``O_NOFOLLOW`` (``fs.safe_target.descend``): a symlink (from the archive or already in the target)
where a folder is expected raises ``UnsafePathError`` instead of being followed. Files are written
to a temporary dot-name, verified against the manifest's BLAKE3 hash and only then renamed into
place, so a damaged file never appears. Zero pages become holes again. Metadata is applied by
``fs.safe_target.MetadataApplier`` (owners by name, then ID; a refused owner is a warning); folder
modes and times at the end, deepest first.

What is already in the target is looked at without following it (``existing``, ``same_file``,
``parent``) so the reader can apply the overwrite policy (``fs.restore_policy``) before a member
replaces it; ``directory(..., keep_existing=True)`` leaves an existing folder's metadata alone.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterable

import blake3

from snapkeep.engine.fs.safe_target import (
    Metadata,
    MetadataApplier,
    descend,
    existing,
    read_existing,
    remove_existing,
)
from snapkeep.errors import ConflictError, IntegrityError

_HOLE_BLOCK = 4096
_ZEROS = bytes(_HOLE_BLOCK)


class SafeExtractor:
    """Creates entries below ``target``; ``owners`` restores uid/gid (root only)."""

    def __init__(self, target: str | bytes, *, owners: bool | None = None, dry_run: bool = False) -> None:
        """``dry_run``: nothing is created, the target is only looked at (it may not exist: then
        ``root`` is -1 and every entry is new)."""
        target_path = os.fsencode(target)
        self.dry_run = dry_run
        if not dry_run:
            os.makedirs(target_path, mode=0o700, exist_ok=True)
        try:
            self.root = os.open(target_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            if not dry_run:
                raise
            self.root = -1
        self._cached: tuple[tuple[bytes, ...], int] | None = None
        self._directories: list[tuple[tuple[bytes, ...], Metadata]] = []
        #: (path, message) for metadata that could not be applied (owner, extended attributes).
        self.warnings: list[tuple[str, str]] = []
        self.metadata = MetadataApplier(os.geteuid() == 0 if owners is None else owners, self._warn)

    def _warn(self, path: str, message: str) -> None:
        self.warnings.append((path, message))

    def close(self) -> None:
        """Release the descriptors (without applying directory metadata)."""
        self._drop_cache()
        if self.root >= 0:
            os.close(self.root)
            self.root = -1

    def parent(self, parts: tuple[bytes, ...]) -> int | None:
        """A descriptor of the existing folder holding ``parts`` (owned by the cache), or
        ``None`` when it does not exist as a real folder: nothing below it exists. Creates nothing."""
        folder = parts[:-1]
        if self._cached is not None and self._cached[0] == folder:
            return self._cached[1]
        if self.root < 0:
            return None
        try:
            descriptor = descend(self.root, folder)
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                return None
            raise
        self._drop_cache()
        self._cached = (folder, descriptor)
        return descriptor

    def existing(self, parts: tuple[bytes, ...]) -> os.stat_result | None:
        """What the target holds at ``parts`` (never followed), ``None`` when nothing."""
        return existing(parts[-1], self.parent(parts))

    def same_file(self, parts: tuple[bytes, ...], size: int, expected: str) -> bool:
        """Whether the target holds at ``parts`` a regular file of ``size`` bytes whose BLAKE3 is
        ``expected`` (read without following a symlink; size first, then content)."""
        folder = self.parent(parts)
        if folder is None:
            return False
        descriptor = read_existing(parts[-1], folder)
        if descriptor is None:
            return False
        try:
            if os.fstat(descriptor).st_size != size:
                return False
            hasher = blake3.blake3()
            while block := os.read(descriptor, 1024 * 1024):
                hasher.update(block)
            return hasher.hexdigest() == expected
        finally:
            os.close(descriptor)

    def _drop_cache(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def _folder(self, parts: tuple[bytes, ...], shown: str) -> int:
        """A descriptor of folder ``parts`` (created when missing); owned by the cache."""
        if self._cached is not None and self._cached[0] == parts:
            return self._cached[1]
        self._drop_cache()
        self._cached = (parts, descend(self.root, parts, create=True, shown=shown))
        return self._cached[1]

    def _clear(self, folder: int, name: bytes, shown: str) -> None:
        """Remove a non-folder entry or an empty folder at ``name`` so a new one can take its place."""
        try:
            remove_existing(name, folder, empty_folder=True)
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            raise ConflictError(f"cannot restore {shown!r}: a non-empty folder is in the way") from None

    def directory(
        self, parts: tuple[bytes, ...], metadata: Metadata | None, shown: str, *, keep_existing: bool = False
    ) -> None:
        """Make sure folder ``parts`` exists; its metadata is applied by ``finish`` (not to a
        folder that already existed when ``keep_existing``)."""
        found = self.existing(parts) if keep_existing else None
        self._folder(parts, shown)
        if metadata is not None and not (found is not None and stat.S_ISDIR(found.st_mode)):
            self._directories.append((parts, metadata))

    def file(
        self,
        parts: tuple[bytes, ...],
        chunks: Iterable[bytes],
        size: int,
        expected: str,
        metadata: Metadata,
        shown: str,
    ) -> int:
        """Write a file from ``chunks``, verify it, then publish it; returns the bytes written.

        Raises ``IntegrityError`` (nothing published) when the contents do not match ``expected``.
        """
        folder = self._folder(parts[:-1], shown)
        temporary = b".snapkeep-restore-" + secrets.token_hex(8).encode()
        descriptor = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=folder
        )
        published = False
        try:
            hasher = blake3.blake3()
            written = 0
            for chunk in chunks:
                hasher.update(chunk)
                written += len(chunk)
                _write_sparse(descriptor, chunk)
            os.ftruncate(descriptor, written)
            if written != size or hasher.hexdigest() != expected:
                raise IntegrityError(
                    what=f"archive member {shown!r}", reason="contents do not match the manifest"
                )
            self.metadata.apply(metadata, shown, fd=descriptor)
            self._clear(folder, parts[-1], shown)
            os.rename(temporary, parts[-1], src_dir_fd=folder, dst_dir_fd=folder)
            published = True
            return written
        finally:
            os.close(descriptor)
            if not published:
                os.unlink(temporary, dir_fd=folder)

    def symlink(self, parts: tuple[bytes, ...], target: str, metadata: Metadata, shown: str) -> None:
        """A symlink; its target is data and is never followed by the extractor."""
        folder = self._folder(parts[:-1], shown)
        self._clear(folder, parts[-1], shown)
        os.symlink(os.fsencode(target), parts[-1], dir_fd=folder)
        self.metadata.apply(metadata, shown, name=parts[-1], dir_fd=folder, symlink=True)

    def hardlink(self, parts: tuple[bytes, ...], existing: tuple[bytes, ...], shown: str) -> None:
        """Link ``parts`` to the already restored ``existing`` file."""
        source_folder = os.dup(self._folder(existing[:-1], shown))
        try:
            folder = self._folder(parts[:-1], shown)
            self._clear(folder, parts[-1], shown)
            os.link(
                existing[-1], parts[-1], src_dir_fd=source_folder, dst_dir_fd=folder, follow_symlinks=False
            )
        finally:
            os.close(source_folder)

    def special(
        self, parts: tuple[bytes, ...], kind: int, device: int, metadata: Metadata, shown: str
    ) -> None:
        """A fifo or a device node (``kind`` is ``stat.S_IFIFO``/``S_IFCHR``/``S_IFBLK``)."""
        folder = self._folder(parts[:-1], shown)
        self._clear(folder, parts[-1], shown)
        if kind == stat.S_IFIFO:
            os.mkfifo(parts[-1], 0o600, dir_fd=folder)
        else:
            os.mknod(parts[-1], kind | 0o600, device, dir_fd=folder)
        self.metadata.apply(metadata, shown, name=parts[-1], dir_fd=folder)

    def finish(self) -> None:
        """Apply folder owners, modes and times, deepest first; then close."""
        self._drop_cache()
        for parts, metadata in sorted(self._directories, key=lambda item: len(item[0]), reverse=True):
            shown = os.fsdecode(b"/".join(parts))
            self.metadata.apply(metadata, shown, fd=self._folder(parts, shown))
            self._drop_cache()
        self.close()


def _write_sparse(descriptor: int, chunk: bytes) -> None:
    """Write ``chunk``, seeking over zero pages so holes come back; data runs go in one write."""
    view = memoryview(chunk)
    run_start = 0
    for start in range(0, len(view), _HOLE_BLOCK):
        block = view[start : start + _HOLE_BLOCK]
        if block != _ZEROS[: len(block)]:
            continue
        _write_all(descriptor, view[run_start:start])
        os.lseek(descriptor, len(block), os.SEEK_CUR)
        run_start = start + len(block)
    _write_all(descriptor, view[run_start:])


def _write_all(descriptor: int, data: memoryview) -> None:
    while data:
        written = os.write(descriptor, data)
        data = data[written:]
