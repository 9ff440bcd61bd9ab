"""Worker pools with the real runner: one run per job at a time, stop requests from the API reach the
run, a runner bug still ends the group, and the pool honours its limit."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

from tests.unit.daemon.test_queue_claims import enqueue, insert_group

from snapkeep.jobs import queue
from snapkeep.jobs.codes import QueueStatus
from snapkeep.jobs.runs import execute_group

WAIT = 60.0


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class Recorder:
    """Wraps the runner; records when each group ran, holding each run open for ``hold`` seconds.

    ``together``: the first that many runs each wait until all of them are running at once (a
    barrier; if the pool does not run them side by side, the barrier breaks and those runs fail).
    ``ready``: each run first waits until the condition this makes for it holds (a number of pool
    rounds, so a negative check gets its chances to fail before the run ends).
    """

    def __init__(
        self,
        hold: float = 0.3,
        *,
        together: int = 0,
        ready: Callable[[], Callable[[], bool]] | None = None,
    ) -> None:
        self.hold = hold
        self.intervals: list[tuple[str, str, float, float]] = []
        self.lock = threading.Lock()
        self.peak = 0
        self.active = 0
        self.started = 0
        self.barrier = threading.Barrier(together) if together else None
        self.ready = ready

    def __call__(self, catalog, home, group_id, *, stop, clock) -> int:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            number = self.started
            self.started += 1
        began = time.monotonic()
        try:
            if self.barrier is not None and number < self.barrier.parties:
                self.barrier.wait(WAIT)
            if self.ready is not None:
                wait_for(self.ready(), "the run's condition")
            stop.wait(self.hold)
            with catalog.transaction(write=False) as tx:
                job_id = queue.get_group(tx, group_id)["data"]["_id"]
            status = execute_group(catalog, home, group_id, stop=stop, clock=clock)
        finally:
            with self.lock:
                self.active -= 1
        with self.lock:
            self.intervals.append((job_id, group_id, began, time.monotonic()))
        return status


class Rounds:
    """Counts the dispatcher's rounds of a pool through its ``limit`` call (made every round, also
    when the pool is full)."""

    def __init__(self, pool) -> None:
        self.count = 0
        original = pool.limit

        def counted() -> int:
            self.count += 1  # only the dispatcher thread calls it
            return original()

        pool.limit = counted

    def more(self, rounds: int) -> Callable[[], bool]:
        """A condition: ``rounds`` more rounds than now have been made."""
        target = self.count + rounds
        return lambda: self.count >= target


def test_the_pool_never_runs_one_job_twice_at_once(world) -> None:
    jobs = [world.job(f"Job {index}", []) for index in range(3)]
    groups = [enqueue(world, job)["_id"] for job in jobs]
    # two more groups of the first job, as another node could have queued them
    groups += [insert_group(world, jobs[0]["_id"], status=QueueStatus.PENDING) for _ in range(2)]
    recorder = Recorder(together=3)  # the first group of each job: they must run side by side
    pool = world.pool(limit=4, executor=recorder)
    pool.start()
    try:
        wait_for(lambda: len(recorder.intervals) == len(groups), "every group to run")
    finally:
        assert pool.stop(WAIT) == []
    assert sorted(group_id for _, group_id, _, _ in recorder.intervals) == sorted(groups)
    for job in jobs:
        spans = sorted((start, end) for job_id, _, start, end in recorder.intervals if job_id == job["_id"])
        assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans)), spans
    assert recorder.peak == 3, "different jobs run side by side, but never one job twice"
    assert {group.status for group in world.groups()} == {100}


def test_the_pool_respects_its_limit(world) -> None:
    groups = [enqueue(world, world.job(f"Job {index}", []))["_id"] for index in range(4)]
    pool = world.pool(limit=1)
    rounds = Rounds(pool)
    # every run lasts three more dispatcher rounds: three chances to start a second run beside it
    recorder = Recorder(hold=0, ready=lambda: rounds.more(3))
    pool.executor = recorder
    pool.start()
    try:
        wait_for(lambda: len(recorder.intervals) == len(groups), "every group to run")
    finally:
        pool.stop(WAIT)
    assert recorder.peak == 1
    assert {group.status for group in world.groups()} == {100}


def test_stop_queue_group_reaches_the_running_run(world) -> None:
    job = world.job("Long", [])
    group_id = world.ok("runBackupJobManually", {"_id": job["_id"]}) and world.groups(job["_id"])[0].id
    recorder = Recorder(hold=WAIT)  # the run waits for its stop event before it starts
    pool = world.pool(executor=recorder)
    pool.start()
    try:
        wait_for(lambda: group_id in pool.running(), "the run to start")
        world.ok("stopQueueGroup", {"_id": group_id})
        wait_for(lambda: recorder.intervals, "the run to stop")
    finally:
        pool.stop(WAIT)
    assert recorder.intervals[0][3] - recorder.intervals[0][2] < WAIT / 2
    assert world.groups(job["_id"])[0].status == 103
    assert world.backups(job["_id"]) == [], "no backup is committed for a stopped run"
    assert not world.job_row(job["_id"]).running


def test_shutdown_stops_running_groups(world) -> None:
    job = world.job("Long", [])
    group_id = enqueue(world, job)["_id"]
    recorder = Recorder(hold=WAIT)
    pool = world.pool(executor=recorder)
    pool.start()
    wait_for(lambda: group_id in pool.running(), "the run to start")
    assert pool.stop(WAIT) == []
    assert world.groups(job["_id"])[0].status == 103


def test_a_runner_bug_still_ends_the_group(world) -> None:
    job = world.job("Buggy", [])
    group_id = enqueue(world, job)["_id"]

    def broken(catalog, home, group_id, *, stop, clock) -> int:
        raise RuntimeError("boom")

    pool = world.pool(executor=broken)
    assert pool.run_pending() == [(group_id, 102)]
    row = world.groups(job["_id"])[0]
    assert row.status == 102
    assert "RuntimeError: boom" in row.document["error"]
    assert not world.job_row(job["_id"]).running
