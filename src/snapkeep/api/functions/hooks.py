"""Hook functions (API.md section 5): manage, get, list, delete."""

from __future__ import annotations

from typing import Any

from snapkeep.api.functions.base import (
    ManageRules,
    ObjectKind,
    Stored,
    flag,
)
from snapkeep.errors import ValidationError
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.models import HookFields

LABEL = "Hook"


def present(hook: dict[str, Any]) -> dict[str, Any]:
    """The API object: ``disabled`` as 1/null."""
    return {
        "_id": hook["_id"],
        "name": hook["name"],
        "script": hook["script"],
        "position_type": hook["position_type"],
        "position": hook["position"],
        "data_list": list(hook["data_list"]),
        "disabled": flag(hook["disabled"]),
        "timeout": hook["timeout"],
    }


def _check(tx: Transaction, fields: HookFields, stored: Stored) -> None:
    for index, job_id in enumerate(fields.data_list):
        if tx.get("jobs", job_id) is None:
            raise ValidationError(field=f"data_list[{index}]", problem=f"no such Backup Job: {job_id}")


KIND = ObjectKind(
    table="hooks",
    label=LABEL,
    name="Hook",
    plural="hooks",
    fields=HookFields,
    view=lambda tx: present,
    rules=ManageRules(check=_check),
)
FUNCTIONS = KIND.functions()
