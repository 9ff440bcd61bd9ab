"""forget: pure selection by --keep-last and IDs; applying it removes snapshot files only."""

from __future__ import annotations

import datetime as dt

import pytest

from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.format import SNAPSHOTS_PREFIX, BlobType
from snapkeep.engine.maintenance.forget import forget, plan_forget, read_snapshots, resolve
from snapkeep.engine.repository import Repository
from snapkeep.errors import LockError, NotFoundError, ValidationError
from snapkeep.storage.memory import MemoryStore

FAST = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def snap(snapshot_id: str, day: int) -> Snapshot:
    return Snapshot(
        id=snapshot_id, time=START + dt.timedelta(days=day), hostname="h", paths=["/x"], tree="00" * 32
    )


SNAPSHOTS = [
    snap("c3" + "0" * 62, 2),
    snap("a1" + "0" * 62, 0),
    snap("b2" + "0" * 62, 1),
    snap("d4" + "0" * 62, 3),
]


def ids(snapshots: list[Snapshot]) -> list[str]:
    return [snapshot.id[:2] for snapshot in snapshots]


def test_keep_last_keeps_the_newest_by_time() -> None:
    plan = plan_forget(SNAPSHOTS, keep_last=2)
    assert ids(plan.keep) == ["c3", "d4"]
    assert ids(plan.remove) == ["a1", "b2"]
    assert all("older than the last 2" in plan.reasons[s.id] for s in plan.remove)
    assert ids(plan_forget(SNAPSHOTS, keep_last=10).remove) == []


def test_explicit_ids_prefixes_and_latest_are_removed_even_within_keep_last() -> None:
    plan = plan_forget(SNAPSHOTS, ids=["b2", "latest"])
    assert ids(plan.remove) == ["b2", "d4"]
    assert ids(plan.keep) == ["a1", "c3"]
    combined = plan_forget(SNAPSHOTS, keep_last=3, ids=["d4"])
    assert ids(combined.remove) == ["a1", "d4"]
    assert combined.reasons[SNAPSHOTS[3].id] == "named (d4)"


def test_selection_errors_name_the_problem() -> None:
    with pytest.raises(ValidationError, match=r"give a --keep-\* rule .* or the snapshot IDs"):
        plan_forget(SNAPSHOTS)
    with pytest.raises(ValidationError, match="keep_last: must be at least 1"):
        plan_forget(SNAPSHOTS, keep_last=0)
    with pytest.raises(NotFoundError, match="ee"):
        plan_forget(SNAPSHOTS, ids=["ee"])
    with pytest.raises(ValidationError, match="hex ID prefix"):
        resolve("../x", SNAPSHOTS, [])
    with pytest.raises(ValidationError, match="matches 2 snapshots"):
        resolve("a", [*SNAPSHOTS, snap("a2" + "0" * 62, 5)], [])


def test_unreadable_snapshots_are_removed_only_by_id() -> None:
    broken = "e5" + "0" * 62
    assert plan_forget(SNAPSHOTS, keep_last=1, unreadable=[broken]).remove_unreadable == []
    plan = plan_forget(SNAPSHOTS, ids=["e5"], unreadable=[broken])
    assert plan.removed_ids == [broken]
    assert len(plan.keep) == 4


def saved(repository: Repository, day: int) -> Snapshot:
    tree = repository.blob_id(b'{"nodes":[],"v":1}')
    repository.add_blob(BlobType.TREE, b'{"nodes":[],"v":1}', tree)
    snapshot = Snapshot(
        id="", time=START + dt.timedelta(days=day), hostname="h", paths=["/x"], tree=tree.hex()
    )
    repository.save_snapshot(snapshot)
    return snapshot


def test_forget_removes_snapshot_files_only_and_dry_run_nothing() -> None:
    store = MemoryStore()
    repository = Repository.init(store, password="pw", kdf_params=FAST)
    made = [saved(repository, day) for day in range(4)]
    packs = sorted(info.name for info in store.list("data/"))
    dry = forget(repository, keep_last=1, dry_run=True)
    assert len(dry.removed_ids) == 3
    assert len(repository.snapshots.ids()) == 4
    plan = forget(repository, keep_last=1)
    assert sorted(plan.removed_ids) == sorted(s.id for s in made[:3])
    assert repository.snapshots.ids() == [made[3].id]
    assert sorted(info.name for info in store.list("data/")) == packs
    assert list(store.list("locks/")) == []


def test_forget_removes_a_damaged_snapshot_by_id_and_refuses_while_locked() -> None:
    store = MemoryStore()
    repository = Repository.init(store, password="pw", kdf_params=FAST)
    good, bad = saved(repository, 0), saved(repository, 1)
    store.store(f"{SNAPSHOTS_PREFIX}{bad.id}", b"garbage")
    readable, unreadable = read_snapshots(repository)
    assert [s.id for s in readable] == [good.id]
    assert unreadable == [bad.id]
    with repository.lock(exclusive=False, holder="a running backup"), pytest.raises(LockError):
        forget(repository, ids=[bad.id[:8]])
    assert forget(repository, ids=[bad.id[:8]]).removed_ids == [bad.id]
    assert repository.snapshots.ids() == [good.id]


def test_restic_keep_rules_keep_the_newest_of_each_period_within_and_tagged() -> None:
    """Issue 14 item 6: --keep-hourly/daily/weekly/monthly/yearly/within/tag as restic has them."""
    from snapkeep.engine.maintenance.forget import KeepPolicy

    base = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
    times = {  # two on the newest day, one a day earlier, one a week earlier, one a month earlier
        "e5": base,
        "f6": base - dt.timedelta(hours=3),
        "a7": base - dt.timedelta(days=1),
        "b8": base - dt.timedelta(days=8),
        "c9": base - dt.timedelta(days=40),
    }
    snapshots = [
        Snapshot(
            id=ident * 32,
            time=moment,
            hostname="h",
            paths=["/x"],
            tree="00" * 32,
            tags=["monthly"] if ident == "c9" else [],
        )
        for ident, moment in times.items()
    ]
    daily = plan_forget(snapshots, policy=KeepPolicy(daily=2))
    assert {s.id[:2] for s in daily.keep} == {"e5", "a7"}, "the newest of each of the last 2 days"
    weekly = plan_forget(snapshots, policy=KeepPolicy(weekly=3))
    assert {s.id[:2] for s in weekly.keep} == {"e5", "b8", "c9"}
    within = plan_forget(snapshots, policy=KeepPolicy(within=dt.timedelta(days=2)))
    assert {s.id[:2] for s in within.keep} == {"e5", "f6", "a7"}
    tagged = plan_forget(snapshots, policy=KeepPolicy(last=1, tags=frozenset({"monthly"})))
    assert {s.id[:2] for s in tagged.keep} == {"e5", "c9"}
    assert tagged.reasons["f6" * 32] == "kept by no --keep rule"
    with pytest.raises(ValidationError, match="keep_daily: must be at least 1"):
        plan_forget(snapshots, policy=KeepPolicy(daily=0))
