"""``snapkeep user add|list|show|modify|remove``: API users (resellers and account owners), for root.

Each command calls the dispatcher in-process as root (``manageUser``, ``listUsers``, ``getUser``,
``deleteUser``), so it validates exactly as the API does. Permissions are given as
``--deny restore.databases`` / ``--allow download.email`` (``ACTION.ITEM``, docs/users.md).
``passwd`` sets the web panel password (docs/panel.md) of any user, root included, in the catalog.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from snapkeep.cli.jobs_cmd import call
from snapkeep.cli.main import Context
from snapkeep.cli.output import NONE_SHOWN, console, json_option, print_json, short_id
from snapkeep.errors import ValidationError
from snapkeep.jobs import users
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.users import ACTIONS, ITEMS


def _permission(text: str, allowed: bool) -> tuple[str, str, int]:
    action, _, item = text.partition(".")
    if action not in ACTIONS or item not in ITEMS:
        raise click.BadParameter(
            f"{text!r}: must be ACTION.ITEM with ACTION {' or '.join(ACTIONS)} "
            f"and ITEM one of {', '.join(ITEMS)}"
        )
    return action, item, 1 if allowed else 0


def _params(accounts: tuple[str, ...], allow: tuple[str, ...], deny: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if accounts:
        params["accounts"] = [name for value in accounts for name in value.split(",") if name]
    permissions: dict[str, dict[str, int]] = {}
    for text, allowed in [(item, True) for item in allow] + [(item, False) for item in deny]:
        action, item, value = _permission(text, allowed)
        permissions.setdefault(action, {})[item] = value
    if permissions:
        params["permissions"] = permissions
    return params


def _find(context: Context, name: str) -> dict[str, Any]:
    users = call(context, "listUsers", {"find": {"name": name}, "limit": 1}).get("users", [])
    if not users:
        raise click.ClickException(f"no user named {name!r} (snapkeep user list)")
    return dict(users[0])


def _show(user: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("ID", user["_id"])
    table.add_row("Name", user["name"])
    table.add_row("Role", user["role"])
    table.add_row("Account", user.get("account") or NONE_SHOWN)
    table.add_row("Accounts", ", ".join(user.get("accounts") or []) or NONE_SHOWN)
    table.add_row("Destinations", "may manage its own" if user.get("manage_destinations") else "root's only")
    for action, items in (user.get("permissions") or {}).items():
        denied = [item for item, value in items.items() if not value]
        table.add_row(f"May {action}", "everything" if not denied else "all but " + ", ".join(denied))
    return table


accounts_option = click.option(
    "--accounts", multiple=True, help="Reseller: accounts it owns besides its provider's (comma-separated)."
)
allow_option = click.option(
    "--allow", multiple=True, metavar="ACTION.ITEM", help="Allow e.g. restore.databases."
)
deny_option = click.option("--deny", multiple=True, metavar="ACTION.ITEM", help="Deny e.g. download.email.")
destinations_option = click.option(
    "--manage-destinations/--no-manage-destinations",
    default=None,
    help="Reseller: may manage its own destinations.",
)


@click.group("user")
def user_group() -> None:
    """API users: resellers and account owners (root manages them)."""


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["reseller", "account"]), required=True, help="What the user is.")
@click.option("--account", default="", help="Role account: the hosting account's username (default: NAME).")
@accounts_option
@allow_option
@deny_option
@destinations_option
@click.pass_obj
def add_command(
    context: Context,
    name: str,
    role: str,
    account: str,
    accounts: tuple[str, ...],
    allow: tuple[str, ...],
    deny: tuple[str, ...],
    manage_destinations: bool | None,
) -> None:
    """Create a user; then `snapkeep token create --user NAME` gives it a token."""
    params: dict[str, Any] = {
        "action": "create",
        "name": name,
        "role": role,
        **_params(accounts, allow, deny),
    }
    if role == "account":
        params["account"] = account or name
    if manage_destinations is not None:
        params["manage_destinations"] = int(manage_destinations)
    user = call(context, "manageUser", params)
    console().print(f"User {user['name']!r} created ({user['_id']}, {user['role']}).")


@user_group.command("list")
@json_option
@click.pass_obj
def list_command(context: Context, as_json: bool) -> None:
    """Every user with its role and account(s)."""
    data = call(context, "listUsers", {"limit": 0})
    if as_json:
        print_json(data)
        return
    table = Table("ID", "Name", "Role", "Account(s)")
    for user in data.get("users", []):
        reach = user.get("account") or ", ".join(user.get("accounts") or []) or NONE_SHOWN
        table.add_row(
            short_id(user["_id"]), user["name"], user["role"], "all" if user["role"] == "root" else reach
        )
    console().print(table)


@user_group.command("show")
@click.argument("name")
@click.pass_obj
def show_command(context: Context, name: str) -> None:
    """One user in full."""
    console().print(_show(_find(context, name)))


@user_group.command("modify")
@click.argument("name")
@click.option("--account", default=None, help="Role account: the hosting account's username.")
@accounts_option
@allow_option
@deny_option
@destinations_option
@click.pass_obj
def modify_command(
    context: Context,
    name: str,
    account: str | None,
    accounts: tuple[str, ...],
    allow: tuple[str, ...],
    deny: tuple[str, ...],
    manage_destinations: bool | None,
) -> None:
    """Change a user's account, accounts, permissions or destination grant."""
    user = _find(context, name)
    params: dict[str, Any] = {"action": "modify", "_id": user["_id"], **_params(accounts, allow, deny)}
    if account is not None:
        params["account"] = account
    if manage_destinations is not None:
        params["manage_destinations"] = int(manage_destinations)
    console().print(_show(call(context, "manageUser", params)))


@user_group.command("remove")
@click.argument("name")
@click.pass_obj
def remove_command(context: Context, name: str) -> None:
    """Delete a user that owns nothing, and its tokens."""
    user = _find(context, name)
    call(context, "deleteUser", {"_id": user["_id"]})
    console().print(f"User {name!r} removed.")


def _new_password(password_file: Path | None) -> str:
    """The new password: the first line of ``--password-file``, else asked twice on a terminal."""
    if password_file is not None:
        lines = password_file.read_text(encoding="utf-8").splitlines()
        return lines[0] if lines else ""
    if not sys.stdin.isatty():
        raise click.UsageError("no terminal to ask the password on: give --password-file FILE")
    return str(click.prompt("New password", hide_input=True, confirmation_prompt=True))


@user_group.command("passwd")
@click.argument("name")
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the password from the first line of FILE (default: ask on the terminal).",
)
@click.option("--remove", is_flag=True, help="Remove the password: the user signs in with a token only.")
@click.pass_obj
def passwd_command(context: Context, name: str, password_file: Path | None, remove: bool) -> None:
    """Set the web panel password of user NAME (root too); stored as an Argon2id hash."""
    password_hash = None
    if not remove:
        try:
            password_hash = users.hash_password(users.check_password_text(_new_password(password_file)))
        except ValidationError as error:
            raise click.ClickException(error.message) from None
    catalog = Catalog.open(context.home, context.catalog_url)
    try:
        with catalog.transaction() as tx:
            users.set_password(tx, users.named(tx, name).id, password_hash)
    finally:
        catalog.close()
    console().print(f"Password of {name!r} {'removed' if remove else 'set'}.")
