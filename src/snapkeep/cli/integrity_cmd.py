"""``snapkeep integrity run [--destination ID] [--all]`` and ``snapkeep integrity history``.

``run`` runs the integrity check now, in the foreground (``jobs.integrity.run_check``): the same
rotating share the service reads each day, or with ``--all`` every pack and archive whole, without
the ``bytes_per_run`` cap. It marks damaged backups and raises the same alerts as the scheduled run.
Exit 0 when nothing is damaged and every repository was read, 8 (an integrity error's code) when
damage was found, 1 when a repository could not be read. There is no API function for this: API.md
has none that fits (JetBackup's integrity check is not part of the function list it names), so the
check is started by the service's daily slot or by this command. ``--json`` prints the report.
"""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table

from snapkeep.cli.humane import human_size
from snapkeep.cli.main import Context
from snapkeep.cli.output import console, when
from snapkeep.errors import IntegrityError
from snapkeep.jobs import integrity, nodes
from snapkeep.jobs.catalog import Catalog

EXIT_DAMAGE = IntegrityError.exit_code
EXIT_UNREADABLE = 1


def report_table(report: integrity.IntegrityReport) -> Table:
    """One row per repository: what was read, what was found."""
    table = Table(title=f"Integrity check {report.id} ({'scheduled' if report.scheduled else 'by hand'})")
    for column in (
        "Destination",
        "Job",
        "Objects",
        "Stored",
        "Read",
        "Bytes read",
        "Damaged",
        "Backups hurt",
    ):
        table.add_column(column)
    for result in report.repositories:
        hurt = ", ".join(result.damaged_backups) or "-"
        damaged = str(len(result.damaged)) if not result.error else f"not read: {result.error}"
        table.add_row(
            result.destination_name,
            result.job_name,
            str(result.objects),
            human_size(result.stored_bytes),
            str(result.read),
            human_size(result.bytes_read),
            damaged,
            hurt,
        )
    return table


@click.group("integrity")
def integrity_group() -> None:
    """The integrity check: read stored backups back to find damage before a restore needs them."""


@integrity_group.command("run")
@click.option(
    "--destination", "destination_id", default=None, help="Only the repositories on this destination ID."
)
@click.option(
    "--all", "everything", is_flag=True, help="Read every pack and archive now, without the per-run cap."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def run_command(context: Context, destination_id: str | None, everything: bool, as_json: bool) -> None:
    """Run the integrity check now (the daily share, or everything with --all)."""
    catalog = Catalog.open(context.home, context.catalog_url)
    try:
        # on a catalog shared with other nodes, their Local destinations are their servers' disks:
        # their own nodes check them (docs/nodes.md)
        me = nodes.local_id(context.home)
        with catalog.transaction(write=False) as tx:
            shared_catalog = bool(set(nodes.names(tx)) - {me})
        report = integrity.run_check(
            catalog,
            context.home,
            destination_id=destination_id,
            everything=everything,
            node=me if shared_catalog else None,
        )
    finally:
        catalog.close()
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        console().print(report_table(report))
        for result in report.repositories:
            for name, reason in sorted(result.damaged.items()):
                console().print(
                    f"[red]damaged[/red] {result.destination_name} / {result.job_name}: {name}: {reason}"
                )
            if result.cap_too_small:
                console().print(
                    f"[yellow]warning[/yellow] {result.destination_name} / {result.job_name}: bytes_per_run "
                    "cannot cover this repository within cycle_days"
                )
    if any(result.damaged for result in report.repositories):
        sys.exit(EXIT_DAMAGE)
    if any(result.error for result in report.repositories):
        sys.exit(EXIT_UNREADABLE)


@integrity_group.command("history")
@click.option("--limit", default=10, show_default=True, help="At most this many runs.")
@click.pass_obj
def history_command(context: Context, limit: int) -> None:
    """The last runs of the integrity check, newest first."""
    catalog = Catalog.open(context.home, context.catalog_url)
    try:
        with catalog.transaction(write=False) as tx:
            runs = integrity.latest_runs(tx, limit)
    finally:
        catalog.close()
    table = Table(title="Integrity check runs")
    for column in ("ID", "Started", "Ended", "Scheduled", "Repositories", "Bytes read", "Damaged objects"):
        table.add_column(column)
    for run in runs:
        repositories = run.get("repositories", [])
        table.add_row(
            str(run.get("_id", "")),
            when(run.get("started")),
            when(run.get("ended")),
            "yes" if run.get("scheduled") else "no",
            str(len(repositories)),
            human_size(sum(int(item.get("bytes_read", 0)) for item in repositories)),
            str(sum(len(item.get("damaged", {})) for item in repositories)),
        )
    console().print(table)
