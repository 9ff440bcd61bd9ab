"""``snapkeep completion bash|zsh|fish``: the shell completion script (issue 14), for
``eval "$(snapkeep completion bash)"`` or a file in the shell's completion folder. It comes from
click's own completion support: every command, option and sub-command completes."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion_command(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL."""
    root = ctx.find_root()
    completion = get_completion_class(shell)
    assert completion is not None  # one of SHELLS
    source = completion(root.command, {}, "snapkeep", "_SNAPKEEP_COMPLETE").source()
    click.echo(source)
