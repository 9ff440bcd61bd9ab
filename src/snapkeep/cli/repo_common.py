"""What every ``snapkeep repo`` command shares: the location argument, the password and JSON
options, opening a location's store with the group's credentials, opening a repository, JSON and
progress output.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.errors import WrongPasswordError
from snapkeep.storage.base import Store
from snapkeep.storage.locations import NO_CREDENTIALS, open_location

F = TypeVar("F", bound=Callable[..., Any])
PASSWORD_ENV = "SNAPKEEP_PASSWORD"
#: Secrets for sftp:// locations read only from the environment (never an argument other users could see).
SFTP_PASSWORD_ENV = "SNAPKEEP_SFTP_PASSWORD"
SFTP_PASSPHRASE_ENV = "SNAPKEEP_SFTP_PASSPHRASE"
_CREDENTIALS = "snapkeep.repo.credentials"
EXIT_INCOMPLETE = 3


# --- shared pieces for every repo sub-command -----------------------------------------------------


def location_argument(function: F) -> F:
    """The repository location: a path, or an sftp://, s3:// (s3+http://) or memory:// URL."""
    return click.argument("location", metavar="PATH")(function)


def password_option(function: F) -> F:
    return click.option(
        "--password-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help=f"Read the repository password from this file (else ${PASSWORD_ENV}).",
    )(function)


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(function)


def read_password(password_file: Path | None) -> str | None:
    """The password from ``--password-file`` (first line) or ``$SNAPKEEP_PASSWORD``; ``None`` if neither."""
    if password_file is not None:
        text = password_file.read_text(encoding="utf-8")
        return text.splitlines()[0] if text.strip() else ""
    return os.environ.get(PASSWORD_ENV)


def open_location_store(location: str) -> Store:
    """Open the store at ``location`` with the credentials given to ``snapkeep repo`` (the caller
    closes it). Raises ``ConfigError`` for a bad location or missing credentials, ``StorageError``."""
    context = click.get_current_context(silent=True)
    credentials = context.meta.get(_CREDENTIALS, NO_CREDENTIALS) if context is not None else NO_CREDENTIALS
    return open_location(location, credentials)


@contextmanager
def open_repository(
    location: str,
    password_file: Path | None,
    *,
    opener: Callable[..., Repository] = Repository.open,
) -> Iterator[Repository]:
    """Open the repository at ``location`` with ``opener`` (``maintenance.check.open_without_index``
    for a repository whose index may be damaged); closes it (and its store) afterwards.

    Raises ``RepositoryNotFoundError`` and ``WrongPasswordError`` (exit codes 6 and 7)."""
    store = open_location_store(location)
    try:
        password = read_password(password_file)
        try:
            repository = opener(store, password=password)
        except WrongPasswordError:
            if password is not None or not sys.stdin.isatty():
                raise
            # restic's habit: no --password-file and no $SNAPKEEP_PASSWORD, a person at a terminal
            password = click.prompt(f"password for the repository at {location}", hide_input=True)
            repository = opener(store, password=password)
        try:
            yield repository
        finally:
            repository.close()
    finally:
        store.close()


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def snapshot_document(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "id": snapshot.id,
        "short_id": snapshot.short_id,
        "time": snapshot.time.isoformat(),
        "hostname": snapshot.hostname,
        "paths": snapshot.paths,
        "tags": snapshot.tags,
        "tree": snapshot.tree,
        "parent": snapshot.parent,
        "job_id": snapshot.job_id,
        "account": snapshot.account,
        "structure": snapshot.structure,
        "stats": snapshot.stats,
    }


class _BarProgress(Progress):
    """Engine callbacks drawn as a rich progress bar on stderr (terminals only)."""

    def __init__(self, description: str) -> None:
        # rich is imported only when a terminal shows the bar: piped runs start faster.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[files]} files"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.files = 0
        self.task = self.bar.add_task(description, total=None, files=0)
        self.bar.start()

    def on_start(self, total_files: int | None, total_bytes: int | None) -> None:
        self.bar.update(self.task, total=total_bytes)

    def on_file(self, path: str, size: int) -> None:
        self.files += 1
        if self.files % 64 == 0:
            self.bar.update(self.task, files=self.files)

    def on_bytes(self, count: int) -> None:
        self.bar.advance(self.task, count)

    def on_finish(self) -> None:
        self.bar.update(self.task, files=self.files)
        self.bar.stop()


def make_progress(description: str, as_json: bool) -> Progress:
    """A progress bar when stderr is a terminal and the output is not JSON; silence otherwise."""
    if not as_json and sys.stderr.isatty():
        return _BarProgress(description)
    return Progress()


# --- commands ---------------------------------------------------------------------------------------
