"""``snapkeep backups list JOB_ID``: the backups of a job, newest first (``listBackups``)."""

from __future__ import annotations

import click
from rich.table import Table

from snapkeep.cli.jobs_cmd import call
from snapkeep.cli.main import Context
from snapkeep.cli.output import STRUCTURES, console, named, when


@click.group("backups")
def backups_group() -> None:
    """Backups stored by runs."""


@backups_group.command("list")
@click.argument("job_id")
@click.pass_obj
def list_command(context: Context, job_id: str) -> None:
    """List the backups of backup job JOB_ID."""
    data = call(context, "listBackups", {"limit": 0, "find": {"job_id": job_id}})
    table = Table(title=f"Backups ({data['total']})")
    for column in ("ID", "Created", "Destination", "Structure", "Size", "Encrypted", "Locked", "Tags"):
        table.add_column(column)
    for item in data["backups"]:
        table.add_row(
            item["_id"],
            when(item["created"]),
            item["destination_name"],
            named(STRUCTURES, item["backup_structure"]),
            str(item["size"]),
            "yes" if item["encrypted"] else "",
            "yes" if item["locked"] else "",
            ", ".join(item["schedules"]),
        )
    console().print(table)
