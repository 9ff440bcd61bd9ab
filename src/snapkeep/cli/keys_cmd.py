"""``snapkeep keys export JOB``: print the repository password of an encrypted job;
``snapkeep keys import JOB FILE``: store one that came from elsewhere.

With the export, ``snapkeep repo ... --password-file FILE`` opens the job's repository on any
destination, also on a new server without the catalog. Keep the export somewhere safe and away from
the backups. ``keys import`` takes the file as ``keys export`` printed it (for an orphan that a
reindex lists as "key required"): the password is stored only after it opened the job's repository
on one of this catalog's destinations; reindex the destination afterwards to list its backups.
"""

from __future__ import annotations

from pathlib import Path

import click

from snapkeep.cli.main import Context
from snapkeep.errors import ValidationError
from snapkeep.jobs import reindex
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.keystore import MAX_PASSWORD, KeyStore


@click.group("keys")
def keys_group() -> None:
    """Repository passwords of encrypted jobs."""


@keys_group.command("export")
@click.argument("job_id")
@click.pass_obj
def export_command(context: Context, job_id: str) -> None:
    """Print the repository password of encrypted job JOB_ID."""
    catalog = Catalog.open(context.home, context.catalog_url)
    try:
        click.echo(KeyStore(catalog).get(job_id))
    finally:
        catalog.close()


def read_key_file(path: Path) -> str:
    """The password in ``path`` (its first line). Raises ValidationError naming the file when it
    cannot be read, is too long or holds no password."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PASSWORD + 2)
    except OSError as error:
        raise ValidationError(field="FILE", problem=f"cannot read {path}: {error.strerror}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ValidationError(field="FILE", problem=f"{path} is not a key file (not ASCII text)") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(data) > MAX_PASSWORD + 1 or len(lines) != 1:
        raise ValidationError(field="FILE", problem=f"{path} must hold one password on one line")
    return lines[0]


@keys_group.command("import")
@click.argument("job_id")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def import_command(context: Context, job_id: str, file: Path) -> None:
    """Store the repository password of job JOB_ID from FILE (as 'keys export' prints it), after
    checking that it opens the job's repository on a destination."""
    password = read_key_file(file)
    catalog = Catalog.open(context.home, context.catalog_url)
    try:
        where = reindex.import_key(catalog, context.home, job_id, password)
    finally:
        catalog.close()
    click.echo(
        f"key of Backup Job {job_id} stored (it opens the repository on destination {where!r}); "
        "run 'snapkeep reindex DESTINATION' to list its backups"
    )
