"""The service with its threads, the real catalog (SQLite and PostgreSQL) and the real runner: manual
runs are carried out, a crash is recovered on start (Never Finished, locks released), schedules missed
while the service was down run once, and the job monitor raises its alerts."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Callable

import pytest
from tests.unit.daemon.conftest import START, World
from tests.unit.daemon.test_queue_claims import dead_pid, insert_group

from snapkeep.clock import FrozenClock
from snapkeep.daemon.service import Service, fork_setting
from snapkeep.jobs.codes import QueueStatus
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.schedule import zone
from snapkeep.storage.local import LocalStore

WAIT = 60.0


@pytest.fixture
def world(catalog, tmp_path) -> World:
    clock = FrozenClock(START)
    catalog.clock = clock
    return World(catalog, clock, tmp_path)


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Rounds:
    """Counts the finished calls of one object's method (a spy: the original still runs)."""

    def __init__(self, owner: object, name: str) -> None:
        self.count = 0
        self._lock = threading.Lock()
        original = getattr(owner, name)

        def counted(*args, **kwargs):
            try:
                return original(*args, **kwargs)
            finally:
                with self._lock:
                    self.count += 1

        setattr(owner, name, counted)

    def more(self, rounds: int) -> Callable[[], bool]:
        """A condition: ``rounds`` more calls than now have finished."""
        target = self.count + rounds
        return lambda: self.count >= target


def service(world: World, **options) -> Service:
    return Service(
        world.catalog,
        world.home,
        clock=world.clock,
        tz=zone("UTC"),
        poll_interval=0.1,
        schedule_interval=0.2,
        **options,
    )


def statuses(world: World, job_id: str) -> list[int]:
    return [group.status for group in world.groups(job_id)]


def test_manual_runs_are_carried_out_and_stop_is_clean(world) -> None:
    job = world.job("Sites", [])
    running = service(world)
    running.start()
    try:
        world.ok("runBackupJobManually", {"_id": job["_id"]})
        wait_for(lambda: statuses(world, job["_id"]) == [100], "the manual run")
        world.clock.advance(60)
        world.ok("runBackupJobManually", {"_id": job["_id"]})
        wait_for(lambda: statuses(world, job["_id"]) == [100, 100], "the second run")
    finally:
        assert running.stop(WAIT) == []
    assert len(world.backups(job["_id"])) == 2
    assert not world.job_row(job["_id"]).running


def test_a_crash_is_recovered_on_start(world) -> None:
    job = world.job("Sites", [])
    service(world).backups.run_pending()  # nothing queued yet: a no-op
    world.ok("runBackupJobManually", {"_id": job["_id"]})
    assert [status for _, status in service(world).backups.run_pending()] == [100]

    # a run that a killed service left behind: Processing, the job flagged, a lock in its repository
    pid = dead_pid()
    world.clock.advance(60)
    with world.catalog.transaction() as tx:
        tx.set_job_running(job["_id"], True)
    crashed = insert_group(
        world,
        job["_id"],
        status=QueueStatus.PROCESSING,
        document={"worker": {"host": socket.gethostname(), "pid": pid}},
    )
    repository = LocalStore(world.root / "backups" / job["_id"], create=False)
    lock = {
        "holder": "snapkeep backup",
        "pid": pid,
        "host": socket.gethostname(),
        "exclusive": False,
        "created": world.clock.time(),
        "heartbeat": world.clock.time(),
        "timeout": 1800.0,
    }
    repository.store("locks/0123456789abcdef", json.dumps(lock).encode())

    restarted = service(world)
    restarted.start()
    try:
        assert [group["_id"] for group in restarted.recovered] == [crashed]
        assert statuses(world, job["_id"]) == [100, 104]
        never = [alert for alert in world.ok("listAlerts", {})["alerts"] if crashed in alert["message"]]
        assert [alert["level"] for alert in never] == [3], "a Never Finished run raises a critical alert"
        # the dead run's lock is gone (the integrity check the restarted service may start at once
        # takes a lock of its own while it reads: not the one this test planted)
        assert "locks/0123456789abcdef" not in [info.name for info in repository.list("locks/")]
        world.clock.advance(60)
        world.ok("runBackupJobManually", {"_id": job["_id"]})
        wait_for(lambda: statuses(world, job["_id"]) == [100, 104, 100], "the next run")
    finally:
        assert restarted.stop(WAIT) == []


def test_a_schedule_missed_while_down_runs_once_on_start(world) -> None:
    daily = world.schedule("Daily", 2, [1, 2, 3, 4, 5, 6, 7])
    job = world.job("Sites", [(daily, 3)], time=200)
    # the service last looked on day one; it comes back three days later
    with world.catalog.transaction() as tx:
        tx.set_job_times(job["_id"], next_run=dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC))
    world.advance_to(dt.datetime(2026, 3, 5, 12, 0, tzinfo=dt.UTC))
    running = service(world)
    ticks = Rounds(running.scheduler, "tick")  # every scheduler pass after the catch-up
    claims = Rounds(running.backups, "claim")  # every backup pool round with a free slot
    running.start()
    try:
        wait_for(lambda: statuses(world, job["_id"]) == [100], "the catch-up run")
        more_ticks, more_claims = ticks.more(3), claims.more(3)
        wait_for(lambda: more_ticks() and more_claims(), "three more scheduler and pool rounds")
        assert statuses(world, job["_id"]) == [100], "those rounds queue nothing more"
        assert world.groups(job["_id"])[0].document["schedules"] == [daily["_id"]]
        assert world.job_row(job["_id"]).next_run == dt.datetime(2026, 3, 6, 2, 0, tzinfo=dt.UTC)

        world.advance_to(dt.datetime(2026, 3, 6, 2, 0, tzinfo=dt.UTC))
        running.scheduler_thread.wake()
        wait_for(lambda: statuses(world, job["_id"]) == [100, 100], "the next daily run")
    finally:
        assert running.stop(WAIT) == []


def test_the_monitor_pass_raises_alerts(world) -> None:
    world.job("Never ran", [], monitor={"notran": 1})
    running = service(world, monitor_interval=3600)
    assert running.monitor_pass() == 0
    world.clock.advance(2 * 86400)
    assert running.monitor_pass() == 1
    assert running.monitor_pass() == 0, "once per incident"
    with world.catalog.transaction(write=False) as tx:
        assert len(list(tx.connection.execute(schema.alerts.select()))) == 1


def test_fork_settings(world) -> None:
    assert fork_setting(world.catalog, "backup_forks") == 2
    world.ok("manageSettingsPerformance", {"backup_forks": 4, "queueable_forks": 1})
    assert fork_setting(world.catalog, "backup_forks") == 4
    assert fork_setting(world.catalog, "queueable_forks") == 1
    running = service(world)
    assert running.backups.limit() == 4
    assert running.restores.limit() == 1
    assert service(world, backup_forks=3).backups.limit() == 3
