"""The repository: content-addressed, compressed, sealed blobs in packs, an index, snapshots.

Layout under the store (see docs/engine.md): ``config``, ``keys/<id>``, ``data/<2 hex>/<pack id>``,
``index/<id>``, ``snapshots/<id>``, ``locks/<id>``.

``add_blob`` is the hot path of a backup. It runs in the caller's thread: the blob is compressed
(zstd, a compressor per thread; kept raw when that does not shrink it) and sealed with its ID as
associated data, then appended to the open pack. Full packs are finished and stored by the
packer's uploader threads; every ``index_interval`` seconds, every ``INDEX_FILE_ENTRIES`` blobs
and on ``flush`` the locations of the packs uploaded so far go into a new index file, so an
interrupted backup resumes without sending them again. Snapshots are written last, after a flush:
a snapshot only ever points at blobs whose packs and index files are stored.

Other engine modules use ``repository.store``, ``.config``, ``.cipher``, ``.master_key``,
``.index`` and ``.clock``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import blake3

from snapkeep.clock import SYSTEM, Clock
from snapkeep.engine.data.bounds import location_problem, max_raw_length
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.data.tree import FILE, Node
from snapkeep.engine.format import (
    AD_INDEX,
    CONFIG_NAME,
    DATA_PREFIX,
    DEFAULT_CIPHER,
    DEFAULT_COMPRESSION_LEVEL,
    INDEX_PREFIX,
    KEYS_PREFIX,
    PACK_TARGET_SIZE,
    BlobType,
    CipherId,
    cipher_by_name,
    pack_name,
)
from snapkeep.engine.repository import keys as keyfiles
from snapkeep.engine.repository.bounded import MAX_CONFIG_FILE, MAX_INDEX_FILE, load_bounded
from snapkeep.engine.repository.codec import BlobCodec, check_location
from snapkeep.engine.repository.config import RepositoryConfig
from snapkeep.engine.repository.crypto import Cipher, make_cipher
from snapkeep.engine.repository.index import BlobLocation, Index, decode_index_file, encode_index_file
from snapkeep.engine.repository.locks import RepositoryLock, known_dead, list_locks
from snapkeep.engine.repository.pack_format import PackEntry, read_pack_trailer
from snapkeep.engine.repository.packer import DEFAULT_UPLOADERS, Packer
from snapkeep.engine.repository.snapshot_store import SnapshotStore
from snapkeep.errors import (
    BlobNotFoundError,
    IntegrityError,
    ObjectNotFoundError,
    RepositoryError,
    RepositoryNotFoundError,
    SnapkeepError,
    StorageError,
)
from snapkeep.storage.base import Store

__all__ = ["BlobLocation", "BlobType", "Repository", "RepositoryConfig", "Snapshot"]

#: Seconds between index files written during a long backup.
DEFAULT_INDEX_INTERVAL = 300.0
#: An index file is also written once this many blobs wait for one: the waiting locations are
#: Python objects (about 170 bytes a blob beside the index's 50), so a 2 GiB first backup
#: (85,000 blobs) held 14 MiB more at its end than at its start (docs/engine.md, "Issue 12, third
#: round"). restic writes an index file per 50,000 blobs.
INDEX_FILE_ENTRIES = 16_384
#: Blobs closer than this in a pack are fetched by one ranged read in ``load_blobs``.
READ_GAP = 256 * 1024
#: Upper bound of one ranged read in ``load_blobs``.
READ_MAX = 32 * 1024 * 1024


class Repository:
    """An opened repository. Thread-safe: many threads may add and load blobs at once."""

    def __init__(
        self,
        store: Store,
        config: RepositoryConfig,
        master_key: keyfiles.MasterKey,
        *,
        clock: Clock = SYSTEM,
        index_interval: float = DEFAULT_INDEX_INTERVAL,
        uploaders: int = DEFAULT_UPLOADERS,
    ) -> None:
        """Use ``init`` or ``open``; this constructor reads nothing from the store."""
        self.store = store
        #: Why removing crash leftovers failed when the repository was opened, if it did.
        self.cleanup_error: StorageError | None = None
        self.config = config
        self.master_key = master_key
        self.clock = clock
        self.cipher: Cipher = make_cipher(config.cipher, master_key.encryption_key)
        self.index = Index()
        self.damaged_index_files: list[str] = []
        #: The index files ``reload_index`` read (``reclaim_unfinished_packs`` compares).
        self.loaded_index_files: frozenset[str] = frozenset()
        #: The index files this object wrote (a backup worker process reports them).
        self.written_index_files: list[str] = []
        self._locks: weakref.WeakSet[RepositoryLock] = weakref.WeakSet()
        self.index_interval = index_interval
        self.index_file_entries = INDEX_FILE_ENTRIES
        self.snapshots = SnapshotStore(store, self.cipher)
        self._lock = threading.Lock()
        self._in_flight: set[bytes] = set()
        self._unsaved: list[BlobLocation] = []
        self._last_index_write = clock.monotonic()
        self.codec = BlobCodec(self.cipher, master_key.id_key, config.compression_level)
        self._packer = Packer(
            store, self.cipher, self._pack_uploaded, pack_size=config.pack_size, uploaders=uploaders
        )

    # --- creating and opening -----------------------------------------------------------------

    @classmethod
    def init(
        cls,
        store: Store,
        *,
        password: str | None,
        kdf: str = "argon2id",
        kdf_params: dict[str, int] | None = None,
        cipher: str = "aes-256-gcm",
        compression_level: int = DEFAULT_COMPRESSION_LEVEL,
        pack_size: int = PACK_TARGET_SIZE,
        clock: Clock = SYSTEM,
        index_interval: float = DEFAULT_INDEX_INTERVAL,
        uploaders: int = DEFAULT_UPLOADERS,
    ) -> Repository:
        """Create a repository in an empty location; ``password=None`` makes it unencrypted.

        ``pack_size`` (stored in ``config``) exists for tests that need many small packs.

        Raises ``RepositoryError`` when a repository already exists there or an option is unknown,
        ``StorageError`` from the store.
        """
        if store.exists(CONFIG_NAME):
            raise RepositoryError(f"a repository already exists at {store.location}")
        try:
            cipher_id = cipher_by_name(cipher) if password is not None else CipherId.NONE
        except ValueError as problem:
            raise RepositoryError(f"cipher: {problem}") from None
        if password is not None and cipher_id is CipherId.NONE:
            cipher_id = DEFAULT_CIPHER
        config = RepositoryConfig.new(
            cipher=cipher_id, compression_level=compression_level, pack_size=pack_size
        )
        master = keyfiles.MasterKey.generate()
        try:
            key_file = keyfiles.wrap(
                master, password, kdf, kdf_params=kdf_params, repository_id=config.repository_id
            )
        except ValueError as problem:
            raise RepositoryError(f"kdf: {problem}") from None
        store.store(f"{KEYS_PREFIX}{blake3.blake3(key_file).hexdigest()}", key_file)
        store.store(CONFIG_NAME, config.to_json())
        return cls(store, config, master, clock=clock, index_interval=index_interval, uploaders=uploaders)

    @classmethod
    def open(
        cls,
        store: Store,
        *,
        password: str | None,
        clock: Clock = SYSTEM,
        index_interval: float = DEFAULT_INDEX_INTERVAL,
        uploaders: int = DEFAULT_UPLOADERS,
        load_index: bool = True,
    ) -> Repository:
        """Open the repository in ``store``, remove crash leftovers (``cleanup_temporary``) and load
        its index (unless ``load_index`` is false).

        Raises ``RepositoryNotFoundError`` when there is none, ``RepositoryError`` for an unknown
        format version or missing keys, ``WrongPasswordError`` when no key file opens with
        ``password``, ``StorageError`` from the store. Damaged index files do not stop it: see
        ``reload_index``.
        """
        try:
            config_data = load_bounded(store, CONFIG_NAME, MAX_CONFIG_FILE, what=CONFIG_NAME)
        except ObjectNotFoundError:
            raise RepositoryNotFoundError(location=store.location) from None
        config = RepositoryConfig.from_json(config_data, location=store.location)
        master = keyfiles.unlock(store, config.repository_id, password, encrypted=config.encrypted)
        repository = cls(
            store, config, master, clock=clock, index_interval=index_interval, uploaders=uploaders
        )
        repository.cleanup_temporary()
        if load_index:
            repository.reload_index()
        return repository

    def cleanup_temporary(self) -> None:
        """Remove what writes a crash interrupted left in the store (``Store.cleanup_temporary``).
        A failure (a read-only medium) does not stop the open: it is kept in ``cleanup_error``;
        the leftovers are harmless, never listed as objects."""
        try:
            self.store.cleanup_temporary()
        except StorageError as error:
            self.cleanup_error = error

    # --- blobs ----------------------------------------------------------------------------------

    def blob_id(self, data: bytes | memoryview) -> bytes:
        """The 32-byte keyed BLAKE3 ID of ``data``."""
        return self.codec.blob_id(data)

    def has_blob(self, blob_id: bytes) -> bool:
        """Whether the blob is indexed or already on its way into a pack."""
        with self._lock:
            return blob_id in self._in_flight or blob_id in self.index

    def lookup(self, blob_id: bytes) -> BlobLocation | None:
        """Where an uploaded blob is stored; ``None`` when it is not indexed (yet)."""
        with self._lock:
            return self.index.lookup(blob_id)

    def add_blob(self, blob_type: BlobType, data: bytes | memoryview, blob_id: bytes | None = None) -> bool:
        """Store ``data`` unless the repository has it; returns whether it was new.

        Thread-safe; concurrent adds of one ID store it once. ``blob_id`` saves hashing again when
        the caller has it. Raises ``StorageError`` when an earlier pack upload failed.
        """
        self._packer.check()
        if len(data) > max_raw_length(blob_type):
            raise RepositoryError(
                f"a {blob_type.name} blob of {len(data)} bytes is above the {max_raw_length(blob_type)} "
                "the repository format accepts"
                + (
                    " (a folder with too many entries or too long a file list)"
                    if blob_type is BlobType.TREE
                    else ""
                )
            )
        if blob_id is None:
            blob_id = self.blob_id(data)
        with self._lock:
            if blob_id in self._in_flight or blob_id in self.index:
                return False
            self._in_flight.add(blob_id)
        try:
            compression, head, sealed = self.codec.encode_split(blob_id, data)
            self._packer.add(blob_id, blob_type, compression, (head, sealed), len(data))
        except BaseException:
            with self._lock:
                self._in_flight.discard(blob_id)
            raise
        return True

    def _pack_uploaded(self, pack_id: str, entries: list[PackEntry]) -> None:
        """Uploader-thread callback: index the pack and write an index file when one is due."""
        locations = [entry.located_in(pack_id) for entry in entries]
        with self._lock:
            self.index.add_many(locations)
            self._in_flight.difference_update(e.blob_id for e in entries)
            self._unsaved.extend(locations)
            due = (
                len(self._unsaved) >= self.index_file_entries
                or self.clock.monotonic() - self._last_index_write >= self.index_interval
            )
        if due:
            self._save_index()

    def _save_index(self) -> str | None:
        """Write the uploaded-but-unlisted locations to a new index file; returns its ID."""
        with self._lock:
            batch, self._unsaved = self._unsaved, []
            self._last_index_write = self.clock.monotonic()
        if not batch:
            return None
        try:
            return self.write_index_file(batch)
        except BaseException:
            with self._lock:
                self._unsaved[:0] = batch
            raise

    def write_index_file(self, locations: Sequence[BlobLocation]) -> str:
        """Store an index file listing ``locations``; returns its ID. Raises ``StorageError``."""
        sealed = self.cipher.seal(encode_index_file(locations), AD_INDEX)
        index_id = blake3.blake3(sealed).hexdigest()
        self.store.store(f"{INDEX_PREFIX}{index_id}", sealed)
        with self._lock:
            self.written_index_files.append(index_id)
        return index_id

    def adopt_index_files(self, index_ids: Sequence[str]) -> None:
        """Add the blobs of index files another process wrote for this run (a backup worker's) to
        the in-memory index, as if ``reload_index`` had read them. Raises ``IntegrityError``,
        ``StorageError``."""
        for index_id in index_ids:
            locations = self.load_index_file(index_id)
            with self._lock:
                self.index.add_many(locations)
                self.loaded_index_files = self.loaded_index_files | {index_id}

    def _index_plaintext(self, index_id: str) -> bytes:
        what = f"index file {index_id}"
        data = load_bounded(self.store, f"{INDEX_PREFIX}{index_id}", MAX_INDEX_FILE, what=what)
        if blake3.blake3(data).hexdigest() != index_id:
            raise IntegrityError(what=what, reason="contents do not match the file name")
        return self.cipher.open(data, AD_INDEX, what=what)

    def load_index_file(self, index_id: str) -> list[BlobLocation]:
        """The locations in ``index/<index_id>``, verified. Raises ``IntegrityError``, ``StorageError``."""
        return decode_index_file(self._index_plaintext(index_id), what=f"index file {index_id}")

    def index_ids(self) -> list[str]:
        """IDs of the stored index files."""
        return sorted(info.name[len(INDEX_PREFIX) :] for info in self.store.list(INDEX_PREFIX))

    def reload_index(self) -> list[str]:
        """Read every index file into a fresh in-memory index; return the IDs of damaged ones.

        A damaged or vanished index file does not stop the repository from opening: its ID goes
        to ``damaged_index_files`` and the blobs of every pack that no intact index file covers are
        read back from the packs' sealed trailers, so everything still stored stays restorable
        (``check`` names the damage; ``prune`` writes a fresh index). Raises ``StorageError``.
        """
        index = Index()
        damaged: list[str] = []
        index_ids = self.index_ids()
        for index_id in index_ids:
            try:
                index.add_index_file(self._index_plaintext(index_id), what=f"index file {index_id}")
            except (IntegrityError, ObjectNotFoundError):
                damaged.append(index_id)
        if damaged:
            covered = index.pack_ids()
            for info in self.store.list(DATA_PREFIX):
                pack_id = info.name.rsplit("/", 1)[-1]
                if pack_id in covered:
                    continue
                try:
                    entries = self.read_pack_trailer(pack_id)
                except (IntegrityError, ObjectNotFoundError):
                    continue  # a damaged pack: its blobs stay missing and fail loudly on use
                index.add_many(entry.located_in(pack_id) for entry in entries)
        with self._lock:
            index.add_many(self._unsaved)
            self.index = index
            self.damaged_index_files = damaged
            self.loaded_index_files = frozenset(index_ids)
        return damaged

    def read_pack_trailer(self, pack_id: str) -> list[PackEntry]:
        """The blob list in a stored pack's trailer. Raises ``IntegrityError``, ``StorageError``."""
        return read_pack_trailer(self.store, pack_id, self.cipher)

    def file_problem(self, node: Node) -> str | None:
        """Why a file node's content cannot be what it declares, from the index alone (no data is
        read): a chunk that is not indexed, not a DATA blob or out of bounds, or a declared size
        other than the sum of its chunks' lengths. ``None`` for a sound node (and for non-files).

        Restoring a node for which this returns a reason would write something other than the
        file that was backed up (or an 8 TiB sparse file out of 6 bytes): refuse that one file.
        """
        if node.type != FILE:
            return None
        found = self.file_locations(node)
        return found if isinstance(found, str) else None

    def file_locations(self, node: Node) -> list[BlobLocation] | str:
        """The index locations of a file node's chunks, in order, or why its content cannot be what
        it declares (``file_problem``): one lookup per chunk serves both the check and a restore."""
        total = 0
        with self._lock:  # once per file, not per chunk
            found = list(map(self.index.lookup, node.content))
        locations: list[BlobLocation] = []
        for blob_id, location in zip(node.content, found, strict=True):
            if location is None:
                return f"blob {blob_id.hex()} is not in the index"
            if location.blob_type is not BlobType.DATA:
                return f"blob {blob_id.hex()} is a {location.blob_type.name} blob, not file content"
            problem = location_problem(location.blob_type, location.length, location.raw_length)
            if problem is not None:
                return f"blob {blob_id.hex()} {problem}"
            total += location.raw_length
            locations.append(location)
        if total != node.size:
            return f"declares {node.size} bytes but its {len(node.content)} chunks hold {total}"
        return locations

    def decode_blob(self, location: BlobLocation, stored: bytes | memoryview) -> bytes:
        """Open, decompress and verify the stored bytes of a blob; raises ``IntegrityError``."""
        return self.codec.decode(location, stored)

    def load_blob(self, blob_id: bytes) -> bytes:
        """The plaintext of a blob, verified against its ID.

        Raises ``BlobNotFoundError`` when it is not indexed, ``IntegrityError`` naming the blob and
        its pack when it is damaged, ``StorageError`` from the store.
        """
        location = self.lookup(blob_id)
        if location is None:
            raise BlobNotFoundError(blob=blob_id.hex())
        check_location(location)
        try:
            stored = self.store.load(pack_name(location.pack_id), location.offset, location.length)
        except ObjectNotFoundError:
            raise IntegrityError(
                what=f"blob {blob_id.hex()}", reason=f"its pack {location.pack_id} is missing"
            ) from None
        return self.decode_blob(location, stored)

    def load_blobs(self, pack_id: str, locations: Sequence[BlobLocation]) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(blob_id, plaintext)`` for blobs of one pack, in pack order, verified.

        Nearby blobs are fetched with one ranged read. Raises ``IntegrityError`` (at the damaged
        blob; earlier ones were yielded) and ``StorageError``.
        """
        ordered = sorted(locations, key=lambda location: location.offset)
        bad: BlobLocation | None = None
        for number, location in enumerate(ordered):
            try:
                check_location(location)
            except IntegrityError:
                bad, ordered = location, ordered[:number]
                break
        yield from self._load_runs(pack_id, ordered)
        if bad is not None:
            check_location(bad)

    def _load_runs(self, pack_id: str, ordered: Sequence[BlobLocation]) -> Iterator[tuple[bytes, bytes]]:
        position = 0
        while position < len(ordered):
            run_end = position + 1
            start = ordered[position].offset
            end = start + ordered[position].length
            while run_end < len(ordered):
                following = ordered[run_end]
                if (
                    following.offset - end > READ_GAP
                    or following.offset + following.length - start > READ_MAX
                ):
                    break
                end = max(end, following.offset + following.length)
                run_end += 1
            try:
                data = memoryview(self.store.load(pack_name(pack_id), start, end - start))
            except ObjectNotFoundError:
                raise IntegrityError(what=f"pack {pack_id}", reason="the pack is missing") from None
            for location in ordered[position:run_end]:
                relative = location.offset - start
                yield (
                    location.blob_id,
                    self.codec.decode(location, data[relative : relative + location.length], checked=True),
                )
            position = run_end

    def flush(self) -> None:
        """Seal the open pack, wait for every upload and write an index file. Raises ``StorageError``."""
        self._packer.flush()
        self._save_index()

    # --- snapshots ------------------------------------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> str:
        """Flush, then store the snapshot; returns (and sets) its ID.

        Raises ``StorageError`` (nothing is committed when an upload failed) and ``RepositoryError``
        when the snapshot's root tree is not in the repository.
        """
        self.flush()
        if not self.has_blob(bytes.fromhex(snapshot.tree)):
            raise RepositoryError(f"snapshot: root tree {snapshot.tree} is not in the repository")
        return self.snapshots.save(snapshot)

    def list_snapshots(self) -> list[Snapshot]:
        """Every snapshot, oldest first. Raises ``IntegrityError`` for a damaged one."""
        return self.snapshots.list()

    def load_snapshot(self, ref: str) -> Snapshot:
        """The snapshot named by ``"latest"`` or a unique ID prefix (see ``SnapshotStore.resolve``)."""
        return self.snapshots.load(self.snapshots.resolve(ref))

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove a snapshot (a full ID or unique prefix); raises ``NotFoundError``."""
        self.snapshots.delete(self.snapshots.resolve(snapshot_id))

    # --- locking and lifetime -------------------------------------------------------------------

    def lock(self, *, exclusive: bool, holder: str = "snapkeep", **options: Any) -> RepositoryLock:
        """A lock on the repository, used as a context manager (``with repository.lock(...)``).

        Raises ``LockError`` on entry when a conflicting live lock exists. ``options`` go to
        ``RepositoryLock`` (timeout, refresh interval).
        """
        lock = RepositoryLock(self.store, exclusive=exclusive, holder=holder, clock=self.clock, **options)
        self._locks.add(lock)
        return lock

    @property
    def authenticated(self) -> bool:
        """Whether the repository's contents prove where they came from: true when encrypted (every
        blob, index file and snapshot is sealed with a key only password holders have). In an
        unencrypted repository, anyone who can write the destination can forge a snapshot that
        ``check`` accepts."""
        return self.config.encrypted

    def reclaim_unfinished_packs(self) -> list[str]:
        """Delete the packs that no index file lists, left by a backup killed before it indexed them;
        returns their IDs. Called at the start of a backup, under its lock (docs/engine.md).

        Nothing is deleted, and ``[]`` returned, unless every condition holds: this repository
        holds a lock; taking it broke no lock whose process may still run (another host, or only a
        stale heartbeat: perhaps a paused backup); no other lock exists before and after the packs
        are listed; no index file is damaged; and the set of index files did not change meanwhile
        (a backup that started and finished in between). Any live writer holds a lock from before
        its first pack until after its last index file, so a pack unindexed under these conditions
        belongs to a process that is gone. Blobs of this repository still on their way into a pack
        also stop it (a pack stored a moment before it is indexed). Raises ``StorageError`` from the store.
        """
        own = [lock for lock in self._locks if lock.name is not None]
        with self._lock:
            busy = bool(self._in_flight or self._unsaved)
        if not own or busy or self.damaged_index_files:
            return []
        if any(not known_dead(info) for lock in own for info in lock.broken_info.values()):
            return []
        names = {lock.name for lock in own}

        def others() -> bool:
            return any(name not in names for name in list_locks(self.store))

        if others():
            return []
        before = set(self.index_ids())
        packs = [info.name.rsplit("/", 1)[-1] for info in self.store.list(DATA_PREFIX)]
        with self._lock:
            covered = self.index.pack_ids()
        for index_id in sorted(before - self.loaded_index_files):
            try:
                covered.update(location.pack_id for location in self.load_index_file(index_id))
            except (IntegrityError, ObjectNotFoundError):
                return []
        if others() or set(self.index_ids()) != before:
            return []
        removed = []
        for pack_id in packs:
            if pack_id not in covered and len(pack_id) == 64:
                self.store.delete(pack_name(pack_id), missing_ok=True)
                removed.append(pack_id)
        return removed

    def stats(self) -> dict[str, int]:
        """Counters of this session: packs and bytes uploaded, blobs indexed."""
        with self._lock:
            indexed = len(self.index)
        return {
            "packs_uploaded": self._packer.packs_uploaded,
            "bytes_uploaded": self._packer.bytes_uploaded,
            "blobs_indexed": indexed,
        }

    def close(self) -> None:
        """Finish queued uploads and stop the uploader threads; index what was uploaded.

        The open (unfilled) pack is dropped: call ``flush`` or ``save_snapshot`` to keep it. A
        failed upload is not raised again (``add_blob`` and ``flush`` report it); the packs that
        were uploaded are indexed all the same. Raises ``StorageError`` when that last index file
        cannot be written (its packs stay unindexed: ``check`` reports them). Used as a context
        manager, an error already in flight wins and this one is added to it as a note.
        """
        self._packer.close()
        self._save_index()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        if error is None:
            self.close()
            return
        try:
            self.close()
        except SnapkeepError as failure:
            error.add_note(f"closing the repository failed too: {failure}")
