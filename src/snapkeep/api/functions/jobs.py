"""Backup Job functions (API.md section 4): manage, get, list, duplicate, run manually, delete."""

from __future__ import annotations

import os
from typing import Any
from zoneinfo import ZoneInfo

from snapkeep.api.functions.base import (
    CallContext,
    FunctionSpec,
    ManageRules,
    ObjectKind,
    ParamSpec,
    Result,
    Stored,
    boolean,
    flag,
    names_of,
    only_id,
    when,
)
from snapkeep.errors import ConflictError, SnapkeepError, ValidationError
from snapkeep.jobs import links, nodes, queue, settings
from snapkeep.jobs import schedule as timetable
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.codes import JobType
from snapkeep.jobs.models import JobFields, validate
from snapkeep.jobs.models.schedule import AFTER_JOB

LABEL = "Backup Job"
# fields the API returns but a client cannot set; sent back unchanged they are ignored
READ_ONLY = (
    "destination_name",
    "owner_name",
    "next_run",
    "last_run",
    "running",
    "queue_group_id",
    "node_name",
)


class JobView:
    """Turns stored jobs into API objects, loading what they refer to once per call."""

    def __init__(self, tx: Transaction) -> None:
        self.destinations = {item["_id"]: item for item in tx.all("destinations")}
        self.schedules = {item["_id"]: item for item in tx.all("schedules")}
        self.hooks = tx.all("hooks")
        self.nodes = nodes.names(tx)
        self.now = tx.clock.now()
        try:
            self.zone: ZoneInfo | None = timetable.zone(settings.timezone(tx))
        except SnapkeepError:  # a broken setting shows no next run rather than failing every read
            self.zone = None

    def next_runs(self, job: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The job's next run and each linked schedule's next slot, computed now with the function
        the scheduler uses (``schedule.job_next_run``): None for a disabled job."""
        if job.get("disabled") or self.zone is None:
            return None, {}
        linked = [self.schedules[link["_id"]] for link in job["schedules"] if link["_id"] in self.schedules]
        slots = {
            item["_id"]: timetable.next_run(item, int(job["time"]), self.now, self.zone) for item in linked
        }
        return timetable.job_next_run(job, linked, self.now, self.zone), slots

    def present(self, job: dict[str, Any]) -> dict[str, Any]:
        ident = job["_id"]
        upcoming, slots = self.next_runs(job)
        return {
            "_id": ident,
            "name": job["name"],
            "type": job["type"],
            "destination": list(job["destination"]),
            "destination_name": [self.destinations.get(d, {}).get("name", "") for d in job["destination"]],
            "contains": job["contains"],
            "options": job["options"],
            "structure": job["structure"],
            "encrypted": flag(job["encrypted"]),
            "include_list": list(job["include_list"]),
            "exclude_list": list(job["exclude_list"]),
            "filters": [list(group) for group in job["filters"]],
            "schedules": [
                {
                    "_id": link["_id"],
                    "name": self.schedules.get(link["_id"], {}).get("name", ""),
                    "type": self.schedules.get(link["_id"], {}).get("type"),
                    "next_run": when(slots.get(link["_id"])),
                    "retain": link["retain"],
                }
                for link in job["schedules"]
            ],
            "time": job["time"],
            "hooks": [
                {"_id": hook["_id"], "name": hook["name"]}
                for hook in self.hooks
                if links.applies(hook, ident)
            ],
            "monitor": dict(job["monitor"]),
            "retry_failed": boolean(job["retry_failed"]),
            "manually_retain": job["manually_retain"],
            "mysql_exclude_db_by_size": job["mysql_exclude_db_by_size"],
            "next_run": when(upcoming),
            "last_run": when(job.get("last_run")),
            "running": flag(job.get("running")),
            "disabled": flag(job["disabled"]),
            "node": job.get("node") or "",
            "node_name": self.nodes.get(str(job.get("node") or ""), ""),
        }


def stored_fields(job: dict[str, Any]) -> dict[str, Any]:
    """The writable fields of a stored job (without ID and run state)."""
    return {key: value for key, value in job.items() if key in JobFields.model_fields}


def check_references(tx: Transaction, fields: JobFields, stored: Stored = None) -> None:
    """Every destination, schedule and filter group the job names must exist. Raises ValidationError."""
    for index, ident in enumerate(fields.destination):
        destination = tx.get("destinations", ident, lock=True)
        if destination is None:
            raise ValidationError(field=f"destination[{index}]", problem=f"no such destination: {ident}")
        disk = str(destination.get("node") or "")
        if destination["type"] == "Local" and disk and fields.node and disk != fields.node:
            names = nodes.names(tx)
            raise ValidationError(
                field=f"destination[{index}]",
                problem=f"Local destination {destination['name']!r} is the disk of node "
                f"{names.get(disk, disk)!r}; this job runs on node {names.get(fields.node, fields.node)!r}",
            )
    for index, link in enumerate(fields.schedules):
        if tx.get("schedules", link.id, lock=True) is None:
            raise ValidationError(field=f"schedules[{index}][_id]", problem=f"no such schedule: {link.id}")
    for outer, group in enumerate(fields.filters):
        for inner, group_id in enumerate(group):
            if not tx.all("account_filters", group_id=group_id):
                raise ValidationError(
                    field=f"filters[{outer}][{inner}]", problem=f"no such account filter group: {group_id}"
                )


def _document(fields: JobFields) -> dict[str, Any]:
    return fields.model_dump(by_alias=True)


#: what ``getBackupJob`` shows in each ``schedules[i]`` besides what a client sets (``_id``, ``retain``)
LINK_READ_ONLY = ("name", "type", "next_run")


def _links(value: Any) -> Any:
    """``schedules`` with each link's read-only fields dropped, so a fetched job can be sent back."""
    if isinstance(value, dict) and all(str(key).isdigit() for key in value):
        value = [value[key] for key in sorted(value, key=lambda key: int(str(key)))]
    if not isinstance(value, list):
        return value
    return [
        {key: item for key, item in link.items() if key not in LINK_READ_ONLY}
        if isinstance(link, dict)
        else link
        for link in value
    ]


def _merge(tx: Transaction, stored: Stored, params: dict[str, Any]) -> dict[str, Any]:
    """The stored writable fields, then the request's; ``hooks`` is linked after the save."""
    base = {key: value for key, value in (stored or {}).items() if key in JobFields.model_fields}
    merged = {**base, **{key: value for key, value in params.items() if key != "hooks"}}
    if "schedules" in params:
        merged["schedules"] = _links(params["schedules"])
    return merged


def _link_hooks(tx: Transaction, ident: str, params: dict[str, Any]) -> None:
    if "hooks" in params:
        links.link_hooks(tx, ident, links.named_ids(params["hooks"], "hooks"))


def duplicate(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction() as tx:
        original = tx.require("jobs", ident, LABEL)
        document = stored_fields(original)
        suffix = f" - {int(context.clock.time() * 1000)}"
        document["name"] = document["name"][: 255 - len(suffix)] + suffix
        document["disabled"] = True
        copy = {**_document(validate(JobFields, document)), "owner": original["owner"]}
        new_ident = tx.insert("jobs", copy)
        job = KIND.present(tx)(tx.require("jobs", new_ident, LABEL))
    return "Backup Job Duplicated Successfully", job


def run_manually(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction() as tx:
        job = tx.require("jobs", ident, LABEL, lock=True)
        group = queue.enqueue_backup(tx, job, owner=context.caller.user)
        answer = KIND.present(tx)(tx.require("jobs", ident, LABEL))
    # the queue group to poll (getQueueGroup) rides along; ``running`` is 1 from now on
    answer["queue_group_id"] = group["_id"]
    return f"Backup Job {job['name']!r} queued to run (queue group {group['_id']})", answer


def delete(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction() as tx:
        job = tx.require("jobs", ident, LABEL, lock=True)
        if job["running"] or queue.job_has_active_group(tx, ident):
            raise ConflictError(
                f"Backup Job {job['name']!r} ({ident}) is running: wait until it finishes or stop it first"
            )
        waiting = [s for s in tx.all("schedules", type=AFTER_JOB) if s["type_data"] == ident]
        if waiting:
            raise ConflictError(
                f"Backup Job {job['name']!r} ({ident}) is used by After Backup Job Done schedules: "
                + names_of(waiting)
            )
        for hook in tx.all("hooks"):
            if ident in hook["data_list"]:
                document = {key: value for key, value in hook.items() if key != "_id"}
                document["data_list"] = [item for item in hook["data_list"] if item != ident]
                # An empty list means "every job": a hook meant for this job alone must not spread.
                document["disabled"] = document["disabled"] or not document["data_list"]
                tx.replace("hooks", hook["_id"], document)
        tx.remove("jobs", ident)
    return "Backup Job Deleted Successfully", {"_id": ident}


_ID = [ParamSpec("_id", "string", True, "the Backup Job's ID")]
KIND = ObjectKind(
    table="jobs",
    label=LABEL,
    name="BackupJob",
    plural="jobs",
    fields=JobFields,
    view=lambda tx: JobView(tx).present,
    rules=ManageRules(
        read_only=READ_ONLY,
        merge=_merge,
        check=check_references,
        linked=_link_hooks,
        document=lambda tx, fields, stored, params: _document(fields),
    ),
)


def _with_node(context: CallContext, params: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """``node`` as a node ID: a new job without one belongs to the node serving the call (the node
    of this data directory, ``<home>/node.id``); a node named by ID or name must be registered
    (ValidationError naming ``node`` otherwise). api/permissions.py lets only root change it."""
    local = nodes.local_id(context.home)
    value = params.get("node")
    if value in (None, ""):
        return {**params, "node": local} if creating else {k: v for k, v in params.items() if k != "node"}
    if not isinstance(value, str):
        raise ValidationError(field="node", problem="must be a node ID or name")
    if value == local:
        return params
    with context.catalog.transaction(write=False) as tx:
        return {**params, "node": nodes.resolve(tx, value)}


def manage(context: CallContext, params: dict[str, Any]) -> Result:
    """``manageBackupJob``, then warnings before the first run rather than after it (issue 14): a
    Directories job's folder that does not exist here, and where a new encrypted job's key will be."""
    creating = params.get("action") == "create"
    params = _with_node(context, params, creating=creating)
    message, job = KIND.manage(context, params)
    if job["type"] == JobType.DIRECTORIES:
        for index, path in enumerate(job["include_list"]):
            if not os.path.lexists(path):
                context.warnings.append(f"include_list[{index}]: {path} does not exist on this server (yet)")
    if creating and job["encrypted"]:
        context.warnings.append(
            "encrypted: the repository key is made on the first run and kept sealed in the catalog; "
            f"export it with `snapkeep keys export {job['_id']}` and keep the export away from the backups "
            "(without it the backups cannot be read on another server)"
        )
    return message, job


FUNCTIONS = KIND.functions(
    manage,
    delete=delete,
    delete_summary="Delete a Backup Job (its backups stay)",
    extra=[
        FunctionSpec("duplicateBackupJob", "Copy a Backup Job (the copy starts disabled)", _ID, duplicate),
        FunctionSpec("runBackupJobManually", "Queue a run of a Backup Job now", _ID, run_manually),
    ],
)
