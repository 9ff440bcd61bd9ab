"""The run queue: queue groups (one per requested run) and their items (API.md section 6).

A manual run is a queue group of type 1 (Backup), status 1 (Pending), ``data._id`` = the job; the job's
``running`` flag is set in the same transaction, atomically, so a job is never queued twice. Workers
(a later issue) claim pending groups and move them through the statuses below.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from snapkeep.clock import isoformat
from snapkeep.errors import ConflictError, NotFoundError
from snapkeep.ids import new_id
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.migrations import schema

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


def enqueue_backup(tx: Transaction, job: dict[str, Any], *, owner: str) -> dict[str, Any]:
    """Queue a manual run of ``job`` and mark it running; return the new queue group.

    Raises ConflictError when the job is already queued or running, NotFoundError when it is gone.
    """
    job_id = job["_id"]
    if not tx.set_job_running(job_id, True):
        if tx.get("jobs", job_id) is None:
            raise NotFoundError(kind="Backup Job", ident=job_id)
        raise ConflictError(f"Backup Job {job['name']!r} ({job_id}) is already running")
    group_id = new_id(tx.clock)
    document = {"data": {"_id": job_id, "name": job["name"]}, "progress": empty_progress(), "manual": True}
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
