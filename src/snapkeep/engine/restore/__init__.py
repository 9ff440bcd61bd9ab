"""Restore: a whole snapshot or chosen paths, to any target folder, never outside it.

Plan (main thread, ``restore.plan``): walk the snapshot's trees depth first. Every name comes from
``Tree.decode``, which rejects ``..``, ``/``, NUL and empty names (``UnsafePathError``). Folders are
created and opened one component at a time relative to their parent's descriptor with
``O_NOFOLLOW`` (``fs.safe_target``); a symlink or file planted where a folder or file belongs is
removed, never followed. Symlinks, fifos and device nodes (when root) are made there too.

Content (worker threads, ``restore.writer``): the needed blobs are grouped by pack; each worker
reads one pack's blobs with ``repository.load_blobs`` (ranged reads, every blob verified against its
ID) and writes each blob at its offsets in every file that uses it, skipping zero runs of sparse
files. A file gets its metadata (owner, mode, xattrs and ACLs, mtime in ns) through its descriptor
when its last blob is written. Hard links are linked to their first member afterwards; folder
metadata is applied last, deepest first. A blob that is missing or damaged fails the files using it
(their partial content is removed) and the failure names them; every other file still restores.

Processes (``restore.processes``): a restore from a local store is shared by one process per core
(at most 4; ``SNAPKEEP_RESTORE_PROCESSES`` sets it, and shares SFTP and S3 restores too): the plan
splits the snapshot at the first depth with enough folders and worker processes restore some of
them with the same planner, each on its own interpreter lock.

What is already in the target is treated by ``RestoreOptions`` (``fs.restore_policy``): the overwrite
policy (``always``, ``if-changed``, ``if-newer``, ``never``), the dry run (walks the backup and the
target, writes nothing, lists what would change) and whether special files (fifos, device nodes,
set-user/group-ID bits) are created.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.fs.restore_policy import POLICIES, Changes, RestoreOptions
from snapkeep.engine.fs.safe_target import DIR_FLAGS, Folders, descriptor_budget, open_existing_folder
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.engine.restore.plan import RestorePlanner, parse_include
from snapkeep.engine.restore.processes import Splitter, default_processes, split_depth
from snapkeep.engine.restore.writer import RestoreResult

__all__ = ["POLICIES", "Changes", "RestoreOptions", "RestoreResult", "parse_include", "restore"]

#: Threads that read the packs of the listings the plan will visit next (the plan decodes them).
_TREE_READERS = 2


def restore(
    repository: Repository,
    snapshot: Snapshot,
    target: str | bytes,
    *,
    includes: Iterable[str | bytes] = (),
    progress: Progress | None = None,
    workers: int = 2,
    restore_owners: bool | None = None,
    options: RestoreOptions | None = None,
    processes: int | None = None,
) -> RestoreResult:
    """Restore ``snapshot`` (or only ``includes``, paths inside it) into the folder ``target``.

    ``workers`` write contents (2 by default: on 2 cores a third only adds GIL contention; 512 MiB:
    1.95-2.4 s with 2, 2.2-2.7 s with 3). Raises ``UnsafePathError`` for a crafted tree or include,
    ``NotFoundError`` when an include names nothing, ``IntegrityError`` when a tree is damaged, and
    storage errors. Per-file problems are listed in the result's ``failures``. ``options``: the
    overwrite policy, dry run and special files (default: ``always``, a real restore, none).
    ``processes``: how many processes share the restore (``restore.processes.default_processes``:
    1 for a store a worker cannot open again; default one per core for a local store, at most 4).
    """
    filters = [parse_include(include) for include in includes] or None
    restorer = RestorePlanner(
        repository,
        progress or Progress(),
        os.geteuid() == 0 if restore_owners is None else restore_owners,
        options,
    )
    if filters is not None:
        restorer.check_includes(bytes.fromhex(snapshot.tree), filters)
    base = os.path.abspath(os.fsencode(target))
    if restorer.options.dry_run:
        return _dry_run(restorer, snapshot, base, filters)
    os.makedirs(base, exist_ok=True)
    folders = Folders(os.open(base, DIR_FLAGS), descriptor_budget())
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="snapkeep-restore")
    tree_pool = ThreadPoolExecutor(max_workers=_TREE_READERS, thread_name_prefix="snapkeep-trees")
    splitter: Splitter | None = None
    root = bytes.fromhex(snapshot.tree)
    try:
        restorer.folders = folders
        restorer.start(pool, tree_pool, workers, snapshot if filters is None else None)
        count = default_processes(repository, processes)
        if count > 1:
            restorer.split_depth = split_depth(restorer, root, filters)
            if restorer.split_depth is not None:
                splitter = Splitter(restorer, count - 1, folders.fds[0], workers)
                splitter.start()
                restorer.result.processes = 1 + splitter.started
        restorer.plan(root, 0, [], b"", filters)
        if splitter is not None:
            splitter.seal()
            while (task := splitter.take()) is not None:
                restorer.plan(task.subtree, task.folder, task.parts, task.shown, task.below)
        restorer.write_contents()
        if splitter is not None:
            splitter.finish()
        restorer.link_hardlinks()
        restorer.apply_folder_metadata(pool, workers)
    finally:
        if splitter is not None:
            splitter.close()
        tree_pool.shutdown(wait=True, cancel_futures=True)
        pool.shutdown(wait=True, cancel_futures=True)
        folders.close()
        os.close(folders.fds[0])
        restorer.progress.on_finish()
    return restorer.result


def _dry_run(
    restorer: RestorePlanner, snapshot: Snapshot, base: bytes, filters: list[list[bytes]] | None
) -> RestoreResult:
    """What the restore would do below ``base``; nothing is created or written."""
    root: int | None = None
    if os.path.isdir(base):
        parent = os.open(os.path.dirname(base) or b"/", DIR_FLAGS)
        try:
            root = open_existing_folder(os.path.basename(base), parent) if os.path.basename(base) else parent
        finally:
            if root != parent:
                os.close(parent)
    tree_pool = ThreadPoolExecutor(max_workers=_TREE_READERS, thread_name_prefix="snapkeep-trees")
    try:
        restorer.tree_pool = tree_pool
        restorer.progress.on_start(None, None)
        restorer.dry_plan(bytes.fromhex(snapshot.tree), root, b"", filters)
    finally:
        tree_pool.shutdown(wait=True, cancel_futures=True)
        if root is not None:
            os.close(root)
        restorer.progress.on_finish()
    return restorer.result
