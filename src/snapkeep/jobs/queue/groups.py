"""Queue groups and items in the catalog: enqueue, read, claim, stop and rerun (API.md section 6).

Every write to ``queue_groups`` and ``queue_items`` is in this package (``groups``, ``running`` and
``recovery``); the API, the daemon, the CLI and the runs call these functions and never touch the
tables. A group's status only moves forward: Pending → Processing → one of the finished statuses
(``codes.FINISHED``), each step a conditional UPDATE, so of several claimers or stoppers racing on
SQLite or PostgreSQL exactly one wins.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, exists, select, update

from snapkeep.clock import isoformat
from snapkeep.errors import ConflictError, NotFoundError
from snapkeep.ids import new_id
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.codes import ACTIVE, FINISHED, RERUNNABLE, ItemStatus, QueueStatus, QueueType
from snapkeep.jobs.migrations import schema

Group = dict[str, Any]


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


# --- enqueue --------------------------------------------------------------------------------------


def _insert(
    tx: Transaction,
    group_type: QueueType,
    *,
    job_id: str | None,
    owner: str,
    document: dict[str, Any],
    node: str | None = None,
) -> Group:
    if not node and tx.home is not None:
        # a group always has a node (only its node's pools claim it): by default the node of the
        # data directory queueing it (issue 16; a local import, jobs.nodes uses this package)
        from snapkeep.jobs.nodes import local_id

        node = local_id(tx.home)
    group_id = new_id(tx.clock)
    tx.connection.execute(
        schema.queue_groups.insert().values(
            id=group_id,
            type=int(group_type),
            status=int(QueueStatus.PENDING),
            job_id=job_id,
            owner=owner,
            node=node or None,
            created=tx.clock.now(),
            document={**document, "progress": empty_progress()},
        )
    )
    return get_group(tx, group_id)


def enqueue_backup(
    tx: Transaction,
    job: Mapping[str, Any],
    *,
    owner: str,
    schedules: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> Group:
    """Queue a run of ``job`` and mark it running; return the new queue group.

    A manual run has no ``schedules``; the scheduler passes the IDs of the schedules that made the run
    due, kept in the group's document (``schedules``, ``manual``) so retention can count runs per
    schedule. ``extra`` is merged into the document (a rerun's ``destinations`` and ``rerun_of``).
    The job's ``running`` flag is set in the same transaction, atomically, so a job is never queued
    twice: raises ConflictError when it is already queued or running, NotFoundError when it is gone.
    The group belongs to the job's node (only that node's workers claim it).
    """
    job_id = str(job["_id"])
    if not tx.set_job_running(job_id, True):
        if tx.get("jobs", job_id) is None:
            raise NotFoundError(kind="Backup Job", ident=job_id)
        raise ConflictError(f"Backup Job {job['name']!r} ({job_id}) is already running")
    document = {
        "data": {"_id": job_id, "name": job["name"]},
        "manual": not schedules,
        "schedules": list(schedules),
        **(extra or {}),
    }
    node = str(job.get("node") or "") or None
    return _insert(tx, QueueType.BACKUP, job_id=job_id, owner=owner, document=document, node=node)


def enqueue_restore(
    tx: Transaction,
    group_type: QueueType,
    *,
    owner: str,
    document: Mapping[str, Any],
    node: str | None = None,
) -> Group:
    """Queue a restore or download group with ``document`` (its ``data``, ``backups``, ``options``:
    ``jobs.restores.enqueue`` builds and checks them) for the workers of ``node``; return it."""
    if group_type not in (QueueType.RESTORE, QueueType.DOWNLOAD):
        raise ValueError(f"not a restore queue type: {group_type}")
    return _insert(tx, group_type, job_id=None, owner=owner, document=dict(document), node=node)


def enqueue_reindex(
    tx: Transaction, destination: Mapping[str, Any], *, owner: str, node: str | None = None
) -> Group:
    """Queue a reindex of ``destination`` (``jobs.reindex.enqueue`` checks it); return the group.
    Raises ConflictError while a reindex of the same destination is Pending or Processing."""
    ident = str(destination["_id"])
    table = schema.queue_groups
    active = tx.connection.execute(
        select(table.c.id, table.c.document).where(
            table.c.type == int(QueueType.REINDEX), table.c.status.in_([int(status) for status in ACTIVE])
        )
    ).all()
    for row in active:
        if dict(row.document or {}).get("data", {}).get("_id") == ident:
            raise ConflictError(f"Destination {ident} is already being reindexed (queue group {row.id})")
    document = {"data": {"_id": ident, "name": str(destination.get("name", ""))}}
    # a Local destination is read on its own node (issue 16); a shared one by the queueing node
    node = node or str(destination.get("node") or "") or None
    return _insert(tx, QueueType.REINDEX, job_id=None, owner=owner, document=document, node=node)


# --- read -------------------------------------------------------------------------------------------


def _present(row: Any) -> Group:
    document = dict(row.document)
    return {
        "_id": row.id,
        "type": row.type,
        "type_name": QueueType.label_of(row.type),
        "status": row.status,
        "status_name": QueueStatus.label_of(row.status),
        "data": document.get("data", {}),
        "job_id": row.job_id,
        "log_id": document.get("data", {}).get("log_id"),
        "owner": row.owner,
        "node": row.node or "",
        "created": isoformat(row.created),
        "started": isoformat(row.started),
        "ended": isoformat(row.ended),
        "progress": document.get("progress", empty_progress()),
    }


def _row(tx: Transaction, group_id: str, *, lock: bool = False) -> Any:
    table = schema.queue_groups
    query = select(table).where(table.c.id == group_id)
    row = tx.connection.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFoundError(kind="Queue Group", ident=group_id)
    return row


def get_group(tx: Transaction, group_id: str) -> Group:
    """The queue group ``group_id`` in API shape. Raises NotFoundError."""
    return _present(_row(tx, group_id))


def group_document(tx: Transaction, group_id: str) -> dict[str, Any]:
    """The stored document of group ``group_id`` (what the runner was asked to do). Raises NotFoundError."""
    return dict(_row(tx, group_id).document or {})


def list_groups(tx: Transaction, *, group_type: int | None = None) -> list[Group]:
    """Every queue group (newest first), optionally of one type."""
    table = schema.queue_groups
    query = select(table).order_by(table.c.created.desc(), table.c.id.desc())
    if group_type is not None:
        query = query.where(table.c.type == group_type)
    return [_present(row) for row in tx.connection.execute(query)]


def job_has_active_group(tx: Transaction, job_id: str) -> bool:
    """Whether a queue group of ``job_id`` is pending or processing."""
    table = schema.queue_groups
    query = select(table.c.id).where(table.c.job_id == job_id, table.c.status.in_([int(s) for s in ACTIVE]))
    return tx.connection.execute(query).first() is not None


def list_items(tx: Transaction, group_id: str) -> list[dict[str, Any]]:
    """The items of queue group ``group_id`` in API shape, oldest first. Raises NotFoundError."""
    _row(tx, group_id)
    table = schema.queue_items
    query = select(table).where(table.c.group_id == group_id).order_by(table.c.created, table.c.id)
    return [present_item(row) for row in tx.connection.execute(query)]


def present_item(row: Any) -> dict[str, Any]:
    """A queue item in API shape."""
    document = dict(row.document or {})
    return {
        "_id": row.id,
        "group_id": row.group_id,
        "type": row.type,
        "status": row.status,
        "status_name": ItemStatus.label_of(row.status),
        "name": document.get("name", ""),
        "message": document.get("message", ""),
        "created": isoformat(row.created),
        "started": isoformat(row.started),
        "ended": isoformat(row.ended),
    }


def last_success(tx: Transaction, job_id: str) -> _dt.datetime | None:
    """When the latest Completed backup run of ``job_id`` ended (None: it never completed)."""
    groups = schema.queue_groups
    query = (
        select(groups.c.ended)
        .where(
            groups.c.job_id == job_id,
            groups.c.type == int(QueueType.BACKUP),
            groups.c.status == int(QueueStatus.COMPLETED),
            groups.c.ended.is_not(None),
        )
        .order_by(groups.c.ended.desc())
        .limit(1)
    )
    ended: _dt.datetime | None = tx.connection.execute(query).scalar_one_or_none()
    return ended


def fired_since(tx: Transaction, job_id: str, schedule_id: str, moment: _dt.datetime) -> bool:
    """Whether a backup run of ``job_id`` tagged with ``schedule_id`` was queued at or after ``moment``."""
    groups = schema.queue_groups
    query = select(groups.c.document).where(
        groups.c.job_id == job_id, groups.c.type == int(QueueType.BACKUP), groups.c.created >= moment
    )
    return any(
        schedule_id in ((document or {}).get("schedules") or [])
        for document in tx.connection.execute(query).scalars()
    )


# --- claim, stop, rerun -----------------------------------------------------------------------------


def worker_identity(node: str | None = None) -> dict[str, Any]:
    """Who claims a group: this host's name and process ID, and the claiming node's ID when there
    is one (recorded in the group's document)."""
    worker: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    if node:
        worker["node"] = node
    return worker


def _update_document(tx: Transaction, group_id: str, **changes: Any) -> None:
    table = schema.queue_groups
    document = dict(_row(tx, group_id).document or {})
    document.update(changes)
    tx.connection.execute(update(table).where(table.c.id == group_id).values(document=document))


def claim(tx: Transaction, group_id: str, *, worker: Mapping[str, Any] | None = None) -> bool:
    """Move Pending group ``group_id`` to Processing for this caller; False when someone else has it.
    ``worker`` (host and PID) is recorded for crash recovery."""
    table = schema.queue_groups
    result = tx.connection.execute(
        update(table)
        .where(table.c.id == group_id, table.c.status == int(QueueStatus.PENDING))
        .values(status=int(QueueStatus.PROCESSING), started=tx.clock.now())
    )
    if result.rowcount != 1:
        return False
    if worker is not None:
        _update_document(tx, group_id, worker=dict(worker))
    return True


def claim_next(
    tx: Transaction,
    types: Collection[int],
    *,
    worker: Mapping[str, Any] | None = None,
    skip_jobs: Collection[str] = (),
    node: str | None = None,
) -> Group | None:
    """Claim the oldest pending group of one of ``types``: Pending → Processing; None when there is none.

    With ``node`` only that node's groups are candidates (issue 16: a node runs its own jobs). The
    candidates are read with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so claimers on several nodes
    or threads take different rows instead of queueing on one (SQLite has one writer at a time);
    the conditional UPDATE below still decides. A Backup group is not claimed while another group of
    its job is Processing, nor when its job is in ``skip_jobs`` (the caller's own running jobs).
    ``worker`` (default: this process) is recorded in the group's document for crash recovery.
    """
    table = schema.queue_groups
    other = table.alias("other")
    busy = exists().where(
        other.c.job_id == table.c.job_id,
        other.c.status == int(QueueStatus.PROCESSING),
        other.c.id != table.c.id,
    )
    query = (
        select(table.c.id, table.c.type, table.c.job_id)
        .where(table.c.status == int(QueueStatus.PENDING), table.c.type.in_([int(t) for t in types]))
        .order_by(table.c.created, table.c.id)
        .limit(50)
    )
    if node is not None:
        query = query.where(table.c.node == node)
    if tx.connection.dialect.name == "postgresql":
        query = query.with_for_update(of=table, skip_locked=True)
    candidates = tx.connection.execute(query).all()
    for candidate in candidates:
        backup = candidate.type == QueueType.BACKUP
        if backup and candidate.job_id in skip_jobs:
            continue
        condition = and_(table.c.id == candidate.id, table.c.status == int(QueueStatus.PENDING))
        if backup:
            condition = and_(condition, ~busy)
        result = tx.connection.execute(
            update(table).where(condition).values(status=int(QueueStatus.PROCESSING), started=tx.clock.now())
        )
        if result.rowcount != 1:
            continue
        _update_document(tx, candidate.id, worker=dict(worker or worker_identity(node)))
        return get_group(tx, candidate.id)
    return None


def request_stop(tx: Transaction, group_id: str) -> Group:
    """Ask for a group to stop; return it.

    A Pending group is Aborted (103) at once and its job's ``running`` flag cleared. A Processing
    group gets ``stop_requested`` in its document: the worker running it polls for that
    (``RunningGroup.stopping``) and the run ends without committing a snapshot. Raises NotFoundError
    for an unknown group, ConflictError for one that already finished.
    """
    table = schema.queue_groups
    row = _row(tx, group_id, lock=True)
    if row.status in FINISHED:
        name = QueueStatus.label_of(row.status)
        raise ConflictError(f"Queue Group {group_id} has already finished ({name})")
    if row.status == QueueStatus.PENDING:
        aborted = tx.connection.execute(
            update(table)
            .where(table.c.id == group_id, table.c.status == int(QueueStatus.PENDING))
            .values(status=int(QueueStatus.ABORTED), ended=tx.clock.now())
        )
        if aborted.rowcount == 1:
            if row.type == QueueType.BACKUP and row.job_id:
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


def rerun(tx: Transaction, group_id: str, *, owner: str) -> Group:
    """Queue again what finished group ``group_id`` did not complete; return the new group.

    For a backup run: the destinations whose items did not complete (the whole job when it has no
    such items), with the same schedules. For a restore or download: the same request again.
    Raises NotFoundError, ConflictError for a group that is still active or completed.
    """
    row = _row(tx, group_id, lock=True)
    if row.status not in RERUNNABLE:
        name = QueueStatus.label_of(row.status)
        raise ConflictError(f"Queue Group {group_id} has nothing to rerun ({name})")
    document = dict(row.document or {})
    if row.type == QueueType.BACKUP:
        job = tx.require("jobs", row.job_id or "", "Backup Job", lock=True)
        items = schema.queue_items
        failed = [
            item.document.get("destination")
            for item in tx.connection.execute(select(items).where(items.c.group_id == group_id))
            if item.status != ItemStatus.COMPLETED and item.document.get("destination")
        ]
        # queued like a manual run, tagged with the schedules of the run it repeats
        extra: dict[str, Any] = {"rerun_of": group_id, "schedules": document.get("schedules") or []}
        if failed:
            extra["destinations"] = list(dict.fromkeys(failed))
        return enqueue_backup(tx, job, owner=owner, extra=extra)
    fresh = {
        key: value for key, value in document.items() if key not in ("progress", "stop_requested", "worker")
    }
    fresh["data"] = {
        key: value for key, value in fresh.get("data", {}).items() if key not in ("file", "log_id", "size")
    }
    fresh["rerun_of"] = group_id
    return _insert(tx, QueueType(row.type), job_id=row.job_id, owner=owner, document=fresh, node=row.node)
