"""The run queue: queue groups (one per requested run) and their items (API.md section 6).

A manual run is a queue group of type 1 (Backup), status 1 (Pending), ``data._id`` = the job; the job's
``running`` flag is set in the same transaction, atomically, so a job is never queued twice. The
daemon's workers claim pending groups (``claim_next``, one conditional UPDATE) and the runner moves
them through the statuses below. ``request_stop`` is how the API asks a running group to stop: it
marks the group in the catalog and the worker running it, which polls, sets the run's stop event
(docs/daemon.md). ``mark_never_finished`` and ``release_dead_locks`` recover after a crash.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import and_, exists, select, update

from snapkeep.clock import isoformat
from snapkeep.engine.repository.locks import is_stale, list_locks
from snapkeep.errors import ConflictError, NotFoundError
from snapkeep.ids import new_id
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.migrations import schema
from snapkeep.storage.base import Store

QUEUE_TYPES = {1: "Backup", 2: "Restore", 4: "Download", 8: "Reindex"}
BACKUP = 1

QUEUE_STATUSES = {
    1: "Pending",
    2: "Processing",
    100: "Completed",
    101: "Partially Completed",
    102: "Failed",
    103: "Aborted",
    104: "Never Finished",
}
PENDING = 1
PROCESSING = 2
FINISHED = frozenset({100, 101, 102, 103, 104})


def empty_progress() -> dict[str, int]:
    """Progress of a group nothing has happened to yet."""
    return {
        "total": 0,
        "completed": 0,
        "total_files": 0,
        "completed_files": 0,
        "total_bytes": 0,
        "completed_bytes": 0,
        "percentage": 0,
    }


def enqueue_backup(
    tx: Transaction, job: dict[str, Any], *, owner: str, schedules: Sequence[str] = ()
) -> dict[str, Any]:
    """Queue a run of ``job`` and mark it running; return the new queue group.

    A manual run has no ``schedules``; the scheduler passes the IDs of the schedules that made the run
    due, kept in the group's document (``schedules``, ``manual``) so retention can count runs per
    schedule. Raises ConflictError when the job is already queued or running, NotFoundError when it
    is gone.
    """
    job_id = job["_id"]
    if not tx.set_job_running(job_id, True):
        if tx.get("jobs", job_id) is None:
            raise NotFoundError(kind="Backup Job", ident=job_id)
        raise ConflictError(f"Backup Job {job['name']!r} ({job_id}) is already running")
    group_id = new_id(tx.clock)
    document = {
        "data": {"_id": job_id, "name": job["name"]},
        "progress": empty_progress(),
        "manual": not schedules,
        "schedules": list(schedules),
    }
    tx.connection.execute(
        schema.queue_groups.insert().values(
            id=group_id,
            type=BACKUP,
            status=PENDING,
            job_id=job_id,
            owner=owner,
            created=tx.clock.now(),
            document=document,
        )
    )
    return get_group(tx, group_id)


def _group(row: Any) -> dict[str, Any]:
    document = dict(row.document)
    return {
        "_id": row.id,
        "type": row.type,
        "type_name": QUEUE_TYPES.get(row.type, str(row.type)),
        "status": row.status,
        "status_name": QUEUE_STATUSES.get(row.status, str(row.status)),
        "data": document.get("data", {}),
        "owner": row.owner,
        "created": isoformat(row.created),
        "started": isoformat(row.started),
        "ended": isoformat(row.ended),
        "progress": document.get("progress", empty_progress()),
    }


def get_group(tx: Transaction, group_id: str) -> dict[str, Any]:
    """The queue group ``group_id``. Raises NotFoundError."""
    row = tx.connection.execute(
        select(schema.queue_groups).where(schema.queue_groups.c.id == group_id)
    ).first()
    if row is None:
        raise NotFoundError(kind="Queue Group", ident=group_id)
    return _group(row)


def list_groups(tx: Transaction, *, group_type: int | None = None) -> list[dict[str, Any]]:
    """Every queue group (newest first), optionally of one type."""
    table = schema.queue_groups
    query = select(table).order_by(table.c.created.desc(), table.c.id.desc())
    if group_type is not None:
        query = query.where(table.c.type == group_type)
    return [_group(row) for row in tx.connection.execute(query)]


def job_has_active_group(tx: Transaction, job_id: str) -> bool:
    """Whether a queue group of ``job_id`` is pending or processing."""
    table = schema.queue_groups
    query = select(table.c.id).where(table.c.job_id == job_id, table.c.status.in_((PENDING, PROCESSING)))
    return tx.connection.execute(query).first() is not None


# --- workers: claiming, stopping, recovery (used by the daemon) -----------------------------------

NEVER_FINISHED = 104
ABORTED = 103
LOG_PROCESSING, LOG_NEVER_FINISHED = 6, 5
RESTORE_TYPES = (2, 4)


def worker_identity() -> dict[str, Any]:
    """Who claims a group: this host's name and process ID (recorded in the group's document)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _pending_candidates(tx: Transaction, types: Collection[int], limit: int) -> list[Any]:
    table = schema.queue_groups
    query = (
        select(table.c.id, table.c.type, table.c.job_id)
        .where(table.c.status == PENDING, table.c.type.in_(list(types)))
        .order_by(table.c.created, table.c.id)
        .limit(limit)
    )
    return list(tx.connection.execute(query))


def claim_next(
    tx: Transaction,
    types: Collection[int],
    *,
    worker: dict[str, Any] | None = None,
    skip_jobs: Collection[str] = (),
) -> dict[str, Any] | None:
    """Claim the oldest pending group of one of ``types``: Pending → Processing; None when there is none.

    The claim is one conditional UPDATE (``WHERE status = 1``), so of several claimers racing for a
    group, on SQLite or PostgreSQL, exactly one wins; the others move on to the next candidate. A
    Backup group is not claimed while another group of its job is Processing, nor when its job is in
    ``skip_jobs`` (the caller's own running jobs). The claimer (``worker``, default this process) is
    recorded in the group's document for crash recovery.
    """
    table = schema.queue_groups
    other = table.alias("other")
    busy = exists().where(
        other.c.job_id == table.c.job_id, other.c.status == PROCESSING, other.c.id != table.c.id
    )
    for candidate in _pending_candidates(tx, types, limit=50):
        if candidate.type == BACKUP and candidate.job_id in skip_jobs:
            continue
        condition = and_(table.c.id == candidate.id, table.c.status == PENDING)
        if candidate.type == BACKUP:
            condition = and_(condition, ~busy)
        result = tx.connection.execute(
            update(table).where(condition).values(status=PROCESSING, started=tx.clock.now())
        )
        if result.rowcount != 1:
            continue
        _update_document(tx, candidate.id, worker=worker or worker_identity())
        return get_group(tx, candidate.id)
    return None


def _update_document(tx: Transaction, group_id: str, **changes: Any) -> None:
    table = schema.queue_groups
    row = tx.connection.execute(select(table.c.document).where(table.c.id == group_id)).first()
    if row is None:
        raise NotFoundError(kind="Queue Group", ident=group_id)
    document = dict(row.document or {})
    document.update(changes)
    tx.connection.execute(update(table).where(table.c.id == group_id).values(document=document))


def request_stop(tx: Transaction, group_id: str) -> dict[str, Any]:
    """Ask for a group to stop; return it.

    A Pending group is Aborted (103) at once and its job's ``running`` flag cleared. A Processing
    group gets ``stop_requested`` in its document: the daemon's worker that runs it polls for that
    and sets the run's stop event, and the runner ends the run without committing a snapshot.
    Raises NotFoundError for an unknown group, ConflictError for one that already finished.
    """
    table = schema.queue_groups
    row = tx.connection.execute(select(table).where(table.c.id == group_id).with_for_update()).first()
    if row is None:
        raise NotFoundError(kind="Queue Group", ident=group_id)
    if row.status in FINISHED:
        name = QUEUE_STATUSES.get(row.status, str(row.status))
        raise ConflictError(f"Queue Group {group_id} has already finished ({name})")
    if row.status == PENDING:
        aborted = tx.connection.execute(
            update(table)
            .where(table.c.id == group_id, table.c.status == PENDING)
            .values(status=ABORTED, ended=tx.clock.now())
        )
        if aborted.rowcount == 1:
            if row.type == BACKUP and row.job_id:
                tx.set_job_running(row.job_id, False)
            return get_group(tx, group_id)
    _update_document(tx, group_id, stop_requested=True)
    return get_group(tx, group_id)


def stop_requested(tx: Transaction, group_ids: Collection[str]) -> set[str]:
    """Which of ``group_ids`` (Processing groups) have been asked to stop."""
    if not group_ids:
        return set()
    table = schema.queue_groups
    query = select(table.c.id, table.c.document).where(table.c.id.in_(list(group_ids)))
    return {row.id for row in tx.connection.execute(query) if (row.document or {}).get("stop_requested")}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def _orphaned(document: dict[str, Any], host: str) -> bool:
    worker = document.get("worker")
    if not isinstance(worker, dict):
        return True
    if worker.get("host") != host:
        return False
    pid = worker.get("pid")
    return not isinstance(pid, int) or pid == os.getpid() or not _process_alive(pid)


def mark_never_finished(tx: Transaction, *, host: str | None = None) -> list[dict[str, Any]]:
    """Recover from a crash: groups left Processing by a dead process of ``host`` become 104 Never
    Finished; return them (as they were, with ``status`` updated).

    Groups claimed on another host, or by a live process, are left alone (a shared PostgreSQL
    catalog). Their Backup jobs' ``running`` flags are cleared, their Processing logs become 5 Never
    Finished and their unfinished items 104. Jobs whose ``running`` flag is set without any pending
    or processing group (a crash between two writes) are cleared too.
    """
    host = host or worker_identity()["host"]
    table = schema.queue_groups
    now = tx.clock.now()
    marked: list[dict[str, Any]] = []
    for row in tx.connection.execute(select(table).where(table.c.status == PROCESSING)).all():
        if not _orphaned(dict(row.document or {}), host):
            continue
        done = tx.connection.execute(
            update(table)
            .where(table.c.id == row.id, table.c.status == PROCESSING)
            .values(status=NEVER_FINISHED, ended=now)
        )
        if done.rowcount != 1:
            continue
        if row.type == BACKUP and row.job_id:
            tx.set_job_running(row.job_id, False)
        logs, items = schema.logs, schema.queue_items
        tx.connection.execute(
            update(logs)
            .where(logs.c.queue_group_id == row.id, logs.c.status == LOG_PROCESSING)
            .values(status=LOG_NEVER_FINISHED, ended=now)
        )
        tx.connection.execute(
            update(items)
            .where(items.c.group_id == row.id, items.c.status.in_((PENDING, PROCESSING)))
            .values(status=NEVER_FINISHED, ended=now)
        )
        marked.append(get_group(tx, row.id))
    jobs = schema.jobs
    active = exists().where(
        table.c.job_id == jobs.c.id, table.c.type == BACKUP, table.c.status.in_((PENDING, PROCESSING))
    )
    tx.connection.execute(update(jobs).where(jobs.c.running == 1, ~active).values(running=0))
    return marked


def release_dead_locks(store: Store, *, now: float, hostname: str | None = None) -> list[str]:
    """Delete the repository locks in ``store`` that the engine's rule calls stale: taken on this
    host by a process that no longer exists, or with a heartbeat older than their timeout. Returns
    the names removed. Raises LockError for an unreadable lock, StorageError from the store.
    """
    removed = []
    for name, info in list_locks(store).items():
        if is_stale(info, now, hostname=hostname):
            store.delete(name, missing_ok=True)
            removed.append(name)
    return removed


def end_unfinished(tx: Transaction, group_id: str, status: int, *, reason: str) -> bool:
    """End a group the runner left Pending or Processing (it raised) with ``status``, clearing its
    job's ``running`` flag; ``reason`` is kept in its document. False when it had already ended."""
    table = schema.queue_groups
    row = tx.connection.execute(select(table).where(table.c.id == group_id)).first()
    if row is None or row.status in FINISHED:
        return False
    tx.connection.execute(
        update(table)
        .where(table.c.id == group_id, table.c.status.in_((PENDING, PROCESSING)))
        .values(status=status, ended=tx.clock.now())
    )
    _update_document(tx, group_id, error=reason)
    if row.type == BACKUP and row.job_id:
        tx.set_job_running(row.job_id, False)
    return True
