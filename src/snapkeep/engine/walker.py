"""Walking the file system for a backup: directory listings, exclude globs and entry metadata.

Paths are bytes everywhere, so names that are not valid UTF-8 survive. ``scan_directory`` lists a
directory with ``os.scandir`` in stable (byte-sorted) order; ``describe`` turns an ``lstat`` result
into a ``Node`` (owner names, symlink target, extended attributes incl. POSIX ACLs, sparse flag).
Exclude globs follow restic's rules: ``*`` and ``?`` stay inside one path component, ``**`` crosses
folders, a pattern that does not start with ``/`` matches at any depth, and an excluded folder
excludes everything in it.

Per-file problems are returned or raised as ``OSError`` for the archiver to turn into warnings.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import re
import stat
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass

from snapkeep.engine.chunker import buffer_size, chunk_into
from snapkeep.engine.format import CHUNK_MIN_SIZE
from snapkeep.engine.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SOCKET, SYMLINK, Node

_TYPES = {
    stat.S_IFREG: FILE,
    stat.S_IFDIR: DIR,
    stat.S_IFLNK: SYMLINK,
    stat.S_IFIFO: FIFO,
    stat.S_IFSOCK: SOCKET,
    stat.S_IFCHR: CHARDEV,
    stat.S_IFBLK: BLOCKDEV,
}
_NO_XATTRS = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA, errno.EPERM, errno.EACCES}
_local = threading.local()


def glob_to_regex(pattern: str) -> str:
    """Translate one exclude glob to a regular expression matched against a whole absolute path."""
    pattern = pattern.rstrip("/") or "/"
    anchored = pattern.startswith("/")
    body = pattern.lstrip("/")
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if body.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif body.startswith("**", index):
            out.append(".*")
            index += 2
        elif char == "*":
            out.append("[^/]*")
            index += 1
        elif char == "?":
            out.append("[^/]")
            index += 1
        elif char == "[":
            end = body.find("]", index + 2)
            if end < 0:
                out.append(re.escape(char))
                index += 1
                continue
            klass = body[index + 1 : end]
            if klass.startswith("!"):
                klass = "^" + klass[1:]
            out.append("[" + klass.replace("\\", "\\\\") + "]")
            index = end + 1
        else:
            out.append(re.escape(char))
            index += 1
    prefix = "/" if anchored else "(?:.*/)?"
    return prefix + "".join(out)


class Excludes:
    """A set of exclude globs compiled into one regular expression."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = [pattern for pattern in patterns if pattern]
        if self.patterns:
            joined = "|".join(f"(?:{glob_to_regex(pattern)})" for pattern in self.patterns)
            self._regex: re.Pattern[str] | None = re.compile(joined, re.DOTALL)
        else:
            self._regex = None

    def __bool__(self) -> bool:
        return self._regex is not None

    def match(self, path: bytes) -> bool:
        """Whether the absolute ``path`` is excluded."""
        if self._regex is None:
            return False
        return self._regex.fullmatch(os.fsdecode(path)) is not None


def scan_directory(path: bytes) -> list[tuple[bytes, os.stat_result]]:
    """``(name, lstat)`` of every entry of ``path``, sorted by name. Raises ``OSError`` when the
    directory cannot be listed; entries that vanish between listing and ``lstat`` are left out."""
    entries: list[tuple[bytes, os.stat_result]] = []
    with os.scandir(path) as iterator:
        for entry in iterator:
            try:
                entries.append((entry.name, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue
    entries.sort(key=_first)
    return entries


def _first(item: tuple[bytes, os.stat_result]) -> bytes:
    return item[0]


class Describer:
    """Builds nodes from ``lstat`` results, caching owner names."""

    def __init__(self) -> None:
        self._users: dict[int, str] = {}
        self._groups: dict[int, str] = {}
        self.read_xattrs = True

    def user(self, uid: int) -> str:
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = ""
            self._users[uid] = name
        return name

    def group(self, gid: int) -> str:
        name = self._groups.get(gid)
        if name is None:
            try:
                name = grp.getgrgid(gid).gr_name
            except KeyError:
                name = ""
            self._groups[gid] = name
        return name

    def describe(
        self, name: bytes, path: bytes, info: os.stat_result, xattrs: dict[str, bytes] | None = None
    ) -> Node:
        """The node for ``path`` (whose ``lstat`` is ``info``) without content or subtree.

        ``xattrs`` (known from a parent snapshot whose inode and ctime match: setting an xattr
        changes the ctime) saves the ``listxattr`` call. Raises ``OSError`` when a symlink target
        cannot be read."""
        kind = _TYPES.get(stat.S_IFMT(info.st_mode), FILE)
        node = Node(
            name=name,
            type=kind,
            mode=stat.S_IMODE(info.st_mode),
            uid=info.st_uid,
            gid=info.st_gid,
            user=self.user(info.st_uid),
            group=self.group(info.st_gid),
            mtime_ns=info.st_mtime_ns,
            ctime_ns=info.st_ctime_ns,
            size=info.st_size if kind == FILE else 0,
            inode=info.st_ino,
            device=info.st_dev,
            rdev=info.st_rdev if kind in (CHARDEV, BLOCKDEV) else 0,
            links=info.st_nlink if kind != DIR else 1,
        )
        if kind == SYMLINK:
            node.target = os.readlink(path)
        if xattrs is not None:
            node.xattrs = xattrs
        elif self.read_xattrs:
            node.xattrs = read_xattrs(path)
        return node


def read_xattrs(path: bytes) -> dict[str, bytes]:
    """Extended attributes of ``path`` (not following symlinks); empty where unsupported."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as error:
        if error.errno in _NO_XATTRS:
            return {}
        raise
    values: dict[str, bytes] = {}
    for attribute in names:
        try:
            values[attribute] = os.getxattr(path, attribute, follow_symlinks=False)
        except OSError as error:
            if error.errno in _NO_XATTRS:
                continue
            raise
    return values


def has_holes(fd: int, size: int, info: os.stat_result) -> bool:
    """Whether the open regular file ``fd`` has holes: cheap block count test, then SEEK_HOLE."""
    if size == 0 or info.st_blocks * 512 >= size:
        return False
    try:
        return os.lseek(fd, 0, os.SEEK_HOLE) < size
    except OSError:
        return False


def prepare_sources(sources: Iterable[str | bytes]) -> tuple[list[bytes], list[bytes]]:
    """Absolute, normalised, sorted source paths without those inside another source, and the
    sources that do not exist."""
    absolute = sorted({os.path.abspath(os.fsencode(source)) for source in sources})
    roots: list[bytes] = []
    missing: list[bytes] = []
    for path in absolute:
        if any(path == root or path.startswith(root.rstrip(b"/") + b"/") for root in roots):
            continue
        if not os.path.lexists(path):
            missing.append(path)
            continue
        roots.append(path)
    return roots, missing


@dataclass(slots=True)
class PendingFile:
    """A regular file waiting for a worker: its node receives content, size and sparse flag."""

    path: bytes
    node: Node
    future: Future[None] | None = None
    error: str | None = None

    def done(self) -> bool:
        return self.future is not None and self.future.done()


_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0)


def _open_for_reading(path: bytes) -> int:
    try:
        return os.open(path, _OPEN_FLAGS)
    except PermissionError:
        # O_NOATIME needs ownership of the file (or CAP_FOWNER); retry without it.
        return os.open(path, _OPEN_FLAGS & ~getattr(os, "O_NOATIME", 0))


def small_buffer() -> bytearray:
    """This thread's buffer for files under the minimum chunk size (one read, one chunk)."""
    buffer: bytearray | None = getattr(_local, "small", None)
    if buffer is None:
        buffer = _local.small = bytearray(CHUNK_MIN_SIZE + 1)
    return buffer


def read_file_content(
    pending: PendingFile,
    store_chunk: Callable[[bytes | memoryview], bytes],
    on_bytes: Callable[[int], None],
    buffer: bytearray | None = None,
) -> None:
    """Read ``pending``'s file, hand every chunk to ``store_chunk`` (which returns the blob ID and
    must not keep the chunk: it is a view into a reused buffer) and set the node's content, size
    and sparse flag. A file under the minimum chunk size is one ``preadv`` into this thread's
    small buffer; larger ones are cut by ``chunk_into`` in ``buffer`` (``chunker.buffer_size()``
    bytes; allocated here when not given). Raises ``OSError`` when the file cannot be opened or
    read, or is no longer a regular file."""
    node = pending.node
    fd = _open_for_reading(pending.path)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "no longer a regular file")
        size = info.st_size
        node.sparse = has_holes(fd, size, info)
        content: list[bytes] = []
        total = 0
        count = -1
        if size < CHUNK_MIN_SIZE:
            small = memoryview(small_buffer())
            count = os.preadv(fd, [small[: size + 1]], 0)
            if count <= size:
                if count:
                    content.append(store_chunk(small[:count]))
                    on_bytes(count)
                total = count
        if count < 0 or count > size:  # a large file, or a small one that grew meanwhile
            os.lseek(fd, 0, os.SEEK_SET)  # has_holes may have moved the offset
            with os.fdopen(fd, "rb", buffering=0, closefd=False) as handle:
                for chunk in chunk_into(handle, buffer or bytearray(buffer_size())):
                    content.append(store_chunk(chunk))
                    total += len(chunk)
                    on_bytes(len(chunk))
        node.content = content
        node.size = total
    finally:
        os.close(fd)
