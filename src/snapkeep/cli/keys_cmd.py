"""``snapkeep keys export JOB``: print the repository password of an encrypted job.

With it, ``snapkeep repo ... --password-file FILE`` opens the job's repository on any destination,
also on a new server without the catalog. Keep the export somewhere safe and away from the backups.
"""

from __future__ import annotations

import click

from snapkeep.cli.main import Context
from snapkeep.jobs.keystore import KeyStore


@click.group("keys")
def keys_group() -> None:
    """Repository passwords of encrypted jobs."""


@keys_group.command("export")
@click.argument("job_id")
@click.pass_obj
def export_command(context: Context, job_id: str) -> None:
    """Print the repository password of encrypted job JOB_ID."""
    click.echo(KeyStore(context.home).get(job_id))
