"""``forget``: choose snapshots to remove (``--keep-last N`` and explicit IDs) and remove their files.

Selection (``plan_forget``) is pure: it takes the snapshots and returns which to keep and which to
remove, with a reason for each removal. ``keep_last`` keeps the newest N readable snapshots and
removes the older ones; explicit references (full IDs, unique prefixes or ``latest``) are removed
whatever ``keep_last`` says. A snapshot file that cannot be read is never chosen by ``keep_last``
(it has no time to sort by) but can be removed by its ID.

``forget`` applies a plan under the exclusive lock. It removes snapshot files only; the data they
alone referenced stays until ``prune``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.repository import Repository
from snapkeep.errors import IntegrityError, NotFoundError, ValidationError

LATEST = "latest"


@dataclass
class ForgetPlan:
    """Snapshots to keep and to remove (oldest first); ``reasons`` maps removed IDs to why."""

    keep: list[Snapshot] = field(default_factory=list)
    remove: list[Snapshot] = field(default_factory=list)
    remove_unreadable: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def removed_ids(self) -> list[str]:
        """IDs of every snapshot file the plan removes."""
        return [snapshot.id for snapshot in self.remove] + self.remove_unreadable

    def to_dict(self, *, dry_run: bool) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "dry_run": dry_run,
            "keep": [snapshot.id for snapshot in self.keep],
            "remove": [
                {"id": snapshot_id, "reason": self.reasons[snapshot_id]} for snapshot_id in self.removed_ids
            ],
        }


def resolve(ref: str, snapshots: Sequence[Snapshot], unreadable: Sequence[str]) -> str:
    """The full ID named by ``ref`` (``latest``, a full ID or a unique hex prefix).

    Raises ``ValidationError`` for a malformed or ambiguous reference, ``NotFoundError`` when
    nothing matches.
    """
    if ref == LATEST:
        if not snapshots:
            raise NotFoundError("the repository has no readable snapshot: 'latest' names nothing")
        return max(snapshots, key=lambda snapshot: (snapshot.time, snapshot.id)).id
    prefix = ref.strip().lower()
    if not prefix or any(character not in "0123456789abcdef" for character in prefix):
        raise ValidationError(field="snapshot", problem=f"{ref!r} is neither 'latest' nor a hex ID prefix")
    matches = sorted(
        {s.id for s in snapshots if s.id.startswith(prefix)} | {u for u in unreadable if u.startswith(prefix)}
    )
    if not matches:
        raise NotFoundError(kind="snapshot", ident=ref)
    if len(matches) > 1:
        raise ValidationError(
            field="snapshot", problem=f"prefix {ref!r} matches {len(matches)} snapshots; give more digits"
        )
    return matches[0]


def plan_forget(
    snapshots: Sequence[Snapshot],
    *,
    keep_last: int | None = None,
    ids: Sequence[str] = (),
    unreadable: Sequence[str] = (),
) -> ForgetPlan:
    """Decide which of ``snapshots`` (and of the ``unreadable`` snapshot IDs) to remove.

    Raises ``ValidationError`` when neither ``keep_last`` nor ``ids`` is given or ``keep_last`` is
    below 1, plus the errors of ``resolve``.
    """
    if keep_last is None and not ids:
        raise ValidationError(field="forget", problem="give --keep-last N or the snapshot IDs to remove")
    if keep_last is not None and keep_last < 1:
        raise ValidationError(field="keep_last", problem=f"must be at least 1, got {keep_last}")
    ordered = sorted(snapshots, key=lambda snapshot: (snapshot.time, snapshot.id))
    reasons: dict[str, str] = {}
    for ref in ids:
        reasons.setdefault(resolve(ref, ordered, unreadable), f"named ({ref})")
    if keep_last is not None:
        for snapshot in ordered[: max(0, len(ordered) - keep_last)]:
            reasons.setdefault(snapshot.id, f"older than the last {keep_last}")
    plan = ForgetPlan(reasons=reasons)
    for snapshot in ordered:
        (plan.remove if snapshot.id in reasons else plan.keep).append(snapshot)
    plan.remove_unreadable = sorted(snapshot_id for snapshot_id in unreadable if snapshot_id in reasons)
    return plan


def read_snapshots(repository: Repository) -> tuple[list[Snapshot], list[str]]:
    """The readable snapshots (oldest first) and the IDs of damaged snapshot files."""
    readable: list[Snapshot] = []
    unreadable: list[str] = []
    for snapshot_id in repository.snapshots.ids():
        try:
            readable.append(repository.snapshots.load(snapshot_id))
        except IntegrityError:
            unreadable.append(snapshot_id)
        except NotFoundError:
            continue  # removed meanwhile
    readable.sort(key=lambda snapshot: (snapshot.time, snapshot.id))
    return readable, unreadable


def forget(
    repository: Repository,
    *,
    keep_last: int | None = None,
    ids: Sequence[str] = (),
    dry_run: bool = False,
) -> ForgetPlan:
    """Remove the snapshot files ``plan_forget`` chooses (none with ``dry_run``); returns the plan.

    Takes the exclusive lock (a shared one for ``dry_run``). Raises ``LockError``, the errors of
    ``plan_forget`` and ``StorageError``.
    """
    with repository.lock(exclusive=not dry_run, holder="snapkeep forget"):
        snapshots, unreadable = read_snapshots(repository)
        plan = plan_forget(snapshots, keep_last=keep_last, ids=ids, unreadable=unreadable)
        if not dry_run:
            for snapshot_id in plan.removed_ids:
                repository.snapshots.delete(snapshot_id)
    return plan
