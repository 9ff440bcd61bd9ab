"""Folder listings for a restore, fetched a whole tree pack at a time.

Why: a restore needs every folder listing (TREE blob) of the snapshot, one per folder. Read one at
a time, a 512 MiB set of about 20,000 files costs some 2,300 requests of about 1 KB each; against a
remote store each is a round trip (SFTP: open, read, close; S3: a signed GET that costs botocore
about 2 ms of CPU), and they summed to 10-11 s of thread time in a 9-11 s restore (``docs/engine.md``,
"Remote restore profile"). Tree blobs never share a pack with file data, and the packer seals a
tree pack at ``TREE_PACK_SIZE`` (4 MiB), so the listings of one backup sit in a few packs: reading
each such pack once, whole, replaces the 2,300 requests by a handful.

The packs are kept as stored (encrypted) bytes; every listing is still opened, decompressed and
verified against its ID (``Repository.decode_blob``) when it is used. At most ``budget`` bytes of
packs are kept (least recently used dropped first). Anything unusual (a blob not indexed, not a
tree, beyond the bytes read, or a pack that cannot be read) falls back to ``Repository.load_blob``,
which raises the same errors a restore raised before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Executor, Future

from snapkeep.engine.data.tree import Tree
from snapkeep.engine.format import pack_name
from snapkeep.engine.repository import BlobType, Repository
from snapkeep.engine.repository.codec import check_location
from snapkeep.engine.repository.packer import TREE_PACK_SIZE
from snapkeep.errors import SnapkeepError

__all__ = ["TreePacks"]

#: Bytes read from the start of a tree pack: a sealed tree pack holds at most ``TREE_PACK_SIZE``
#: plus its last listing and its trailer.
PACK_READ = 2 * TREE_PACK_SIZE
#: Bytes of tree packs kept for the listings still to come.
CACHE_BYTES = 32 * 1024 * 1024


class TreePacks:
    """Loads folder listings through whole-pack reads. Safe to call from several threads: a pack
    two threads need at once is read once, the second waits for the first."""

    def __init__(self, repository: Repository, budget: int = CACHE_BYTES) -> None:
        self.repository = repository
        self.budget = budget
        self._lock = threading.Lock()
        self._packs: OrderedDict[str, Future[memoryview | None]] = OrderedDict()
        self._held = 0
        #: packs ``prefetch`` handed to a pool (read at most once that way, even after eviction)
        self._asked: set[str] = set()
        #: packs read whole, and listings taken from them (for tests and the profile notes)
        self.packs_read = 0
        self.listings = 0

    def prefetch(self, tree_id: bytes, pool: Executor) -> None:
        """Have ``pool`` read the pack holding ``tree_id`` unless it is held, being read or asked
        for already: only the read runs there, the listing is decoded by whoever ``load``s it (in
        a local restore the decoding threads only competed with the writers for the interpreter:
        2 GiB into tmpfs, 4 rounds, 5.64-5.80 s against 5.89-6.63 s with the decoding prefetched)."""
        location = self.repository.lookup(tree_id)
        if location is None or location.blob_type is not BlobType.TREE:
            return
        with self._lock:
            if location.pack_id in self._packs or location.pack_id in self._asked:
                return
            self._asked.add(location.pack_id)
        pool.submit(self._pack, location.pack_id)

    def load(self, tree_id: bytes) -> Tree:
        """The verified listing ``tree_id``. Raises what ``Repository.load_blob`` raises."""
        return Tree.decode(self.load_raw(tree_id))

    def load_raw(self, tree_id: bytes) -> bytes:
        """The verified plaintext of the tree blob ``tree_id``."""
        location = self.repository.lookup(tree_id)
        if location is None or location.blob_type is not BlobType.TREE:
            return self.repository.load_blob(tree_id)  # raises BlobNotFoundError, or reads a stray blob
        check_location(location)
        end = location.offset + location.length
        if end > PACK_READ:
            return self.repository.load_blob(tree_id)
        pack = self._pack(location.pack_id)
        if pack is None or end > len(pack):
            return self.repository.load_blob(tree_id)  # names the missing pack or the short read
        with self._lock:
            self.listings += 1
        return self.repository.decode_blob(location, pack[location.offset : end])

    def _pack(self, pack_id: str) -> memoryview | None:
        """The first ``PACK_READ`` bytes of a pack, or ``None`` when it cannot be read."""
        with self._lock:
            future = self._packs.get(pack_id)
            if future is not None:
                self._packs.move_to_end(pack_id)
                owner = False
            else:
                future = self._packs[pack_id] = Future()
                owner = True
        if not owner:
            return future.result()
        data: memoryview | None
        try:
            data = memoryview(self.repository.store.load(pack_name(pack_id), 0, PACK_READ))
        except SnapkeepError:
            data = None
        except BaseException as error:  # whoever waits for this pack gets the error, never a hang
            with self._lock:
                self._packs.pop(pack_id, None)
            future.set_exception(error)
            raise
        future.set_result(data)
        with self._lock:
            self.packs_read += 1
            self._held += len(data) if data is not None else 0
            self._evict()
        return data

    def _evict(self) -> None:
        """Drop the least recently used packs beyond the budget (never one still being read)."""
        while self._held > self.budget and len(self._packs) > 1:
            pack_id, oldest = next(iter(self._packs.items()))
            if not oldest.done():
                break
            del self._packs[pack_id]
            dropped = oldest.result()
            self._held -= len(dropped) if dropped is not None else 0
