"""Log functions (API.md section 6): listLogs, getLog (``content=1`` adds the text), listLogItems.

Logs come newest first; ``filter=TEXT`` matches the log's name (the job's name, or "Restore of ...").
Log items come in the order they were written.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from snapkeep.api.functions.base import (
    CallContext,
    FunctionSpec,
    IdParams,
    ListParams,
    ParamSpec,
    Result,
    apply_list,
    list_params,
    one_object,
    only_id,
    param_specs,
)
from snapkeep.jobs import access, logs
from snapkeep.jobs.codes import LogType
from snapkeep.jobs.models.base import Flag, ObjectId, choice, validate


class LogListParams(ListParams):
    type: Annotated[int | None, choice(LogType.labels())] = Field(
        None, description="1 Backup, 2 Restore, 4 Download, 8 Reindex"
    )
    job_id: ObjectId | None = Field(None, description="only the logs of this Backup Job")


class GetLogParams(IdParams):
    content: Flag = Field(False, description="1 adds the log's text as content")


class LogItemParams(ListParams):
    log_id: ObjectId = Field(description="the log whose lines to list")


def list_logs(context: CallContext, params: dict[str, Any]) -> Result:
    options = list_params(params, LogListParams)
    assert isinstance(options, LogListParams)
    with context.catalog.transaction(write=False) as tx:
        items = logs.list_logs(tx)
        mine = access.run_filter(tx, context.caller)
    items = [
        item
        for item in items
        if mine(item)
        and (options.type is None or item["type"] == options.type)
        and (options.job_id is None or item["job_id"] == options.job_id)
    ]
    page, total = apply_list(items, options)
    return "Logs Listed Successfully", {"logs": page, "total": total}


def get_log(context: CallContext, params: dict[str, Any]) -> Result:
    options = validate(GetLogParams, params)
    with context.catalog.transaction(write=False) as tx:
        answer = logs.get_log(tx, options.id)
    if options.content:
        answer["content"] = logs.log_text(context.home, options.id)
        if not logs.log_path(context.home, options.id).exists():
            # written by another node (issue 16, docs/nodes.md): the same lines, from the catalog
            with context.catalog.transaction(write=False) as tx:
                lines = logs.list_items(tx, options.id)
            answer["content"] = "".join(
                f"{line['created']} [{line['level_name']}] {line['message']}\n" for line in lines
            )
    return "Log Retrieved Successfully", answer


def list_items(context: CallContext, params: dict[str, Any]) -> Result:
    options = validate(LogItemParams, params)
    with context.catalog.transaction(write=False) as tx:
        items = logs.list_items(tx, options.log_id)
    page, total = apply_list(items, options, text_of=lambda item: str(item["message"]))
    return "Log Items Listed Successfully", {"items": page, "total": total}


def get_item(context: CallContext, params: dict[str, Any]) -> Result:
    return "Log Item Retrieved Successfully", one_object(context, logs.get_item, only_id(params))


def delete_log(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction() as tx:
        logs.delete_log(tx, context.home, ident)
    return "Log Deleted Successfully", {"_id": ident}


_ID = [ParamSpec("_id", "string", True, "the ID")]
FUNCTIONS = [
    FunctionSpec("listLogs", "List run logs, newest first", param_specs(LogListParams), list_logs),
    FunctionSpec("getLog", "Get one log; content=1 adds its text", param_specs(GetLogParams), get_log),
    FunctionSpec("listLogItems", "List the lines of one log", param_specs(LogItemParams), list_items),
    FunctionSpec("getLogItem", "Get one line of a log", _ID, get_item),
    FunctionSpec("deleteLog", "Delete a finished log, its lines and its text", _ID, delete_log),
]
