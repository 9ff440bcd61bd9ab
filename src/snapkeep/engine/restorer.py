"""Restore: a whole snapshot or chosen paths, to any target folder, never outside it.

Plan (main thread): walk the snapshot's trees depth first. Every name comes from ``Tree.decode``,
which rejects ``..``, ``/``, NUL and empty names (``UnsafePathError``). Folders are created and
opened one component at a time relative to their parent's descriptor with ``O_NOFOLLOW``; a symlink
or file planted where a folder or file belongs is removed, never followed. Regular files are
created (empty) in the plan; symlinks, fifos and device nodes (when root) are made there too.

Content (worker threads): the needed blobs are grouped by pack; each worker reads one pack's blobs
with ``repository.load_blobs`` (ranged reads, every blob verified against its ID) and writes each
blob at its offsets in every file that uses it, skipping zero runs of sparse files. A file gets its
metadata (owner, mode, xattrs and ACLs, mtime in ns) through its descriptor when its last blob is
written. Hard links are linked to their first member afterwards; folder metadata is applied last,
deepest first. A blob that is missing or damaged fails the files using it (their partial content is
removed) and the failure names them; every other file still restores.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import itertools
import os
import pwd
import resource
import stat
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from snapkeep.engine.index import BlobLocation
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.engine.snapshot import Snapshot
from snapkeep.engine.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK, Node, Tree, validate_name
from snapkeep.errors import NotFoundError, SnapkeepError, UnsafePathError

__all__ = ["RestoreResult", "restore"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_SPARSE_BLOCK = 4096
#: The plan hands its packs to the workers every this many planned bytes or files, so writing
#: starts while the plan (trees, folders) goes on.
_BATCH_BYTES = 64 * 1024 * 1024
_BATCH_FILES = 2048
#: Batches handed to the workers and not yet written before the plan waits (2 GiB set: peak RSS
#: 168 MiB when the plan ran ahead of all 80,000 files).
_BATCHES_AHEAD = 3
#: Threads that load the trees the plan will visit next (more only add GIL contention locally).
_TREE_READERS = 2
#: Largest span of a pack read at once by one worker.
_READ_SPAN = 4 * 1024 * 1024
Filters = list[list[bytes]] | None
_Users = dict[bytes, list[tuple["_FileJob", int]]]
T = TypeVar("T")
_ZEROS = bytes(_SPARSE_BLOCK)


@dataclass
class RestoreResult:
    """What a restore did. ``failures`` (path, message) are entries that were not restored;
    ``warnings`` are metadata that could not be applied (owner, xattr, device node)."""

    files: int = 0
    dirs: int = 0
    others: int = 0
    bytes: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(slots=True, eq=False)
class _FileJob:
    folder: int  # index into the restorer's folders
    name: bytes
    display: str  # path in the snapshot, for messages
    node: Node
    remaining: int
    lock: threading.Lock | None
    fd: int = -1
    failed: bool = False


class _Folders:
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
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = inner
            yield fd
        finally:
            os.close(fd)

    def close(self) -> None:
        for fd in self.fds[1:]:
            if fd >= 0:
                os.close(fd)


def _descriptor_budget() -> int:
    """How many folder descriptors may stay open: raise the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return max(16, soft - 512)


def parse_include(include: str | bytes) -> list[bytes]:
    """A path inside the snapshot as validated components; ``UnsafePathError`` for ``..``."""
    raw = os.fsencode(include)
    parts = [part for part in raw.split(b"/") if part and part != b"."]
    for part in parts:
        validate_name(part)
    if not parts:
        raise UnsafePathError(path=include, reason="an include must name a path inside the snapshot")
    return parts


def restore(
    repository: Repository,
    snapshot: Snapshot,
    target: str | bytes,
    *,
    includes: Iterable[str | bytes] = (),
    progress: Progress | None = None,
    workers: int = 2,
    restore_owners: bool | None = None,
) -> RestoreResult:
    """Restore ``snapshot`` (or only ``includes``, paths inside it) into the folder ``target``.

    ``workers`` write contents (2 by default: on 2 cores a third only adds GIL contention; 512 MiB:
    1.95-2.4 s with 2, 2.2-2.7 s with 3). Raises ``UnsafePathError`` for a crafted tree or include,
    ``NotFoundError`` when an include names nothing, ``IntegrityError`` when a tree is damaged, and
    storage errors. Per-file problems are listed in the result's ``failures``.
    """
    filters = [parse_include(include) for include in includes] or None
    restorer = _Restorer(
        repository, progress or Progress(), os.geteuid() == 0 if restore_owners is None else restore_owners
    )
    if filters is not None:
        restorer.check_includes(bytes.fromhex(snapshot.tree), filters)
    base = os.path.abspath(os.fsencode(target))
    os.makedirs(base, exist_ok=True)
    folders = _Folders(os.open(base, _DIR_FLAGS), _descriptor_budget())
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="snapkeep-restore")
    tree_pool = ThreadPoolExecutor(max_workers=_TREE_READERS, thread_name_prefix="snapkeep-trees")
    try:
        restorer.folders = folders
        restorer.start(pool, tree_pool, workers, snapshot if filters is None else None)
        restorer.plan(bytes.fromhex(snapshot.tree), 0, [], b"", filters)
        restorer.write_contents()
        restorer.link_hardlinks()
        restorer.apply_folder_metadata()
    finally:
        tree_pool.shutdown(wait=True, cancel_futures=True)
        pool.shutdown(wait=True, cancel_futures=True)
        folders.close()
        os.close(folders.fds[0])
        restorer.progress.on_finish()
    return restorer.result


class _Restorer:
    def __init__(self, repository: Repository, progress: Progress, owners: bool) -> None:
        self.repository = repository
        self.progress = progress
        self.owners = owners
        self.result = RestoreResult()
        self.lock = threading.Lock()
        self.blob_users: _Users = {}
        self.packs: dict[str, list[BlobLocation]] = {}
        self.hardlink_first: dict[str, _FileJob | tuple[int, bytes]] = {}
        self.links: list[tuple[int, bytes, str, str]] = []  # (folder, name, display, group)
        self.folders = _Folders(-1, 0)
        self.folder_nodes: list[tuple[int, str, Node]] = []
        self.uids: dict[str, int | None] = {}
        self.gids: dict[str, int | None] = {}
        #: Per folder: whether new files in it get a group other than ours (a set-group-ID folder).
        self.inherits_group: list[bool] = []
        self.identity = (os.geteuid(), os.getegid())
        self.umask = _current_umask()
        self.pool: ThreadPoolExecutor | None = None
        self.tree_pool: ThreadPoolExecutor | None = None
        self.trees: dict[bytes, Future[Tree]] = {}
        self.ways = 1
        self.batches: deque[list[Future[None]]] = deque()
        self.planned_bytes = 0
        self.planned_files = 0

    def start(
        self, pool: ThreadPoolExecutor, tree_pool: ThreadPoolExecutor, ways: int, snapshot: Snapshot | None
    ) -> None:
        """Content is written by ``pool`` while the plan goes on, trees are prefetched by
        ``tree_pool`` (totals from the snapshot's stats for a whole restore)."""
        self.pool = pool
        self.tree_pool = tree_pool
        self.ways = max(1, ways)
        self.inherits_group = [bool(os.fstat(self.folders.fds[0]).st_mode & stat.S_ISGID)]
        stats = snapshot.stats if snapshot is not None else {}
        files, size = stats.get("files"), stats.get("bytes")
        self.progress.on_start(
            files if isinstance(files, int) else None, size if isinstance(size, int) else None
        )

    # --- plan -------------------------------------------------------------------------------------

    def load_tree(self, tree_id: bytes) -> Tree:
        """A tree (prefetched when ``prefetch`` asked for it). Raises what loading raises."""
        future = self.trees.pop(tree_id, None)
        if future is not None:
            return future.result()
        return Tree.decode(self.repository.load_blob(tree_id))

    def prefetch(self, tree_id: bytes) -> None:
        """Start loading a tree the plan will need soon: a remote store answers many requests at
        once, one after the other costs a round trip per folder."""
        if self.tree_pool is not None and tree_id not in self.trees:
            self.trees[tree_id] = self.tree_pool.submit(_load_tree, self.repository, tree_id)

    def check_includes(self, root: bytes, filters: list[list[bytes]]) -> None:
        for parts in filters:
            tree_id: bytes | None = root
            for index, part in enumerate(parts):
                node = self.load_tree(tree_id).by_name().get(part) if tree_id is not None else None
                if node is None:
                    raise NotFoundError(kind="path in snapshot", ident="/" + os.fsdecode(b"/".join(parts)))
                tree_id = node.subtree if index + 1 < len(parts) else None

    def fail(self, display: str, message: str) -> None:
        with self.lock:
            self.result.failures.append((display, message))
        self.progress.on_warning(display, message)

    def warn(self, display: str, message: str) -> None:
        with self.lock:
            self.result.warnings.append((display, message))

    def plan(self, tree_id: bytes, folder: int, parts: list[bytes], display: bytes, filters: Filters) -> None:
        chosen: list[tuple[Node, Filters]] = []
        for node in self.load_tree(tree_id).nodes:
            below: Filters = None
            if filters is not None:
                matching = [include for include in filters if include[0] == node.name]
                if not matching:
                    continue
                if all(len(include) > 1 for include in matching):
                    below = [include[1:] for include in matching]
            chosen.append((node, below))
            if node.type == DIR and node.subtree is not None:
                self.prefetch(node.subtree)
        for node, below in chosen:
            shown = display + b"/" + node.name
            try:
                self.plan_entry(node, folder, parts, shown, below)
            except OSError as error:
                self.fail(os.fsdecode(shown), f"cannot restore: {error.strerror or error}")

    def plan_entry(self, node: Node, folder: int, parts: list[bytes], shown: bytes, below: Filters) -> None:
        name = node.name
        display = os.fsdecode(shown)
        if node.type == DIR:
            assert node.subtree is not None
            with self.folders.open(folder) as dir_fd:
                fd = self.open_folder(name, dir_fd)
            self.inherits_group.append(bool(os.fstat(fd).st_mode & stat.S_ISGID))
            child = self.folders.add(fd, [*parts, name])
            self.plan(node.subtree, child, [*parts, name], shown, below)
            self.folder_nodes.append((child, display, node))
            self.result.dirs += 1
            return
        if below is not None:
            return  # an include goes deeper but this entry is not a folder
        if node.type == FILE:
            self.plan_file(node, folder, display)
            return
        with self.folders.open(folder) as dir_fd:
            remove_existing(name, dir_fd)
            if node.type == SYMLINK:
                os.symlink(node.target, name, dir_fd=dir_fd)
            elif node.type == FIFO:
                os.mkfifo(name, 0o600, dir_fd=dir_fd)
            elif node.type in (CHARDEV, BLOCKDEV) and self.owners:
                kind = stat.S_IFCHR if node.type == CHARDEV else stat.S_IFBLK
                os.mknod(name, kind | 0o600, node.rdev, dir_fd=dir_fd)
            else:
                self.warn(
                    display,
                    f"{node.type} entries are recorded, not restored"
                    + (" (device nodes need root)" if node.type in (CHARDEV, BLOCKDEV) else ""),
                )
                return
            self.apply_metadata(node, display, name=name, dir_fd=dir_fd)
        self.result.others += 1
        self.progress.on_file(display, 0)

    def open_folder(self, name: bytes, dir_fd: int) -> int:
        try:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(name, dir_fd=dir_fd).st_mode):
                os.unlink(name, dir_fd=dir_fd)
                os.mkdir(name, 0o700, dir_fd=dir_fd)
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)

    def plan_file(self, node: Node, folder: int, display: str) -> None:
        if node.hardlink:
            if node.hardlink in self.hardlink_first:
                self.links.append((folder, node.name, display, node.hardlink))
                return
            self.hardlink_first[node.hardlink] = (folder, node.name)
        job = _FileJob(folder, node.name, display, node, len(node.content), None)
        if not node.content:
            self.create_and_finish(job, b"")
            return
        if len(node.content) > 1:
            job.lock = threading.Lock()
        if node.hardlink:
            self.hardlink_first[node.hardlink] = job
        offset = 0
        for blob_id in node.content:
            location = self.repository.lookup(blob_id)
            if location is None:
                self.fail_job(job, f"blob {blob_id.hex()} is missing from the repository")
                return
            users = self.blob_users.get(blob_id)
            if users is None:
                self.blob_users[blob_id] = [(job, offset)]
                self.packs.setdefault(location.pack_id, []).append(location)
            else:
                users.append((job, offset))
            offset += location.raw_length
        node.content = []  # the blob users hold what is needed; keeps a big plan small
        self.planned_files += 1
        self.planned_bytes += node.size
        if self.planned_bytes >= _BATCH_BYTES or self.planned_files >= _BATCH_FILES:
            self.submit_planned()

    # --- content ----------------------------------------------------------------------------------

    def submit_planned(self) -> None:
        """Hand the packs needed by the files planned so far to the workers.

        The plan goes on meanwhile: a batch has its own blob users, so a blob that files of a
        later batch need too is read again then (rare: duplicates within one snapshot)."""
        packs, users = self.packs, self.blob_users
        self.packs, self.blob_users = {}, {}
        self.planned_bytes = self.planned_files = 0
        assert self.pool is not None
        tasks = [(pack, group) for pack, locations in packs.items() for group in _read_groups(locations)]
        self.batches.append(
            [
                self.pool.submit(self.restore_pack, pack, group, users)
                for pack, group in _interleave(tasks, self.ways)
            ]
        )
        while len(self.batches) > _BATCHES_AHEAD:  # bounds the plan's lead, and so its memory
            for future in self.batches.popleft():
                future.result()

    def write_contents(self) -> None:
        """Submit the rest of the plan and wait for every write. Raises what a worker raised."""
        self.submit_planned()
        while self.batches:
            for future in self.batches.popleft():
                future.result()

    def restore_pack(self, pack_id: str, locations: Sequence[BlobLocation], users: _Users) -> None:
        done: set[bytes] = set()
        try:
            for blob_id, data in self.repository.load_blobs(pack_id, locations):
                done.add(blob_id)
                self.deliver(users[blob_id], data)
        except SnapkeepError:
            # Find the damaged blobs one by one; the others are still written.
            for location in locations:
                if location.blob_id in done:
                    continue
                try:
                    data = self.repository.load_blob(location.blob_id)
                except SnapkeepError as error:
                    for job, _ in users[location.blob_id]:
                        self.fail_job(job, f"blob {location.blob_id.hex()}: {error}")
                    continue
                self.deliver(users[location.blob_id], data)

    def deliver(self, users: list[tuple[_FileJob, int]], data: bytes) -> None:
        for job, offset in users:
            if job.lock is None:
                self.create_and_finish(job, data)
            else:
                with job.lock:
                    self.write_part(job, data, offset)

    def create(self, job: _FileJob) -> None:
        """Create the file in its folder (``O_EXCL``, never through a planted link), with its
        permission bits at once (``finish`` then needs no chmod unless the umask or special bits
        interfere): fewer inode updates, each of which may wait for the file system's journal."""
        mode = job.node.mode & 0o777
        dir_fd = self.folders.fds[job.folder]
        if dir_fd >= 0:
            try:
                job.fd = os.open(job.name, _CREATE_FLAGS, mode, dir_fd=dir_fd)
                return
            except FileExistsError:
                pass
        with self.folders.open(job.folder) as dir_fd:
            try:
                job.fd = os.open(job.name, _CREATE_FLAGS, mode, dir_fd=dir_fd)
            except FileExistsError:
                remove_existing(job.name, dir_fd)
                job.fd = os.open(job.name, _CREATE_FLAGS, mode, dir_fd=dir_fd)

    def create_and_finish(self, job: _FileJob, data: bytes) -> None:
        """A file of at most one blob: create, write, finish."""
        try:
            self.create(job)
            if data:
                self.write_at(job, data, 0)
            job.remaining = 0
            self.finish(job)
        except OSError as error:
            self.fail_job(job, f"cannot write: {error.strerror or error}")

    def write_part(self, job: _FileJob, data: bytes, offset: int) -> None:
        if job.failed:
            return
        try:
            if job.fd < 0:
                self.create(job)
            self.write_at(job, data, offset)
            job.remaining -= 1
            if job.remaining == 0:
                self.finish(job)
        except OSError as error:
            self.fail_job(job, f"cannot write: {error.strerror or error}")

    def write_at(self, job: _FileJob, data: bytes, offset: int) -> None:
        view = memoryview(data)
        if job.node.sparse:
            # Write only the runs of blocks that hold data; zero blocks stay holes.
            start = -1
            for position in range(0, len(data), _SPARSE_BLOCK):
                block = data[position : position + _SPARSE_BLOCK]
                if block == _ZEROS[: len(block)]:
                    if start >= 0:
                        _write_all(job.fd, view[start:position], offset + start)
                        start = -1
                elif start < 0:
                    start = position
            if start >= 0:
                _write_all(job.fd, view[start:], offset + start)
        else:
            _write_all(job.fd, view, offset)
        self.progress.on_bytes(len(data))

    def finish(self, job: _FileJob) -> None:
        try:
            if job.node.sparse:
                os.ftruncate(job.fd, job.node.size)  # a trailing hole is not written
            self.apply_metadata(job.node, job.display, fd=job.fd, created=job.folder)
        finally:
            os.close(job.fd)
            job.fd = -1
        with self.lock:
            self.result.files += 1
            self.result.bytes += job.node.size
        self.progress.on_file(job.display, job.node.size)

    def fail_job(self, job: _FileJob, message: str) -> None:
        if job.lock is not None:
            with job.lock:
                self._fail_locked(job, message)
        else:
            self._fail_locked(job, message)

    def _fail_locked(self, job: _FileJob, message: str) -> None:
        if job.failed:
            return
        job.failed = True
        if job.fd >= 0:
            os.close(job.fd)
            job.fd = -1
        with contextlib.suppress(OSError), self.folders.open(job.folder) as dir_fd:
            os.unlink(job.name, dir_fd=dir_fd)  # never leave silently wrong content behind
        self.fail(job.display, message)

    # --- links and folders ------------------------------------------------------------------------

    def link_hardlinks(self) -> None:
        for folder, name, display, group in self.links:
            first = self.hardlink_first[group]
            if isinstance(first, _FileJob):
                if first.failed:
                    self.fail(display, f"hard link to {first.display}, which failed")
                    continue
                first = (first.folder, first.name)
            try:
                with self.folders.open(first[0]) as source_fd, self.folders.open(folder) as dir_fd:
                    remove_existing(name, dir_fd)
                    os.link(first[1], name, src_dir_fd=source_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            except OSError as error:
                self.fail(display, f"cannot link: {error.strerror or error}")
                continue
            self.result.files += 1
            self.progress.on_file(display, 0)

    def apply_folder_metadata(self) -> None:
        """Deepest folders first, after their contents (a read-only folder is filled first)."""
        for folder, display, node in reversed(self.folder_nodes):
            try:
                with self.folders.open(folder) as fd:
                    self.apply_metadata(node, display, fd=fd)
            except OSError as error:
                self.warn(display, f"cannot set folder metadata: {error.strerror or error}")

    def apply_metadata(
        self,
        node: Node,
        display: str,
        *,
        fd: int | None = None,
        name: bytes = b"",
        dir_fd: int | None = None,
        created: int = -1,
    ) -> None:
        """Owner (as root), mode, xattrs and times, through ``fd``, or on ``name`` in ``dir_fd``
        without following a symlink. ``created`` is the folder of a file ``create`` just made
        (owned by us, permission bits set): calls that would change nothing are left out. Raises
        ``OSError`` when the mode or times cannot be set."""
        if fd is not None:
            target: int | bytes = fd
            where: dict[str, Any] = {}
        else:
            target = name
            where = {"dir_fd": dir_fd, "follow_symlinks": False}
        if self.owners:
            owner = (self.uid(node), self.gid(node))
            if created < 0 or owner != self.identity or self.inherits_group[created]:
                try:
                    os.chown(target, *owner, **where)
                except OSError as error:
                    self.warn(display, f"cannot set owner: {error.strerror or error}")
        if created >= 0 and not node.mode & 0o7000 and not node.mode & self.umask:
            pass  # created with these permission bits; chown clears only set-ID bits
        elif node.type != SYMLINK:
            # Linux has no lchmod: a name here is a fifo or device node this restore just made.
            os.chmod(target, node.mode, dir_fd=None if fd is not None else dir_fd)
        for key, value in node.xattrs.items():
            try:
                if fd is not None:
                    os.setxattr(fd, key, value)
                else:  # no dir_fd form: the folder is ours and the last component is not followed
                    raise OSError(errno.ENOTSUP, "extended attributes on special files are not restored")
            except OSError as error:
                self.warn(display, f"cannot set xattr {key}: {error.strerror or error}")
        os.utime(target, ns=(node.mtime_ns, node.mtime_ns), **where)

    def uid(self, node: Node) -> int:
        if node.user:
            if node.user not in self.uids:
                try:
                    self.uids[node.user] = pwd.getpwnam(node.user).pw_uid
                except KeyError:
                    self.uids[node.user] = None
            found = self.uids[node.user]
            if found is not None:
                return found
        return node.uid

    def gid(self, node: Node) -> int:
        if node.group:
            if node.group not in self.gids:
                try:
                    self.gids[node.group] = grp.getgrnam(node.group).gr_gid
                except KeyError:
                    self.gids[node.group] = None
            found = self.gids[node.group]
            if found is not None:
                return found
        return node.gid


def _load_tree(repository: Repository, tree_id: bytes) -> Tree:
    return Tree.decode(repository.load_blob(tree_id))


def _current_umask() -> int:
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


def _read_groups(locations: list[BlobLocation]) -> Iterator[list[BlobLocation]]:
    """A pack's blobs in offset order, split so one read spans at most ``_READ_SPAN`` bytes
    (bounds the memory of each worker)."""
    group: list[BlobLocation] = []
    start = 0
    for location in sorted(locations, key=_offset):
        if group and location.offset + location.length - start > _READ_SPAN:
            yield group
            group = []
        if not group:
            start = location.offset
        group.append(location)
    if group:
        yield group


def _interleave(tasks: list[T], ways: int) -> list[T]:
    """Take tasks from ``ways`` far-apart stretches in turn: packs follow the backup's walk, so
    neighbouring tasks fill the same folders, and workers creating files in one folder wait on
    its lock."""
    if ways < 2 or len(tasks) < 2 * ways:
        return tasks
    size = -(-len(tasks) // ways)
    stretches = [tasks[start : start + size] for start in range(0, len(tasks), size)]
    return [task for row in itertools.zip_longest(*stretches) for task in row if task is not None]


def _offset(location: BlobLocation) -> int:
    return location.offset


def remove_existing(name: bytes, dir_fd: int) -> None:
    """Remove a non-folder entry ``name`` in ``dir_fd``; ``IsADirectoryError`` for a folder."""
    try:
        info = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "a folder is in the way")
    os.unlink(name, dir_fd=dir_fd)


def _write_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
