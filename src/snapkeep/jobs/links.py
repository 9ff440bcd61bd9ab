"""Links named from the other side (issue 13, conformance review D7): a job's ``hooks`` and a
schedule's ``jobs``.

A hook says which jobs it applies to (``data_list``; empty = every job) and a job says which
schedules it follows (``schedules[i]``). JetBackup scripts also set them from the other side:
``manageBackupJob hooks[i]=HOOK`` and ``manageSchedule jobs[i]=JOB``. Both sides stay one truth: these
functions rewrite the other objects so that what was named is linked and what was not is unlinked.

Rules (docs/api-decisions.md): a hook that applies to every job stays so (naming it changes nothing,
leaving it out does not exclude the job: its ``data_list`` is its own); a hook left with an empty
``data_list`` after the job is taken out of it would suddenly apply to every job, so it is disabled
instead (as ``deleteBackupJob`` does); only Backup and Backup Account hooks attach to jobs. A job
linked from the schedule side keeps ``DEFAULT_RETAIN`` backups of it until it says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from snapkeep.errors import ValidationError
from snapkeep.ids import is_id
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.codes import HookPosition
from snapkeep.jobs.models.job import DEFAULT_RETAIN

JOB_HOOK_POSITIONS = (HookPosition.BACKUP, HookPosition.BACKUP_ACCOUNT)
RUN_STATE = ("_id", "running", "last_run", "next_run")


def named_ids(value: Any, field: str) -> list[str]:
    """The IDs a request names: a list of IDs or of objects with ``_id`` (what ``get*`` answers, so
    a read-modify-write sends them back), or one ID. Raises ValidationError naming ``field[i]``."""
    if isinstance(value, Mapping) and all(str(key).isdigit() for key in value):
        value = [value[key] for key in sorted(value, key=lambda key: int(str(key)))]
    items = value if isinstance(value, list) else [] if value in (None, "") else [value]
    found: list[str] = []
    for index, item in enumerate(items):
        ident = item.get("_id") if isinstance(item, Mapping) else item
        if not isinstance(ident, str) or not is_id(ident):
            raise ValidationError(
                field=f"{field}[{index}]", problem="must be an ID of 24 lowercase hex characters"
            )
        if ident not in found:
            found.append(ident)
    return found


def applies(hook: Mapping[str, Any], job_id: str) -> bool:
    """Does ``hook`` apply to job ``job_id`` (a Backup hook, enabled, for every job or this one)."""
    if int(hook.get("position", 0)) not in JOB_HOOK_POSITIONS or hook.get("disabled"):
        return False
    data_list = list(hook.get("data_list") or [])
    return not data_list or job_id in data_list


def _document(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key not in RUN_STATE}


def link_hooks(tx: Transaction, job_id: str, named: Sequence[str]) -> None:
    """Make exactly the ``named`` hooks name job ``job_id`` (besides those for every job)."""
    hooks = {hook["_id"]: hook for hook in tx.all("hooks")}
    for index, ident in enumerate(named):
        hook = hooks.get(ident)
        if hook is None:
            raise ValidationError(field=f"hooks[{index}]", problem=f"no such hook: {ident}")
        if int(hook.get("position", 0)) not in JOB_HOOK_POSITIONS:
            label = HookPosition.label_of(int(hook.get("position", 0)))
            raise ValidationError(
                field=f"hooks[{index}]",
                problem=f"{hook['name']!r} is a {label} hook; only Backup and Backup Account hooks "
                "attach to jobs",
            )
    for ident, hook in hooks.items():
        data_list = list(hook.get("data_list") or [])
        if ident in named and data_list and job_id not in data_list:
            tx.replace("hooks", ident, {**_document(hook), "data_list": [*data_list, job_id]})
        elif ident not in named and job_id in data_list:
            rest = [item for item in data_list if item != job_id]
            document = {**_document(hook), "data_list": rest}
            document["disabled"] = bool(document.get("disabled")) or not rest
            tx.replace("hooks", ident, document)


def link_jobs(tx: Transaction, schedule_id: str, named: Sequence[str]) -> None:
    """Make exactly the ``named`` jobs follow schedule ``schedule_id``."""
    jobs = {job["_id"]: job for job in tx.all("jobs")}
    for index, ident in enumerate(named):
        if ident not in jobs:
            raise ValidationError(field=f"jobs[{index}]", problem=f"no such Backup Job: {ident}")
    for ident, job in jobs.items():
        links = list(job.get("schedules") or [])
        linked = any(link.get("_id") == schedule_id for link in links)
        if ident in named and not linked:
            links.append({"_id": schedule_id, "retain": DEFAULT_RETAIN})
        elif ident not in named and linked:
            links = [link for link in links if link.get("_id") != schedule_id]
        else:
            continue
        tx.replace("jobs", ident, {**_document(job), "schedules": links})
