"""``snapkeep backups list JOB_ID``: the backups of a job, newest first (``listBackups``)."""

from __future__ import annotations

import click
from rich.table import Table

from snapkeep.cli.humane import human_size
from snapkeep.cli.jobs_cmd import call
from snapkeep.cli.main import Context
from snapkeep.cli.output import STRUCTURES, console, json_option, named, print_json, short_id, when


@click.group("backups")
def backups_group() -> None:
    """Backups stored by runs."""


@backups_group.command("list")
@click.argument("job_id")
@json_option
@click.pass_obj
def list_command(context: Context, job_id: str, as_json: bool) -> None:
    """List the backups of backup job JOB_ID (its ID or a unique end of it)."""
    job = call(context, "getBackupJob", {"_id": job_id})
    data = call(context, "listBackups", {"limit": 0, "find": {"job_id": job["_id"]}})
    if as_json:
        print_json(data)
        return
    table = Table(title=f"Backups ({data['total']})")
    table.add_column("ID", no_wrap=True)
    for column in ("Created", "Destination", "Structure", "Size", "Encrypted", "Locked", "Tags"):
        table.add_column(column)
    for item in data["backups"]:
        table.add_row(
            short_id(item["_id"]),
            when(item["created"]),
            item["destination_name"],
            named(STRUCTURES, item["backup_structure"]),
            human_size(int(item["size"])),
            "yes" if item["encrypted"] else "",
            "yes" if item["locked"] else "",
            ", ".join(item["schedules"]),
        )
    console().print(table)
