"""Queue functions (API.md section 6): listQueueGroups, getQueueGroup, listQueueItems, stopQueueGroup,
rerunFailedQueueGroup.

``stopQueueGroup`` ends a Pending group at once (103 Aborted) and asks a Processing one to stop (the
runner stops cleanly within about a second: nothing is committed, the status becomes 103).
``rerunFailedQueueGroup`` queues a new group for what did not complete: for a backup run the
destinations whose items did not complete (the whole job when it has no items), for a restore or
download the same request again.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import select, update

from snapkeep.api.functions.base import (
    CallContext,
    FunctionSpec,
    ListParams,
    ParamSpec,
    Result,
    apply_list,
    list_params,
    only_id,
    param_specs,
)
from snapkeep.errors import ConflictError
from snapkeep.ids import new_id
from snapkeep.jobs import queue, runlog
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.models.base import ObjectId, choice, validate


class QueueListParams(ListParams):
    type: Annotated[int | None, choice(queue.QUEUE_TYPES)] = Field(
        None, description="1 Backup, 2 Restore, 4 Download, 8 Reindex"
    )


def list_groups(context: CallContext, params: dict[str, Any]) -> Result:
    options = list_params(params, QueueListParams)
    assert isinstance(options, QueueListParams)
    with context.catalog.transaction(write=False) as tx:
        groups = queue.list_groups(tx, group_type=options.type)
    page, total = apply_list(groups, options)
    return "Queue Groups Listed Successfully", {"groups": page, "total": total}


def get_group(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction(write=False) as tx:
        group = queue.get_group(tx, ident)
    return "Queue Group Retrieved Successfully", group


class QueueItemParams(ListParams):
    group_id: ObjectId = Field(description="the queue group whose items to list")


def list_items(context: CallContext, params: dict[str, Any]) -> Result:
    options = validate(QueueItemParams, params)
    with context.catalog.transaction(write=False) as tx:
        queue.get_group(tx, options.group_id)
        items = runlog.list_queue_items(tx, options.group_id)
    page, total = apply_list(items, options)
    return "Queue Items Listed Successfully", {"items": page, "total": total}


def _row(tx: Any, ident: str) -> Any:
    table = schema.queue_groups
    row = tx.connection.execute(select(table).where(table.c.id == ident).with_for_update()).first()
    if row is None:
        queue.get_group(tx, ident)  # raises NotFoundError
    return row


def stop_group(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    table = schema.queue_groups
    with context.catalog.transaction() as tx:
        row = _row(tx, ident)
        document = dict(row.document or {})
        if row.status == queue.PENDING:
            tx.connection.execute(
                update(table).where(table.c.id == ident).values(status=103, ended=tx.clock.now())
            )
            if row.type == queue.BACKUP and row.job_id:
                tx.set_job_running(row.job_id, False)
            message = "Queue Group Aborted Successfully"
        elif row.status == queue.PROCESSING:
            document["stop_requested"] = True
            tx.connection.execute(update(table).where(table.c.id == ident).values(document=document))
            message = "Queue Group Stop Requested Successfully"
        else:
            status = queue.QUEUE_STATUSES.get(row.status, row.status)
            raise ConflictError(f"Queue Group {ident} has already finished ({status})")
        answer = queue.get_group(tx, ident)
    return message, answer


RERUNNABLE = (101, 102, 103, 104)


def rerun_group(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction() as tx:
        row = _row(tx, ident)
        if row.status not in RERUNNABLE:
            status = queue.QUEUE_STATUSES.get(row.status, row.status)
            raise ConflictError(f"Queue Group {ident} has nothing to rerun ({status})")
        document = dict(row.document or {})
        if row.type == queue.BACKUP:
            job = tx.require("jobs", row.job_id or "", "Backup Job", lock=True)
            group = queue.enqueue_backup(tx, job, owner=context.caller.user)
            items = tx.connection.execute(
                select(schema.queue_items).where(schema.queue_items.c.group_id == ident)
            ).all()
            failed = [
                item.document.get("destination")
                for item in items
                if item.status != 100 and item.document.get("destination")
            ]
            extra = {"rerun_of": ident, "schedules": document.get("schedules") or []}
            if failed:
                extra["destinations"] = list(dict.fromkeys(failed))
            table = schema.queue_groups
            stored = dict(
                tx.connection.execute(select(table.c.document).where(table.c.id == group["_id"])).scalar_one()
            )
            tx.connection.execute(
                update(table).where(table.c.id == group["_id"]).values(document={**stored, **extra})
            )
        else:
            new = new_id(tx.clock)
            fresh = {
                key: value for key, value in document.items() if key not in ("progress", "stop_requested")
            }
            fresh["data"] = {
                key: value
                for key, value in fresh.get("data", {}).items()
                if key not in ("file", "log_id", "size")
            }
            fresh.update(progress=queue.empty_progress(), rerun_of=ident)
            tx.connection.execute(
                schema.queue_groups.insert().values(
                    id=new,
                    type=row.type,
                    status=queue.PENDING,
                    job_id=row.job_id,
                    owner=context.caller.user,
                    created=tx.clock.now(),
                    document=fresh,
                )
            )
            group = queue.get_group(tx, new)
        answer = queue.get_group(tx, group["_id"])
    return f"Queued again ({answer['_id']})", answer


_GROUP = [ParamSpec("_id", "string", True, "the group's ID")]

FUNCTIONS = [
    FunctionSpec(
        "listQueueGroups",
        "List queue groups (runs, restores, downloads)",
        param_specs(QueueListParams),
        list_groups,
    ),
    FunctionSpec(
        "getQueueGroup",
        "Get one queue group",
        [ParamSpec("_id", "string", True, "the group's ID")],
        get_group,
    ),
    FunctionSpec(
        "listQueueItems", "List the items of a queue group", param_specs(QueueItemParams), list_items
    ),
    FunctionSpec("stopQueueGroup", "Stop a pending or running queue group", _GROUP, stop_group),
    FunctionSpec(
        "rerunFailedQueueGroup", "Queue again what a finished group did not complete", _GROUP, rerun_group
    ),
]
