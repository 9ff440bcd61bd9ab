"""The ``snapkeep`` command root.

Sub-commands are loaded lazily from the table below, so ``snapkeep repo`` never imports the web
framework or SQLAlchemy. Errors become exit codes here, in one place.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

import snapkeep
from snapkeep.errors import SnapkeepError
from snapkeep.home import default_home

# command name -> "module:attribute" of a click command
COMMANDS: dict[str, str] = {
    "api": "snapkeep.cli.api_cmd:api_command",
    "token": "snapkeep.cli.token_cmd:token_group",
    "user": "snapkeep.cli.user_cmd:user_group",
    "jobs": "snapkeep.cli.jobs_cmd:jobs_group",
    "serve": "snapkeep.cli.serve_cmd:serve_command",
    "repo": "snapkeep.cli.repo:repo_group",
    "run": "snapkeep.cli.run_cmd:run_command",
    "runs": "snapkeep.cli.runs_cmd:runs_group",
    "logs": "snapkeep.cli.logs_cmd:logs_group",
    "completion": "snapkeep.cli.completion_cmd:completion_command",
    "backups": "snapkeep.cli.backups_cmd:backups_group",
    "restore": "snapkeep.cli.restore_cmd:restore_command",
    "keys": "snapkeep.cli.keys_cmd:keys_group",
    "dr": "snapkeep.cli.dr_cmd:dr_group",
    "reindex": "snapkeep.cli.reindex_cmd:reindex_command",
    "settings": "snapkeep.cli.settings_cmd:settings_group",
    "integrity": "snapkeep.cli.integrity_cmd:integrity_group",
    "nodes": "snapkeep.cli.nodes_cmd:nodes_group",
}


@dataclass
class Context:
    """What the root command hands to every sub-command."""

    home: Path
    catalog_url: str | None


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                return None
            raise
        command: click.Command = getattr(module, attribute)
        return command


def _print_version(ctx: click.Context) -> None:
    """``--version``: the installed version, looked up only when asked for (``importlib.metadata``
    costs 30 ms at every start, a no-change backup's 2 %)."""
    click.echo(f"snapkeep, version {snapkeep.__version__}")
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SNAPKEEP_HOME",
    default=None,
    help="Data directory (catalog, master key, logs). Default: SNAPKEEP_HOME, else `home` in"
    " /etc/snapkeep/snapkeep.toml or ~/.config/snapkeep/snapkeep.toml, else /var/lib/snapkeep as root,"
    " else ~/.local/share/snapkeep.",
)
@click.option(
    "--catalog",
    "catalog_url",
    envvar="SNAPKEEP_CATALOG_URL",
    default=None,
    help="Catalog database URL (postgresql://...). Default: SQLite catalog.db in the data directory.",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda ctx, _param, value: _print_version(ctx) if value and not ctx.resilient_parsing else None,
    help="Show the version and exit.",
)
@click.pass_context
def cli(ctx: click.Context, home: Path | None, catalog_url: str | None) -> None:
    """snapkeep: backups for Linux hosts and web-hosting servers."""
    ctx.obj = Context(home=(home or default_home()).expanduser().absolute(), catalog_url=catalog_url)
    command = ctx.invoked_subcommand
    if command in HOME_COMMANDS and not catalog_url and not (ctx.obj.home / "catalog.db").exists():
        # a new, empty data directory is rarely what was meant: say which one, and how to pick another
        click.echo(
            f"snapkeep: {ctx.obj.home} holds no catalog yet: a new, empty data directory (another one is "
            "chosen with --home, SNAPKEEP_HOME or `home` in /etc/snapkeep/snapkeep.toml)",
            err=True,
        )


#: the commands that open (and would create) the data directory's catalog
HOME_COMMANDS = frozenset(
    {"api", "token", "user", "jobs", "serve", "run", "runs", "logs", "backups", "restore", "keys", "reindex",
     "settings", "integrity", "nodes"}
)  # fmt: skip


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: runs the command and maps snapkeep errors to exit codes."""
    try:
        return cli.main(args=argv, prog_name="snapkeep", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except SnapkeepError as error:
        click.echo(f"snapkeep: error: {error}", err=True)
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
