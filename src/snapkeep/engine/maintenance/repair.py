"""``repair``: make a damaged repository usable again, losing no more than what is gone.

``repair_index`` writes the index again from the packs themselves. Every pack ends with a sealed
trailer listing its blobs (``repository.pack_format``), so when index files are lost (deleted, or an
incomplete copy of the destination) or damaged, nothing stored is lost: the new index lists every
blob of every pack whose trailer opens, plus the entries of the old index files that still open and
point at a stored pack whose trailer does not (their blobs may be intact). New index files are
written before the old ones are deleted, so an interruption leaves a usable repository.

``repair_snapshots`` salvages snapshots whose trees reference data that is gone. Each snapshot's
trees are rewritten bottom-up: a file with a chunk that is not indexed, or whose pack is missing, or
whose declared size is not the sum of its chunks (``Repository.file_problem``) is **removed** from
its folder (as restic does: no file is restored with holes or zeros where its data was); a folder
whose listing is missing or unreadable is removed with everything below it. Unchanged folders keep
their tree blob. When anything was removed, a new snapshot is saved (unless an earlier repair
already saved the same one) with the same time, host, paths
and job, the tag ``repaired`` and ``stats["repaired_from"]`` naming the original; the original is
deleted only with ``forget``. A snapshot whose root folder is unreadable cannot be salvaged and is
reported (and, with ``forget``, deleted). Run ``repair_index`` first when index files were lost.

Both take the repository's exclusive lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from snapkeep.engine.data.bounds import location_problem
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.data.tree import DIR, FILE, Node, Tree
from snapkeep.engine.format import DATA_PREFIX, INDEX_PREFIX, BlobType, pack_name
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository.index import BlobLocation
from snapkeep.errors import IntegrityError, ObjectNotFoundError, RepositoryError

#: Entries per index file written by ``repair_index``.
INDEX_BATCH = 65536
#: The tag of a snapshot written by ``repair_snapshots``.
REPAIRED_TAG = "repaired"


@dataclass
class IndexRepairReport:
    """What ``repair_index`` found and wrote."""

    packs: int = 0
    #: Packs whose trailer did not open: (pack ID, why). Their blobs are indexed only when an old
    #: index file listed them.
    unreadable_packs: list[tuple[str, str]] = field(default_factory=list)
    blobs: int = 0
    #: Blobs that no readable old index file listed (found again in the trailers).
    blobs_recovered: int = 0
    index_files_written: int = 0
    index_files_deleted: int = 0
    #: Old index files that did not open (deleted: the new index covers their packs' trailers).
    damaged_index_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "packs": self.packs,
            "unreadable_packs": [{"pack": pack, "reason": why} for pack, why in self.unreadable_packs],
            "blobs": self.blobs,
            "blobs_recovered": self.blobs_recovered,
            "index_files_written": self.index_files_written,
            "index_files_deleted": self.index_files_deleted,
            "damaged_index_files": self.damaged_index_files,
        }


def repair_index(repository: Repository, *, progress: Progress | None = None) -> IndexRepairReport:
    """Write the index again from the packs' trailers (see the module docstring).

    Raises ``LockError`` when another process holds a lock and ``StorageError`` when the store
    fails (the old index files are deleted only after the new ones are stored).
    """
    progress = progress or Progress()
    report = IndexRepairReport()
    with repository.lock(exclusive=True, holder="snapkeep repair index"):
        store = repository.store
        sizes = {
            info.name.rsplit("/", 1)[-1]: info.size
            for info in store.list(DATA_PREFIX)
            if info.name == pack_name(info.name.rsplit("/", 1)[-1])
        }
        report.packs = len(sizes)
        old_ids = repository.index_ids()
        old: dict[bytes, BlobLocation] = {}
        for index_id in old_ids:
            try:
                locations = repository.load_index_file(index_id)
            except (IntegrityError, ObjectNotFoundError):
                report.damaged_index_files.append(index_id)
                continue
            for location in locations:
                if location.pack_id in sizes and location.blob_id not in old:
                    old[location.blob_id] = location
        progress.on_start(len(sizes), None)
        listed: dict[bytes, BlobLocation] = {}
        unreadable: set[str] = set()
        for pack_id in sorted(sizes):
            try:
                entries = repository.read_pack_trailer(pack_id)
            except (IntegrityError, ObjectNotFoundError) as error:
                report.unreadable_packs.append((pack_id, str(error)))
                unreadable.add(pack_id)
                continue
            finally:
                progress.on_file(pack_name(pack_id), 0)
            for entry in entries:
                if location_problem(entry.blob_type, entry.length, entry.raw_length) is not None:
                    continue
                if entry.blob_id not in listed:
                    listed[entry.blob_id] = entry.located_in(pack_id)
                    if entry.blob_id not in old:
                        report.blobs_recovered += 1
        for blob_id, location in old.items():
            # Old entries whose pack lost its trailer may still point at intact blobs.
            if blob_id not in listed and location.pack_id in unreadable:
                listed[blob_id] = location
        rows = list(listed.values())
        report.blobs = len(rows)
        written: set[str] = set()
        for start in range(0, len(rows), INDEX_BATCH):
            written.add(repository.write_index_file(rows[start : start + INDEX_BATCH]))
            report.index_files_written += 1
        for index_id in old_ids:
            if index_id not in written:
                store.delete(f"{INDEX_PREFIX}{index_id}", missing_ok=True)
                report.index_files_deleted += 1
        repository.reload_index()
    progress.on_finish()
    return report


@dataclass
class SnapshotRepair:
    """One snapshot ``repair_snapshots`` changed: its new ID (``None`` when it could not be
    salvaged, or in a dry run) and the removed paths with the reason."""

    snapshot: str
    new_snapshot: str | None
    removed: list[tuple[str, str]] = field(default_factory=list)
    salvageable: bool = True
    forgotten: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "new_snapshot": self.new_snapshot,
            "salvageable": self.salvageable,
            "forgotten": self.forgotten,
            "removed": [{"path": path, "reason": why} for path, why in self.removed],
        }


@dataclass
class SnapshotsRepairReport:
    """What ``repair_snapshots`` did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    snapshots: int = 0
    intact: int = 0
    repaired: list[SnapshotRepair] = field(default_factory=list)
    #: Snapshot files that do not open (deleted with ``forget``).
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "snapshots": self.snapshots,
            "intact": self.intact,
            "repaired": [item.to_dict() for item in self.repaired],
            "unreadable": [{"snapshot": ident, "reason": why} for ident, why in self.unreadable],
        }


def repair_snapshots(
    repository: Repository,
    *,
    snapshot_ids: tuple[str, ...] | list[str] = (),
    forget: bool = False,
    dry_run: bool = False,
) -> SnapshotsRepairReport:
    """Salvage the snapshots (all, or ``snapshot_ids``) whose trees reference missing data (see
    the module docstring). Raises ``LockError``, ``NotFoundError`` for an unknown ID and
    ``StorageError``."""
    report = SnapshotsRepairReport(dry_run=dry_run)
    with repository.lock(exclusive=not dry_run, holder="snapkeep repair snapshots"):
        repository.reload_index()
        wanted = [repository.snapshots.resolve(ref) for ref in snapshot_ids] or repository.snapshots.ids()
        packs = {info.name.rsplit("/", 1)[-1] for info in repository.store.list(DATA_PREFIX)}
        unindexed = packs - repository.index.pack_ids()
        if unindexed:
            # Their blobs would be taken for lost: index them first (or prune a killed backup's).
            raise RepositoryError(
                f"{len(unindexed)} packs are in no index file (e.g. {min(unindexed)}); run "
                "`snapkeep repo repair index` first, so no data they hold is taken for lost"
            )
        rewriter = _Rewriter(repository, packs, dry_run)
        loaded: dict[str, Snapshot] = {}
        broken: dict[str, str] = {}
        copies: dict[tuple[str, str], str] = {}  # (original, tree) -> an earlier repaired copy
        for snapshot_id in repository.snapshots.ids():
            try:
                found = loaded[snapshot_id] = repository.snapshots.load(snapshot_id)
            except IntegrityError as error:
                broken[snapshot_id] = str(error)
                continue
            origin = found.stats.get("repaired_from")
            if isinstance(origin, str):
                copies[(origin, found.tree)] = snapshot_id
        for snapshot_id in wanted:
            report.snapshots += 1
            snapshot = loaded.get(snapshot_id)
            try:
                if snapshot is None:
                    raise ValueError(broken.get(snapshot_id, "the snapshot vanished"))
                root = bytes.fromhex(snapshot.tree)
            except ValueError as error:
                report.unreadable.append((snapshot_id, str(error)))
                if forget and not dry_run and snapshot_id in broken:
                    repository.snapshots.delete(snapshot_id)
                continue
            removed: list[tuple[str, str]] = []
            new_root = rewriter.rewrite(root, "", removed)
            if new_root == root and not removed:
                report.intact += 1
                continue
            item = SnapshotRepair(snapshot_id, None, removed)
            report.repaired.append(item)
            if new_root is None:
                item.salvageable = False
            elif not dry_run:
                item.new_snapshot = copies.get((snapshot_id, new_root.hex())) or repository.save_snapshot(
                    _repaired(snapshot, new_root, len(removed))
                )
            if forget and not dry_run:
                repository.snapshots.delete(snapshot_id)
                item.forgotten = True
    return report


def _repaired(snapshot: Snapshot, root: bytes, removed: int) -> Snapshot:
    stats = dict(snapshot.stats)
    stats["repaired_from"] = snapshot.id
    stats["repaired_removed"] = removed
    tags = [*snapshot.tags, REPAIRED_TAG] if REPAIRED_TAG not in snapshot.tags else list(snapshot.tags)
    return Snapshot(
        id="",
        time=snapshot.time,
        hostname=snapshot.hostname,
        paths=list(snapshot.paths),
        tree=root.hex(),
        tags=tags,
        parent=snapshot.parent,
        job_id=snapshot.job_id,
        account=snapshot.account,
        components=list(snapshot.components),
        schedules=list(snapshot.schedules),
        structure=snapshot.structure,
        stats=stats,
    )


class _Rewriter:
    """Rewrites trees without their lost entries, memoised per tree (a shared folder is rewritten
    once). ``rewrite`` returns the new tree ID, or ``None`` when the folder itself is unreadable."""

    def __init__(self, repository: Repository, packs: set[str], dry_run: bool) -> None:
        self.repository = repository
        self.packs = packs
        self.dry_run = dry_run
        self.memo: dict[bytes, tuple[bytes | None, list[tuple[str, str]]]] = {}
        self.active: set[bytes] = set()

    def unusable(self, blob_id: bytes, blob_type: BlobType) -> str | None:
        location = self.repository.lookup(blob_id)
        if location is None:
            return f"blob {blob_id.hex()} is missing"
        if location.pack_id not in self.packs:
            return f"blob {blob_id.hex()}: its pack {location.pack_id} is missing"
        if location.blob_type is not blob_type:
            return f"blob {blob_id.hex()} is a {location.blob_type.name} blob"
        return None

    def rewrite(self, tree_id: bytes, path: str, removed: list[tuple[str, str]]) -> bytes | None:
        known = self.memo.get(tree_id)
        if known is not None:
            new_id, below = known
            removed.extend((path + sub, why) for sub, why in below)
            return new_id
        if tree_id in self.active:  # a cycle only a forged repository has
            removed.append(("", "folder contains itself"))
            return None
        self.active.add(tree_id)
        try:
            local: list[tuple[str, str]] = []
            new_id = self._rewrite(tree_id, local)
        finally:
            self.active.discard(tree_id)
        self.memo[tree_id] = (new_id, local)
        removed.extend((path + sub, why) for sub, why in local)
        return new_id

    def _rewrite(self, tree_id: bytes, removed: list[tuple[str, str]]) -> bytes | None:
        why = self.unusable(tree_id, BlobType.TREE)
        if why is None:
            try:
                tree = Tree.decode(self.repository.load_blob(tree_id))
            except (RepositoryError, ObjectNotFoundError) as error:
                why = str(error)
        if why is not None:
            removed.append(("", f"folder unreadable, removed with everything below: {why}"))
            return None
        kept: list[Node] = []
        changed = False
        for node in tree.nodes:
            name = "/" + node.name.decode("utf-8", "surrogateescape")
            if node.type == DIR and node.subtree is not None:
                sub = self.rewrite(node.subtree, name, removed)  # names what it removed
                if sub is None:
                    changed = True
                    continue
                if sub != node.subtree:
                    node.subtree = sub
                    changed = True
            elif node.type == FILE:
                problem = next(
                    (p for p in (self.unusable(b, BlobType.DATA) for b in node.content) if p is not None),
                    None,
                ) or self.repository.file_problem(node)
                if problem is not None:
                    removed.append((name, f"file removed: {problem}"))
                    changed = True
                    continue
            kept.append(node)
        if not changed:
            return tree_id
        data = Tree(kept).encode()
        new_id = self.repository.blob_id(data)
        if not self.dry_run:
            self.repository.add_blob(BlobType.TREE, data, new_id)
        return new_id
