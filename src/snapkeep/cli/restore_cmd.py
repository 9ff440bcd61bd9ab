"""``snapkeep restore BACKUP_ID [--target DIR] [--path P]...``: restore a backup in the foreground.

Queues a restore (the same queue group ``addQueueItems type=2`` makes) and executes it here with a
progress bar. Without ``--target`` files go back to their original place; ``--path`` (repeatable)
restores only those paths as they were backed up. ``--replace`` is ``options[merge]=0``.
Exit 0 when the restore completed, 1 otherwise.
"""

from __future__ import annotations

from pathlib import Path

import click

from snapkeep.cli.main import Context
from snapkeep.cli.run_cmd import execute_in_foreground, exit_with
from snapkeep.jobs import restores
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.codes import QueueType
from snapkeep.jobs.queue import claim, worker_identity


@click.command("restore")
@click.argument("backup_id")
@click.option(
    "--target", type=click.Path(file_okay=False, path_type=Path), default=None, help="Restore below DIR."
)
@click.option("--path", "paths", multiple=True, help="Only this path (as backed up); repeatable.")
@click.option("--replace", is_flag=True, help="Remove what is at each restored path first (merge=0).")
@click.pass_obj
def restore_command(
    context: Context, backup_id: str, target: Path | None, paths: tuple[str, ...], replace: bool
) -> None:
    """Restore backup BACKUP_ID, whole or only --path P, to its place or --target DIR."""
    catalog = Catalog.open(context.home, context.catalog_url)
    try:
        options = {"target": str(target.absolute()) if target else "", "merge": 0 if replace else 1}
        with catalog.transaction() as tx:
            group = restores.enqueue(
                tx,
                group_type=QueueType.RESTORE,
                backup_ids=[backup_id],
                files={backup_id: list(paths)},
                options=options,
                owner="root",
            )
            claim(tx, group["_id"], worker=worker_identity())
        status = execute_in_foreground(context, catalog, group["_id"], f"Restore of backup {backup_id}")
    finally:
        catalog.close()
    exit_with(status)
