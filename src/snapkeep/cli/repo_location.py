"""``-r/--repo`` and ``$SNAPKEEP_REPOSITORY`` for ``snapkeep repo``, as restic users expect.

Every ``repo`` command takes the repository as its first argument (``PATH``). These groups let it come
from elsewhere instead:

- ``-r/--repo LOCATION`` (before or after the command name, ``snapkeep repo -r X snapshots`` or
  ``snapkeep repo snapshots -r X``): the location; the ``PATH`` argument is then left out. Given both
  with different values is refused, naming both.
- ``$SNAPKEEP_REPOSITORY``: the location when the command's first argument is not one. A first argument
  that is a location (a URL, or a folder holding a repository) wins, as an explicit value wins over the
  environment in restic.

The groups insert the location as the command's first argument before click parses it, so every
command keeps one signature and its own help.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

REPOSITORY_ENV = "SNAPKEEP_REPOSITORY"
_LOCATION = "snapkeep.repo.location"
_FLAGS = ("-r", "--repo")


def looks_like_location(text: str) -> bool:
    """A URL (``sftp://``, ``s3://``, ``memory://``...) or a folder holding a repository."""
    if "://" in text:
        return True
    folder = Path(text)
    return (folder / "config").is_file() and (folder / "data").is_dir()


def _pull_flag(args: list[str]) -> tuple[str | None, list[str]]:
    """``-r X``, ``--repo X`` or ``--repo=X`` taken out of ``args`` (before any ``--``)."""
    found: str | None = None
    rest: list[str] = []
    index = 0
    while index < len(args):
        token = args[index]
        if token == "--":
            rest.extend(args[index:])
            break
        if token in _FLAGS:
            if index + 1 >= len(args):
                raise click.UsageError(f"option {token} needs a repository location")
            found = args[index + 1]
            index += 2
            continue
        if token.startswith("--repo="):
            found = token.split("=", 1)[1]
            index += 1
            continue
        rest.append(token)
        index += 1
    return found, rest


def _first_argument(command: click.Command, args: list[str]) -> str | None:
    """The first positional argument in ``args`` as ``command`` will parse them."""
    takes_value = {
        name
        for param in command.params
        if isinstance(param, click.Option) and not param.is_flag and not param.count
        for name in (*param.opts, *param.secondary_opts)
    }
    index = 0
    while index < len(args):
        token = args[index]
        if token == "--":
            return args[index + 1] if index + 1 < len(args) else None
        if token.startswith("-") and token != "-":
            index += 2 if ("=" not in token and token in takes_value) else 1
            continue
        return token
    return None


def _with_location(ctx: click.Context, command: click.Command, args: list[str]) -> list[str]:
    if isinstance(command, click.Group) or not any(p.name == "location" for p in command.params):
        return args
    explicit = ctx.meta.get(_LOCATION)
    first = _first_argument(command, args)
    if explicit is not None:
        if first is not None and looks_like_location(first):
            if first == explicit:
                return args
            raise click.UsageError(f"the repository is given twice: --repo {explicit} and PATH {first}")
        return [explicit, *args]
    from_env = os.environ.get(REPOSITORY_ENV) or None
    if from_env is None or (first is not None and looks_like_location(first)):
        return args
    return [from_env, *args]


class LocationGroup(click.Group):
    """A group whose commands find their repository in ``-r/--repo`` or ``$SNAPKEEP_REPOSITORY``."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command is None:
            return name, command, rest
        flag, rest = _pull_flag(rest)
        if flag is not None:
            ctx.meta[_LOCATION] = flag
        return name, command, _with_location(ctx, command, rest)


def repo_option(function: click.decorators.FC) -> click.decorators.FC:
    """The group's own ``-r/--repo`` (``snapkeep repo -r X COMMAND``)."""

    def remember(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        if value is not None:
            ctx.meta[_LOCATION] = value
        return value

    return click.option(
        "-r",
        "--repo",
        "repo_location",
        metavar="LOCATION",
        default=None,
        expose_value=False,
        callback=remember,
        help=f"The repository (else ${REPOSITORY_ENV}); the commands' PATH argument is then left out.",
    )(function)
