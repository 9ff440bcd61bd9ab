"""``snapkeep token create``: a new API token, printed once (the catalog keeps only its hash)."""

from __future__ import annotations

import click

from snapkeep.cli.main import Context
from snapkeep.jobs.catalog import Catalog


@click.group("token")
def token_group() -> None:
    """Manage API tokens."""


@token_group.command("create")
@click.option("--user", default="root", show_default=True, help="The API user the token authenticates.")
@click.pass_obj
def create_command(context: Context, user: str) -> None:
    """Create a token; the LAST line printed is exactly what goes after "Authorization: Bearer "."""
    context.home.mkdir(parents=True, exist_ok=True)
    catalog = Catalog.open(context.home, context.catalog_url)
    try:
        token = catalog.create_token(user=user)
    finally:
        catalog.close()
    click.echo(f'API token for {user} (send as "Authorization: Bearer <token>"; it is not shown again):')
    click.echo(token)
