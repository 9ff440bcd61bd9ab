"""Schedule functions (API.md section 5): manage, get, list, delete."""

from __future__ import annotations

from typing import Any

from snapkeep.api.functions.base import (
    ManageRules,
    ObjectKind,
    Presenter,
    Stored,
    names_of,
)
from snapkeep.errors import ConflictError, ValidationError
from snapkeep.jobs import links
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.models import ScheduleFields
from snapkeep.jobs.models.schedule import AFTER_JOB

LABEL = "Schedule"
READ_ONLY = ("count",)


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


def _check_after_job(tx: Transaction, fields: ScheduleFields, stored: Stored) -> None:
    if fields.type == AFTER_JOB and tx.get("jobs", fields.type_data) is None:
        raise ValidationError(field="type_data", problem=f"no such Backup Job: {fields.type_data}")


def _merge(tx: Transaction, stored: Stored, params: dict[str, Any]) -> dict[str, Any]:
    base = {key: value for key, value in (stored or {}).items() if key in ScheduleFields.model_fields}
    if "type" in params and "type_data" not in params:
        base.pop("type_data", None)  # a new type needs its own type_data: let validation say so
    return {**base, **{key: value for key, value in params.items() if key != "jobs"}}


def _link_jobs(tx: Transaction, ident: str, params: dict[str, Any]) -> None:
    """``jobs[i]=JOB`` links those jobs to the schedule (and unlinks the others): API.md section 5."""
    if "jobs" in params:
        links.link_jobs(tx, ident, links.named_ids(params["jobs"], "jobs"))


def _view(tx: Transaction) -> Presenter:
    jobs = tx.all("jobs")
    return lambda schedule: present(schedule, jobs)


def _refuse_delete(tx: Transaction, schedule: dict[str, Any]) -> None:
    jobs = users_of(tx.all("jobs"), schedule["_id"])
    if jobs:
        raise ConflictError(
            f"Schedule {schedule['name']!r} ({schedule['_id']}) is used by Backup Jobs: {names_of(jobs)}"
        )


KIND = ObjectKind(
    table="schedules",
    label=LABEL,
    name="Schedule",
    plural="schedules",
    fields=ScheduleFields,
    view=_view,
    refuse_delete=_refuse_delete,
    rules=ManageRules(read_only=READ_ONLY, merge=_merge, check=_check_after_job, linked=_link_jobs),
)
FUNCTIONS = KIND.functions(delete_summary="Delete a Schedule no Backup Job uses")
