"""Alert functions (API.md section 6): listAlerts, getAlert, clearAlerts.

Alerts are ``{_id, title, message, level (1 info, 2 warning, 3 critical), created}``, newest first.
``filter=TEXT`` matches the title and the message (alerts have no name). ``clearAlerts`` without
``_id`` clears every alert; with ``_id`` (one ID or a list, ``_id[]=A&_id[]=B``) just those, and refuses
the whole request, naming the ID, when one does not exist.
"""

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
    object_id,
    only_id,
    param_specs,
)
from snapkeep.errors import ValidationError
from snapkeep.jobs import alerts


def list_alerts(context: CallContext, params: dict[str, Any]) -> Result:
    options = list_params(params)
    with context.catalog.transaction(write=False) as tx:
        items = [alert.as_api() for alert in alerts.list_alerts(tx)]
    page, total = apply_list(items, options, text_of=lambda item: f"{item['title']}\n{item['message']}")
    return "Alerts Listed Successfully", {"alerts": page, "total": total}


def get_alert(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction(write=False) as tx:
        answer = alerts.get_alert(tx, ident).as_api()
    return "Alert Retrieved Successfully", answer


def _ids(params: dict[str, Any]) -> list[str] | None:
    for key in params:
        if key != "_id":
            raise ValidationError(field=str(key), problem="unknown field")
    value = params.get("_id")
    if value is None:
        return None
    if isinstance(value, list):
        if not value:
            raise ValidationError(field="_id", problem="needs at least one ID (leave it out to clear all)")
        return [object_id({"_id": item}, "_id") for item in value]
    return [object_id(params)]


def clear_alerts(context: CallContext, params: dict[str, Any]) -> Result:
    ids = _ids(params)
    with context.catalog.transaction() as tx:
        count = alerts.clear_alerts(tx, ids)
    return "Alerts Cleared Successfully", {"cleared": count}


FUNCTIONS = [
    FunctionSpec("listAlerts", "List alerts, newest first", param_specs(ListParams), list_alerts),
    FunctionSpec(
        "getAlert", "Get one alert", [ParamSpec("_id", "string", True, "the alert's ID")], get_alert
    ),
    FunctionSpec(
        "clearAlerts",
        "Clear every alert, or the alerts named by _id",
        [ParamSpec("_id", "array", False, "alert IDs to clear (all when left out)")],
        clear_alerts,
    ),
]
