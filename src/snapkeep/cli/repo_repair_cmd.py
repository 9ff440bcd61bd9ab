"""``snapkeep repo repair index|snapshots``: make a damaged repository usable again.

    snapkeep repo repair index PATH [--json]
    snapkeep repo repair snapshots PATH [SNAPSHOT...] [--forget] [--dry-run] [--json]

``repair index`` writes the index again from the packs' trailers (after index files were lost or
damaged); ``repair snapshots`` saves, for each snapshot whose data is partly gone, a new snapshot
tagged ``repaired`` without the files and folders that cannot be restored, and deletes the
original only with ``--forget``. Both take the repository's exclusive lock. The engine side is
``engine.maintenance.repair``; the group is added to ``repo`` by ``cli.repo``.

Exit codes: 0 done; 8 (``repair snapshots``) some snapshot could not be salvaged or read; other
codes come from the error (``snapkeep.errors``), e.g. 7 wrong password, 9 locked.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from snapkeep.cli.repo_common import (
    emit_json,
    json_option,
    location_argument,
    make_progress,
    open_repository,
    password_option,
)
from snapkeep.cli.repo_location import LocationGroup
from snapkeep.engine.maintenance.check import open_without_index
from snapkeep.engine.maintenance.repair import repair_index, repair_snapshots
from snapkeep.errors import IntegrityError

__all__ = ["repair_group"]


@click.group("repair", cls=LocationGroup)
def repair_group() -> None:
    """Repair a damaged repository: rebuild its index, salvage its snapshots."""


@repair_group.command("index")
@location_argument
@password_option
@json_option
def repair_index_command(location: str, password_file: Path | None, as_json: bool) -> None:
    """Write the index of the repository at PATH again from its packs (lost or damaged index files)."""
    with open_repository(location, password_file, opener=open_without_index) as repository:
        report = repair_index(repository, progress=make_progress("repair index", as_json))
    if as_json:
        emit_json(report.to_dict())
        return
    for pack_id, why in report.unreadable_packs:
        click.echo(f"warning: pack {pack_id}: trailer unreadable, its blobs are not indexed: {why}", err=True)
    click.echo(
        f"indexed {report.blobs} blobs from {report.packs} packs ({report.blobs_recovered} listed in no "
        f"index file before); wrote {report.index_files_written} index files, "
        f"deleted {report.index_files_deleted}"
    )


@repair_group.command("snapshots")
@location_argument
@click.argument("snapshot_ids", nargs=-1, metavar="[SNAPSHOT]...")
@click.option("--forget", is_flag=True, help="Delete each original once its repaired copy is saved.")
@click.option("--dry-run", "-n", is_flag=True, help="Only show what would be removed.")
@password_option
@json_option
def repair_snapshots_command(
    location: str,
    snapshot_ids: tuple[str, ...],
    forget: bool,
    dry_run: bool,
    password_file: Path | None,
    as_json: bool,
) -> None:
    """Save copies of damaged snapshots without the files and folders whose data is gone."""
    with open_repository(location, password_file) as repository:
        report = repair_snapshots(repository, snapshot_ids=snapshot_ids, forget=forget, dry_run=dry_run)
    lost = [item for item in report.repaired if not item.salvageable]
    if as_json:
        emit_json(report.to_dict())
    else:
        for snapshot_id, why in report.unreadable:
            click.echo(f"error: snapshot {snapshot_id[:12]} is unreadable: {why}", err=True)
        for item in report.repaired:
            for path, why in item.removed:
                click.echo(f"snapshot {item.snapshot[:12]} {path or '/'}: {why}", err=True)
            if not item.salvageable:
                verdict = "cannot be salvaged (its root folder is unreadable)"
            elif dry_run:
                verdict = f"would be saved again without {len(item.removed)} entries"
            else:
                verdict = f"saved again as {item.new_snapshot and item.new_snapshot[:12]} (tag repaired)"
            if item.forgotten:
                verdict += "; original deleted"
            click.echo(f"snapshot {item.snapshot[:12]} {verdict}")
        click.echo(
            f"{report.snapshots} snapshots: {report.intact} intact, {len(report.repaired)} damaged, "
            f"{len(report.unreadable)} unreadable"
        )
    if lost or report.unreadable:
        sys.exit(IntegrityError.exit_code)
