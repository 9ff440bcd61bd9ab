"""Queue functions (API.md section 6): listQueueGroups, getQueueGroup."""

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
    only_id,
    param_specs,
)
from snapkeep.jobs import queue
from snapkeep.jobs.models.base import choice


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
]
