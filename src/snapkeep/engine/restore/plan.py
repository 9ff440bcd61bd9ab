"""Restore planning: walk the snapshot's trees, apply the includes, batch the files by pack.

The plan (main thread) walks the snapshot's trees depth first, decoding each listing itself while
other threads read ahead the packs of the listings it will visit next. Every name comes from
``Tree.decode``, which rejects ``..``, ``/``, NUL and empty names (``UnsafePathError``). Folders
are created as the plan reaches them (``fs.safe_target``); regular files are planned (empty ones
created at once); symlinks, fifos and device nodes (when root) are made there too. The blobs the
planned files need are grouped by pack and handed to the workers (``restore.writer``) every
``_BATCH_BYTES`` or ``_BATCH_FILES``, so writing starts while the plan goes on; at most
``_BATCHES_AHEAD`` batches wait, which bounds the plan's memory.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.data.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK, Node, Tree
from snapkeep.engine.format import CHUNK_MAX_SIZE
from snapkeep.engine.fs.restore_policy import (
    OVERWRITE,
    SKIP,
    WRITE,
    RestoreOptions,
    decide,
    special_refused,
)
from snapkeep.engine.fs.safe_target import (
    SPECIAL_BITS,
    existing,
    open_existing_folder,
    open_folder,
    plain_mode,
    read_existing,
    remove_existing,
    split_path,
)
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository.index import BlobLocation
from snapkeep.engine.restore.trees import TreePacks
from snapkeep.engine.restore.writer import FileJob, RestoreWriter, Users
from snapkeep.errors import IntegrityError, NotFoundError

__all__ = ["Filters", "RestorePlanner", "SplitTask", "parse_include"]

#: The plan hands its packs to the workers every this many planned bytes or files, so writing
#: starts while the plan (trees, folders) goes on.
_BATCH_BYTES = 64 * 1024 * 1024
_BATCH_FILES = 2048
#: Near the end of a whole restore (fewer than two batches of the files its snapshot declares left
#: to plan), batches are this many times smaller: the workers write the last files while the plan
#: finishes, instead of the whole last batch after it (512 MiB on tmpfs: the plan ended 0.35-0.45
#: s before the restore did).
_TAIL_DIVISOR = 8
#: Batches handed to the workers and not yet written before the plan waits (2 GiB set: peak RSS
#: 168 MiB when the plan ran ahead of all 80,000 files).
_BATCHES_AHEAD = 3
#: Largest span of a pack read at once by one worker.
_READ_SPAN = 4 * 1024 * 1024
#: A restore shared among processes (``restore.processes``) holds less in each: a read spans at
#: most 1 MiB (a local read costs no round trip), two batches wait, 8 MiB of tree packs are kept.
#: 2 GiB into tmpfs, two processes: 149-150 MiB summed against 168-173 MiB with the defaults, no
#: slower (5.6-5.7 s against 5.6-6.0 s). Batches a quarter of the size (512 files or 16 MiB):
#: 137-138 MiB against 150-151, 5.2-5.5 s against 5.1-5.8 s (half: 142-143 MiB). From S3 the same
#: batches: 199 MiB summed against 212, 9.1 s against 8.8 s.
SPLIT_READ_SPAN = 1024 * 1024
SPLIT_BATCHES_AHEAD = 2
SPLIT_TREE_CACHE = 8 * 1024 * 1024
SPLIT_BATCH_FILES = _BATCH_FILES // 4
SPLIT_BATCH_BYTES = _BATCH_BYTES // 4
Filters = list[list[bytes]] | None
T = TypeVar("T")


@dataclass(slots=True)
class SplitTask:
    """A folder the plan made (or merged into) and left for later: ``folder`` is its index in the
    planning process's ``Folders``, ``parts`` its path below the target, ``shown`` its path in the
    snapshot, ``below`` the includes inside it and ``made`` whether this restore made it."""

    folder: int
    subtree: bytes
    parts: list[bytes]
    shown: bytes
    below: list[list[bytes]] | None
    made: bool


def parse_include(include: str | bytes) -> list[bytes]:
    """A path inside the snapshot as validated components (``fs.safe_target.split_path``,
    lenient: ``/home//a/.`` is ``home/a``); ``UnsafePathError`` for ``..`` or a path naming
    nothing."""
    return list(split_path(include, lenient=True))


#: Entries a whole restore may create beyond twice what its snapshot's stats declare (files,
#: folders, others) before it stops as forged: a shared subtree may be listed once and restored
#: many times (a depth-24 fan-out of 56 KB expands to 2^24 folders).
ENTRY_SLACK = 100_000


class RestorePlanner(RestoreWriter):
    """One restore: the plan (main thread) feeding the writer's worker pool."""

    def __init__(
        self, repository: Repository, progress: Progress, owners: bool, options: RestoreOptions | None = None
    ) -> None:
        super().__init__(repository, progress, owners, options)
        self.blob_users: Users = {}
        self.packs: dict[str, list[BlobLocation]] = {}
        self.pool: ThreadPoolExecutor | None = None
        self.tree_pool: ThreadPoolExecutor | None = None
        #: folder listings, read a whole tree pack at a time (one request instead of one per folder)
        self.tree_packs = TreePacks(repository)
        self.ways = 1
        self.batches: deque[list[Future[None]]] = deque()
        self.planned_bytes = 0
        self.planned_files = 0
        #: files planned in all, and the number after which batches get smaller (a whole restore)
        self.files_seen = 0
        self.tail_from: int | None = None
        self.batch_files, self.batch_bytes = _BATCH_FILES, _BATCH_BYTES
        self.entries = 0
        #: per folder: whether this restore made it (it held nothing before)
        self.made: list[bool] = []
        #: refuse a whole restore whose folders expand far beyond what the snapshot declares
        self.entry_limit: int | None = None
        #: with several processes, ``entry_limit`` is what this one may create so far, and more is
        #: asked for from the restore's one allowance (``restore.processes``); 0: none is left
        self.lease: Callable[[], int] | None = None
        self.entry_cap: int | None = None
        #: the depth whose folders are planned as tasks instead of walked (``restore.processes``)
        self.split_depth: int | None = None
        self.tasks: list[SplitTask] = []
        self.read_span = _READ_SPAN
        self.batches_ahead = _BATCHES_AHEAD
        #: hard-link groups whose first name is an existing file the policy kept
        self.kept_groups: set[str] = set()

    def shared(self, *, local: bool) -> None:
        """This process is one of several restoring (``restore.processes``): hold less, in smaller
        batches (and read shorter spans from a ``local`` store; a remote read keeps its span, each
        request costs: from S3, 2 MiB spans took 10.9 s against 9.1 s with 4 MiB, 1 MiB 11.7 s)."""
        if local:
            self.read_span = SPLIT_READ_SPAN
        self.batch_files, self.batch_bytes = SPLIT_BATCH_FILES, SPLIT_BATCH_BYTES
        self.batches_ahead = SPLIT_BATCHES_AHEAD
        self.tree_packs.budget = SPLIT_TREE_CACHE

    def start(
        self, pool: ThreadPoolExecutor, tree_pool: ThreadPoolExecutor, ways: int, snapshot: Snapshot | None
    ) -> None:
        """Content is written by ``pool`` while the plan goes on, trees are prefetched by
        ``tree_pool`` (totals from the snapshot's stats for a whole restore)."""
        self.pool = pool
        self.tree_pool = tree_pool
        self.ways = max(1, ways)
        self.inherits_group = [bool(os.fstat(self.folders.fds[0]).st_mode & stat.S_ISGID)]
        self.made = [False]  # the target may hold anything
        stats = snapshot.stats if snapshot is not None else {}
        files, size = stats.get("files"), stats.get("bytes")
        counts = [stats.get(key) for key in ("files", "dirs", "other_entries")]
        declared = sum(count for count in counts if isinstance(count, int) and count >= 0)
        if snapshot is not None:  # a whole restore (every snapshot snapkeep writes has stats)
            self.entry_limit = 2 * declared + ENTRY_SLACK
            if isinstance(files, int) and files >= 0:
                self.tail_from = files - 2 * _BATCH_FILES
        self.progress.on_start(
            files if isinstance(files, int) else None, size if isinstance(size, int) else None
        )

    # --- plan -------------------------------------------------------------------------------------

    def load_tree(self, tree_id: bytes) -> Tree:
        """A tree (``TreePacks`` reads its whole pack, or has it read ahead by ``prefetch``).
        Raises what loading raises."""
        return self.tree_packs.load(tree_id)

    def prefetch(self, tree_id: bytes) -> None:
        """Start reading the pack of a tree the plan will need soon: against a remote store the
        plan then does not wait a round trip for it."""
        if self.tree_pool is not None:
            self.tree_packs.prefetch(tree_id, self.tree_pool)

    def check_includes(self, root: bytes, filters: list[list[bytes]]) -> None:
        """Raises ``NotFoundError`` when an include names nothing in the snapshot."""
        for parts in filters:
            tree_id: bytes | None = root
            for index, part in enumerate(parts):
                node = self.load_tree(tree_id).by_name().get(part) if tree_id is not None else None
                if node is None:
                    raise NotFoundError(kind="path in snapshot", ident="/" + os.fsdecode(b"/".join(parts)))
                tree_id = node.subtree if index + 1 < len(parts) else None

    def choose(self, tree_id: bytes, filters: Filters) -> list[tuple[Node, Filters]]:
        """The entries of a tree the includes select, each with the includes below it."""
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
        return chosen

    def plan(self, tree_id: bytes, folder: int, parts: list[bytes], display: bytes, filters: Filters) -> None:
        for node, below in self.choose(tree_id, filters):
            shown = display + b"/" + node.name
            self.entries += 1
            if self.entry_limit is not None and self.entries > self.entry_limit:
                self.more_entries()
            try:
                self.plan_entry(node, folder, parts, shown, below)
            except OSError as error:
                self.fail(os.fsdecode(shown), f"cannot restore: {error.strerror or error}")

    def more_entries(self) -> None:
        """Past ``entry_limit``: take more from the shared allowance, else raise ``IntegrityError``."""
        assert self.entry_limit is not None
        extra = self.lease() if self.lease is not None else 0
        if extra > 0:
            self.entry_limit += extra
            return
        limit = self.entry_cap if self.entry_cap is not None else self.entry_limit
        raise IntegrityError(
            what="snapshot",
            reason=f"its folders expand to more than {limit} entries, far beyond what it "
            "declares (a forged or damaged folder structure; 'repo check' shows what it expands to)",
        )

    # --- what is already in the target ------------------------------------------------------------

    def decision(self, node: Node, dir_fd: int | None, display: str) -> str:
        """``WRITE``, ``OVERWRITE`` or ``SKIP`` for ``node`` against what ``dir_fd`` holds at its
        name (``fs.restore_policy.decide``); an existing folder where a non-folder belongs is a
        failure (``IsADirectoryError``) unless the policy keeps it."""
        return self.decide_on(node, existing(node.name, dir_fd), dir_fd)

    def decide_on(self, node: Node, info: os.stat_result | None, dir_fd: int | None) -> str:
        """``decision`` for ``info``, what was found at ``node``'s name (``None``: nothing)."""
        if info is None:
            return WRITE
        if node.type == DIR:
            if info is not None and stat.S_ISDIR(info.st_mode):
                return WRITE  # merged into
            return decide(self.options.overwrite, info, node.mtime_ns, _never_same)
        assert dir_fd is not None or info is None
        action = decide(
            self.options.overwrite,
            info,
            node.mtime_ns,
            lambda found: self.same_entry(node, found, dir_fd if dir_fd is not None else -1),
        )
        if action == OVERWRITE and info is not None and stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way")
        return action

    def same_entry(self, node: Node, info: os.stat_result, dir_fd: int) -> bool:
        """Whether the existing entry ``info`` already holds ``node``'s content: a regular file of
        the same size whose every blob-sized piece has the blob's ID, or a symlink to the same
        target. The size is the hint, the content decides."""
        if node.type == SYMLINK:
            return stat.S_ISLNK(info.st_mode) and os.readlink(node.name, dir_fd=dir_fd) == os.fsencode(
                node.target
            )
        if node.type != FILE or not stat.S_ISREG(info.st_mode) or info.st_size != node.size:
            return False
        fd = read_existing(node.name, dir_fd)
        if fd is None:
            return False
        try:
            offset = 0
            for blob_id in node.content:
                location = self.repository.lookup(blob_id)
                if location is None or location.raw_length > CHUNK_MAX_SIZE:
                    return False
                if offset + location.raw_length > node.size:
                    return False
                data = _read_at(fd, location.raw_length, offset)
                if len(data) != location.raw_length or self.repository.blob_id(data) != blob_id:
                    return False
                offset += location.raw_length
            return offset == node.size and not os.pread(fd, 1, offset)
        finally:
            os.close(fd)

    def refused_special(self, node: Node, display: str) -> bool:
        """Without special files: a fifo or device node is left out (a warning), and a
        file's set-user/group-ID bits are dropped (a warning). True when ``node`` is left out."""
        if self.options.special_files:
            return False
        if node.type in (FIFO, CHARDEV, BLOCKDEV):
            self.warn(display, special_refused(node.type))
            return True
        if node.type == FILE and node.mode & SPECIAL_BITS:
            node.mode = plain_mode(node.mode)
            self.warn(display, "restored without its set-user/group-ID bits (special files not asked for)")
        return False

    # --- the real restore -------------------------------------------------------------------------

    def plan_entry(self, node: Node, folder: int, parts: list[bytes], shown: bytes, below: Filters) -> None:
        name = node.name
        display = os.fsdecode(shown)
        # A folder this restore made holds only what the restore put there (tree names are unique):
        # nothing to look up (an lstat per entry, which waits for the folder while workers create
        # files in it). Files are still created with O_EXCL | O_NOFOLLOW.
        fresh = self.made[folder]
        if node.type == DIR:
            assert node.subtree is not None
            with self.folders.open(folder) as dir_fd:
                info = None if fresh else existing(name, dir_fd)
                action = self.decide_on(node, info, dir_fd)
                if action == SKIP:
                    self.note(SKIP, display)
                    return
                if action == OVERWRITE:
                    self.note(OVERWRITE, display)
                fd, made = open_folder(name, dir_fd)
            self.made.append(made)
            self.inherits_group.append(bool(os.fstat(fd).st_mode & stat.S_ISGID))
            child = self.folders.add(fd, [*parts, name])
            if self.split_depth == len(parts) + 1:
                # Restored later by this process or another one (``restore.processes``).
                self.tasks.append(SplitTask(child, node.subtree, [*parts, name], shown, below, made))
            else:
                self.plan(node.subtree, child, [*parts, name], shown, below)
            merged = info is not None and stat.S_ISDIR(info.st_mode)
            if not (merged and self.options.keeps_folders):
                self.folder_nodes.append((child, display, node))
            self.result.dirs += 1
            return
        if below is not None:
            return  # an include goes deeper but this entry is not a folder
        if (node.type != FILE or node.mode & SPECIAL_BITS) and self.refused_special(node, display):
            return
        locations: list[BlobLocation] = []
        if node.type == FILE:
            found = self.repository.file_locations(node)
            if isinstance(found, str):
                self.fail(display, f"not restored: {found}")  # e.g. 8 TiB declared for 6 bytes
                return
            locations = found
            if fresh:  # nothing to decide or remove in a folder this restore made
                self.note(WRITE, display)
                self.plan_file(node, folder, display, locations)
                return
        with self.folders.open(folder) as dir_fd:
            action = WRITE if fresh else self.decision(node, dir_fd, display)
            if action == SKIP:
                self.note(SKIP, display)
                if node.hardlink and node.hardlink not in self.hardlink_first:
                    self.hardlink_first[node.hardlink] = (folder, name)
                    self.kept_groups.add(node.hardlink)
                return
            self.note(action, display)
            if node.type != FILE:
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
        if node.type == FILE:
            self.plan_file(node, folder, display, locations)
            return
        self.result.others += 1
        self.progress.on_file(display, 0)

    # --- the dry run ------------------------------------------------------------------------------

    def dry_plan(self, tree_id: bytes, dir_fd: int | None, display: bytes, filters: Filters) -> None:
        """Record what the restore would do below the existing folder ``dir_fd`` (``None``: the
        folder does not exist yet, everything is new); creates and writes nothing."""
        for node, below in self.choose(tree_id, filters):
            shown = os.fsdecode(display + b"/" + node.name)
            try:
                self.dry_entry(node, dir_fd, shown, below)
            except OSError as error:
                self.fail(shown, f"cannot restore: {error.strerror or error}")

    def dry_entry(self, node: Node, dir_fd: int | None, shown: str, below: Filters) -> None:
        if node.type == DIR:
            assert node.subtree is not None
            action = self.decision(node, dir_fd, shown)
            if action in (SKIP, OVERWRITE):
                self.note(action, shown)
            if action == SKIP:
                return
            child = open_existing_folder(node.name, dir_fd) if action == WRITE else None
            try:
                self.dry_plan(node.subtree, child, os.fsencode(shown), below)
            finally:
                if child is not None:
                    os.close(child)
            self.result.dirs += 1
            return
        if below is not None or self.refused_special(node, shown):
            return
        self.note(self.decision(node, dir_fd, shown), shown)
        self.progress.on_file(shown, 0)

    def plan_file(self, node: Node, folder: int, display: str, locations: list[BlobLocation]) -> None:
        """Plan a file whose chunks are at ``locations`` (``Repository.file_locations``)."""
        if node.hardlink:
            if node.hardlink in self.hardlink_first:
                self.links.append((folder, node.name, display, node.hardlink))
                return
            self.hardlink_first[node.hardlink] = (folder, node.name)
        job = FileJob(folder, node.name, display, node, len(node.content), None)
        if not node.content:
            self.create_and_finish(job, b"")
            return
        if len(node.content) > 1:
            job.lock = threading.Lock()
        if node.hardlink:
            self.hardlink_first[node.hardlink] = job
        offset = 0
        for blob_id, location in zip(node.content, locations, strict=True):
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
        self.files_seen += 1
        if self.tail_from is not None and self.files_seen >= self.tail_from:
            self.tail_from = None
            self.batch_files, self.batch_bytes = _BATCH_FILES // _TAIL_DIVISOR, _BATCH_BYTES // _TAIL_DIVISOR
        if self.planned_bytes >= self.batch_bytes or self.planned_files >= self.batch_files:
            self.submit_planned()

    # --- hand-off to the workers -------------------------------------------------------------------

    def submit_planned(self) -> None:
        """Hand the packs needed by the files planned so far to the workers.

        The plan goes on meanwhile: a batch has its own blob users, so a blob that files of a
        later batch need too is read again then (rare: duplicates within one snapshot)."""
        packs, users = self.packs, self.blob_users
        self.packs, self.blob_users = {}, {}
        self.planned_bytes = self.planned_files = 0
        assert self.pool is not None
        tasks = [
            (pack, group)
            for pack, locations in packs.items()
            for group in _read_groups(locations, self.read_span)
        ]
        self.batches.append(
            [
                self.pool.submit(self.restore_pack, pack, group, users)
                for pack, group in _interleave(tasks, self.ways)
            ]
        )
        while len(self.batches) > self.batches_ahead:  # bounds the plan's lead, and so its memory
            for future in self.batches.popleft():
                future.result()

    def write_contents(self) -> None:
        """Submit the rest of the plan and wait for every write. Raises what a worker raised."""
        self.submit_planned()
        while self.batches:
            for future in self.batches.popleft():
                future.result()


def _never_same(info: os.stat_result) -> bool:
    return False


def _read_at(fd: int, length: int, offset: int) -> bytes:
    """Up to ``length`` bytes of ``fd`` from ``offset`` (fewer only at the end of the file)."""
    pieces: list[bytes] = []
    while length > 0:
        piece = os.pread(fd, length, offset)
        if not piece:
            break
        pieces.append(piece)
        length -= len(piece)
        offset += len(piece)
    return b"".join(pieces)


def _read_groups(locations: list[BlobLocation], span: int) -> Iterator[list[BlobLocation]]:
    """A pack's blobs in offset order, split so one read spans at most ``span`` bytes (bounds the
    memory of each worker)."""
    group: list[BlobLocation] = []
    start = 0
    for location in sorted(locations, key=_offset):
        if group and location.offset + location.length - start > span:
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
