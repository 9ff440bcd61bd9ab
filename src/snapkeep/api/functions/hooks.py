"""Hook functions (API.md section 5): manage, get, list, delete."""

from __future__ import annotations

from typing import Any

from snapkeep.api.functions.base import (
    CallContext,
    ObjectKind,
    Result,
    flag,
    manage_action,
)
from snapkeep.errors import ValidationError
from snapkeep.jobs.models import HookFields, validate

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


def manage(context: CallContext, params: dict[str, Any]) -> Result:
    action, ident = manage_action(params)
    with context.catalog.transaction() as tx:
        if ident is None:
            fields = validate(HookFields, params)
        else:
            stored = tx.require("hooks", ident, LABEL, lock=True)
            base = {key: value for key, value in stored.items() if key in HookFields.model_fields}
            fields = validate(HookFields, {**base, **params})
        for index, job_id in enumerate(fields.data_list):
            if tx.get("jobs", job_id) is None:
                raise ValidationError(field=f"data_list[{index}]", problem=f"no such Backup Job: {job_id}")
        if ident is None:
            ident = tx.insert("hooks", fields.model_dump())
        else:
            tx.replace("hooks", ident, fields.model_dump())
        answer = present(tx.require("hooks", ident, LABEL))
    verb = "Created" if action == "create" else "Modified"
    return f"Hook {verb} Successfully", answer


KIND = ObjectKind(
    table="hooks", label=LABEL, name="Hook", plural="hooks", fields=HookFields, view=lambda tx: present
)
FUNCTIONS = KIND.functions(manage)
