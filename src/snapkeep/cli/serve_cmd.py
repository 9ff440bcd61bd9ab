"""``snapkeep serve``: the long-running service.

Today it serves the HTTP API (FastAPI on uvicorn) over the catalog. The scheduler and the worker pool
(DESIGN.md section 6) join it in a later issue: they will be started and stopped around ``run_server``,
next to the app and never imported by it (``api`` and ``daemon`` are siblings; only this command knows
both).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click
import uvicorn
from fastapi import FastAPI

from snapkeep import __version__
from snapkeep.api.http import create_app
from snapkeep.cli.main import Context
from snapkeep.jobs.catalog import Catalog

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3035
TOKEN_HEADING = 'API token (send as "Authorization: Bearer <token>"):'
TOKENS_HASHED = (
    "API tokens are stored hashed and cannot be shown again; `snapkeep token create` makes a new one."
)


def announce_token(catalog: Catalog, echo: Callable[[str], None]) -> str | None:
    """On the first start (no token in the catalog) create a root token and print it.

    Returns the new token, or None when tokens already exist (then says how to make another).
    """
    if catalog.count_tokens() == 0:
        token = catalog.create_token()
        echo(TOKEN_HEADING)
        echo(token)
        return token
    echo(TOKENS_HASHED)
    return None


def run_server(app: FastAPI, host: str, port: int, log_level: str) -> None:
    """Serve ``app`` with uvicorn until SIGINT/SIGTERM. uvicorn exits the process if it cannot bind."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on")
    uvicorn.Server(config).run()


@click.command("serve")
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535), help="TCP port."
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help="uvicorn log level.",
)
@click.pass_obj
def serve_command(context: Context, host: str, port: int, log_level: str) -> None:
    """Serve the API over HTTP (GET /?api=1&function=..., POST /) with bearer tokens."""
    home: Path = context.home
    home.mkdir(parents=True, exist_ok=True)
    catalog = Catalog.open(home, context.catalog_url)
    try:
        announce_token(catalog, click.echo)
        click.echo(f"snapkeep {__version__}: API on http://{host}:{port}/ (data directory {home})")
        sys.stdout.flush()
        run_server(create_app(catalog), host, port, log_level)
    finally:
        catalog.close()
