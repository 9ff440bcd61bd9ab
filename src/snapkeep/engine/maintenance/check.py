"""``check``: verify a repository's structure and, on request, every byte of its data.

Structure (always): ``config`` parses; every key file is readable; every index file opens and
decodes; every index entry points into an existing pack, inside its blob area; every snapshot file
opens; every tree reachable from a snapshot loads, verifies against its ID and decodes; every blob a
tree references (subtrees and file contents) is indexed with the right type. Packs that no index
lists are reported as *unindexed*: not an error (leftovers of an interrupted backup; prune removes
them).

``read_data`` also reads each pack whole: its bytes must match its ID, its sealed trailer must open
and agree with the index, and every indexed blob must open, decompress and match its ID.
``subset_percent`` reads a deterministic pseudo-random share of the packs instead (the same packs
for the same ``seed``).

The report names each damaged object (pack, index file, snapshot, tree blob, blob) and maps
damaged blobs back to the snapshots and file paths that use them. Check never trusts the
in-memory index of the repository it is given: it builds its own from the index files, skipping
damaged ones, so ``open_without_index`` can open a repository whose index is damaged. When an
index file is damaged, or a used blob is in no index file (every index file lost), the trailers of
unindexed packs are read to find it: such a blob is reported as intact but unindexed (``repo
repair index`` writes the index again), not as lost.

Hostile declarations are damage too (``data.bounds``): an index entry whose lengths are out of
bounds, a tree beyond the entry or size limit or with an impossible entry (``Tree.decode``), and a
file whose declared size is not the sum of its chunks' lengths (``Repository.file_problem``). Each
is named with the snapshot paths it affects. ``authenticated`` is false for an unencrypted
repository, whose contents anyone with write access to the destination could have forged.

A failing store (``StorageError`` other than a missing object) is raised, never taken for damage.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import blake3

from snapkeep.clock import SYSTEM, Clock
from snapkeep.engine.data.bounds import location_problem
from snapkeep.engine.data.tree import DIR, FILE, Node, Tree
from snapkeep.engine.format import CONFIG_NAME, DATA_PREFIX, KEYS_PREFIX, PACK_MAGIC, BlobType, pack_name
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository import keys as keyfiles
from snapkeep.engine.repository.config import RepositoryConfig
from snapkeep.engine.repository.index import BlobLocation, Index
from snapkeep.engine.repository.pack_format import parse_pack
from snapkeep.errors import (
    IntegrityError,
    NotFoundError,
    ObjectNotFoundError,
    RepositoryError,
)
from snapkeep.storage.base import Store

#: Bytes after a pack's trailer: its length (u32) and the magic.
PACK_TAIL_SIZE = 4 + len(PACK_MAGIC)


@dataclass(frozen=True)
class Problem:
    """One damaged or missing object: ``kind`` is config, key, index, pack, snapshot, tree or blob."""

    kind: str
    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.message}"


@dataclass(frozen=True)
class Affected:
    """A snapshot entry hurt by damage; ``path`` ``"*"`` means the whole snapshot."""

    snapshot: str
    path: str
    reason: str


@dataclass
class CheckReport:
    """What ``check`` found. ``ok`` when there are no problems (unindexed packs are allowed)."""

    problems: list[Problem] = field(default_factory=list)
    affected: list[Affected] = field(default_factory=list)
    unindexed_packs: list[str] = field(default_factory=list)
    snapshots: int = 0
    #: False for an unencrypted repository: nothing proves who wrote its contents.
    authenticated: bool = True
    trees: int = 0
    index_files: int = 0
    packs: int = 0
    packs_read: int = 0
    blobs_verified: int = 0
    #: Per snapshot, what restoring it whole creates: ``files``, ``dirs``, ``others`` and ``bytes``
    #: counted through every folder (a subtree shared by N folders counts N times: a forged
    #: snapshot can store 56 KB that expand to 2^24 folders). Damaged folders count as empty.
    expanded: dict[str, dict[str, int]] = field(default_factory=dict)
    #: IDs of every blob reachable from a readable snapshot (trees and contents); used by prune.
    used_blobs: set[bytes] = field(default_factory=set, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (without ``used_blobs``)."""
        document = {key: value for key, value in asdict(self).items() if key != "used_blobs"}
        return {"ok": self.ok, **document}


def open_without_index(store: Store, *, password: str | None, clock: Clock = SYSTEM) -> Repository:
    """Open the repository in ``store`` without loading its index (``check`` builds its own).

    Raises ``RepositoryNotFoundError``, ``RepositoryError`` (bad config, no key file) and
    ``WrongPasswordError``.
    """
    return Repository.open(store, password=password, clock=clock, load_index=False)


def subset_of(pack_ids: list[str], percent: float, seed: str) -> list[str]:
    """A deterministic pseudo-random ``percent`` share of ``pack_ids`` (at least one when > 0)."""
    if percent >= 100:
        return sorted(pack_ids)
    count = min(len(pack_ids), math.ceil(len(pack_ids) * percent / 100)) if percent > 0 else 0
    ranked = sorted(pack_ids, key=lambda pack: hashlib.sha256(f"{seed}:{pack}".encode()).digest())
    return sorted(ranked[:count])


def check(
    repository: Repository,
    *,
    read_data: bool = False,
    subset_percent: float | None = None,
    seed: str | None = None,
    progress: Progress | None = None,
) -> CheckReport:
    """Check ``repository``; see the module docstring. ``subset_percent`` implies reading data.

    Raises ``ValueError`` for a percentage outside 0-100 and ``StorageError`` when the store fails.
    """
    if subset_percent is not None and not 0 <= subset_percent <= 100:
        raise ValueError(f"subset_percent must be within 0-100, got {subset_percent}")
    checker = _Checker(repository, progress or Progress())
    checker.structure()
    if read_data or subset_percent is not None:
        wanted = sorted(checker.entries_by_pack)
        if subset_percent is not None:
            wanted = subset_of(wanted, subset_percent, seed or repository.config.repository_id)
        checker.read_packs(wanted)
    checker.map_damage()
    checker.progress.on_finish()
    return checker.report


class _Checker:
    def __init__(self, repository: Repository, progress: Progress) -> None:
        self.repository = repository
        self.store = repository.store
        self.progress = progress
        self.report = CheckReport()
        self.index = Index()
        self.entries_by_pack: dict[str, list[BlobLocation]] = {}
        self.pack_sizes: dict[str, int] = {}
        self.recovered: dict[bytes, BlobLocation] = {}
        self.damaged: dict[bytes, str] = {}  # blob id -> why its content is unusable
        self.bad_trees: dict[bytes, str] = {}
        #: (tree id, entry name) -> why that file cannot be restored as declared.
        self.bad_files: dict[tuple[bytes, bytes], str] = {}
        self.roots: list[tuple[str, bytes]] = []
        self.trailers_read = False
        #: Per readable tree: its own files, others, bytes, and the subtrees of its folders.
        self.shapes: dict[bytes, tuple[int, int, int, list[bytes]]] = {}

    def problem(self, kind: str, name: str, message: str) -> None:
        self.report.problems.append(Problem(kind, name, message))

    # --- structure ------------------------------------------------------------------------------

    def structure(self) -> None:
        self.report.authenticated = self.repository.authenticated
        self.check_config_and_keys()
        self.list_packs()
        damaged_index = self.load_index()
        if damaged_index:
            self.recover_from_trailers()
        self.load_snapshots()
        self.walk_trees()
        self.expand()

    def check_config_and_keys(self) -> None:
        try:
            RepositoryConfig.from_json(self.store.load(CONFIG_NAME), location=self.store.location)
        except (ObjectNotFoundError, RepositoryError) as error:
            self.problem("config", CONFIG_NAME, str(error))
        names = sorted(info.name for info in self.store.list(KEYS_PREFIX))
        if not names:
            self.problem("key", KEYS_PREFIX, "the repository has no key file")
        for name in names:
            try:
                keyfiles.is_plain(self.store.load(name))
            except (ObjectNotFoundError, RepositoryError) as error:
                self.problem("key", name, str(error))

    def list_packs(self) -> None:
        for info in self.store.list(DATA_PREFIX):
            pack_id = info.name.rsplit("/", 1)[-1]
            if info.name != pack_name(pack_id) or len(pack_id) != 64 or not _is_hex(pack_id):
                self.problem("pack", info.name, "unexpected object in the pack folder")
                continue
            self.pack_sizes[pack_id] = info.size
        self.report.packs = len(self.pack_sizes)

    def load_index(self) -> bool:
        """Load every readable index file; returns whether one was damaged."""
        damaged = False
        for index_id in self.repository.index_ids():
            self.report.index_files += 1
            try:
                locations = self.repository.load_index_file(index_id)
            except (IntegrityError, ObjectNotFoundError) as error:
                self.problem("index", index_id, str(error))
                damaged = True
                continue
            missing: dict[str, int] = {}
            for location in locations:
                size = self.pack_sizes.get(location.pack_id)
                bounds = location_problem(location.blob_type, location.length, location.raw_length)
                if bounds is not None:
                    self.problem("index", index_id, f"entry for blob {location.blob_id.hex()} {bounds}")
                    self.damaged[location.blob_id] = f"blob {location.blob_id.hex()} {bounds}"
                elif size is None:
                    missing[location.pack_id] = missing.get(location.pack_id, 0) + 1
                elif location.offset + location.length > size - PACK_TAIL_SIZE:
                    self.problem(
                        "index",
                        index_id,
                        f"entry for blob {location.blob_id.hex()} lies past the end of pack "
                        f"{location.pack_id} ({size} bytes)",
                    )
                else:
                    self.index.add(location)
                    self.entries_by_pack.setdefault(location.pack_id, []).append(location)
            for pack_id, count in sorted(missing.items()):
                self.problem("pack", pack_id, f"missing, yet index file {index_id} lists {count} blobs in it")
        covered = set(self.entries_by_pack)
        self.report.unindexed_packs = sorted(set(self.pack_sizes) - covered)
        return damaged

    def recover_from_trailers(self) -> None:
        """Find the blobs of damaged or lost index files in the trailers of unindexed packs."""
        if self.trailers_read:
            return
        self.trailers_read = True
        for pack_id in self.report.unindexed_packs:
            try:
                entries = self.repository.read_pack_trailer(pack_id)
            except (IntegrityError, ObjectNotFoundError) as error:
                self.problem("pack", pack_id, f"unindexed and its trailer is unreadable: {error}")
                continue
            for e in entries:
                if location_problem(e.blob_type, e.length, e.raw_length) is not None:
                    continue
                if e.blob_id not in self.index and e.blob_id not in self.recovered:
                    self.recovered[e.blob_id] = e.located_in(pack_id)

    def load_snapshots(self) -> None:
        for snapshot_id in self.repository.snapshots.ids():
            self.report.snapshots += 1
            try:
                snapshot = self.repository.snapshots.load(snapshot_id)
                root = bytes.fromhex(snapshot.tree)
            except (IntegrityError, NotFoundError, ValueError) as error:
                self.problem("snapshot", snapshot_id, str(error))
                self.report.affected.append(Affected(snapshot_id, "*", "the snapshot file is damaged"))
                continue
            self.roots.append((snapshot_id, root))

    def locate(self, blob_id: bytes) -> BlobLocation | None:
        location = self.index.lookup(blob_id)
        if location is None and blob_id not in self.recovered and not self.trailers_read:
            self.recover_from_trailers()  # every index file that listed it may be lost
        return location if location is not None else self.recovered.get(blob_id)

    def use(self, blob_id: bytes, blob_type: BlobType, user: str) -> BlobLocation | None:
        """Record a reference to a blob; report it when it is missing or of the wrong type."""
        first = blob_id not in self.report.used_blobs
        self.report.used_blobs.add(blob_id)
        location = self.locate(blob_id)
        if not first:
            return location
        if location is None:
            self.problem("blob", blob_id.hex(), f"referenced by {user} but not in the index or any pack")
            self.damaged[blob_id] = f"blob {blob_id.hex()} is missing"
        elif location.blob_type is not blob_type:
            self.problem(
                "blob",
                blob_id.hex(),
                f"referenced by {user} as {blob_type.name}, stored as {location.blob_type.name}",
            )
            self.damaged[blob_id] = f"blob {blob_id.hex()} has the wrong type"
        elif blob_id in self.recovered:
            self.problem(
                "blob",
                blob_id.hex(),
                f"in no readable index file; intact in unindexed pack {location.pack_id} "
                "(`snapkeep repo repair index` indexes it again)",
            )
            self.damaged[blob_id] = f"blob {blob_id.hex()} is not indexed (pack {location.pack_id})"
        return location

    def file_problem(self, node: Node) -> str | None:
        """``Repository.file_problem`` against check's own index (and recovered locations)."""
        total = 0
        for blob_id in node.content:
            location = self.locate(blob_id)
            if location is None:
                return f"blob {blob_id.hex()} is missing"
            total += location.raw_length
        if total != node.size:
            return f"declares {node.size} bytes but its {len(node.content)} chunks hold {total}"
        return None

    def load_tree(self, tree_id: bytes, location: BlobLocation) -> Tree:
        data = self.store.load(pack_name(location.pack_id), location.offset, location.length)
        return Tree.decode(self.repository.decode_blob(location, data))

    def walk_trees(self) -> None:
        """Visit every tree reachable from a snapshot once, depth first."""
        seen: set[bytes] = set()
        stack = [(root, f"snapshot {snapshot_id[:12]}") for snapshot_id, root in self.roots]
        while stack:
            tree_id, user = stack.pop()
            location = self.use(tree_id, BlobType.TREE, user)
            if tree_id in seen or location is None:
                continue
            seen.add(tree_id)
            self.report.trees += 1
            try:
                tree = self.load_tree(tree_id, location)
            except (RepositoryError, ObjectNotFoundError) as error:
                self.problem("tree", tree_id.hex(), str(error))
                self.bad_trees[tree_id] = f"tree {tree_id.hex()} is damaged"
                continue
            files = sum(1 for node in tree.nodes if node.type == FILE)
            size = sum(node.size for node in tree.nodes if node.type == FILE)
            subtrees = [node.subtree for node in tree.nodes if node.type == DIR and node.subtree is not None]
            others = len(tree.nodes) - files - len(subtrees)
            self.shapes[tree_id] = (files, others, size, subtrees)
            for node in tree.nodes:
                where = f"{node.name.decode('utf-8', 'replace')!r} in tree {tree_id.hex()[:12]}"
                for blob_id in node.content:
                    self.use(blob_id, BlobType.DATA, where)
                if node.type == FILE and not any(blob_id in self.damaged for blob_id in node.content):
                    why = self.file_problem(node)
                    if why is not None:
                        self.problem("tree", tree_id.hex(), f"file {where}: {why}")
                        self.bad_files[(tree_id, node.name)] = why
                if node.type == DIR and node.subtree is not None:
                    stack.append((node.subtree, where))

    def expand(self) -> None:
        """``report.expanded`` for every snapshot, each tree's totals computed once (post-order,
        no recursion: a listing may be deep)."""
        totals: dict[bytes, tuple[int, int, int, int]] = {}  # files, dirs, others, bytes
        for snapshot_id, root in self.roots:
            stack = [(root, False)]
            opened: set[bytes] = set()  # a cycle cannot be forged (IDs hash contents); never loop
            while stack:
                tree_id, ready = stack.pop()
                if tree_id in totals or (not ready and tree_id in opened):
                    continue
                shape = self.shapes.get(tree_id)
                if shape is None:
                    totals[tree_id] = (0, 0, 0, 0)
                    continue
                files, others, size, subtrees = shape
                if not ready:
                    opened.add(tree_id)
                    stack.append((tree_id, True))
                    stack.extend((sub, False) for sub in subtrees if sub not in totals)
                    continue
                dirs = len(subtrees)
                for sub in subtrees:
                    below = totals.get(sub, (0, 0, 0, 0))
                    files, dirs, others, size = (
                        files + below[0],
                        dirs + below[1],
                        others + below[2],
                        size + below[3],
                    )
                totals[tree_id] = (files, dirs, others, size)
            files, dirs, others, size = totals[root]
            self.report.expanded[snapshot_id] = {
                "files": files,
                "dirs": dirs,
                "others": others,
                "bytes": size,
            }

    # --- data -----------------------------------------------------------------------------------

    def read_packs(self, pack_ids: list[str]) -> None:
        total = sum(self.pack_sizes.get(pack_id, 0) for pack_id in pack_ids)
        self.progress.on_start(len(pack_ids), total)
        for pack_id in pack_ids:
            self.read_pack(pack_id, self.entries_by_pack[pack_id])
            self.report.packs_read += 1
            self.progress.on_file(pack_name(pack_id), self.pack_sizes.get(pack_id, 0))
            self.progress.on_bytes(self.pack_sizes.get(pack_id, 0))

    def read_pack(self, pack_id: str, locations: list[BlobLocation]) -> None:
        try:
            data = self.store.load(pack_name(pack_id))
        except ObjectNotFoundError:
            self.problem("pack", pack_id, "vanished while checking")
            for location in locations:
                self.damaged[location.blob_id] = f"pack {pack_id} is missing"
            return
        if blake3.blake3(data).hexdigest() != pack_id:
            self.problem("pack", pack_id, "contents do not match the pack ID")
        try:
            trailer = {(e.blob_id, e.offset, e.length) for e in parse_pack(data, self.repository.cipher)}
        except IntegrityError as error:
            self.problem("pack", pack_id, f"trailer: {error}")
        else:
            unlisted = [loc for loc in locations if (loc.blob_id, loc.offset, loc.length) not in trailer]
            if unlisted:
                self.problem(
                    "pack",
                    pack_id,
                    f"{len(unlisted)} indexed blobs are not in its trailer, e.g. {unlisted[0].blob_id.hex()}",
                )
        view = memoryview(data)
        for location in locations:
            try:
                self.repository.decode_blob(
                    location, view[location.offset : location.offset + location.length]
                )
            except IntegrityError as error:
                self.problem("blob", location.blob_id.hex(), f"in pack {pack_id}: {error}")
                if self.index.lookup(location.blob_id) == location:
                    self.damaged[location.blob_id] = (
                        f"blob {location.blob_id.hex()} in pack {pack_id} is damaged"
                    )
                continue
            self.report.blobs_verified += 1

    # --- mapping damage to snapshots and files --------------------------------------------------

    def map_damage(self) -> None:
        if not self.damaged and not self.bad_trees and not self.bad_files:
            return
        memo: dict[bytes, list[tuple[str, str]]] = {}
        for snapshot_id, root in self.roots:
            for path, reason in self.affected_in(root, memo):
                self.report.affected.append(Affected(snapshot_id, path or "/", reason))

    def affected_in(self, tree_id: bytes, memo: dict[bytes, list[tuple[str, str]]]) -> list[tuple[str, str]]:
        """``(relative path, reason)`` of every damaged entry below ``tree_id``, memoised per tree."""
        known = memo.get(tree_id)
        if known is not None:
            return known
        memo[tree_id] = found = []
        location = self.locate(tree_id)
        reason = self.bad_trees.get(tree_id) or ("tree missing" if location is None else None)
        if reason is None and location is not None and tree_id in self.damaged:
            found.append(("", f"folder listing: {self.damaged[tree_id]}"))
        if reason is None and location is not None:
            try:
                nodes = self.load_tree(tree_id, location).nodes
            except (RepositoryError, ObjectNotFoundError) as error:
                reason = str(error)
        if reason is not None or location is None:
            found.append(("", f"folder unreadable, everything below is lost: {reason}"))
            return found
        for node in nodes:
            path = "/" + node.name.decode("utf-8", "surrogateescape")
            hurt = [self.damaged[blob_id] for blob_id in node.content if blob_id in self.damaged]
            if (tree_id, node.name) in self.bad_files:
                hurt.append(self.bad_files[(tree_id, node.name)])
            if hurt:
                found.append((path, "; ".join(dict.fromkeys(hurt))))
            if node.type == DIR and node.subtree is not None:
                found.extend((path + below, why) for below, why in self.affected_in(node.subtree, memo))
        return found


def _is_hex(text: str) -> bool:
    return all(character in "0123456789abcdef" for character in text)
