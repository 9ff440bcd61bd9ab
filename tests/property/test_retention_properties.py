"""Property tests of retention: the invariants hold for any set of backups, tags, locks and counts."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from snapkeep.engine.maintenance.retention import FOREVER, MANUAL, Backup, decide

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
TAGS = ["s1", "s2", "s3", MANUAL]


@st.composite
def backup_sets(draw):
    count = draw(st.integers(0, 25))
    backups = []
    for index in range(count):
        lock = draw(
            st.one_of(
                st.none(),
                st.just(FOREVER),
                st.integers(-100, 100).map(lambda hours: NOW + dt.timedelta(hours=hours)),
            )
        )
        backups.append(
            Backup(
                id=f"b{index:03d}",
                created=NOW - dt.timedelta(hours=draw(st.integers(0, 200))),
                source=draw(st.sampled_from(["job J", "account u1", "account u2"])),
                tags=frozenset(draw(st.sets(st.sampled_from(TAGS), max_size=3))),
                ok=draw(st.booleans()),
                locked_until=lock,
            )
        )
    retain = draw(st.dictionaries(st.sampled_from(TAGS), st.integers(0, 5)))
    return backups, retain


def rank(backups, backup, tag) -> int:
    newer = [
        other
        for other in backups
        if other.source == backup.source
        and tag in other.tags
        and (other.created, other.id) > (backup.created, backup.id)
    ]
    return len(newer)


@settings(max_examples=200, deadline=None)
@given(backup_sets())
def test_invariants(case) -> None:
    backups, retain = case
    decisions = decide(backups, retain, NOW)
    assert [decision.backup for decision in decisions] == backups
    kept = {decision.id for decision in decisions if decision.keep}
    newest_good = {}
    for backup in backups:
        if backup.ok:
            current = newest_good.get(backup.source)
            if current is None or (backup.created, backup.id) > (current.created, current.id):
                newest_good[backup.source] = backup
    for decision in decisions:
        backup = decision.backup
        assert decision.reasons, "every decision says why"
        prefix = "kept: " if decision.keep else "removed: "
        assert all(reason.startswith(prefix) for reason in decision.reasons)
        if backup.locked_until is not None and backup.locked_until > NOW:
            assert decision.keep
        if newest_good.get(backup.source) is backup:
            assert decision.keep
        for tag in backup.tags:
            if tag not in retain or rank(backups, backup, tag) < retain[tag]:
                assert decision.keep
        if not decision.keep:  # removed only when every rule agrees
            assert backup.tags
            assert all(tag in retain for tag in backup.tags)
            assert all(rank(backups, backup, tag) >= retain[tag] for tag in backup.tags)
            assert backup.locked_until is None or backup.locked_until <= NOW
            assert newest_good.get(backup.source) is not backup
    # applying the same retention to what survived removes nothing more
    survivors = [backup for backup in backups if backup.id in kept]
    assert all(decision.keep for decision in decide(survivors, retain, NOW))


@settings(max_examples=100, deadline=None)
@given(backup_sets())
def test_each_tag_keeps_its_newest_per_source(case) -> None:
    backups, retain = case
    kept = {decision.id for decision in decide(backups, retain, NOW) if decision.keep}
    groups = defaultdict(list)
    for backup in backups:
        for tag in backup.tags:
            groups[(backup.source, tag)].append(backup)
    for (_source, tag), members in groups.items():
        if tag in retain:
            newest = sorted(members, key=lambda b: (b.created, b.id), reverse=True)[: retain[tag]]
            assert {b.id for b in newest} <= kept
