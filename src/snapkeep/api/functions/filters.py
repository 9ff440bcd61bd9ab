"""Account Filter functions (API.md section 5): manage, get, list, delete.

A filter belongs to a group: a new filter starts its own group unless ``group_id`` names an existing
one. Jobs refer to groups, so a delete or move that would empty a group a job uses is refused.
"""

from __future__ import annotations

from typing import Any

from snapkeep.api.functions.base import (
    ManageRules,
    ObjectKind,
    Stored,
    names_of,
)
from snapkeep.errors import ConflictError, ValidationError
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
FUNCTIONS = KIND.functions()
