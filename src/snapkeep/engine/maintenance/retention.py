"""Retention: which backups to keep and which to remove, each decision with its reasons. Pure.

Interface (for the runner, after a run, before prune)
----------------------------------------------------
``decide(backups, retain, now, *, labels=None) -> list[Decision]``

``backups`` are ``Backup`` records: ID, creation time, tags (the schedule IDs that produced the backup,
or ``MANUAL``), the time a lock ends (``None`` = not locked, ``FOREVER`` = locked with no end), whether
the backup is good (a complete run) and its source key (``"job J"`` for a Directories job, ``"account u1"``
for an account: it appears in reasons as given). ``retain`` maps a tag to how many backups of that tag
to keep (schedule ID -> the link's ``retain``; ``MANUAL`` -> the job's ``manually_retain``). Counting is
per source: an Accounts job with retain 3 keeps three backups of every account.

A backup is kept when any of these holds (every reason that holds is listed):
- it is among the newest ``retain[tag]`` backups of its source with that tag, for any of its tags;
- its tag has no retain count (a schedule no longer linked, or no tag at all): nothing decides to drop
  it, and a backup is only removed on a decision;
- it is locked and the lock has not expired at ``now``;
- it is the newest good backup of its source (never removed, whatever the counts say).
Otherwise it is removed, with one reason per tag (``removed: beyond retain 3 of schedule 'Daily'``).
``labels`` names tags in reasons (default ``schedule <id>``, ``manual runs``).
"""

from __future__ import annotations

import datetime as _dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

MANUAL = "manual"
FOREVER = _dt.datetime.max.replace(tzinfo=_dt.UTC)


@dataclass(frozen=True)
class Backup:
    """What retention needs to know about one backup (snapshot)."""

    id: str
    created: _dt.datetime
    source: str
    tags: frozenset[str] = field(default_factory=frozenset)
    ok: bool = True
    locked_until: _dt.datetime | None = None

    def locked_at(self, now: _dt.datetime) -> bool:
        """Whether the lock still holds at ``now``."""
        return self.locked_until is not None and self.locked_until > now


@dataclass(frozen=True)
class Decision:
    """Keep or remove one backup, and why."""

    backup: Backup
    keep: bool
    reasons: tuple[str, ...]

    @property
    def id(self) -> str:
        return self.backup.id


def _label(tag: str, labels: Mapping[str, str] | None) -> str:
    if labels and tag in labels:
        return labels[tag]
    return "manual runs" if tag == MANUAL else f"schedule {tag}"


def _newest_first(backups: Iterable[Backup]) -> list[Backup]:
    return sorted(backups, key=lambda backup: (backup.created, backup.id), reverse=True)


def _lock_text(until: _dt.datetime) -> str:
    if until == FOREVER:
        return "kept: locked with no end"
    return f"kept: locked until {until.astimezone(_dt.UTC).replace(microsecond=0).isoformat()}"


def decide(
    backups: Sequence[Backup],
    retain: Mapping[str, int],
    now: _dt.datetime,
    *,
    labels: Mapping[str, str] | None = None,
) -> list[Decision]:
    """A decision for every backup, in the order given. Raises ValueError for a duplicate ID, a
    negative retain count or a naive time (the caller's bug, not user input)."""
    if now.tzinfo is None:
        raise ValueError("retention: now must be timezone-aware")
    ids = [backup.id for backup in backups]
    if len(set(ids)) != len(ids):
        raise ValueError("retention: backup IDs must be unique")
    for tag, count in retain.items():
        if count < 0:
            raise ValueError(f"retention: retain count of {tag} must be at least 0 (got {count})")

    kept: dict[str, list[str]] = defaultdict(list)
    beyond: dict[str, list[str]] = defaultdict(list)
    by_source_tag: dict[tuple[str, str], list[Backup]] = defaultdict(list)
    for backup in backups:
        if not backup.tags:
            kept[backup.id].append("kept: no schedule tag (retention does not apply)")
        for tag in sorted(backup.tags):
            if tag in retain:
                by_source_tag[(backup.source, tag)].append(backup)
            else:
                kept[backup.id].append(f"kept: {_label(tag, labels)} has no retain count")
    for (_source, tag), members in sorted(by_source_tag.items()):
        count = retain[tag]
        for rank, backup in enumerate(_newest_first(members)):
            if rank < count:
                kept[backup.id].append(f"kept: newest {count} of {_label(tag, labels)}")
            else:
                beyond[backup.id].append(f"removed: beyond retain {count} of {_label(tag, labels)}")

    by_source: dict[str, list[Backup]] = defaultdict(list)
    for backup in backups:
        if backup.ok:
            by_source[backup.source].append(backup)
    for source, good in by_source.items():
        kept[_newest_first(good)[0].id].append(f"kept: newest good backup of {source}")

    decisions = []
    for backup in backups:
        reasons = list(kept.get(backup.id, []))
        if backup.locked_until is not None and backup.locked_at(now):
            reasons.append(_lock_text(backup.locked_until))
        if reasons:
            decisions.append(Decision(backup, True, tuple(reasons)))
        else:
            decisions.append(Decision(backup, False, tuple(beyond[backup.id])))
    return decisions
