"""Walking the file system for a backup: directory listings, exclude globs and entry metadata.

Paths are bytes everywhere, so names that are not valid UTF-8 survive. ``scan_directory`` lists a
directory with ``os.scandir`` in stable (byte-sorted) order; ``describe`` turns an ``lstat`` result
into a ``Node`` (owner names, symlink target, extended attributes incl. POSIX ACLs, sparse flag).
Exclude globs follow restic's rules (``engine.fs.globs``): ``*``, ``?`` and ``[...]`` stay inside one
path component, ``**`` crosses folders, a pattern that does not start with ``/`` matches at any depth,
and an excluded folder excludes everything in it. They are matched in linear time.

Per-file problems are returned or raised as ``OSError`` for the backup to turn into warnings.
"""

from __future__ import annotations

import errno
import functools
import grp
import os
import pwd
import stat
from collections.abc import Callable, Iterable

from snapkeep.engine.data.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SOCKET, SYMLINK, Node
from snapkeep.engine.fs.globs import GlobSet

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


class Excludes:
    """A set of exclude globs (``engine.fs.globs``: restic's rules, matched in linear time)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self._globs = GlobSet(patterns)
        self.patterns = self._globs.patterns

    def __bool__(self) -> bool:
        return bool(self._globs)

    def match(self, path: bytes) -> bool:
        """Whether the absolute ``path`` is excluded."""
        if not self._globs:
            return False
        return self._globs.match(os.fsdecode(path))


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


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


class Describer:
    """Builds nodes from ``lstat`` results, caching owner names."""

    def __init__(self) -> None:
        #: Owner names by ID, looked up once per describer ("" for an unknown ID).
        self.user: Callable[[int], str] = functools.lru_cache(maxsize=None)(_user_name)
        self.group: Callable[[int], str] = functools.lru_cache(maxsize=None)(_group_name)
        self.read_xattrs = True

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
