"""``snapkeep token create|list|revoke``: API tokens (the catalog keeps only their hashes).

``create`` prints the token once; ``list`` never shows a secret; ``revoke`` ends a token at once. All
three call the dispatcher in-process as root (``createToken``, ``listTokens``, ``revokeToken``).
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from snapkeep.cli.jobs_cmd import call
from snapkeep.cli.main import Context
from snapkeep.cli.output import NONE_SHOWN, console, json_option, print_json, short_id


@click.group("token")
def token_group() -> None:
    """Manage API tokens."""


@token_group.command("create")
@click.option("--user", default="root", show_default=True, help="The API user the token authenticates.")
@click.option("--expires", default="", help="Lifetime such as 30d, 12h, 2w (default: no end).")
@click.option("--name", "label", default="", help="A label to tell tokens apart in `token list`.")
@click.pass_obj
def create_command(context: Context, user: str, expires: str, label: str) -> None:
    """Create a token; the LAST line printed is exactly what goes after "Authorization: Bearer "."""
    context.home.mkdir(parents=True, exist_ok=True)
    params: dict[str, Any] = {"user": user, "name": label, "expires": expires}
    answer = call(context, "createToken", params)
    until = f", expires {answer['expires']}" if answer.get("expires") else ""
    click.echo(
        f"API token {answer['_id']} for {user}{until} "
        '(send as "Authorization: Bearer <token>"; it is not shown again):'
    )
    click.echo(answer["token"])


@token_group.command("list")
@click.option("--user", default="", help="Only this user's tokens.")
@json_option
@click.pass_obj
def list_command(context: Context, user: str, as_json: bool) -> None:
    """Every token: ID, user, label, state, created, expires, last used (never the secret)."""
    data = call(context, "listTokens", {"user": user, "limit": 0})
    if as_json:
        print_json(data)
        return
    table = Table("ID", "User", "Name", "State", "Created", "Expires", "Last used")
    for token in data.get("tokens", []):
        table.add_row(
            short_id(token["_id"]),
            token["user"],
            token["name"] or NONE_SHOWN,
            token["state"],
            token["created"] or NONE_SHOWN,
            token["expires"] or NONE_SHOWN,
            token["last_used"] or NONE_SHOWN,
        )
    console().print(table)


@token_group.command("revoke")
@click.argument("token_id")
@click.pass_obj
def revoke_command(context: Context, token_id: str) -> None:
    """Revoke a token: it stops authenticating at once (it stays listed as revoked)."""
    answer = call(context, "revokeToken", {"_id": token_id})
    console().print(f"Token {answer['_id']} of {answer['user']} revoked.")
