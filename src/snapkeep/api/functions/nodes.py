"""Node functions (issue 16, docs/nodes.md; root only): listNodes, getNode, deleteNode.

A node is a ``snapkeep serve`` registered on the catalog: ``{_id, name, host, pid, version, state
(up/down), alive (1: up and its heartbeat within its timeout), started, heartbeat, heartbeat_age
(seconds), timeout, down_since, jobs (how many Backup Jobs belong to it), api (where the other nodes
reach its API; "" when it gave none), tls_fingerprint (SHA-256 of its TLS certificate, "" for
plain HTTP)}``. ``getNode`` and
``deleteNode`` take ``_id``: the node's ID or its name. ``deleteNode`` removes a node that is down
and has no jobs left (its pending runs are aborted); a live node is refused.
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
    one_object,
    param_specs,
)
from snapkeep.errors import ValidationError
from snapkeep.jobs import nodes


def _node_ref(params: dict[str, Any]) -> str:
    """``_id``: a node's ID or name (nothing else). Raises ValidationError."""
    for key in params:
        if key != "_id":
            raise ValidationError(field=str(key), problem="unknown field")
    value = params.get("_id")
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field="_id", problem="is required: a node's ID or name")
    return value


def list_nodes(context: CallContext, params: dict[str, Any]) -> Result:
    options = list_params(params)
    with context.catalog.transaction(write=False) as tx:
        items = nodes.list_nodes(tx)
    page, total = apply_list(items, options, text_of=lambda item: f"{item['name']}\n{item['host']}")
    return "Nodes Listed Successfully", {"nodes": page, "total": total}


def get_node(context: CallContext, params: dict[str, Any]) -> Result:
    return "Node Retrieved Successfully", one_object(context, nodes.get_node, _node_ref(params))


def delete_node(context: CallContext, params: dict[str, Any]) -> Result:
    return "Node Deleted Successfully", one_object(context, nodes.remove, _node_ref(params), write=True)


_REF = [ParamSpec("_id", "string", True, "the node's ID or name")]
FUNCTIONS = [
    FunctionSpec(
        "listNodes",
        "List the nodes (serve processes) sharing the catalog",
        param_specs(ListParams),
        list_nodes,
    ),
    FunctionSpec("getNode", "Get one node", _REF, get_node),
    FunctionSpec("deleteNode", "Remove a node that is down and has no jobs", _REF, delete_node),
]
