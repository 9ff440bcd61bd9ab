"""Options shared by ``snapkeep restore`` and ``snapkeep repo restore`` (docs/restores.md).

``overwrite_option(default)``: what happens to files already in the target (always, if-changed,
if-newer, never); ``dry_run_option``: list what would change and write nothing;
``special_files_option``: create fifos, device nodes and set-user/group-ID bits (left out by
default, whatever the repository). ``print_changes`` prints a result's counts and listed paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from snapkeep.engine.fs.restore_policy import POLICIES, Changes

F = TypeVar("F", bound=Callable[..., Any])


def overwrite_option(default: str | None) -> Callable[[F], F]:
    shown = f" (default {default})" if default else ""
    return click.option(
        "--overwrite",
        type=click.Choice(POLICIES),
        default=default,
        help=f"Files already in the target: always, if-changed, if-newer or never{shown}.",
    )


dry_run_option = click.option(
    "--dry-run",
    is_flag=True,
    help="List what would be written, overwritten, skipped or removed; write nothing.",
)
special_files_option = click.option(
    "--special-files",
    is_flag=True,
    help="Create fifos, device nodes and set-user/group-ID bits (left out by default).",
)


def print_changes(changes: Changes, *, dry_run: bool) -> None:
    """The listed ``(action, path)`` entries (every one in a dry run, else only what touched
    existing files), then the counts."""
    for action, path in changes.entries:
        click.echo(f"{action:9} {path}")
    if changes.omitted:
        click.echo(f"... and {changes.omitted} more")
    click.echo(f"{'dry run, would be: ' if dry_run else ''}{changes.summary()}")
