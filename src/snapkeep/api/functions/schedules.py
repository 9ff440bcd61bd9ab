"""Schedule functions (API.md section 5): manage, get, list, delete."""

from __future__ import annotations

from typing import Any

from snapkeep.api.functions.base import (
    CallContext,
    FunctionSpec,
    ListParams,
    ParamSpec,
    Result,
    apply_list,
    list_params,
    manage_action,
    names_of,
    only_id,
    param_specs,
)
from snapkeep.errors import ConflictError, ValidationError
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.models import ScheduleFields, validate
from snapkeep.jobs.models.schedule import AFTER_JOB

LABEL = "Schedule"
READ_ONLY = ("count", "jobs")


def users_of(jobs: list[dict[str, Any]], ident: str) -> list[dict[str, Any]]:
    """The jobs linked to schedule ``ident``."""
    return [job for job in jobs if any(link["_id"] == ident for link in job["schedules"])]


def present(schedule: dict[str, Any], jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """The API object with the read-only ``count`` and ``jobs`` ({_id, name}) using it."""
    users = users_of(jobs, schedule["_id"])
    return {
        "_id": schedule["_id"],
        "name": schedule["name"],
        "type": schedule["type"],
        "type_data": schedule["type_data"],
        "delay_amount": schedule["delay_amount"],
        "delay_type": schedule["delay_type"],
        "count": len(users),
        "jobs": [{"_id": job["_id"], "name": job["name"]} for job in users],
    }


def _check_after_job(tx: Transaction, fields: ScheduleFields) -> None:
    if fields.type == AFTER_JOB and tx.get("jobs", fields.type_data) is None:
        raise ValidationError(field="type_data", problem=f"no such Backup Job: {fields.type_data}")


def manage(context: CallContext, params: dict[str, Any]) -> Result:
    action, ident = manage_action(params)
    for key in READ_ONLY:
        params.pop(key, None)
    with context.catalog.transaction() as tx:
        if ident is None:
            fields = validate(ScheduleFields, params)
        else:
            stored = tx.require("schedules", ident, LABEL, lock=True)
            base = {key: value for key, value in stored.items() if key in ScheduleFields.model_fields}
            if "type" in params and "type_data" not in params:
                base.pop("type_data")  # a new type needs its own type_data: let validation say so
            fields = validate(ScheduleFields, {**base, **params})
        _check_after_job(tx, fields)
        if ident is None:
            ident = tx.insert("schedules", fields.model_dump())
        else:
            tx.replace("schedules", ident, fields.model_dump())
        answer = present(tx.require("schedules", ident, LABEL), tx.all("jobs"))
    verb = "Created" if action == "create" else "Modified"
    return f"Schedule {verb} Successfully", answer


def get(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction(write=False) as tx:
        answer = present(tx.require("schedules", ident, LABEL), tx.all("jobs"))
    return "Schedule Retrieved Successfully", answer


def list_schedules(context: CallContext, params: dict[str, Any]) -> Result:
    options = list_params(params)
    with context.catalog.transaction(write=False) as tx:
        jobs = tx.all("jobs")
        items = [present(item, jobs) for item in tx.all("schedules")]
    page, total = apply_list(items, options)
    return "Schedules Listed Successfully", {"schedules": page, "total": total}


def delete(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction() as tx:
        schedule = tx.require("schedules", ident, LABEL, lock=True)
        jobs = users_of(tx.all("jobs"), ident)
        if jobs:
            raise ConflictError(
                f"Schedule {schedule['name']!r} ({ident}) is used by Backup Jobs: {names_of(jobs)}"
            )
        tx.remove("schedules", ident)
    return "Schedule Deleted Successfully", {"_id": ident}


_ID = [ParamSpec("_id", "string", True, "the Schedule's ID")]
_MANAGE = [
    ParamSpec("action", "string", True, "create or modify"),
    ParamSpec("_id", "string", False, "the Schedule's ID (modify only)"),
    *param_specs(ScheduleFields, optional=True, note="required on create"),
]

FUNCTIONS = [
    FunctionSpec("manageSchedule", "Create or modify a Schedule", _MANAGE, manage),
    FunctionSpec("getSchedule", "Get one Schedule", _ID, get),
    FunctionSpec("listSchedules", "List Schedules", param_specs(ListParams), list_schedules),
    FunctionSpec("deleteSchedule", "Delete a Schedule no Backup Job uses", _ID, delete),
]
