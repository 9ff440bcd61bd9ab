"""A restore target that is never left: safe paths, folder descent, removal and metadata.

Every restore writes below a target folder through this module, whatever the structure
(``restore`` for Incremental, ``archive.extract`` for Archived/Compressed, the jobs' merge=0
clearing):

* ``split_path`` turns a path below the target into components checked by the tree's name rule
  (``data.tree.validate_name``: no empty, ``.`` or ``..`` component, no NUL); ``UnsafePathError``
  otherwise.
* Folders are opened one component at a time relative to their parent's descriptor with
  ``O_NOFOLLOW`` (``open_folder``, ``descend``, ``Folders``), so a symlink, planted or restored,
  is never followed out of the target; ``remove_below`` deletes an entry the same way.
* What is already in the target is looked at without following it either: ``existing`` (``lstat``),
  ``open_existing_folder`` (a real folder, or ``None``: a symlink or file where a folder belongs
  means nothing below it exists), ``read_existing`` (a regular file opened ``O_NOFOLLOW``, for the
  ``if-changed`` comparison). So a symlink the backup itself holds (``a -> /etc``, then
  ``a/passwd``), restored earlier in the same run or by an earlier one, is never a way out either:
  a later folder of that name replaces the link (incremental) or is refused (tar), and clearing
  (``remove_below``) removes the link, never what it points at.
* ``plain_mode`` drops the set-user/group-ID bits from a mode (``SPECIAL_BITS``): restores leave
  them out unless special files are asked for.
* ``MetadataApplier`` sets owner (by name, then by ID; a refused chown is a warning), mode,
  extended attributes and times, through a descriptor or on a name without following it.

Up to a budget of descriptors (the soft ``RLIMIT_NOFILE``, raised to the hard limit, less a margin)
stay open for a whole restore (``Folders``); beyond it a folder is reopened from the target.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import grp
import os
import pwd
import resource
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from snapkeep.engine.data.tree import validate_name
from snapkeep.errors import UnsafePathError

__all__ = [
    "DIR_FLAGS",
    "SPECIAL_BITS",
    "Folders",
    "Metadata",
    "MetadataApplier",
    "descend",
    "descriptor_budget",
    "existing",
    "open_existing_folder",
    "open_folder",
    "plain_mode",
    "read_existing",
    "remove_below",
    "remove_existing",
    "split_path",
]

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: The set-user-ID and set-group-ID permission bits.
SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def plain_mode(mode: int) -> int:
    """``mode`` without the set-user/group-ID bits."""
    return mode & ~SPECIAL_BITS


def existing(name: bytes, dir_fd: int | None) -> os.stat_result | None:
    """What is at ``name`` in ``dir_fd`` (``lstat``: a symlink is described, never followed), or
    ``None`` when nothing is there or ``dir_fd`` is ``None`` (a folder that does not exist yet)."""
    if dir_fd is None:
        return None
    try:
        return os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None


def open_existing_folder(name: bytes, dir_fd: int | None) -> int | None:
    """A new descriptor of the real folder ``name`` in ``dir_fd``, or ``None`` when there is none
    (missing, or a symlink or file in its place: nothing exists below it). Creates nothing."""
    if dir_fd is None:
        return None
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
            return None
        raise


def read_existing(name: bytes, dir_fd: int) -> int | None:
    """A read descriptor of the regular file ``name`` in ``dir_fd``, never through a symlink (and
    never blocking on a fifo swapped in); ``None`` when it is not a regular file."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO, errno.EISDIR):
            return None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def split_path(path: str | bytes, *, lenient: bool = False) -> tuple[bytes, ...]:
    """The components of ``path``, a path below a target. Raises ``UnsafePathError`` when it could
    leave the target or names nothing.

    Strict (tar member paths): no leading ``/`` and no empty or ``.`` component. ``lenient``
    (paths people type or a backup recorded, ``/home//a/.``): leading, doubled and trailing ``/``
    and ``.`` components are dropped. ``..`` and NUL are refused in both."""
    raw = os.fsencode(path)
    parts = raw.split(b"/")
    if lenient:
        parts = [part for part in parts if part not in (b"", b".")]
    elif raw.startswith(b"/"):
        raise UnsafePathError(path=path, reason="absolute path")
    if not raw or not parts:
        raise UnsafePathError(path=path, reason="empty path")
    for part in parts:
        try:
            validate_name(part)
        except UnsafePathError as error:
            raise UnsafePathError(path=path, reason=error.fields["reason"]) from None
    return tuple(parts)


def open_folder(name: bytes, dir_fd: int) -> int:
    """Create the folder ``name`` in ``dir_fd`` (replacing a non-folder entry, a symlink included)
    and open it without following a symlink. Raises ``OSError``."""
    try:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(name, dir_fd=dir_fd).st_mode):
            os.unlink(name, dir_fd=dir_fd)
            os.mkdir(name, 0o700, dir_fd=dir_fd)
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


def descend(root_fd: int, parts: Sequence[bytes], *, create: bool = False, shown: str | None = None) -> int:
    """A new descriptor of the folder ``parts`` below ``root_fd``, opened one component at a time
    without following a symlink; missing folders are made (mode 0700) when ``create``.

    A symlink or file where a folder belongs raises ``UnsafePathError`` naming ``shown`` when it is
    given, else the ``OSError`` (``ELOOP``/``ENOTDIR``); other failures raise ``OSError``."""
    descriptor = os.dup(root_fd)
    try:
        for part in parts:
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=descriptor)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o700, dir_fd=descriptor)
                child = os.open(part, DIR_FLAGS, dir_fd=descriptor)
            except OSError as error:
                if shown is not None and error.errno in (errno.ELOOP, errno.ENOTDIR):
                    reason = f"{os.fsdecode(part)!r} is a symlink or file, not a folder"
                    raise UnsafePathError(path=shown, reason=reason) from None
                raise
            os.close(descriptor)
            descriptor = child
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def remove_existing(name: bytes, dir_fd: int, *, empty_folder: bool = False) -> None:
    """Remove the entry ``name`` in ``dir_fd`` (never following it) so a new one can take its place.

    A folder raises ``IsADirectoryError``, unless ``empty_folder``: then an empty one is removed and
    a non-empty one raises ``OSError`` (``ENOTEMPTY``)."""
    try:
        info = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(name, dir_fd=dir_fd)
    elif empty_folder:
        os.rmdir(name, dir_fd=dir_fd)
    else:
        raise IsADirectoryError(errno.EISDIR, "a folder is in the way")


def remove_below(target: str | bytes | os.PathLike[str], path: str | bytes) -> bool:
    """Remove what is at ``path`` (lenient, see ``split_path``) below the folder ``target``: a file
    or symlink is unlinked, a folder removed with its contents. Nothing outside the target is
    touched: the folders on the way are opened without following a symlink, and a symlink or file
    where one belongs means there is nothing below it to remove. Returns whether something was
    removed; raises ``UnsafePathError`` for an unsafe path and ``OSError`` when removing fails."""
    parts = split_path(path, lenient=True)
    root = os.open(os.fsencode(target), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            folder = descend(root, parts[:-1])
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                return False
            raise
    finally:
        os.close(root)
    try:
        try:
            info = os.lstat(parts[-1], dir_fd=folder)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(parts[-1], dir_fd=folder)  # descriptor based: never follows a symlink
        else:
            os.unlink(parts[-1], dir_fd=folder)
        return True
    finally:
        os.close(folder)


class Folders:
    """Descriptors of a restore's folders, opened without following symlinks.

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
        fd = descend(self.fds[0], self.parts[index])
        try:
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


class EntryMetadata(Protocol):
    """What a restored entry gets besides its contents (a tree ``Node`` is one)."""

    @property
    def mode(self) -> int: ...
    @property
    def uid(self) -> int: ...
    @property
    def gid(self) -> int: ...
    @property
    def user(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def mtime_ns(self) -> int: ...
    @property
    def xattrs(self) -> dict[str, bytes]: ...


@dataclass(frozen=True, slots=True)
class Metadata:
    """``EntryMetadata`` as a value (archive members); ``user``/``group`` are names or ``""``."""

    mode: int
    uid: int
    gid: int
    mtime_ns: int
    xattrs: dict[str, bytes] = field(default_factory=dict)
    user: str = ""
    group: str = ""


def _uid_of(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def _gid_of(group: str) -> int | None:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


class MetadataApplier:
    """Applies owner (when ``owners``), mode, extended attributes and times to restored entries.

    Owners are resolved by name on this system, else the recorded ID is used; names are looked up
    once per applier. Problems that leave the entry usable (owner, extended attributes) are
    handed to ``warn(display, message)``; a mode or time that cannot be set raises ``OSError``."""

    def __init__(self, owners: bool, warn: Callable[[str, str], None]) -> None:
        self.owners = owners
        self.warn = warn
        self.identity = (os.geteuid(), os.getegid())
        self.umask = current_umask()
        self._uid_of = functools.lru_cache(maxsize=None)(_uid_of)
        self._gid_of = functools.lru_cache(maxsize=None)(_gid_of)

    def owner(self, entry: EntryMetadata) -> tuple[int, int]:
        """The (uid, gid) to give ``entry``: its names' IDs here, else its recorded IDs."""
        uid = self._uid_of(entry.user) if entry.user else None
        gid = self._gid_of(entry.group) if entry.group else None
        return (entry.uid if uid is None else uid, entry.gid if gid is None else gid)

    def apply(
        self,
        entry: EntryMetadata,
        display: str,
        *,
        fd: int | None = None,
        name: bytes = b"",
        dir_fd: int | None = None,
        symlink: bool = False,
        fresh: bool = False,
        inherits_group: bool = False,
    ) -> None:
        """Apply ``entry``'s metadata through ``fd``, or on ``name`` in ``dir_fd`` without following
        a symlink (``symlink``: the name is one, so its mode is left alone). ``fresh``: a file
        this process just created with the entry's permission bits, in a folder that
        ``inherits_group`` or not: calls that would change nothing are left out."""
        if fd is not None:
            target: int | bytes = fd
            where: dict[str, Any] = {}
        else:
            target = name
            where = {"dir_fd": dir_fd, "follow_symlinks": False}
        if self.owners:
            owner = self.owner(entry)
            if not fresh or owner != self.identity or inherits_group:
                try:
                    os.chown(target, *owner, **where)
                except OSError as error:
                    self.warn(display, f"cannot set owner: {error.strerror or error}")
        if fresh and not entry.mode & 0o7000 and not entry.mode & self.umask:
            pass  # created with these permission bits; chown clears only set-ID bits
        elif not symlink:
            # Linux has no lchmod: a name here is a fifo or device node this restore just made.
            os.chmod(target, entry.mode, dir_fd=None if fd is not None else dir_fd)
        for key, value in entry.xattrs.items():
            try:
                if fd is not None:
                    os.setxattr(fd, key, value)
                else:  # no dir_fd form: the folder is ours and the last component is not followed
                    raise OSError(errno.ENOTSUP, "extended attributes on special files are not restored")
            except OSError as error:
                self.warn(display, f"cannot set xattr {key}: {error.strerror or error}")
        os.utime(target, ns=(entry.mtime_ns, entry.mtime_ns), **where)


def current_umask() -> int:
    """The process umask, read without changing it (Linux ``/proc``), else by setting it back."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
