"""Retention decisions on worked examples, with their reasons."""

from __future__ import annotations

import datetime as dt

import pytest

from snapkeep.engine.maintenance.retention import FOREVER, MANUAL, Backup, decide

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
DAILY, WEEKLY = "d" * 24, "w" * 24
LABELS = {DAILY: "schedule 'Daily'", WEEKLY: "schedule 'Weekly'"}


def backup(day: int, *tags: str, source: str = "job J", ok: bool = True, locked_until=None) -> Backup:
    return Backup(
        id=f"b{day:02d}",
        created=dt.datetime(2026, 5, day, 2, 0, tzinfo=dt.UTC),
        source=source,
        tags=frozenset(tags),
        ok=ok,
        locked_until=locked_until,
    )


def removed(decisions) -> list[str]:
    return [decision.id for decision in decisions if not decision.keep]


def reasons(decisions) -> dict[str, tuple[bool, tuple[str, ...]]]:
    return {decision.id: (decision.keep, decision.reasons) for decision in decisions}


def test_a_week_of_daily_runs_with_retain_3_keeps_the_newest_three() -> None:
    backups = [backup(day, DAILY) for day in range(1, 8)]
    decisions = decide(backups, {DAILY: 3}, NOW, labels=LABELS)
    assert removed(decisions) == ["b01", "b02", "b03", "b04"]
    result = reasons(decisions)
    assert result["b05"] == (True, ("kept: newest 3 of schedule 'Daily'",))
    assert result["b07"] == (
        True,
        ("kept: newest 3 of schedule 'Daily'", "kept: newest good backup of job J"),
    )
    assert result["b01"] == (False, ("removed: beyond retain 3 of schedule 'Daily'",))


def test_any_tag_keeping_a_backup_keeps_it() -> None:
    backups = [backup(1, DAILY, WEEKLY), *(backup(day, DAILY) for day in range(2, 6))]
    decisions = reasons(decide(backups, {DAILY: 2, WEEKLY: 4}, NOW, labels=LABELS))
    assert decisions["b01"] == (True, ("kept: newest 4 of schedule 'Weekly'",))
    assert [ident for ident, (keep, _) in decisions.items() if not keep] == ["b02", "b03"]


def test_locks_keep_until_they_expire() -> None:
    backups = [
        backup(1, DAILY, locked_until=NOW + dt.timedelta(hours=1)),
        backup(2, DAILY, locked_until=NOW - dt.timedelta(seconds=1)),
        backup(3, DAILY, locked_until=FOREVER),
        backup(4, DAILY),
    ]
    decisions = reasons(decide(backups, {DAILY: 1}, NOW, labels=LABELS))
    assert decisions["b01"] == (True, ("kept: locked until 2026-06-01T13:00:00+00:00",))
    assert decisions["b02"] == (False, ("removed: beyond retain 1 of schedule 'Daily'",))
    assert decisions["b03"] == (True, ("kept: locked with no end",))


def test_the_newest_good_backup_of_each_source_is_never_removed() -> None:
    backups = [
        backup(1, MANUAL, source="account u1"),
        backup(2, MANUAL, source="account u1", ok=False),
        backup(3, MANUAL, source="account u1", ok=False),
        backup(4, MANUAL, source="account u2"),
    ]
    decisions = reasons(decide(backups, {MANUAL: 1}, NOW))
    assert decisions["b01"] == (True, ("kept: newest good backup of account u1",))
    assert decisions["b02"] == (False, ("removed: beyond retain 1 of manual runs",))
    assert decisions["b03"] == (True, ("kept: newest 1 of manual runs",))
    assert decisions["b04"][0] is True


def test_counts_are_per_source() -> None:
    backups = [backup(day, DAILY, source=f"account u{day % 2}") for day in range(1, 7)]
    assert removed(decide(backups, {DAILY: 2}, NOW)) == ["b01", "b02"]


def test_tags_without_a_retain_count_keep_their_backups() -> None:
    backups = [backup(1, "gone" + "0" * 20), backup(2), backup(3, DAILY), backup(4, DAILY)]
    decisions = reasons(decide(backups, {DAILY: 1}, NOW))
    assert decisions["b01"] == (True, ("kept: schedule gone00000000000000000000 has no retain count",))
    assert decisions["b02"] == (True, ("kept: no schedule tag (retention does not apply)",))
    assert decisions["b03"][0] is False


def test_ties_in_time_are_broken_by_id_and_bad_input_is_refused() -> None:
    same = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    backups = [Backup(id=name, created=same, source="s", tags=frozenset({DAILY})) for name in "abc"]
    assert removed(decide(backups, {DAILY: 1}, NOW)) == ["a", "b"]
    with pytest.raises(ValueError, match="unique"):
        decide([backups[0], backups[0]], {}, NOW)
    with pytest.raises(ValueError, match="at least 0"):
        decide(backups, {DAILY: -1}, NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(backups, {DAILY: 1}, dt.datetime(2026, 1, 1))  # noqa: DTZ001 - the naive time refused
