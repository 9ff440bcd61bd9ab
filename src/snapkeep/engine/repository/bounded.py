"""Reading a whole metadata object (a snapshot or index file, ``config``) with a size ceiling.

An object anyone with write access to the destination can replace is never read whole without a
bound: ``load_bounded`` asks the store for one byte more than the ceiling (every store clamps a
range to the object's end), so a 10 GiB file planted as ``snapshots/<id>`` costs the ceiling, not
10 GiB, and is refused as damage naming it.
"""

from __future__ import annotations

from typing import Final

from snapkeep.engine.format import MIB
from snapkeep.errors import IntegrityError
from snapkeep.storage.base import Store

#: A snapshot document is a few KiB (its stats list at most a bounded number of warnings).
MAX_SNAPSHOT_FILE: Final = 64 * MIB
#: A backup writes an index file every 300 s (about 50 bytes per blob of 1 MiB: a 15 MB file holds
#: 300 GB of data); prune writes files of 65,536 entries (3.3 MB).
MAX_INDEX_FILE: Final = 256 * MIB
#: ``config`` is a few hundred bytes.
MAX_CONFIG_FILE: Final = 1 * MIB


def load_bounded(store: Store, name: str, limit: int, *, what: str) -> bytes:
    """The whole object ``name``; ``IntegrityError`` naming ``what`` when it is larger than
    ``limit`` bytes (and ``ObjectNotFoundError``/``StorageError`` from the store)."""
    data = store.load(name, 0, limit + 1)
    if len(data) > limit:
        raise IntegrityError(what=what, reason=f"larger than the {limit} bytes it can be")
    return data
