"""``forget``: choose snapshots to remove (a keep policy and explicit IDs) and remove their files.

Selection (``plan_forget``) is pure: it takes the snapshots and returns which to keep and which to
remove, with a reason for each removal. The keep policy is restic's (issue 14): ``last`` keeps the
newest N readable snapshots; ``hourly``/``daily``/``weekly``/``monthly``/``yearly`` keep the newest
snapshot of each of the last N hours/days/ISO weeks/months/years that have one; ``within`` keeps
every snapshot less than that long before the newest one; ``tags`` keeps every snapshot carrying one
of them. A snapshot that no rule keeps is removed; explicit references (full IDs, unique prefixes or
``latest``) are removed whatever the policy says. A snapshot file that cannot be read is never
chosen by the policy (it has no time to sort by) but can be removed by its ID.

``forget`` applies a plan under the exclusive lock. It removes snapshot files only; the data they
alone referenced stays until ``prune``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.repository import Repository
from snapkeep.errors import IntegrityError, NotFoundError, ValidationError

LATEST = "latest"

#: the calendar buckets of the keep policy: name -> the bucket a snapshot's time falls in
BUCKETS: dict[str, Any] = {
    "hourly": lambda moment: (moment.year, moment.month, moment.day, moment.hour),
    "daily": lambda moment: (moment.year, moment.month, moment.day),
    "weekly": lambda moment: tuple(moment.isocalendar()[:2]),
    "monthly": lambda moment: (moment.year, moment.month),
    "yearly": lambda moment: (moment.year,),
}


_SPAN_UNITS = {"y": 365 * 24, "m": 30 * 24, "w": 7 * 24, "d": 24, "h": 1}


def parse_span(text: str) -> _dt.timedelta:
    """restic's ``--keep-within`` span: numbers with units y, m (30 days), w, d, h, e.g. ``1y6m``,
    ``2d12h``. Raises ValidationError."""
    hours, number, rest = 0, "", text.strip().lower()
    if not rest:
        raise ValidationError(field="keep_within", problem="is empty")
    for character in rest:
        if character.isdigit() and character.isascii():
            number += character
        elif character in _SPAN_UNITS and number:
            hours += int(number[:9]) * _SPAN_UNITS[character]
            number = ""
        else:
            raise ValidationError(
                field="keep_within", problem=f"{text!r} is not a span like 30d, 12h, 2w, 6m or 1y2m"
            )
    if number:
        raise ValidationError(field="keep_within", problem=f"{text!r} ends without a unit (y, m, w, d or h)")
    return _dt.timedelta(hours=hours)


@dataclass(frozen=True)
class KeepPolicy:
    """Which snapshots to keep (restic's ``--keep-*``); empty keeps nothing by policy."""

    last: int | None = None
    hourly: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None
    yearly: int | None = None
    within: _dt.timedelta | None = None
    tags: frozenset[str] = frozenset()

    def empty(self) -> bool:
        counts = (self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly)
        return all(count is None for count in counts) and self.within is None and not self.tags

    def check(self) -> None:
        """Raises ValidationError for a count below 1 or a negative span."""
        for name in ("last", *BUCKETS):
            count = getattr(self, name)
            if count is not None and count < 1:
                raise ValidationError(field=f"keep_{name}", problem=f"must be at least 1, got {count}")
        if self.within is not None and self.within <= _dt.timedelta(0):
            raise ValidationError(field="keep_within", problem="must be longer than zero")

    def reasons_to_keep(self, ordered: Sequence[Snapshot]) -> dict[str, list[str]]:
        """For each snapshot (oldest first) a policy keeps, why."""
        kept: dict[str, list[str]] = {}
        newest_first = list(reversed(ordered))
        if self.last is not None:
            for snapshot in newest_first[: self.last]:
                kept.setdefault(snapshot.id, []).append(f"last {self.last}")
        for name, bucket_of in BUCKETS.items():
            count = getattr(self, name)
            if count is None:
                continue
            seen: list[Any] = []
            for snapshot in newest_first:  # the newest snapshot of each bucket, for the last N buckets
                bucket = bucket_of(snapshot.time)
                if bucket in seen:
                    continue
                if len(seen) == count:
                    break
                seen.append(bucket)
                kept.setdefault(snapshot.id, []).append(f"{name} {count}")
        if self.within is not None and newest_first:
            since = newest_first[0].time - self.within
            for snapshot in newest_first:
                if snapshot.time >= since:
                    kept.setdefault(snapshot.id, []).append(f"within {self.within}")
        for snapshot in newest_first:
            matching = sorted(self.tags & set(snapshot.tags))
            if matching:
                kept.setdefault(snapshot.id, []).append(f"tag {matching[0]}")
        return kept


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
    policy: KeepPolicy | None = None,
) -> ForgetPlan:
    """Decide which of ``snapshots`` (and of the ``unreadable`` snapshot IDs) to remove.

    ``keep_last`` is ``policy.last`` (kept for callers that only know it). Raises ``ValidationError``
    when no keep rule and no ID is given or a rule is out of range, plus the errors of ``resolve``.
    """
    policy = policy or KeepPolicy()
    if keep_last is not None:
        policy = dataclasses.replace(policy, last=keep_last)
    if policy.empty() and not ids:
        raise ValidationError(
            field="forget",
            problem="give a --keep-* rule (--keep-last N, --keep-daily N, ...) or the snapshot IDs",
        )
    policy.check()
    ordered = sorted(snapshots, key=lambda snapshot: (snapshot.time, snapshot.id))
    reasons: dict[str, str] = {}
    for ref in ids:
        reasons.setdefault(resolve(ref, ordered, unreadable), f"named ({ref})")
    if not policy.empty():
        kept = policy.reasons_to_keep(ordered)
        only_last = policy == KeepPolicy(last=policy.last)
        why = f"older than the last {policy.last}" if only_last else "kept by no --keep rule"
        for snapshot in ordered:
            if snapshot.id not in kept:
                reasons.setdefault(snapshot.id, why)
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
    policy: KeepPolicy | None = None,
) -> ForgetPlan:
    """Remove the snapshot files ``plan_forget`` chooses (none with ``dry_run``); returns the plan.

    Takes the exclusive lock (a shared one for ``dry_run``). Raises ``LockError``, the errors of
    ``plan_forget`` and ``StorageError``.
    """
    with repository.lock(exclusive=not dry_run, holder="snapkeep forget"):
        snapshots, unreadable = read_snapshots(repository)
        plan = plan_forget(snapshots, keep_last=keep_last, ids=ids, unreadable=unreadable, policy=policy)
        if not dry_run:
            for snapshot_id in plan.removed_ids:
                repository.snapshots.delete(snapshot_id)
    return plan
