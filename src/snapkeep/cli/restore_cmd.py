"""``snapkeep restore BACKUP_ID (--target DIR | --in-place) [--path P]...``: restore a backup in the
foreground.

Queues a restore (the same queue group ``addQueueItems type=2`` makes) and executes it here with a
progress bar. A target is required (docs/restores.md): ``--target DIR`` restores below DIR
(``--overwrite always`` by default: the target is usually new); ``--in-place`` writes back over the
original paths (``--overwrite if-changed`` by default: identical files are not rewritten) after a
confirmation on a terminal, or with ``--yes`` (required without a terminal). ``--path``
(repeatable) restores only those paths as they were backed up; ``--replace`` is
``options[merge]=0``; ``--dry-run`` prints what would change and writes nothing; ``--special-files``
creates fifos, device nodes and set-user/group-ID bits (left out by default).
Exit 0 when the restore completed, 1 otherwise, 2 for a usage error.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from snapkeep.cli.main import Context
from snapkeep.cli.restore_options import dry_run_option, overwrite_option, special_files_option
from snapkeep.cli.run_cmd import execute_in_foreground, exit_with
from snapkeep.engine.fs.restore_policy import ALWAYS, IF_CHANGED
from snapkeep.jobs import abbreviations, queue, restores
from snapkeep.jobs.access import ROOT_PRINCIPAL
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.codes import QueueType
from snapkeep.jobs.logs import log_text
from snapkeep.jobs.queue import claim, worker_identity
from snapkeep.jobs.users import ROOT_ID

#: The lines of a restore's log that a dry run prints: the counts and the listed paths.
_CHANGE_LINE = re.compile(
    r"(dry run, would be: .*|  (?:write|overwrite|skip|remove) .*|  \.\.\. and \d+ more)$"
)


@click.command("restore")
@click.argument("backup_id")
@click.option(
    "--target", type=click.Path(file_okay=False, path_type=Path), default=None, help="Restore below DIR."
)
@click.option("--in-place", is_flag=True, help="Restore over the original paths (asks first; --yes skips).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before an --in-place restore.")
@click.option("--path", "paths", multiple=True, help="Only this path (as backed up); repeatable.")
@click.option("--replace", is_flag=True, help="Remove what is at each restored path first (merge=0).")
@overwrite_option(None)
@dry_run_option
@special_files_option
@click.pass_obj
def restore_command(
    context: Context,
    backup_id: str,
    target: Path | None,
    in_place: bool,
    yes: bool,
    paths: tuple[str, ...],
    replace: bool,
    overwrite: str | None,
    dry_run: bool,
    special_files: bool,
) -> None:
    """Restore backup BACKUP_ID, whole or only --path P, below --target DIR or --in-place."""
    if target is None and not in_place:
        raise click.UsageError(
            "a target is required: --target DIR (restore below DIR) or --in-place (over the original paths)"
        )
    if target is not None and in_place:
        raise click.UsageError("--target and --in-place exclude each other: choose one")
    if in_place and not dry_run and not yes:
        if not _interactive():
            raise click.UsageError(
                "--in-place without a terminal needs --yes (it overwrites the original paths)"
            )
        shown = ", ".join(paths) or "everything it holds"
        if not click.confirm(
            f"Restore backup {backup_id} ({shown}) over the original paths (overwrite "
            f"{overwrite or IF_CHANGED})?"
        ):
            click.echo("nothing restored", err=True)
            sys.exit(1)  # a "no" is an answer, not an interruption (130 is for Ctrl-C)
    catalog = Catalog.open(context.home, context.catalog_url)
    try:
        options = {
            "target": str(target.absolute()) if target else "",
            "merge": 0 if replace else 1,
            "overwrite": overwrite or (IF_CHANGED if in_place else ALWAYS),
            "dry_run": int(dry_run),
            "special_files": int(special_files),
        }
        with catalog.transaction() as tx:
            if abbreviations.is_abbreviation(backup_id):  # a unique start or end of the backup's ID
                backup_id = abbreviations.resolve(tx, ROOT_PRINCIPAL, "backups", backup_id, "BACKUP_ID")
            group = restores.enqueue(
                tx,
                group_type=QueueType.RESTORE,
                backup_ids=[backup_id],
                files={backup_id: list(paths)},
                options=options,
                owner=ROOT_ID,
            )
            claim(tx, group["_id"], worker=worker_identity())
        label = f"{'Dry run of the restore' if dry_run else 'Restore'} of backup {backup_id}"
        status = execute_in_foreground(context, catalog, group["_id"], label)
        if dry_run:
            with catalog.transaction(write=False) as tx:
                log_id = str(queue.get_group(tx, group["_id"])["data"].get("log_id") or "")
            print_log_changes(context, log_id)
    finally:
        catalog.close()
    exit_with(status)


def _interactive() -> bool:
    """Whether a person can answer the confirmation (standard input is a terminal)."""
    return sys.stdin.isatty()


def print_log_changes(context: Context, log_id: str) -> None:
    """Print the dry run's lines of the run log: each path with its action, then the counts."""
    if not log_id:
        return
    lines = []
    for line in log_text(context.home, log_id).splitlines():
        found = _CHANGE_LINE.search(line)
        if found:
            lines.append(found.group(1))
    summaries = [line for line in lines if line.startswith("dry run")]
    for line in lines:
        if not line.startswith("dry run"):
            click.echo(line.strip())
    for line in summaries:
        click.echo(line)
