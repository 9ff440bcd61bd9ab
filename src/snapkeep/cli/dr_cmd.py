"""``snapkeep dr export FILE`` / ``snapkeep dr import FILE``: what a new server needs to take over.

The export holds the jobs, destinations (with their secrets), schedules, hooks, account filters,
settings, every job key and the master key the catalog's secrets are sealed with (docs/secrets.md),
sealed with a passphrase (``jobs.dr``); the file is 0600. Import installs the master key in a home
that has none (or seals every secret again with the home's own key). The
passphrase comes from ``SNAPKEEP_DR_PASSPHRASE``, from ``--passphrase-file`` (its first line), or is
asked for on a terminal (twice when exporting); never from an argument, which other users could
read in the process list. Import fills an empty data directory and keeps every ID; then reindex each
destination (``snapkeep reindex DESTINATION``) to list its backups. See docs/disaster-recovery.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from snapkeep.cli.humane import plural
from snapkeep.cli.main import Context
from snapkeep.cli.output import step_bar
from snapkeep.errors import ValidationError
from snapkeep.jobs import dr, sealing
from snapkeep.jobs.catalog import Catalog

ENVIRONMENT = "SNAPKEEP_DR_PASSPHRASE"
#: an exported kind of object as one of it is called
NOUNS = {
    "destinations": "destination",
    "schedules": "schedule",
    "hooks": "hook",
    "filters": "account filter",
    "account_filters": "account filter",
    "jobs": "job",
}
MAX_PASSPHRASE_FILE = 4096


def passphrase(file: Path | None, *, confirm: bool) -> str:
    """The passphrase: ``--passphrase-file``, else the environment, else asked on a terminal.
    Raises ValidationError when none can be had."""
    if file is not None:
        try:
            with file.open("rb") as handle:
                data = handle.read(MAX_PASSPHRASE_FILE + 1)
        except OSError as error:
            raise ValidationError(
                field="--passphrase-file", problem=f"cannot read {file}: {error.strerror}"
            ) from None
        if len(data) > MAX_PASSPHRASE_FILE:
            raise ValidationError(field="--passphrase-file", problem=f"{file} is too long for a passphrase")
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise ValidationError(field="--passphrase-file", problem=f"{file} is not UTF-8 text") from None
        return lines[0] if lines else ""
    if os.environ.get(ENVIRONMENT):
        return os.environ[ENVIRONMENT]
    if not sys.stdin.isatty():
        raise ValidationError(
            field="passphrase",
            problem=f"set {ENVIRONMENT} or give --passphrase-file (no terminal to ask on)",
        )
    value: str = click.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm)
    return value


def described(counts: dict[str, int]) -> str:
    """``1 destination, 0 schedules, ...``: how many of each kind of object."""
    return ", ".join(plural(count, NOUNS.get(kind, kind)) for kind, count in counts.items())


PASSPHRASE_FILE = click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help=f"Read the passphrase from this file's first line (else ${ENVIRONMENT}, else a prompt).",
)


@click.group("dr")
def dr_group() -> None:
    """Disaster recovery: export this server's setup, import it on a new one."""


@dr_group.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@PASSPHRASE_FILE
@click.option("--force", is_flag=True, help="Replace FILE when it exists.")
@click.pass_obj
def export_command(context: Context, file: Path, passphrase_file: Path | None, force: bool) -> None:
    """Write jobs, destinations, schedules, hooks, filters, settings, job keys and the master key to
    FILE, sealed."""
    secret = dr.check_passphrase(passphrase(passphrase_file, confirm=True))
    with step_bar("dr export", 3) as step:
        step("reading the catalog")
        catalog = Catalog.open(context.home, context.catalog_url)
        try:
            state = dr.export_state(catalog, context.home)
        finally:
            catalog.close()
        step("sealing (Argon2id key from the passphrase, then AES-GCM)")
        sealed = dr.seal(state, secret)
        step(f"writing {file}")
        dr.write_file(file, sealed, replace=force)
    counts = described({kind: len(items) for kind, items in state["objects"].items()})
    master = ", the master key" if "master_key" in state else ""
    click.echo(
        f"exported {counts}, {plural(len(state['settings']), 'setting')}, "
        f"{plural(len(state['keys']), 'job key')}{master} "
        f"to {file}"
    )
    click.echo("keep the file and its passphrase apart from the backups: together they open every one")


@dr_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@PASSPHRASE_FILE
@click.pass_obj
def import_command(context: Context, file: Path, passphrase_file: Path | None) -> None:
    """Read FILE (from 'dr export') into this empty data directory, keeping every ID."""
    secret = passphrase(passphrase_file, confirm=False)
    with step_bar("dr import", 3) as step:
        step(f"reading {file}")
        data = dr.read_file(file)
        step("opening (Argon2id key from the passphrase, then AES-GCM)")
        state = dr.open_sealed(data, secret, what=str(file))
        step("writing the catalog")
        catalog = Catalog.open(context.home, context.catalog_url)
        try:
            done = dr.import_state(catalog, context.home, state)
        finally:
            catalog.close()
    objects = described(done.counts)
    click.echo(
        f"imported {objects}, {plural(done.settings, 'setting')}, {plural(done.keys, 'job key')} "
        f"into {context.home}"
    )
    if "master_key" in state:
        click.echo(f"secrets sealed with the master key {sealing.key_path(context.home)}: back it up apart")
    click.echo("next: 'snapkeep reindex DESTINATION' for each destination lists its backups")
