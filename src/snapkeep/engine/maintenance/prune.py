"""``prune``: delete what no snapshot references, rewriting packs that are mostly garbage.

Under the repository's exclusive lock (a shared one for ``dry_run``):

1. ``check`` (structure only) finds every blob reachable from a snapshot; prune refuses to run
   when it reports a problem, since it could not tell what is still needed.
2. Every indexed blob gets one *keeper* location (the first in index-file order). A pack holding
   no keeper is deleted; a pack whose garbage share (bytes of non-keeper entries) is above
   ``repack_threshold`` is rewritten: its keepers' stored bytes are verified, then copied as they
   are (still sealed) into new packs through a ``Packer``. Packs that no index lists are leftovers
   of interrupted backups and are deleted, unless a lock broken on the way in was refreshed less
   than ``grace`` seconds ago by a process that may still run (then they are kept this time).
3. The order of the writes keeps the repository valid when interrupted at any point: new packs,
   then new index files covering every kept and new pack, then the old index files are deleted,
   then the old packs. Every index file that exists at any moment points only at stored packs,
   and every used blob stays indexed throughout. A pack is never deleted while it is also the
   product of this run (with no encryption a rewritten pack can equal an existing one byte for
   byte), and a new index file is never deleted as an old one.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from snapkeep.engine.format import pack_name
from snapkeep.engine.maintenance.check import check
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository.index import BlobLocation
from snapkeep.engine.repository.locks import LockInfo, list_locks
from snapkeep.engine.repository.pack_format import PackEntry
from snapkeep.engine.repository.packer import Packer
from snapkeep.errors import IntegrityError, RepositoryError

#: Packs that no index lists are kept when a lock this recent (seconds) was broken on the way in.
DEFAULT_GRACE = 3600.0
#: Entries per index file written by prune.
INDEX_BATCH = 65536


@dataclass
class PruneReport:
    """What prune did (or, with ``dry_run``, would do). Pack lists hold pack IDs."""

    dry_run: bool = False
    snapshots: int = 0
    used_blobs: int = 0
    packs_before: int = 0
    deleted_packs: list[str] = field(default_factory=list)
    repacked_packs: list[str] = field(default_factory=list)
    unindexed_deleted: list[str] = field(default_factory=list)
    unindexed_kept: list[str] = field(default_factory=list)
    new_packs: list[str] = field(default_factory=list)
    blobs_repacked: int = 0
    index_files_written: int = 0
    index_files_deleted: int = 0
    bytes_freed: int = 0
    #: Packs kept instead of rewritten because a used blob in them failed verification.
    damaged_packs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {
            "dry_run": self.dry_run,
            "snapshots": self.snapshots,
            "used_blobs": self.used_blobs,
            "packs_before": self.packs_before,
            "deleted_packs": self.deleted_packs,
            "repacked_packs": self.repacked_packs,
            "unindexed_deleted": self.unindexed_deleted,
            "unindexed_kept": self.unindexed_kept,
            "new_packs": self.new_packs,
            "blobs_repacked": self.blobs_repacked,
            "index_files_written": self.index_files_written,
            "index_files_deleted": self.index_files_deleted,
            "bytes_freed": self.bytes_freed,
            "damaged_packs": self.damaged_packs,
        }


def prune(
    repository: Repository,
    *,
    repack_threshold: float = 0.5,
    dry_run: bool = False,
    progress: Progress | None = None,
    grace: float = DEFAULT_GRACE,
) -> PruneReport:
    """Prune ``repository`` (see the module docstring) and return the report.

    Raises ``ValueError`` for a threshold outside 0-1, ``LockError`` when another process holds a
    conflicting lock, ``RepositoryError`` naming the problems when the repository is damaged, and
    ``StorageError`` when the store fails (the repository stays valid: run prune again).
    """
    if not 0.0 <= repack_threshold <= 1.0:
        raise ValueError(f"repack_threshold must be within 0-1, got {repack_threshold}")
    seen_locks = list_locks(repository.store)
    with repository.lock(exclusive=not dry_run, holder="snapkeep prune") as lock:
        now = repository.clock.time()
        recent = [
            info
            for name, info in seen_locks.items()
            if (name in lock.broken or dry_run) and _may_be_alive(info) and now - info.heartbeat < grace
        ]
        return _Pruner(repository, progress or Progress(), dry_run, keep_unindexed=bool(recent)).run(
            repack_threshold
        )


def _may_be_alive(info: LockInfo) -> bool:
    """False only when the lock's process is known to be gone (same host, no such pid)."""
    if info.host != socket.gethostname():
        return True
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class _Pruner:
    def __init__(
        self, repository: Repository, progress: Progress, dry_run: bool, *, keep_unindexed: bool
    ) -> None:
        self.repository = repository
        self.store = repository.store
        self.progress = progress
        self.keep_unindexed = keep_unindexed
        self.report = PruneReport(dry_run=dry_run)
        self.new_locations: list[BlobLocation] = []
        self.new_bytes = 0

    def run(self, repack_threshold: float) -> PruneReport:
        checked = check(self.repository)
        if not checked.ok:
            shown = "; ".join(str(problem) for problem in checked.problems[:5])
            raise RepositoryError(
                f"prune refuses to run on a damaged repository ({len(checked.problems)} problems: "
                f"{shown}); see `snapkeep repo check`"
            )
        used = checked.used_blobs
        self.report.snapshots = checked.snapshots
        self.report.used_blobs = len(used)
        old_index_ids = self.repository.index_ids()
        entries: list[BlobLocation] = []
        for index_id in old_index_ids:
            entries.extend(self.repository.load_index_file(index_id))
        sizes = {info.name.rsplit("/", 1)[-1]: info.size for info in self.store.list("data/")}
        self.report.packs_before = len(sizes)

        keepers: dict[bytes, BlobLocation] = {}
        for location in entries:
            if location.blob_id in used and location.blob_id not in keepers:
                keepers[location.blob_id] = location
        used_bytes: dict[str, int] = {}
        garbage_bytes: dict[str, int] = {}
        for location in entries:
            bucket = used_bytes if keepers.get(location.blob_id) == location else garbage_bytes
            bucket[location.pack_id] = bucket.get(location.pack_id, 0) + location.length
        indexed = set(used_bytes) | set(garbage_bytes)
        for pack_id in sorted(indexed):
            kept, garbage = used_bytes.get(pack_id, 0), garbage_bytes.get(pack_id, 0)
            if not kept:
                self.report.deleted_packs.append(pack_id)
            elif garbage and garbage / (kept + garbage) > repack_threshold:
                self.report.repacked_packs.append(pack_id)
        unindexed = sorted(set(sizes) - indexed)
        if self.keep_unindexed:
            self.report.unindexed_kept = unindexed
        else:
            self.report.unindexed_deleted = unindexed
        if self.report.dry_run or not (self.report.deleted_packs or self.report.repacked_packs or unindexed):
            self.report.bytes_freed = sum(
                sizes.get(p, 0)
                for p in (
                    *self.report.deleted_packs,
                    *self.report.repacked_packs,
                    *self.report.unindexed_deleted,
                )
            )
            return self.report

        self.repack(keepers)
        gone = (set(self.report.deleted_packs) | set(self.report.repacked_packs)) - set(self.report.new_packs)
        new_index_ids = self.write_index(entries, gone)
        for index_id in old_index_ids:
            if index_id not in new_index_ids:
                self.store.delete(f"index/{index_id}", missing_ok=True)
                self.report.index_files_deleted += 1
        doomed = (gone | set(self.report.unindexed_deleted)) - set(self.report.new_packs)
        for pack_id in sorted(doomed):
            self.store.delete(pack_name(pack_id), missing_ok=True)
        self.report.bytes_freed = sum(sizes.get(p, 0) for p in doomed) - self.new_bytes
        self.repository.reload_index()
        self.progress.on_finish()
        return self.report

    def repack(self, keepers: dict[bytes, BlobLocation]) -> None:
        """Copy the keepers of the packs to rewrite into new packs; verify each before copying."""
        by_pack: dict[str, list[BlobLocation]] = {}
        for location in keepers.values():
            by_pack.setdefault(location.pack_id, []).append(location)
        packer = Packer(
            self.store, self.repository.cipher, self._uploaded, pack_size=self.repository.config.pack_size
        )
        try:
            for pack_id in list(self.report.repacked_packs):
                data = self.store.load(pack_name(pack_id))
                blobs = []
                try:
                    for location in sorted(by_pack[pack_id], key=lambda loc: loc.offset):
                        stored = data[location.offset : location.offset + location.length]
                        self.repository.decode_blob(location, stored)
                        blobs.append((location, stored))
                except IntegrityError:
                    self.report.repacked_packs.remove(pack_id)
                    self.report.damaged_packs.append(pack_id)
                    continue
                for location, stored in blobs:
                    packer.add(
                        location.blob_id,
                        location.blob_type,
                        location.compression,
                        stored,
                        location.raw_length,
                    )
                    self.report.blobs_repacked += 1
                self.progress.on_file(pack_name(pack_id), len(data))
                self.progress.on_bytes(len(data))
            packer.flush()
            self.new_bytes = packer.bytes_uploaded
        finally:
            packer.close()

    def _uploaded(self, pack_id: str, entries: list[PackEntry]) -> None:
        # Uploader-thread callback; list.append is atomic, the report is read after flush().
        self.report.new_packs.append(pack_id)
        self.new_locations.extend(entry.located_in(pack_id) for entry in entries)

    def write_index(self, entries: Iterable[BlobLocation], gone: set[str]) -> set[str]:
        """Store index files for every blob in a kept or new pack; returns their IDs.

        A blob held twice (a kept pack keeps a duplicate of a blob that was copied out of a
        rewritten pack) is listed at its new copy: listing the kept duplicate first would leave a
        new pack that no index names (an unindexed pack, prune's garbage next time) right after a
        clean prune."""
        listed: dict[bytes, BlobLocation] = {}
        for location in (*self.new_locations, *entries):
            if location.pack_id not in gone and location.blob_id not in listed:
                listed[location.blob_id] = location
        rows = list(listed.values())
        written: set[str] = set()
        for start in range(0, len(rows), INDEX_BATCH):
            written.add(self.repository.write_index_file(rows[start : start + INDEX_BATCH]))
            self.report.index_files_written += 1
        return written
