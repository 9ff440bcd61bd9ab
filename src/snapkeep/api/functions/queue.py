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

from snapkeep.api.functions.base import (
    CallContext,
    FunctionSpec,
    ListParams,
    ParamSpec,
    Result,
    apply_list,
    list_params,
    no_parameters,
    one_object,
    only_id,
    param_specs,
)
from snapkeep.jobs import access, queue
from snapkeep.jobs.codes import QueueStatus, QueueType
from snapkeep.jobs.models.base import ObjectId, choice, validate


class QueueListParams(ListParams):
    type: Annotated[int | None, choice(QueueType.labels())] = Field(
        None, description="1 Backup, 2 Restore, 4 Download, 8 Reindex"
    )


def list_groups(context: CallContext, params: dict[str, Any]) -> Result:
    options = list_params(params, QueueListParams)
    assert isinstance(options, QueueListParams)
    with context.catalog.transaction(write=False) as tx:
        groups = queue.list_groups(tx, group_type=options.type)
        mine = access.run_filter(tx, context.caller)
        groups = [group for group in groups if mine(group)]
    page, total = apply_list(groups, options)
    return "Queue Groups Listed Successfully", {"groups": page, "total": total}


def get_group(context: CallContext, params: dict[str, Any]) -> Result:
    return "Queue Group Retrieved Successfully", one_object(context, queue.get_group, only_id(params))


class QueueItemParams(ListParams):
    group_id: ObjectId = Field(description="the queue group whose items to list")


def list_items(context: CallContext, params: dict[str, Any]) -> Result:
    options = validate(QueueItemParams, params)
    with context.catalog.transaction(write=False) as tx:
        items = queue.list_items(tx, options.group_id)
    page, total = apply_list(items, options)
    return "Queue Items Listed Successfully", {"items": page, "total": total}


def stop_group(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction() as tx:
        answer = queue.request_stop(tx, ident)
    if answer["status"] == QueueStatus.ABORTED:
        return "Queue Group Aborted Successfully", answer
    return "Queue Group Stop Requested Successfully", answer


def rerun_group(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction() as tx:
        answer = queue.rerun(tx, ident, owner=context.caller.user)
    return f"Queued again ({answer['_id']})", answer


def get_item(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction(write=False) as tx:
        answer = queue.get_item(tx, ident)
    return "Queue Item Retrieved Successfully", answer


def clear_queue(context: CallContext, params: dict[str, Any]) -> Result:
    """``clearQueue``: the caller's finished groups (root: everyone's) go, downloads excepted."""
    no_parameters(params)
    with context.catalog.transaction() as tx:
        cleared = queue.clear_finished(tx, access.owners(context.caller))
    return "Queue Cleared Successfully", {"cleared": len(cleared), "groups": cleared}


def stop_all(context: CallContext, params: dict[str, Any]) -> Result:
    """``stopAllQueueGroup``: every pending and running group of the caller (root: everyone's)."""
    no_parameters(params)
    with context.catalog.transaction() as tx:
        stopped = queue.stop_all(tx, access.owners(context.caller))
    return "Stop Requested for All Queue Groups", {"groups": stopped, "total": len(stopped)}


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
    FunctionSpec(
        "getQueueItem", "Get one queue item", [ParamSpec("_id", "string", True, "the item's ID")], get_item
    ),
    FunctionSpec(
        "clearQueue", "Remove finished queue groups (downloads stay until they expire)", [], clear_queue
    ),
    FunctionSpec("stopAllQueueGroup", "Stop every pending and running queue group", [], stop_all),
]
