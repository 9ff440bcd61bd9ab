"""``snapkeep logs list`` and ``snapkeep logs show ID [--follow]``: run logs for people (issue 14).

Both call the dispatcher in-process as root (``listLogs``, ``getLog``, ``listLogItems``), so IDs may
be abbreviated like everywhere (the last 8 characters that ``logs list`` shows). ``--follow`` prints
the lines of a log that is still being written as they come, and returns when its run ends.
"""

from __future__ import annotations

import click
from rich.table import Table

from snapkeep.cli.humane import human_duration
from snapkeep.cli.jobs_cmd import call
from snapkeep.cli.main import Context
from snapkeep.cli.output import NONE_SHOWN, console, json_option, print_json, short_id, when
from snapkeep.clock import SYSTEM
from snapkeep.jobs.codes import LogStatus

#: seconds between two looks at a followed log
FOLLOW_EVERY = 0.5
PROCESSING = int(LogStatus.PROCESSING)


@click.group("logs")
def logs_group() -> None:
    """Run logs: what each backup, restore and download did."""


@logs_group.command("list")
@click.option("--limit", default=20, show_default=True, help="At most this many (0 = all).")
@click.option("--job", "job_id", default=None, help="Only the logs of this Backup Job (ID or its end).")
@json_option
@click.pass_obj
def list_command(context: Context, limit: int, job_id: str | None, as_json: bool) -> None:
    """List run logs, newest first."""
    params: dict[str, object] = {"limit": limit}
    if job_id:
        params["job_id"] = job_id
    data = call(context, "listLogs", params)
    if job_id and not data["total"]:
        call(context, "getBackupJob", {"_id": job_id})  # an unknown job is an error, not an empty table
    if as_json:
        print_json(data)
        return
    table = Table(title=f"Logs ({data['total']})")
    for column in ("ID", "Type", "Name", "Status", "Started", "Took"):
        table.add_column(column, no_wrap=column == "ID")
    for log in data["logs"]:
        table.add_row(
            short_id(log["_id"]),
            log["type_name"],
            log.get("name") or NONE_SHOWN,
            log["status_name"],
            when(log.get("start_time")),
            human_duration(log.get("execution_time")),
        )
    console().print(table)


@logs_group.command("show")
@click.argument("log_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the run ends.")
@click.pass_obj
def show_command(context: Context, log_id: str, follow: bool) -> None:
    """Print a log's lines (LOG_ID: its ID or a unique end of it, as `logs list` shows)."""
    log = call(context, "getLog", {"_id": log_id})
    click.echo(f"{log['type_name']} {log.get('name') or ''}: {log['status_name']} (log {log['_id']})")
    printed = 0
    while True:
        items = call(context, "listLogItems", {"log_id": log["_id"], "limit": 0})["items"]
        for item in items[printed:]:
            click.echo(f"{item['created']} {item['level_name']:<8} {item['message']}")
        printed = len(items)
        if not follow or call(context, "getLog", {"_id": log["_id"]})["status"] != PROCESSING:
            break
        SYSTEM.sleep(FOLLOW_EVERY)
    if follow:
        final = call(context, "getLog", {"_id": log["_id"]})
        click.echo(f"ended: {final['status_name']}")
