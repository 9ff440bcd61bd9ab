"""Scrub: read chosen packs of a repository whole and verify every byte; map damage to snapshots.

The scheduled integrity check (``jobs.integrity``) reads a rotating share of each repository's packs
every day, so every pack is read once per cycle. This module is its engine half for the Incremental
structure (the Archived and Compressed structures are ``engine.archive.verify``):

``stored_packs(repository) -> {pack id: size}``
    the packs in the store (one listing), without names that are not packs.
``verify_packs(repository, pack_ids, progress=None) -> ScrubReport``
    reads each pack whole (one pack in memory at a time) and checks, as ``check --read-data`` does:
    its bytes against its name (unkeyed BLAKE3), its sealed trailer (magic, seal, checksum, entries
    inside the blob area), that every indexed blob of the pack is listed in the trailer, and that
    every blob (by its index entry, else its trailer entry) opens, decompresses and matches its ID.
    A pack the index lists that is gone is damaged; a pack that vanished without being indexed (a
    prune ran, leftovers) is only reported as vanished. A pack larger than ``pack_limit`` (four times
    the repository's pack size, at least 64 MiB: no pack snapkeep writes comes near) is damaged and
    not read, so hostile input cannot make a scrub hold gigabytes.
``affected_snapshots(repository, damaged_blobs) -> {snapshot id: reason}``
    walks every snapshot's trees and names the snapshots that use a damaged blob (file contents or a
    folder listing) or whose trees cannot be read. The walk is iterative (no recursion, whatever the
    depth), visits each tree once per pass thanks to a memo of verdicts that is emptied when it
    holds ``memo_limit`` trees (memory stays bounded; only speed suffers on huge repositories), and
    stops at the first damage found in a snapshot.

A failing store (``StorageError`` other than a missing object) is raised, never taken for damage.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import blake3

from snapkeep.engine.data.tree import DIR, Tree
from snapkeep.engine.format import DATA_PREFIX, pack_name
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository.index import BlobLocation
from snapkeep.engine.repository.pack_format import parse_pack
from snapkeep.errors import IntegrityError, NotFoundError, ObjectNotFoundError, RepositoryError

#: The smallest ``pack_limit``: packs close at 16 MiB by default, plus at most one large blob.
MIN_PACK_LIMIT = 64 * 1024 * 1024
#: Trees whose verdict ``affected_snapshots`` remembers before it starts over.
MEMO_LIMIT = 200_000


@dataclass
class PackVerdict:
    """What reading one pack found. ``ok`` when nothing is wrong; ``vanished`` when it was gone and
    no index entry pointed into it (not damage)."""

    pack_id: str
    size: int = 0
    problems: list[str] = field(default_factory=list)
    damaged_blobs: set[bytes] = field(default_factory=set)
    vanished: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def reason(self) -> str:
        """The problems in one line."""
        return "; ".join(self.problems)


@dataclass
class ScrubReport:
    """The verdict of every pack read, and how many bytes were read."""

    packs: dict[str, PackVerdict] = field(default_factory=dict)
    bytes_read: int = 0

    @property
    def damaged(self) -> dict[str, PackVerdict]:
        """The packs found damaged."""
        return {pack_id: verdict for pack_id, verdict in self.packs.items() if not verdict.ok}

    @property
    def damaged_blobs(self) -> set[bytes]:
        """Every blob that cannot be read back from the packs read."""
        return {blob for verdict in self.packs.values() for blob in verdict.damaged_blobs}


def pack_limit(repository: Repository) -> int:
    """The largest pack ``verify_packs`` reads (bigger ones are damaged by definition)."""
    return max(MIN_PACK_LIMIT, 4 * repository.config.pack_size)


def stored_packs(repository: Repository) -> dict[str, int]:
    """``{pack id: size}`` of the packs in the store. Raises ``StorageError``."""
    found: dict[str, int] = {}
    for info in repository.store.list(DATA_PREFIX):
        pack_id = info.name.rsplit("/", 1)[-1]
        if len(pack_id) == 64 and info.name == pack_name(pack_id) and _is_hex(pack_id):
            found[pack_id] = info.size
    return found


def _indexed(repository: Repository, pack_ids: set[str]) -> dict[str, list[BlobLocation]]:
    """The index entries pointing into ``pack_ids`` (one pass over the index)."""
    located: dict[str, list[BlobLocation]] = {pack_id: [] for pack_id in pack_ids}
    for location in repository.index:
        entries = located.get(location.pack_id)
        if entries is not None:
            entries.append(location)
    return located


def verify_packs(
    repository: Repository, pack_ids: Iterable[str], *, progress: Progress | None = None
) -> ScrubReport:
    """Read and verify each pack of ``pack_ids`` whole; see the module docstring.

    Raises ``StorageError`` when the store fails (not for a missing pack).
    """
    wanted = list(dict.fromkeys(pack_ids))
    progress = progress or Progress()
    indexed = _indexed(repository, set(wanted))
    limit = pack_limit(repository)
    report = ScrubReport()
    progress.on_start(len(wanted), None)
    try:
        for pack_id in wanted:
            verdict = _verify_pack(repository, pack_id, indexed[pack_id], limit)
            report.packs[pack_id] = verdict
            report.bytes_read += verdict.size
            progress.on_file(pack_name(pack_id), verdict.size)
            progress.on_bytes(verdict.size)
    finally:
        progress.on_finish()
    return report


def _verify_pack(
    repository: Repository, pack_id: str, locations: list[BlobLocation], limit: int
) -> PackVerdict:
    verdict = PackVerdict(pack_id)
    name = pack_name(pack_id)
    try:
        size = repository.store.stat(name).size
        if size > limit:
            verdict.size = 0
            verdict.problems.append(f"the pack is {size} bytes, more than any pack holds ({limit}); not read")
            verdict.damaged_blobs.update(location.blob_id for location in locations)
            return verdict
        data = repository.store.load(name, 0, size) if size else b""  # never more than stat said
    except ObjectNotFoundError:
        if locations:
            verdict.problems.append(f"the pack is missing, yet the index lists {len(locations)} blobs in it")
            verdict.damaged_blobs.update(location.blob_id for location in locations)
        else:
            verdict.vanished = True
        return verdict
    verdict.size = len(data)
    if blake3.blake3(data).hexdigest() != pack_id:
        verdict.problems.append("contents do not match the pack ID")
    to_read: dict[bytes, BlobLocation] = {}
    try:
        trailer = parse_pack(data, repository.cipher)
    except IntegrityError as error:
        verdict.problems.append(f"trailer: {error}")
    else:
        listed = {(entry.blob_id, entry.offset, entry.length) for entry in trailer}
        unlisted = [loc for loc in locations if (loc.blob_id, loc.offset, loc.length) not in listed]
        if unlisted:
            verdict.problems.append(
                f"{len(unlisted)} indexed blobs are not in its trailer, e.g. {unlisted[0].blob_id.hex()}"
            )
        to_read.update((entry.blob_id, entry.located_in(pack_id)) for entry in trailer)
    to_read.update((location.blob_id, location) for location in locations)  # the index wins
    view = memoryview(data)
    bad, first = 0, ""
    for blob_id, location in to_read.items():
        end = location.offset + location.length
        try:
            if end > len(data):
                raise IntegrityError(what=f"blob {blob_id.hex()}", reason="lies past the end of the pack")
            repository.decode_blob(location, view[location.offset : end])
        except IntegrityError as error:
            bad += 1
            verdict.damaged_blobs.add(blob_id)
            if bad == 1:
                first = str(error)
    if bad:
        verdict.problems.append(f"{bad} blobs are damaged, e.g. {first}")
    return verdict


# --- which snapshots use damaged data -------------------------------------------------------------


class _Walker:
    """Verdicts of trees: None (everything below is intact) or the first damage found below."""

    def __init__(self, repository: Repository, damaged: set[bytes], memo_limit: int) -> None:
        self.repository = repository
        self.damaged = damaged
        self.memo_limit = memo_limit
        self.memo: dict[bytes, str | None] = {}

    def _remember(self, tree_id: bytes, verdict: str | None) -> None:
        if len(self.memo) >= self.memo_limit:
            self.memo.clear()
        self.memo[tree_id] = verdict

    def _open(self, tree_id: bytes) -> tuple[str | None, list[bytes]]:
        """(damage in this tree itself, the subtrees to visit)."""
        if tree_id in self.damaged:
            return f"the folder listing {tree_id.hex()[:16]} is in damaged data", []
        try:
            tree = Tree.decode(self.repository.load_blob(tree_id))
        except (RepositoryError, NotFoundError, ValueError) as error:
            return f"folder listing {tree_id.hex()[:16]} unreadable: {error}", []
        children: list[bytes] = []
        for node in tree.nodes:
            if self.damaged.intersection(node.content):
                shown = node.name.decode("utf-8", "replace")
                return f"{shown!r} (in folder {tree_id.hex()[:16]}) uses damaged data", []
            if node.type == DIR and node.subtree is not None:
                children.append(node.subtree)
        return None, children

    def verdict(self, root: bytes) -> str | None:
        """The first damage below ``root`` (depth first), or None."""
        if root in self.memo:
            return self.memo[root]
        reason, children = self._open(root)
        if reason is not None:
            self._remember(root, reason)
            return reason
        stack: list[tuple[bytes, Iterator[bytes]]] = [(root, iter(children))]
        while stack:
            tree_id, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                stack.pop()
                self._remember(tree_id, None)
                continue
            if child in self.memo:
                reason = self.memo[child]
            else:
                reason, grandchildren = self._open(child)
                if reason is None:
                    stack.append((child, iter(grandchildren)))
                    continue
                self._remember(child, reason)
            if reason is not None:
                for ancestor, _ in stack:
                    self._remember(ancestor, reason)
                return reason
        return None


def affected_snapshots(
    repository: Repository, damaged_blobs: set[bytes], *, memo_limit: int = MEMO_LIMIT
) -> dict[str, str]:
    """``{snapshot id: reason}`` of every snapshot that uses one of ``damaged_blobs`` or whose trees
    or snapshot file cannot be read; see the module docstring. Raises ``StorageError``."""
    walker = _Walker(repository, damaged_blobs, max(1, memo_limit))
    affected: dict[str, str] = {}
    for snapshot_id in repository.snapshots.ids():
        try:
            snapshot = repository.snapshots.load(snapshot_id)
            root = bytes.fromhex(snapshot.tree)
        except (IntegrityError, NotFoundError, ValueError) as error:
            affected[snapshot_id] = f"the snapshot file is unreadable: {error}"
            continue
        reason = walker.verdict(root)
        if reason is not None:
            affected[snapshot_id] = reason
    return affected


def _is_hex(text: str) -> bool:
    return all(character in "0123456789abcdef" for character in text)
