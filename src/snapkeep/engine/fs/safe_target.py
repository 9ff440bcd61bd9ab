"""Restored folders: descriptors opened without following symlinks, and safe creation in them.

Every folder of a restore is created and opened one component at a time relative to its parent's
descriptor with ``O_NOFOLLOW``; an entry planted where a folder belongs is removed, never followed.
Up to a budget of descriptors (the soft ``RLIMIT_NOFILE``, raised to the hard limit, less a margin)
stay open for the whole restore; beyond it a folder is reopened from the target when needed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import stat
from collections.abc import Iterator

__all__ = ["DIR_FLAGS", "Folders", "descriptor_budget", "open_folder", "remove_existing"]

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Folders:
    """Descriptors of the restored folders, opened without following symlinks.

    Up to ``budget`` stay open for the whole restore so workers create files relative to them;
    beyond that a folder is reopened component by component from the target when needed."""

    def __init__(self, root_fd: int, budget: int) -> None:
        self.fds = [root_fd]
        self.parts: list[list[bytes]] = [[]]
        self.budget = budget

    def add(self, fd: int, parts: list[bytes]) -> int:
        """Register an open folder descriptor; it may be closed at once (over budget)."""
        if len(self.fds) < self.budget:
            self.fds.append(fd)
        else:
            os.close(fd)
            self.fds.append(-1)
        self.parts.append(parts)
        return len(self.fds) - 1

    @contextlib.contextmanager
    def open(self, index: int) -> Iterator[int]:
        fd = self.fds[index]
        if fd >= 0:
            yield fd
            return
        fd = os.dup(self.fds[0])
        try:
            for part in self.parts[index]:
                inner = os.open(part, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = inner
            yield fd
        finally:
            os.close(fd)

    def close(self) -> None:
        for fd in self.fds[1:]:
            if fd >= 0:
                os.close(fd)


def descriptor_budget() -> int:
    """How many folder descriptors may stay open: raise the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return max(16, soft - 512)


def open_folder(name: bytes, dir_fd: int) -> int:
    """Create the folder ``name`` in ``dir_fd`` (replacing a non-folder entry) and open it without
    following a symlink. Raises ``OSError``."""
    try:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(name, dir_fd=dir_fd).st_mode):
            os.unlink(name, dir_fd=dir_fd)
            os.mkdir(name, 0o700, dir_fd=dir_fd)
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


def remove_existing(name: bytes, dir_fd: int) -> None:
    """Remove a non-folder entry ``name`` in ``dir_fd``; ``IsADirectoryError`` for a folder."""
    try:
        info = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "a folder is in the way")
    os.unlink(name, dir_fd=dir_fd)
