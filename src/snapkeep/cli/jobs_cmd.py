"""``snapkeep jobs list`` and ``snapkeep jobs show ID``: backup jobs as tables for people.

Both call the dispatcher in-process (``listBackupJobs``, ``getBackupJob``) as the root caller, so
they show exactly what the API answers; ``snapkeep api`` is the door for scripts.
"""

from __future__ import annotations

from typing import Any

import click

from snapkeep.api.dispatch import Api, Caller
from snapkeep.cli.main import Context
from snapkeep.cli.output import console, job_table, jobs_table, json_option, print_json, require_success
from snapkeep.jobs.catalog import Catalog


def call(context: Context, function: str, params: dict[str, Any]) -> Any:
    """Call one function over the catalog of ``context``; returns ``data``. Raises CallFailed."""
    catalog = Catalog.open(context.home, context.catalog_url)
    try:
        answer = Api(catalog).call(function, params, Caller())
    finally:
        catalog.close()
    return require_success(answer)


@click.group("jobs")
def jobs_group() -> None:
    """Backup jobs, for people (use `snapkeep api` in scripts)."""


@jobs_group.command("list")
@click.option("--filter", "text", default=None, help="Only jobs whose name contains TEXT (case-insensitive).")
@json_option
@click.pass_obj
def list_command(context: Context, text: str | None, as_json: bool) -> None:
    """List every backup job: type, structure, destinations, schedules, runs, state."""
    params: dict[str, Any] = {"limit": 0, "sort": {"name": 1}}
    if text:
        params["filter"] = text
    data = call(context, "listBackupJobs", params)
    if as_json:
        print_json(data)
        return
    console().print(jobs_table(data.get("jobs", []), data.get("total")))


@jobs_group.command("show")
@click.argument("job_id")
@click.pass_obj
def show_command(context: Context, job_id: str) -> None:
    """Show one backup job in full."""
    console().print(job_table(call(context, "getBackupJob", {"_id": job_id})))
