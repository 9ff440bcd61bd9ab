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
* ``Placer`` moves a staged tree (an Accounts restore's) into a folder the same way, by the
  overwrite policy (``fs.restore_policy``), copying when the staging is on another file system.
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
from pathlib import Path
from typing import Any, Protocol

from snapkeep.engine.data.tree import validate_name
from snapkeep.engine.fs.restore_policy import SKIP, WRITE, Changes, decide
from snapkeep.errors import UnsafePathError

__all__ = [
    "DIR_FLAGS",
    "SPECIAL_BITS",
    "Folders",
    "Metadata",
    "MetadataApplier",
    "Placer",
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


def open_folder(name: bytes, dir_fd: int) -> tuple[int, bool]:
    """Create the folder ``name`` in ``dir_fd`` (replacing a non-folder entry, a symlink included)
    and open it without following a symlink. Returns the descriptor and whether this call made the
    folder (then it was empty, and mode 0700 keeps others from adding to it). Raises ``OSError``."""
    made = True
    try:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        if stat.S_ISDIR(os.lstat(name, dir_fd=dir_fd).st_mode):
            made = False
        else:
            os.unlink(name, dir_fd=dir_fd)
            os.mkdir(name, 0o700, dir_fd=dir_fd)
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd), made


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

    def add_path(self, parts: list[bytes]) -> int:
        """Register a folder by its path below the target only (reopened when used)."""
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
        #: (user, group, uid, gid) -> the owner to give: one lookup per entry instead of two
        self._owners: dict[tuple[str, str, int, int], tuple[int, int]] = {}

    def owner(self, entry: EntryMetadata) -> tuple[int, int]:
        """The (uid, gid) to give ``entry``: its names' IDs here, else its recorded IDs."""
        key = (entry.user, entry.group, entry.uid, entry.gid)
        found = self._owners.get(key)
        if found is None:
            uid = self._uid_of(entry.user) if entry.user else None
            gid = self._gid_of(entry.group) if entry.group else None
            found = (entry.uid if uid is None else uid, entry.gid if gid is None else gid)
            self._owners[key] = found
        return found

    def apply_new_file(self, entry: EntryMetadata, display: str, fd: int, inherits_group: bool) -> None:
        """``apply`` through ``fd``, a file this process just created with the entry's permission
        bits in a folder that ``inherits_group`` or not (a restore's path for every file)."""
        if self.owners:
            owner = self.owner(entry)
            if owner != self.identity or inherits_group:
                try:
                    os.chown(fd, *owner)
                except OSError as error:
                    self.warn(display, f"cannot set owner: {error.strerror or error}")
        if entry.mode & 0o7000 or entry.mode & self.umask:
            os.chmod(fd, entry.mode)  # chown clears only set-ID bits
        if entry.xattrs:
            self._set_xattrs(entry, display, fd)
        os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))

    def apply(
        self,
        entry: EntryMetadata,
        display: str,
        *,
        fd: int | None = None,
        name: bytes = b"",
        dir_fd: int | None = None,
        symlink: bool = False,
    ) -> None:
        """Apply ``entry``'s metadata through ``fd``, or on ``name`` in ``dir_fd`` without following
        a symlink (``symlink``: the name is one, so its mode is left alone). A file this process
        has just created goes through ``apply_new_file``, which leaves out calls that change
        nothing."""
        if fd is not None:
            target: int | bytes = fd
            where: dict[str, Any] = {}
        else:
            target = name
            where = {"dir_fd": dir_fd, "follow_symlinks": False}
        if self.owners:
            try:
                os.chown(target, *self.owner(entry), **where)
            except OSError as error:
                self.warn(display, f"cannot set owner: {error.strerror or error}")
        if not symlink:
            # Linux has no lchmod: a name here is a fifo or device node this restore just made.
            os.chmod(target, entry.mode, dir_fd=None if fd is not None else dir_fd)
        if entry.xattrs:
            self._set_xattrs(entry, display, fd)
        os.utime(target, ns=(entry.mtime_ns, entry.mtime_ns), **where)

    def _set_xattrs(self, entry: EntryMetadata, display: str, fd: int | None) -> None:
        """Set ``entry``'s extended attributes through ``fd`` (``None``: a name, where they are
        not restored); a failure is a warning."""
        for key, value in entry.xattrs.items():
            try:
                if fd is not None:
                    os.setxattr(fd, key, value)
                else:  # no dir_fd form: the folder is ours and the last component is not followed
                    raise OSError(errno.ENOTSUP, "extended attributes on special files are not restored")
            except OSError as error:
                self.warn(display, f"cannot set xattr {key}: {error.strerror or error}")


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


class Placer:
    """Moves staged entries into an account, never through a symlink, by overwrite ``policy``.

    The account's folder (``root``) is opened as given; every folder below it is opened (or
    made, 0700 then given its staged mode) one component at a time without following a symlink
    (``descend``): a symlink or file the account holds where a folder belongs
    raises ``UnsafePathError``. Existing entries are written over, kept or merged into by
    ``fs.restore_policy.decide``; ``changes`` counts and lists what happened (or, in a dry run,
    would happen). Fifos, sockets and device nodes are never created."""

    def __init__(self, policy: str, owner: tuple[int, int] | None, *, dry_run: bool = False) -> None:
        self.policy = policy
        self.owner = owner
        self.dry_run = dry_run
        self.changes = Changes()

    def place_below(self, root: Path, parts: Sequence[str], staged: Path) -> None:
        """Put ``staged`` at ``parts`` below ``root`` (no parts: merge the staged folder's
        entries into ``root``)."""
        shown = str(Path(root, *parts))
        if not parts:
            if staged.is_dir() and not staged.is_symlink():
                for entry in sorted(staged.iterdir()):
                    self.place_below(root, [entry.name], entry)
            return
        names = split_path("/".join(parts), lenient=True)
        try:
            root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            if not self.dry_run:
                raise
            self.changes.add(WRITE, shown)
            return
        try:
            if self.dry_run:
                folder: int | None = root_fd
                for name in names[:-1]:
                    child = open_existing_folder(name, folder)
                    if folder != root_fd and folder is not None:
                        os.close(folder)
                    folder = child
                try:
                    self.place(staged, folder, names[-1], shown)
                finally:
                    if folder is not None and folder != root_fd:
                        os.close(folder)
                return
            folder_fd = descend(root_fd, names[:-1], create=True, shown=shown)
            try:
                self.place(staged, folder_fd, names[-1], shown)
            finally:
                os.close(folder_fd)
        finally:
            os.close(root_fd)

    def place(self, staged: Path, parent: int | None, name: bytes, shown: str) -> None:
        """Put ``staged`` at ``name`` in the folder ``parent`` (``None`` in a dry run: the folder
        does not exist yet)."""
        source = staged.lstat()
        if not (stat.S_ISREG(source.st_mode) or stat.S_ISDIR(source.st_mode) or stat.S_ISLNK(source.st_mode)):
            return  # fifos, sockets, device nodes: never into an account
        found = existing(name, parent)
        if stat.S_ISDIR(source.st_mode) and found is not None and stat.S_ISDIR(found.st_mode):
            child = open_existing_folder(name, parent)
            if child is None:
                raise UnsafePathError(path=shown, reason="the folder was replaced while restoring")
            try:
                for entry in sorted(staged.iterdir()):
                    self.place(entry, child, os.fsencode(entry.name), f"{shown}/{entry.name}")
            finally:
                os.close(child)
            return
        action = decide(
            self.policy,
            found,
            source.st_mtime_ns,
            lambda info: _same_file(staged, source, info, name, parent),
        )
        if action == SKIP:
            self.changes.add(SKIP, shown)
            return
        self.changes.add(action, shown, listed=action != WRITE or self.dry_run)
        if self.dry_run:
            return
        assert parent is not None
        if found is not None:
            if stat.S_ISDIR(found.st_mode):
                shutil.rmtree(name, dir_fd=parent)  # descriptor based: never follows a symlink
            else:
                os.unlink(name, dir_fd=parent)
        self.put(staged, source, parent, name)

    def put(self, staged: Path, source: os.stat_result, parent: int, name: bytes) -> None:
        """Create ``name`` in ``parent`` as a copy of ``staged`` (a rename when on one file system)."""
        try:
            os.rename(staged, name, dst_dir_fd=parent)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            self.copy(staged, source, parent, name)
        if self.owner is not None:
            _chown_below(parent, name, self.owner)

    def copy(self, staged: Path, source: os.stat_result, parent: int, name: bytes) -> None:
        if stat.S_ISLNK(source.st_mode):
            os.symlink(os.readlink(staged), name, dir_fd=parent)
        elif stat.S_ISDIR(source.st_mode):
            os.mkdir(name, 0o700, dir_fd=parent)
            child = os.open(name, DIR_FLAGS, dir_fd=parent)
            try:
                for entry in sorted(staged.iterdir()):
                    info = entry.lstat()
                    if stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode) or stat.S_ISLNK(info.st_mode):
                        self.copy(entry, info, child, os.fsencode(entry.name))
                os.chmod(child, stat.S_IMODE(source.st_mode))
                os.utime(child, ns=(source.st_atime_ns, source.st_mtime_ns))
            finally:
                os.close(child)
            return
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            descriptor = os.open(name, flags, 0o600, dir_fd=parent)
            try:
                with staged.open("rb") as reader:
                    while block := reader.read(1024 * 1024):
                        view = memoryview(block)
                        while view:
                            view = view[os.write(descriptor, view) :]
                os.chmod(descriptor, stat.S_IMODE(source.st_mode))
                os.utime(descriptor, ns=(source.st_atime_ns, source.st_mtime_ns))
            finally:
                os.close(descriptor)
            return
        os.utime(name, ns=(source.st_atime_ns, source.st_mtime_ns), dir_fd=parent, follow_symlinks=False)


def _same_file(
    staged: Path, source: os.stat_result, info: os.stat_result, name: bytes, parent: int | None
) -> bool:
    """Whether the existing entry holds the staged content (``if-changed``): a regular file of the
    same size and bytes, or a symlink with the same target; read without following a symlink."""
    if parent is None:
        return False
    if stat.S_ISLNK(source.st_mode):
        return stat.S_ISLNK(info.st_mode) and os.readlink(name, dir_fd=parent) == os.fsencode(
            os.readlink(staged)
        )
    if not stat.S_ISREG(source.st_mode) or not stat.S_ISREG(info.st_mode) or info.st_size != source.st_size:
        return False
    descriptor = read_existing(name, parent)
    if descriptor is None:
        return False
    try:
        with staged.open("rb") as reader:
            offset = 0
            while block := reader.read(1024 * 1024):
                if os.pread(descriptor, len(block), offset) != block:
                    return False
                offset += len(block)
        return not os.pread(descriptor, 1, offset)
    finally:
        os.close(descriptor)


def _chown_below(parent: int, name: bytes, owner: tuple[int, int]) -> None:
    """Give ``name`` in ``parent`` and everything below it ``owner``, never following a symlink."""
    os.chown(name, *owner, dir_fd=parent, follow_symlinks=False)
    child = open_existing_folder(name, parent)
    if child is None:
        return
    try:
        for entry in os.listdir(child):
            _chown_below(child, os.fsencode(entry), owner)
    finally:
        os.close(child)
