"""Destination functions (API.md section 5): manage, get, list, delete, listDestinationTypes.

Options are validated and stored per type. Secrets are stored sealed with the master key
(``jobs.destinations.seal_options``) and masked in every answer; the mask sent back on modify keeps
the stored secret only while the server it belongs to stays the same (``unmask``: changing the host,
port, user, S3 endpoint, region, bucket or access key needs the secret again). ``disk_usage`` asks
the destination (``jobs.repositories``); ``validateDestination`` probes it and records an SFTP
server's host key on first contact (shown as ``options.fingerprint``, read-only;
``options[fingerprint]=`` on modify forgets it).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from snapkeep.api.functions.base import (
    CallContext,
    FunctionSpec,
    ManageRules,
    ObjectKind,
    ParamSpec,
    Presenter,
    Result,
    Stored,
    flag,
    names_of,
    no_parameters,
    only_id,
    param_specs,
)
from snapkeep.errors import ConflictError, SnapkeepError, StorageError
from snapkeep.jobs import destinations, nodes, repositories, sealing
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.models import DestinationFields, validate_destination
from snapkeep.jobs.models.destination import (
    DESTINATION_DESCRIPTIONS,
    DESTINATION_OPTIONS,
    SECRETS,
    canonical_type,
    mask,
    unmask,
)
from snapkeep.storage.probe import ProbeReport, probe

LABEL = "Destination"
READ_ONLY = ("disk_usage", "count", "node")


def _disk_usage(destination: dict[str, Any]) -> dict[str, int]:
    """``{usage, free, total}``: Local from its file system, SFTP/S3 by asking the server."""
    return repositories.disk_usage(destination)


def present(destination: dict[str, Any], jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """The API object: secrets masked, flags 1/null, usage and the count of jobs using it."""
    options = mask(destination["type"], destination["options"])
    if destination["type"] == "SFTP":
        options["fingerprint"] = destination.get("fingerprint", "")
    return {
        "_id": destination["_id"],
        "name": destination["name"],
        "type": destination["type"],
        "options": options,
        "disabled": flag(destination["disabled"]),
        "readonly": flag(destination["readonly"]),
        "threads": destination["threads"],
        "disk_limit": destination["disk_limit"],
        "disk_usage": _disk_usage(destination),
        "count": sum(1 for job in jobs if destination["_id"] in job["destination"]),
        "node": destination.get("node") or "",
    }


def _stored_fields(destination: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in destination.items() if key in DestinationFields.model_fields}


def _merge(tx: Transaction, stored: Stored, params: dict[str, Any]) -> dict[str, Any]:
    if stored is None:
        return params
    merged = {**_stored_fields(stored), **params}
    if isinstance(merged.get("options"), dict) and "type" in merged:
        same_type = canonical_type(merged["type"]) == stored["type"]  # SSH is SFTP, Localv2 Local
        if same_type:
            merged["options"] = unmask(stored["type"], merged["options"], stored["options"])
        else:
            merged["options"] = unmask(
                canonical_type(merged["type"]) or stored["type"], merged["options"], None
            )
    return merged


def _document(
    tx: Transaction, fields: DestinationFields, stored: Stored, params: dict[str, Any]
) -> dict[str, Any]:
    """The stored destination, its secrets sealed; a modify keeps the recorded host key while the host
    stays the same (``options[fingerprint]=`` forgets it)."""
    document: dict[str, Any] = fields.model_dump()
    sent = params.get("options")
    if any(document["options"].get(option) for option in SECRETS.get(fields.type, ())):
        document["options"] = destinations.seal_options(
            sealing.master_for(tx),
            fields.type,
            document["options"],
            given=sent if isinstance(sent, dict) else {},
        )
    if fields.type == "Local":  # a node's own disk (issue 16): the node that made it, kept
        document["node"] = (stored or {}).get("node") or nodes.serving_node(tx) or ""
    if stored is None:
        return document
    keeps_host = fields.type == stored["type"] and fields.options.get("host") == stored["options"].get("host")
    cleared = isinstance(sent, dict) and sent.get("fingerprint") == ""
    if keeps_host and stored.get("fingerprint") and not cleared:
        document["fingerprint"] = stored["fingerprint"]
    return document


def users_of(tx: Transaction, ident: str) -> list[dict[str, Any]]:
    """The jobs that write to destination ``ident``."""
    return [job for job in tx.all("jobs") if ident in job["destination"]]


def _refuse_delete(tx: Transaction, destination: dict[str, Any]) -> None:
    jobs = users_of(tx, destination["_id"])
    if jobs:
        raise ConflictError(
            f"Destination {destination['name']!r} ({destination['_id']}) is used by Backup Jobs: "
            + names_of(jobs)
        )


def _view(tx: Transaction) -> Presenter:
    jobs = tx.all("jobs")
    return lambda destination: present(destination, jobs)


def list_types(context: CallContext, params: dict[str, Any]) -> Result:
    no_parameters(params)
    types = []
    for name, model in DESTINATION_OPTIONS.items():
        options = [
            {
                "name": spec.name,
                "type": spec.type,
                "required": 1 if spec.required else 0,
                "secret": 1 if spec.name in SECRETS[name] else 0,
                "description": spec.description,
            }
            for spec in param_specs(model)
        ]
        types.append({"type": name, "description": DESTINATION_DESCRIPTIONS[name], "options": options})
    return "Destination Types Listed Successfully", {"types": types, "total": len(types)}


def _probe(destination: dict[str, Any]) -> tuple[ProbeReport, str]:
    """Probe ``destination`` (write, read back, list, delete); its report and the SFTP host key
    seen. Raises StorageError when it cannot even be opened."""
    try:
        opened = repositories.open_destination(destination, "", retry=repositories.NO_RETRY)
    except SnapkeepError as error:
        raise StorageError(
            f"Destination {destination['name']!r} ({destination['_id']}): cannot open: {error}"
        ) from None
    with opened:
        return probe(opened.store), opened.fingerprint or ""


def validate_destination_call(context: CallContext, params: dict[str, Any]) -> Result:
    """Write, read back, list and delete a probe object on the destination; fail naming the step."""
    ident = only_id(params)
    with context.catalog.transaction(write=False) as tx:
        destination = tx.require("destinations", ident, LABEL)
    report, seen = _probe(destination)
    fingerprint = destination.get("fingerprint") or ""
    if seen and not fingerprint:
        with context.catalog.transaction() as tx:
            if destinations.record_fingerprint(tx, ident, seen):
                fingerprint = seen
    steps = [
        {"name": step.name, "ok": 1 if step.ok else 0, "seconds": round(step.seconds, 3)}
        for step in report.steps
    ]
    if not report.ok:
        raise StorageError(
            f"Destination {destination['name']!r} ({ident}) failed validation: {report.message}"
        )
    answer = {"_id": ident, "steps": steps, "message": report.message}
    if destination["type"] == "SFTP":
        answer["fingerprint"] = fingerprint
    return "Destination Validated Successfully", answer


KIND = ObjectKind(
    table="destinations",
    label=LABEL,
    name="Destination",
    plural="destinations",
    fields=DestinationFields,
    view=_view,
    refuse_delete=_refuse_delete,
    rules=ManageRules(read_only=READ_ONLY, merge=_merge, validate=validate_destination, document=_document),
)
_ID = [ParamSpec("_id", "string", True, "the Destination's ID")]


#: how long creating a remote destination waits for its probe before answering without it
CREATE_PROBE_SECONDS = 10.0


def manage(context: CallContext, params: dict[str, Any]) -> Result:
    """``manageDestination``, then warnings for what the first run would trip on (issue 14: before
    the run, not after it): a Local folder that cannot be written here; on create, a remote
    destination that cannot be reached, refuses the credentials or is read-only (the probe of
    ``validateDestination``, waited for at most ``CREATE_PROBE_SECONDS``; a warning, never a
    refusal: the server may come up later). The host key seen is not recorded here:
    ``validateDestination`` records it on request."""
    creating = params.get("action") == "create"
    message, destination = KIND.manage(context, params)
    if destination["type"] == "Local":
        problem = local_problem(str(destination["options"].get("path", "")))
        if problem:
            context.warnings.append(f"options[path]: {problem}")
    elif creating and destination["type"] in destinations.REMOTE_TYPES:
        with context.catalog.transaction(write=False) as tx:
            stored = tx.require("destinations", destination["_id"], LABEL)
        problem = remote_problem(stored)
        if problem:
            context.warnings.append(
                f"destination: {problem}; backups to it fail until this is fixed "
                f"(validateDestination _id={destination['_id']} checks again)"
            )
    return message, destination


def remote_problem(destination: dict[str, Any], budget: float = CREATE_PROBE_SECONDS) -> str:
    """Why a backup could not be stored on remote ``destination`` now ("" when the probe passed),
    waiting at most ``budget`` seconds (the probe then goes on alone until its own timeout)."""
    outcome: list[str] = []

    def attempt() -> None:
        try:
            report, _seen = _probe(destination)
        except SnapkeepError as error:
            outcome.append(str(error))
            return
        outcome.append("" if report.ok else f"failed validation: {report.message}")

    worker = threading.Thread(target=attempt, name="destination-probe", daemon=True)
    worker.start()
    worker.join(budget)
    if not outcome:
        return f"no answer from the destination within {budget:.0f} s"
    return outcome[0]


def local_problem(path: str) -> str:
    """Why a backup could not write below ``path`` on this server ("" when it could, as far as can
    be told without writing): not a folder, or the nearest existing folder is not writable."""
    current = path
    while current and not os.path.lexists(current):
        current = os.path.dirname(current.rstrip("/")) or "/"
        if current == "/":
            break
    if os.path.lexists(current) and not os.path.isdir(current):
        return f"{current} exists and is not a folder"
    if not os.access(current, os.W_OK | os.X_OK):
        return f"{current} is not writable by this service"
    return ""


FUNCTIONS = KIND.functions(
    manage,
    delete_summary="Delete a Destination no Backup Job uses",
    extra=[
        FunctionSpec(
            "validateDestination",
            "Write, read, list and delete a probe object on a Destination",
            _ID,
            validate_destination_call,
        ),
        FunctionSpec("listDestinationTypes", "The destination types and their options", [], list_types),
    ],
)
