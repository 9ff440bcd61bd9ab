"""``snapkeep keys export JOB``: print the repository password of an encrypted job;
``snapkeep keys import JOB FILE``: store one that came from elsewhere.

With the export, ``snapkeep repo ... --password-file FILE`` opens the job's repository on any
destination, also on a new server without the catalog. Keep the export somewhere safe and away from
the backups. ``keys import`` takes the file as ``keys export`` printed it (for an orphan that a
reindex lists as "key required"): the password is stored only after it opened the job's repository
on one of this catalog's destinations; reindex the destination afterwards to list its backups.

Job keys live in the catalog, sealed with the master key (docs/secrets.md). ``snapkeep keys
seal-password ENGINE`` seals a database password for ``config.toml`` (``[databases.ENGINE]
password = "sk-sealed:..."``) with the same master key; it reads the password from standard input
(or asks on a terminal), never from an argument other users could see in the process list.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from snapkeep.cli.main import Context
from snapkeep.errors import ValidationError
from snapkeep.ids import is_id
from snapkeep.jobs import reindex, sealing
from snapkeep.jobs.accounts import password_purpose
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
        with catalog.transaction(write=False) as tx:
            job = tx.get("jobs", job_id) if is_id(job_id) else None
        if job is not None and not job.get("encrypted"):
            raise click.ClickException(
                f"Backup Job {job['name']!r} ({job_id}) is not encrypted: its backups need no key"
            )
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


@keys_group.command("seal-password")
@click.argument("engine", type=click.Choice(["mariadb", "postgresql"]))
@click.pass_obj
def seal_password_command(context: Context, engine: str) -> None:
    """Seal a database password for config.toml's [databases.ENGINE] with the master key."""
    if sys.stdin.isatty():
        password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        lines = sys.stdin.read(MAX_PASSWORD + 2).splitlines()
        password = lines[0] if lines else ""
    if not password or len(password) > MAX_PASSWORD:
        raise ValidationError(field="password", problem=f"must be 1-{MAX_PASSWORD} characters on one line")
    catalog = Catalog.open(context.home, context.catalog_url)
    try:
        master = sealing.master_of(catalog.engine)  # the catalog's key, never a second one
    finally:
        catalog.close()
    click.echo(f'password = "{master.seal(password, password_purpose(engine))}"')
