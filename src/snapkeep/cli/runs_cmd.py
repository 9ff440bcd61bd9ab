"""``snapkeep runs list`` and ``snapkeep runs execute GROUP``: queue groups for people.

``runs list`` shows the queue (``listQueueGroups``). ``runs execute`` runs a Pending group (a queued
backup, restore or download) here in the foreground; when the service has already claimed it, it
waits for the service to finish it. Exit 0 when the group completed.
"""

from __future__ import annotations

import click
from rich.table import Table

from snapkeep.cli.humane import human_size
from snapkeep.cli.jobs_cmd import call
from snapkeep.cli.main import Context
from snapkeep.cli.output import console, json_option, print_json, short_id, when
from snapkeep.cli.run_cmd import execute_in_foreground, exit_with
from snapkeep.clock import SYSTEM
from snapkeep.jobs import queue
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.codes import FINISHED, QueueStatus
from snapkeep.jobs.queue import claim, worker_identity

POLL_SECONDS = 0.5


#: final statuses of a run that did not complete: its log says why
NOT_COMPLETED = frozenset(
    {QueueStatus.PARTIAL, QueueStatus.FAILED, QueueStatus.ABORTED, QueueStatus.NEVER_FINISHED}
)


@click.group("runs")
def runs_group() -> None:
    """Runs (queue groups): backups, restores, downloads."""


@runs_group.command("list")
@click.option("--limit", default=20, show_default=True, help="At most this many (0 = all).")
@json_option
@click.pass_obj
def list_command(context: Context, limit: int, as_json: bool) -> None:
    """List queue groups, newest first."""
    data = call(context, "listQueueGroups", {"limit": limit})
    if as_json:
        print_json(data)
        return
    table = Table(title=f"Runs ({data['total']})")
    table.add_column("ID", no_wrap=True)
    for column in ("Type", "Job", "Status", "Created", "Ended", "Files", "Bytes", "Log"):
        table.add_column(column, no_wrap=column == "Log")
    failed = False
    for group in data["groups"]:
        progress = group["progress"]
        log_id = str(group["data"].get("log_id") or "")
        failed = failed or (group["status"] in NOT_COMPLETED and bool(log_id))
        table.add_row(
            short_id(group["_id"]),
            group["type_name"],
            str(group["data"].get("name", "")),
            group["status_name"],
            when(group["created"]),
            when(group["ended"]),
            str(progress.get("completed_files", 0)),
            human_size(int(progress.get("completed_bytes", 0))),
            short_id(log_id) if log_id else "-",
        )
    console().print(table)
    if failed:
        click.echo(f"why a run did not complete: snapkeep --home {context.home} logs show LOG", err=True)


@runs_group.command("execute")
@click.argument("group_id")
@click.pass_obj
def execute_command(context: Context, group_id: str) -> None:
    """Execute pending queue group GROUP_ID here (or wait for the service running it)."""
    catalog = Catalog.open(context.home, context.catalog_url)
    try:
        with catalog.transaction() as tx:
            group = queue.get_group(tx, group_id)
            mine = claim(tx, group_id, worker=worker_identity())
        if mine:
            status = execute_in_foreground(context, catalog, group_id, f"{group['type_name']} {group_id}")
        else:
            while group["status"] not in FINISHED:
                SYSTEM.sleep(POLL_SECONDS)
                with catalog.transaction(write=False) as tx:
                    group = queue.get_group(tx, group_id)
            status = group["status"]
            click.echo(f"{group['type_name']} {group_id}: {group['status_name']} (status {status})")
    finally:
        catalog.close()
    exit_with(status)
