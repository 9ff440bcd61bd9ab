"""The queue's worker side on SQLite and PostgreSQL: exclusive claims, stop requests, crash recovery
and releasing the repository locks of dead processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading

import pytest

from snapkeep.errors import ConflictError
from snapkeep.ids import new_id
from snapkeep.jobs import queue
from snapkeep.jobs.codes import RESTORE_TYPES, QueueStatus, QueueType
from snapkeep.jobs.migrations import schema
from snapkeep.storage.memory import MemoryStore


def dead_pid() -> int:
    """The ID of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def enqueue(world, job) -> dict:
    with world.catalog.transaction() as tx:
        return queue.enqueue_backup(tx, tx.require("jobs", job["_id"], "Backup Job"), owner="root")


def insert_group(world, job_id: str, *, status: int, group_type: int = 1, document=None) -> str:
    ident = new_id(world.clock)
    with world.catalog.transaction() as tx:
        tx.connection.execute(
            schema.queue_groups.insert().values(
                id=ident,
                type=group_type,
                status=status,
                job_id=job_id,
                owner="root",
                created=world.clock.now(),
                document={"data": {"_id": job_id}, **(document or {})},
            )
        )
    return ident


def status_of(world, group_id: str) -> int:
    return next(group.status for group in world.groups() if group.id == group_id)


def test_claims_are_exclusive_under_concurrency(world) -> None:
    jobs = [world.job(f"Job {index}", []) for index in range(12)]
    expected = {enqueue(world, job)["_id"] for job in jobs}
    claimed: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def claimer() -> None:
        start.wait()
        while True:
            with world.catalog.transaction() as tx:
                group = queue.claim_next(tx, (QueueType.BACKUP,))
            if group is None:
                return
            with lock:
                claimed.append(group["_id"])

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(claimed) == sorted(expected), "every group claimed exactly once"
    groups = world.groups()
    assert {group.status for group in groups} == {QueueStatus.PROCESSING}
    assert all(group.document["worker"]["pid"] == os.getpid() for group in groups)
    assert all(group.started == world.clock.now() for group in groups)


def test_claims_take_the_oldest_of_the_right_type_and_never_a_busy_job(world) -> None:
    first, second = world.job("First", []), world.job("Second", [])
    restore = insert_group(world, first["_id"], status=QueueStatus.PENDING, group_type=2)
    world.clock.advance(1)
    one = enqueue(world, first)["_id"]
    world.clock.advance(1)
    two = enqueue(world, second)["_id"]
    # a second group of the first job, queued by another node while the first one waits
    world.clock.advance(1)
    again = insert_group(world, first["_id"], status=QueueStatus.PENDING)
    with world.catalog.transaction() as tx:
        assert queue.claim_next(tx, (QueueType.BACKUP,))["_id"] == one
    with world.catalog.transaction() as tx:
        assert queue.claim_next(tx, (QueueType.BACKUP,))["_id"] == two, "not the busy job's second group"
    with world.catalog.transaction() as tx:
        assert queue.claim_next(tx, (QueueType.BACKUP,)) is None
        assert queue.claim_next(tx, RESTORE_TYPES)["_id"] == restore
    with world.catalog.transaction() as tx:
        assert queue.claim_next(tx, (QueueType.BACKUP,), skip_jobs={first["_id"]}) is None
    assert status_of(world, again) == QueueStatus.PENDING


def test_stop_requests(world) -> None:
    waiting, running = world.job("Waiting", []), world.job("Running", [])
    pending_group = enqueue(world, waiting)["_id"]
    running_group = insert_group(world, running["_id"], status=QueueStatus.PROCESSING)
    with world.catalog.transaction() as tx:
        assert queue.request_stop(tx, pending_group)["status"] == 103
        assert queue.request_stop(tx, running_group)["status"] == QueueStatus.PROCESSING
        assert queue.stop_requested(tx, [pending_group, running_group]) == {running_group}
        assert queue.stop_requested(tx, []) == set()
    assert not world.job_row(waiting["_id"]).running, "an aborted pending run frees its job"
    with world.catalog.transaction() as tx, pytest.raises(ConflictError, match="already finished"):
        queue.request_stop(tx, pending_group)


def test_recovery_marks_dead_runs_never_finished_and_leaves_live_ones(world) -> None:
    host = socket.gethostname()
    crashed, elsewhere, alive, stale_flag = (world.job(name, []) for name in ("A", "B", "C", "D"))
    for job in (crashed, elsewhere, alive, stale_flag):
        with world.catalog.transaction() as tx:
            tx.set_job_running(job["_id"], True)
    dead = insert_group(
        world,
        crashed["_id"],
        status=QueueStatus.PROCESSING,
        document={"worker": {"host": host, "pid": dead_pid()}},
    )
    other = insert_group(
        world,
        elsewhere["_id"],
        status=QueueStatus.PROCESSING,
        document={"worker": {"host": "web2", "pid": 1}},
    )
    live = insert_group(
        world,
        alive["_id"],
        status=QueueStatus.PROCESSING,
        document={"worker": {"host": host, "pid": os.getppid()}},
    )
    log_id = new_id(world.clock)
    with world.catalog.transaction() as tx:
        tx.connection.execute(
            schema.logs.insert().values(
                id=log_id,
                type=1,
                status=6,
                job_id=crashed["_id"],
                queue_group_id=dead,
                owner="root",
                created=world.clock.now(),
                document={},
            )
        )
        marked = queue.mark_never_finished(tx)
    assert [group["_id"] for group in marked] == [dead]
    assert marked[0]["status"] == 104
    assert marked[0]["ended"] is not None
    assert [status_of(world, ident) for ident in (dead, other, live)] == [104, 2, 2]
    assert not world.job_row(crashed["_id"]).running
    assert world.job_row(elsewhere["_id"]).running
    assert world.job_row(alive["_id"]).running
    assert not world.job_row(stale_flag["_id"]).running, "a flag without a group is cleared"
    with world.catalog.transaction(write=False) as tx:
        assert tx.connection.execute(schema.logs.select()).one().status == 5


def lock_document(host: str, pid: int, heartbeat: float) -> bytes:
    document = {
        "holder": "snapkeep backup",
        "pid": pid,
        "host": host,
        "exclusive": False,
        "created": heartbeat,
        "heartbeat": heartbeat,
        "timeout": 1800.0,
    }
    return json.dumps(document).encode()


def test_release_dead_locks_removes_only_stale_ones() -> None:
    store = MemoryStore("locks-test")
    host, now = socket.gethostname(), 1_000_000.0
    store.store("locks/dead", lock_document(host, dead_pid(), now))
    store.store("locks/ours", lock_document(host, os.getpid(), now))
    store.store("locks/elsewhere", lock_document("web2", 4242, now))
    store.store("locks/expired", lock_document("web2", 4242, now - 4000))
    removed = queue.release_dead_locks(store, now=now)
    assert sorted(removed) == ["locks/dead", "locks/expired"]
    assert sorted(entry.name for entry in store.list("locks/")) == ["locks/elsewhere", "locks/ours"]
