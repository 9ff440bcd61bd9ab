"""Storing, finding and deleting sealed snapshot files (``snapshots/<id>``).

A snapshot file is the snapshot's JSON sealed with the repository cipher and the associated data
``format.AD_SNAPSHOT``; its ID is the BLAKE3 hash (hex) of the stored bytes, checked on every load.
References accept ``latest`` and unique ID prefixes.
"""

from __future__ import annotations

import blake3

from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.format import AD_SNAPSHOT, SNAPSHOTS_PREFIX
from snapkeep.engine.repository.bounded import MAX_SNAPSHOT_FILE, load_bounded
from snapkeep.engine.repository.crypto import Cipher
from snapkeep.errors import IntegrityError, NotFoundError, ObjectNotFoundError, ValidationError
from snapkeep.storage.base import Store

LATEST = "latest"


class SnapshotStore:
    """The snapshot files of one repository."""

    def __init__(self, store: Store, cipher: Cipher) -> None:
        self._store = store
        self._cipher = cipher

    def ids(self) -> list[str]:
        """IDs of every stored snapshot, sorted."""
        return sorted(info.name[len(SNAPSHOTS_PREFIX) :] for info in self._store.list(SNAPSHOTS_PREFIX))

    def save(self, snapshot: Snapshot) -> str:
        """Store ``snapshot``; sets and returns its ID. Raises ``StorageError``."""
        sealed = self._cipher.seal(snapshot.to_json(), AD_SNAPSHOT)
        snapshot_id = blake3.blake3(sealed).hexdigest()
        self._store.store(f"{SNAPSHOTS_PREFIX}{snapshot_id}", sealed)
        snapshot.id = snapshot_id
        return snapshot_id

    def load(self, snapshot_id: str) -> Snapshot:
        """The snapshot with this full ID, verified.

        Raises ``NotFoundError`` when missing, ``IntegrityError`` naming the snapshot when damaged.
        """
        what = f"snapshot {snapshot_id}"
        try:
            data = load_bounded(self._store, f"{SNAPSHOTS_PREFIX}{snapshot_id}", MAX_SNAPSHOT_FILE, what=what)
        except ObjectNotFoundError:
            raise NotFoundError(kind="snapshot", ident=snapshot_id) from None
        if blake3.blake3(data).hexdigest() != snapshot_id:
            raise IntegrityError(what=what, reason="contents do not match the file name")
        return Snapshot.from_json(self._cipher.open(data, AD_SNAPSHOT, what=what), snapshot_id)

    def list(self) -> list[Snapshot]:
        """Every snapshot, oldest first. Raises ``IntegrityError`` for a damaged one."""
        snapshots = [self.load(snapshot_id) for snapshot_id in self.ids()]
        snapshots.sort(key=lambda snapshot: (snapshot.time, snapshot.id))
        return snapshots

    def resolve(self, ref: str) -> str:
        """The full ID for ``latest`` or a unique ID prefix.

        Raises ``NotFoundError`` when nothing matches (or the repository has no snapshot) and
        ``ValidationError`` when a prefix matches several snapshots.
        """
        if ref == LATEST:
            snapshots = self.list()
            if not snapshots:
                raise NotFoundError("the repository has no snapshot yet")
            return snapshots[-1].id
        reference = ref.strip().lower()
        if not reference or any(character not in "0123456789abcdef" for character in reference):
            raise ValidationError(
                field="snapshot", problem=f"{ref!r} is neither 'latest' nor a hex ID prefix"
            )
        matches = [snapshot_id for snapshot_id in self.ids() if snapshot_id.startswith(reference)]
        if not matches:
            raise NotFoundError(kind="snapshot", ident=ref)
        if len(matches) > 1:
            shown = ", ".join(match[:12] for match in matches[:5])
            raise ValidationError(
                field="snapshot",
                problem=f"prefix {ref!r} matches {len(matches)} snapshots ({shown}); give more digits",
            )
        return matches[0]

    def delete(self, snapshot_id: str) -> None:
        """Remove the snapshot with this full ID; raises ``NotFoundError`` when missing."""
        try:
            self._store.delete(f"{SNAPSHOTS_PREFIX}{snapshot_id}")
        except ObjectNotFoundError:
            raise NotFoundError(kind="snapshot", ident=snapshot_id) from None
