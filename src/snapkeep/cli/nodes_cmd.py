"""``snapkeep nodes list|show|remove``: the ``snapkeep serve`` processes sharing the catalog (issue 16).

Each command calls the dispatcher in-process as root (``listNodes``, ``getNode``, ``deleteNode``), so it
validates exactly as the API does. A node is named by its ID or its name (docs/nodes.md).
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table
from rich.text import Text

from snapkeep.cli.humane import human_duration as duration
from snapkeep.cli.jobs_cmd import call
from snapkeep.cli.main import Context
from snapkeep.cli.output import NONE_SHOWN, console, json_option, print_json, short_id, when


def _state(node: dict[str, Any]) -> str:
    if node.get("alive"):
        return "up"
    if node.get("state") == "up":
        return "late (no heartbeat within its timeout; about to be declared down)"
    return "down"


@click.group("nodes")
def nodes_group() -> None:
    """The nodes (snapkeep serve processes) sharing the catalog."""


@nodes_group.command("list")
@json_option
@click.pass_obj
def list_command(context: Context, as_json: bool) -> None:
    """Every node: name, host, state, last heartbeat, jobs."""
    data = call(context, "listNodes", {"limit": 0})
    if as_json:
        print_json(data)
        return
    table = Table("ID", "Name", "Host", "State", "Heartbeat", "Version", "Jobs")
    for node in data.get("nodes", []):
        table.add_row(
            short_id(node["_id"]),
            node["name"],
            f"{node['host']} (pid {node['pid']})",
            _state(node).split(" ")[0],
            f"{duration(float(node['heartbeat_age']))} ago",
            node["version"],
            str(node["jobs"]),
        )
    if not data.get("nodes"):
        console().print("No node has registered on this catalog yet (every `snapkeep serve` does).")
        return
    console().print(table)


@nodes_group.command("show")
@click.argument("node")
@json_option
@click.pass_obj
def show_command(context: Context, node: str, as_json: bool) -> None:
    """One node, by ID or name."""
    found = call(context, "getNode", {"_id": node})
    if as_json:
        print_json(found)
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("ID", found["_id"])
    table.add_row("Name", found["name"])
    table.add_row("Host", f"{found['host']} (pid {found['pid']})")
    table.add_row("State", _state(found))
    table.add_row("Started", when(found["started"]))
    table.add_row("Heartbeat", f"{when(found['heartbeat'])} ({duration(float(found['heartbeat_age']))} ago)")
    table.add_row("Timeout", duration(float(found["timeout"])))
    table.add_row("Down since", when(found["down_since"]) if found.get("down_since") else NONE_SHOWN)
    table.add_row("Version", found["version"])
    table.add_row("API", Text(found.get("api") or NONE_SHOWN))
    if found.get("tls_fingerprint"):
        table.add_row("TLS SHA-256", Text(found["tls_fingerprint"]))  # no ":CD:" emoji
    table.add_row("Backup Jobs", str(found["jobs"]))
    console().print(table)


@nodes_group.command("remove")
@click.argument("node")
@click.pass_obj
def remove_command(context: Context, node: str) -> None:
    """Remove a node that is down and has no Backup Jobs left (its pending runs are aborted)."""
    removed = call(context, "deleteNode", {"_id": node})
    console().print(f"Node {removed['name']!r} ({removed['_id']}) removed from the catalog.")
