"""The daily integrity check on a frozen clock: it fires once a day at the configured hour (in the
General time zone), a second pass that day does nothing, and turning it off stops it."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from snapkeep.daemon.scheduler import IntegrityScheduler, IntegrityThread
from snapkeep.jobs import integrity
from snapkeep.jobs.schedule import zone

UTC_ZONE = zone("UTC")


def recording(world) -> tuple[list[dt.datetime], Any]:
    fired: list[dt.datetime] = []

    def run(catalog, home, *, clock, scheduled, stop) -> integrity.IntegrityReport:
        assert scheduled
        assert not stop()
        fired.append(clock.now())
        return integrity.run_check(catalog, home, clock=clock, scheduled=scheduled, stop=stop)

    return fired, run


def test_the_daily_check_fires_once_a_day_at_its_hour(world) -> None:
    world.ok("manageSettingsIntegrity", {"hour": "4"})
    job = world.job("Checked", [])
    world.ok("runBackupJobManually", {"_id": job["_id"]})
    assert [status for _group, status in world.pool().run_pending()] == [100]
    fired, run = recording(world)
    scheduler = IntegrityScheduler(world.catalog, world.home, clock=world.clock, tz=UTC_ZONE, run=run)
    # START is 2026-03-02 00:30 UTC: yesterday's 04:00 slot has passed and nothing ever ran
    report = scheduler.tick()
    assert report is not None
    assert report.ok
    (result,) = report.repositories
    assert result.job_id == job["_id"]
    assert result.read == result.objects >= 1, "a small repository is read whole on the first run"
    assert fired == [dt.datetime(2026, 3, 2, 0, 30, tzinfo=dt.UTC)]
    assert scheduler.next_due == dt.datetime(2026, 3, 2, 4, 0, tzinfo=dt.UTC)
    assert scheduler.tick() is None, "not again before the next slot"
    while len(fired) < 4:
        assert scheduler.next_due is not None
        world.advance_to(scheduler.next_due)
        scheduler.tick()
        assert scheduler.tick() is None, "a second pass at the same moment does nothing"
    assert fired[1:] == [dt.datetime(2026, 3, day, 4, 0, tzinfo=dt.UTC) for day in (2, 3, 4)]
    with world.catalog.transaction(write=False) as tx:
        runs = integrity.latest_runs(tx, 10)
    assert len(runs) == 4
    assert all(item["scheduled"] == 1 for item in runs)


def test_the_hour_is_in_the_general_time_zone_and_off_means_never(world) -> None:
    world.ok("manageSettingsIntegrity", {"hour": "2"})
    world.advance_to(dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.UTC))  # 02:30 in Berlin (UTC+1)
    fired, run = recording(world)
    berlin = zone("Europe/Berlin")
    scheduler = IntegrityScheduler(world.catalog, world.home, clock=world.clock, tz=berlin, run=run)
    scheduler.tick()
    assert scheduler.next_due == dt.datetime(2026, 3, 3, 1, 0, tzinfo=dt.UTC)  # 02:00 Berlin
    world.advance_to(dt.datetime(2026, 3, 3, 0, 59, tzinfo=dt.UTC))
    scheduler.tick()
    assert len(fired) == 1
    world.ok("manageSettingsIntegrity", {"enabled": "0"})
    world.advance_to(dt.datetime(2026, 3, 5, 12, 0, tzinfo=dt.UTC))
    assert scheduler.tick() is None
    assert scheduler.next_due is None
    assert len(fired) == 1


def test_the_thread_runs_a_pass_and_stops(world) -> None:
    fired, run = recording(world)
    scheduler = IntegrityScheduler(world.catalog, world.home, clock=world.clock, tz=UTC_ZONE, run=run)
    thread = IntegrityThread(scheduler, poll_interval=0.05)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not fired and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        thread.stop(timeout=5.0)
    assert len(fired) == 1
