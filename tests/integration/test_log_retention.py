"""Log retention (``jobs.logs.prune_logs``) on SQLite and PostgreSQL: logs that ended more than ``logs_ttl``
days ago lose their row, their items and their file; recent and still-running logs stay; 0 keeps all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snapkeep.jobs import logs, settings
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.logs import RunLog, log_path

DAY = 86400.0


def finished_log(catalog: Catalog, home: Path, name: str) -> str:
    run = RunLog.start(catalog, home, log_type=1, owner="root", name=name, job_id=None, group_id="0" * 24)
    run.info(f"{name}: first line")
    run.warning(f"{name}: second line")
    run.finish(100)
    return run.id


def running_log(catalog: Catalog, home: Path, name: str) -> str:
    run = RunLog.start(catalog, home, log_type=2, owner="root", name=name, job_id=None, group_id="1" * 24)
    run.info(f"{name}: still going")
    return run.id


def rows(catalog: Catalog) -> tuple[set[str], set[str]]:
    dump = catalog.dump()
    return {row["id"] for row in dump["logs"]}, {row["log_id"] for row in dump["log_items"]}


def prune(catalog: Catalog, home: Path) -> list[str]:
    with catalog.transaction() as tx:
        return logs.prune_logs(tx, home)


def set_ttl(catalog: Catalog, days: int) -> None:
    with catalog.transaction() as tx:
        settings.save_general(tx, {"logs_ttl": days})


def test_old_logs_go_recent_and_running_ones_stay(catalog: Catalog, tmp_path: Path) -> None:
    clock: Any = catalog.clock
    home = tmp_path / "home"
    old = [finished_log(catalog, home, "old-1"), finished_log(catalog, home, "old-2")]
    still_running = running_log(catalog, home, "long restore")
    clock.sleep(31 * DAY)  # past the default 30 days
    recent = finished_log(catalog, home, "recent")
    clock.sleep(5 * DAY)

    assert prune(catalog, home) == old
    kept, items = rows(catalog)
    assert kept == items == {recent, still_running}
    assert not any(log_path(home, ident).exists() for ident in old)
    assert log_path(home, recent).exists()
    assert log_path(home, still_running).exists()
    assert prune(catalog, home) == [], "a second pass finds nothing"

    set_ttl(catalog, 3)
    assert prune(catalog, home) == [recent]
    assert rows(catalog) == ({still_running}, {still_running})


def test_zero_keeps_every_log(catalog: Catalog, tmp_path: Path) -> None:
    clock: Any = catalog.clock
    home = tmp_path / "home"
    set_ttl(catalog, 0)
    kept = finished_log(catalog, home, "ancient")
    clock.sleep(3650 * DAY)
    assert prune(catalog, home) == []
    assert rows(catalog) == ({kept}, {kept})
    assert log_path(home, kept).exists()


def test_a_log_without_its_file_is_pruned_too(catalog: Catalog, tmp_path: Path) -> None:
    clock: Any = catalog.clock
    home = tmp_path / "home"
    set_ttl(catalog, 1)
    ident = finished_log(catalog, home, "lost file")
    log_path(home, ident).unlink()
    clock.sleep(2 * DAY)
    assert prune(catalog, home) == [ident]
    assert rows(catalog) == (set(), set())


def test_many_expired_logs_are_deleted_in_batches(catalog: Catalog, tmp_path: Path, monkeypatch: Any) -> None:
    clock: Any = catalog.clock
    home = tmp_path / "home"
    monkeypatch.setattr(logs, "BATCH", 2)
    expired = [finished_log(catalog, home, f"run {number}") for number in range(5)]
    clock.sleep(40 * DAY)
    assert prune(catalog, home) == expired
    assert rows(catalog) == (set(), set())
