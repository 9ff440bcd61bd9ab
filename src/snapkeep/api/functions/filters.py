"""Account Filter functions (API.md section 5): manage, get, list, delete; and the groups they form
(``listAccountFilterGroups``, ``getAccountFilterGroup``: a group is ``{_id: group_id, filters, jobs,
owner}``, the jobs that select accounts by it named).

A filter belongs to a group: a new filter starts its own group unless ``group_id`` names an existing
one. Jobs refer to groups, so a delete or move that would empty a group a job uses is refused.
"""

from __future__ import annotations

from typing import Any

from snapkeep.api.functions.base import (
    CallContext,
    FunctionSpec,
    ListParams,
    ManageRules,
    ObjectKind,
    ParamSpec,
    Result,
    Stored,
    apply_list,
    list_params,
    names_of,
    only_id,
    param_specs,
    visible_owners,
)
from snapkeep.errors import ConflictError, NotFoundError, ValidationError
from snapkeep.ids import new_id
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.models import FilterFields

LABEL = "Account Filter"


def present(item: dict[str, Any]) -> dict[str, Any]:
    """The API object."""
    return {
        "_id": item["_id"],
        "group_id": item["group_id"],
        "name": item["name"],
        "type": item["type"],
        "condition": item["condition"],
        "list": list(item["list"]),
        "usage": item["usage"],
        "range_start": item["range_start"],
        "range_end": item["range_end"],
        "regex": item["regex"],
    }


def _refuse_emptying(tx: Transaction, item: dict[str, Any], what: str) -> None:
    group_id = item["group_id"]
    if len(tx.all("account_filters", group_id=group_id)) > 1:
        return
    jobs = [job for job in tx.all("jobs") if any(group_id in group for group in job["filters"])]
    if jobs:
        raise ConflictError(
            f"Cannot {what} Account Filter {item['name']!r} ({item['_id']}): it is the last filter of group "
            f"{group_id}, which is used by Backup Jobs: {names_of(jobs)}"
        )


def _merge(tx: Transaction, stored: Stored, params: dict[str, Any]) -> dict[str, Any]:
    base = {} if stored is None else {key: value for key, value in stored.items() if key != "_id"}
    return {**base, **params}


def _document(
    tx: Transaction, fields: FilterFields, stored: Stored, params: dict[str, Any]
) -> dict[str, Any]:
    """The stored filter: a new group when none is named; a named group must exist, and moving the
    last filter out of its group is refused."""
    document = fields.model_dump(by_alias=True)
    if fields.group_id is None:
        document["group_id"] = new_id(tx.clock)
    elif (stored is None or stored["group_id"] != fields.group_id) and not tx.all(
        "account_filters", group_id=fields.group_id
    ):
        raise ValidationError(field="group_id", problem=f"no such account filter group: {fields.group_id}")
    if stored is not None and stored["group_id"] != document["group_id"]:
        _refuse_emptying(tx, stored, "move")
    return document


def _refuse_delete(tx: Transaction, item: dict[str, Any]) -> None:
    _refuse_emptying(tx, item, "delete")


KIND = ObjectKind(
    table="account_filters",
    label=LABEL,
    name="AccountFilter",
    plural="filters",
    fields=FilterFields,
    view=lambda tx: present,
    refuse_delete=_refuse_delete,
    rules=ManageRules(merge=_merge, document=_document),
)


def _groups(tx: Transaction, owners: Any) -> list[dict[str, Any]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for item in tx.all("account_filters"):
        if owners is None or item["owner"] in owners:
            grouped.setdefault(item["group_id"], []).append(item)
    jobs = tx.all("jobs")
    return [
        {
            "_id": group_id,
            "filters": [{**present(item), "owner": item["owner"]} for item in items],
            "jobs": [
                {"_id": job["_id"], "name": job["name"]}
                for job in jobs
                if any(group_id in group for group in job.get("filters") or [])
            ],
            "owner": items[0]["owner"],
        }
        for group_id, items in grouped.items()
    ]


def list_groups(context: CallContext, params: dict[str, Any]) -> Result:
    options = list_params(params)
    with context.catalog.transaction(write=False) as tx:
        groups = _groups(tx, visible_owners(context))
    page, total = apply_list(
        groups, options, text_of=lambda group: " ".join(f["name"] for f in group["filters"])
    )
    return "Account Filter Groups Listed Successfully", {"groups": page, "total": total}


def get_group(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction(write=False) as tx:
        found = [group for group in _groups(tx, visible_owners(context)) if group["_id"] == ident]
    if not found:
        raise NotFoundError(kind="Account Filter Group", ident=ident)
    return "Account Filter Group Retrieved Successfully", found[0]


FUNCTIONS = KIND.functions(
    extra=[
        FunctionSpec(
            "listAccountFilterGroups",
            "List the groups the account filters form, with the jobs using each",
            param_specs(ListParams),
            list_groups,
        ),
        FunctionSpec(
            "getAccountFilterGroup",
            "Get one account filter group",
            [ParamSpec("_id", "string", True, "the group's ID (group_id)")],
            get_group,
        ),
    ]
)
