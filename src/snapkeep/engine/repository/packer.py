"""Assembling sealed blobs into packs and uploading full packs from background threads.

``Packer.add`` appends a sealed blob to the open pack under a short lock; a pack that reaches the
target size is handed to a bounded queue (so a slow destination slows the producers instead of
filling memory) and finished there: the uploader threads seal the trailer, hash the pack for its
ID, stream its parts to the store (no pack-sized copy) and report ``on_uploaded(pack_id, entries)``.
Memory: where the store allows, none: a local folder has each pack written into it as the pack
fills (``Store.stage``, ``pack_format.StagedPack``), SFTP and S3 get it from an anonymous temporary
file written as it fills (``Store.spools_packs``, ``SpooledStage``, ``Store.store_file``).
Otherwise the open packs, one queued and at most one per uploader (about 64 MiB in all): a pack is
released as it is written; a store that may write it twice (a remote store that repeats a write
after a dropped connection, ``RetryingStore``) reads it from an anonymous temporary file instead
(``SpooledParts``), as restic keeps its packs in temporary files: the pack does not stay in memory
for the whole upload, and a full pack waits for a free uploader rather than in the queue.

Folder listings (TREE blobs) and file contents (DATA blobs) never share a pack: the packer keeps
one open pack per blob type (as restic does). A damaged or truncated data pack then loses only the
files whose chunks it held, never the folders that list the rest of a snapshot; the tree packs are
small and read by every restore and check. Format v1 readers accept either layout.

An uploader error is kept and raised in the caller of the next ``add``/``flush``/``check`` as a
``StorageError``; later packs are dropped, never half-written, so nothing after the failure can be
committed.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator

from snapkeep.engine.format import PACK_TARGET_SIZE, BlobType, Compression, pack_name
from snapkeep.engine.repository.crypto import Cipher
from snapkeep.engine.repository.pack_format import PackBuilder, PackEntry, Sealed, StagedPack
from snapkeep.errors import SnapkeepError, StorageError
from snapkeep.storage.base import FilePieces, Store

UploadedCallback = Callable[[str, list[PackEntry]], None]
#: Full packs waiting for an uploader, beyond the ones being uploaded (memory: about 16 MiB each).
#: One is enough to keep both uploaders busy; more only holds memory (measured: docs/engine.md).
DEFAULT_QUEUE_DEPTH = 1
DEFAULT_UPLOADERS = 2


def _released(parts: list[bytes]) -> Iterator[bytes]:
    """The parts in order, each dropped from ``parts`` as it is handed out (emptied as it goes)."""
    parts.reverse()
    while parts:
        yield parts.pop()


class SpooledParts(FilePieces):
    """A sealed pack moved to an anonymous temporary file (``O_TMPFILE``: no name, mode 0600,
    gone when closed; its content is already encrypted), read back in ``PIECE`` pieces as often as
    the store asks: a sequence a store can write twice without the pack in memory. A first backup
    of the 2 GiB set to SFTP: 173 MiB in the Python process with the parts kept for the replay,
    151-152 MiB spooled, 140-143 MiB with no full pack queued either (148-151 MiB with its ssh
    client; restic 164 MiB; ``docs/engine.md``, "Issue 12, sixth round")."""

    def __init__(self, parts: list[bytes]) -> None:
        """Write ``parts`` to the file and empty the list. Raises ``OSError`` (the list is kept)."""
        self._file = tempfile.TemporaryFile(prefix="snapkeep-pack-")  # noqa: SIM115 - closed by close()
        try:
            for part in parts:
                self._file.write(part)
            self._file.flush()
        except BaseException:
            self._file.close()
            raise
        super().__init__(self._file.fileno(), sum(len(part) for part in parts))
        parts.clear()

    def close(self) -> None:
        self.descriptor = -1  # never a descriptor the process may have opened since
        self._file.close()


class SpooledStage:
    """A pack written as it fills into an anonymous temporary file (``O_TMPFILE`` in ``TMPDIR``: no
    name, mode 0600, its content already encrypted) and stored from there (``Store.store_file``):
    for a remote store (``Store.spools_packs``), whose open, waiting and uploading packs would
    otherwise each be 16 MiB of memory. Raises ``OSError`` when no temporary file can be made."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._file = tempfile.TemporaryFile(prefix="snapkeep-pack-")  # noqa: SIM115 - closed by publish/discard
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        try:
            written = 0
            while written < len(data):
                written += os.write(self._file.fileno(), memoryview(data)[written:])
        except OSError as error:
            raise StorageError(f"writing a pack to a temporary file: {error}") from error
        self.size += len(data)

    def publish(self, name: str) -> int:
        try:
            return self._store.store_file(name, self._file, self.size)
        finally:
            self._file.close()

    def discard(self) -> None:
        self._file.close()


#: Folder listings close their packs sooner than file data: the open tree pack stays in memory
#: beside the data pack for the whole backup (16 MiB of listings: +17 MiB peak RSS on 2 GiB, 80,000
#: files), and listings are few, so smaller packs cost no extra requests worth counting.
TREE_PACK_SIZE = 4 * 1024 * 1024


class Packer:
    """Packs sealed blobs and uploads them. Thread-safe."""

    def __init__(
        self,
        store: Store,
        cipher: Cipher,
        on_uploaded: UploadedCallback,
        *,
        pack_size: int = PACK_TARGET_SIZE,
        uploaders: int = DEFAULT_UPLOADERS,
        queue_depth: int = DEFAULT_QUEUE_DEPTH,
    ) -> None:
        self._store = store
        self._cipher = cipher
        self._on_uploaded = on_uploaded
        self._pack_size = pack_size
        self._uploader_count = uploaders
        self._queue: queue.Queue[PackBuilder | StagedPack | None] = queue.Queue(maxsize=queue_depth)
        #: Whether the store takes packs written as they fill (``Store.stage``); known after the first.
        self._stages: bool | None = None
        #: A store that may write a pack twice gets it from a temporary file once it is sealed: a
        #: full pack then waits for a free uploader instead of in the queue, in memory.
        self._free_uploaders = threading.Semaphore(uploaders) if store.replays_writes else None
        self._lock = threading.Lock()
        self._open: dict[BlobType, PackBuilder | StagedPack] = {}
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None
        self.packs_uploaded = 0
        self.bytes_uploaded = 0

    def _start(self) -> None:
        # Called with the lock held.
        if self._threads:
            return
        for number in range(self._uploader_count):
            thread = threading.Thread(
                target=self._upload_loop, name=f"snapkeep-uploader-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def check(self) -> None:
        """Raise ``StorageError`` when an upload has failed."""
        error = self._error
        if error is not None:
            if isinstance(error, StorageError):
                raise StorageError(f"uploading a pack failed: {error}") from error
            raise StorageError(f"uploading a pack failed: {type(error).__name__}: {error}") from error

    def add(
        self, blob_id: bytes, blob_type: BlobType, compression: Compression, sealed: Sealed, raw_length: int
    ) -> None:
        """Append a sealed blob (whole or in two halves, ``pack_format.Sealed``); may block while the
        upload queue is full. Raises ``StorageError``."""
        self.check()
        full = None
        with self._lock:
            self._start()
            builder = self._open.get(blob_type)
            if builder is None:
                builder = self._open[blob_type] = self._new_pack()
            try:
                builder.add(blob_id, blob_type, compression, sealed, raw_length)
            except BaseException as error:
                # A staged pack that cannot be written is dropped; nothing after it is committed.
                self._open.pop(blob_type, None)
                _discard(builder)
                if self._error is None:
                    self._error = error
                raise
            limit = self._pack_size if blob_type is BlobType.DATA else min(self._pack_size, TREE_PACK_SIZE)
            if builder.size >= limit:
                full = self._open.pop(blob_type)
        if full is not None:
            self._hand_over(full)

    def _new_pack(self) -> PackBuilder | StagedPack:
        """An open pack: written into the store as it fills when the store stages objects (a local
        folder: the pack never sits in memory), else collected in memory. Called with the lock held."""
        if self._stages is not False:
            staged = self._store.stage()
            self._stages = staged is not None
            if staged is not None:
                return StagedPack(staged)
        if self._store.spools_packs:
            try:
                return StagedPack(SpooledStage(self._store))
            except OSError:  # no temporary file (a full or read-only TMPDIR): in memory
                pass
        return PackBuilder()

    def _hand_over(self, builder: PackBuilder | StagedPack) -> None:
        if self._free_uploaders is not None:
            self._free_uploaders.acquire()
        self._queue.put(builder)

    def flush(self) -> None:
        """Send the open packs and wait until every queued pack is stored. Raises ``StorageError``."""
        with self._lock:
            full = [builder for _, builder in sorted(self._open.items()) if len(builder)]
            self._open = {}
            if full:
                self._start()
        for builder in full:
            self._hand_over(builder)
        self._queue.join()
        self.check()

    def close(self) -> None:
        """Finish queued uploads (the open packs are discarded) and stop the threads. Never raises."""
        with self._lock:
            threads, self._threads = self._threads, []
            dropped, self._open = list(self._open.values()), {}
        for builder in dropped:
            _discard(builder)
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()

    def _upload_loop(self) -> None:
        while True:
            builder = self._queue.get()
            try:
                if builder is None:
                    return
                if self._error is None:
                    self._upload(builder)
                else:
                    _discard(builder)
            except BaseException as error:  # noqa: BLE001 - kept and raised in the producer's thread
                _discard(builder)
                if self._error is None:
                    self._error = error
            finally:
                if self._free_uploaders is not None and builder is not None:
                    self._free_uploaders.release()
                self._queue.task_done()

    def _store_replayable(self, pack_id: str, parts: list[bytes]) -> int:
        """Store a pack that the store may write twice: from a temporary file (``SpooledParts``),
        or from memory when no temporary file can be written (a full or read-only ``TMPDIR``)."""
        try:
            spooled = SpooledParts(parts)
        except OSError:
            return self._store.store_stream(pack_name(pack_id), parts)
        try:
            return self._store.store_stream(pack_name(pack_id), spooled)
        finally:
            spooled.close()

    def _upload(self, builder: PackBuilder | StagedPack) -> None:
        entries = list(builder.entries)
        if isinstance(builder, StagedPack):
            pack_id = builder.finish(self._cipher)
            size = builder.staged.publish(pack_name(pack_id))
            self._uploaded(pack_id, entries, size)
            return
        pack_id, parts = builder.finish_parts(self._cipher)  # small blobs joined (``coalesce``)
        try:
            if len(parts) == 1:
                self._store.store(pack_name(pack_id), parts[0])
                size = len(parts[0])
            elif not self._store.replays_writes:
                # A store that never writes twice gets the parts released as they are written:
                # 2 GiB first backup, peak RSS 161-164 MiB instead of 174-176 (docs/engine.md).
                size = self._store.store_stream(pack_name(pack_id), _released(parts))
            else:
                size = self._store_replayable(pack_id, parts)
        except SnapkeepError:
            raise
        except OSError as error:  # a backend that leaked a foreign error: translate it here
            raise StorageError(f"storing pack {pack_id}: {error}") from error
        del parts
        self._uploaded(pack_id, entries, size)

    def _uploaded(self, pack_id: str, entries: list[PackEntry], size: int) -> None:
        with self._lock:
            self.packs_uploaded += 1
            self.bytes_uploaded += size
        self._on_uploaded(pack_id, entries)


def _discard(builder: PackBuilder | StagedPack | None) -> None:
    """Drop a pack that will not be stored (a staged one's temporary file goes too)."""
    if isinstance(builder, StagedPack):
        builder.staged.discard()
