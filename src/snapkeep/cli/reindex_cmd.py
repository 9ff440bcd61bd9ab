"""``snapkeep reindex DESTINATION``: rebuild a destination's backups list now, in the foreground.

DESTINATION is a destination's ID or name. The reindex is a queue group of type 8 like the one
``reindexDestination`` queues, executed here by the same runner the service uses (``listQueueGroups``
shows it, its log says what was found). Ctrl-C stops it between repositories. Exit 0 when it
completed, 1 otherwise (101: some repositories need a key or had damage; see the log).
"""

from __future__ import annotations

import click

from snapkeep.cli.main import Context
from snapkeep.cli.run_cmd import execute_in_foreground, exit_with
from snapkeep.jobs import reindex
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.queue import claim, worker_identity
from snapkeep.jobs.users import ROOT_ID


@click.command("reindex")
@click.argument("destination")
@click.pass_obj
def reindex_command(context: Context, destination: str) -> None:
    """Rebuild the backups list of DESTINATION (ID or name) from what it holds."""
    catalog = Catalog.open(context.home, context.catalog_url)
    try:
        with catalog.transaction() as tx:
            group = reindex.enqueue(tx, destination, owner=ROOT_ID)
            # ours from the start: a service never picks it up
            claim(tx, group["_id"], worker=worker_identity())
        name = group["data"].get("name") or destination
        status = execute_in_foreground(
            context, catalog, group["_id"], f"Reindex of {name!r}", unit="repositories"
        )
    finally:
        catalog.close()
    exit_with(status)
