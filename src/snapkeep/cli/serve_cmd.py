"""``snapkeep serve``: the long-running service.

It serves the HTTP API (FastAPI on uvicorn) over the catalog and, in the same process, the daemon
(``daemon.service.Service``: crash recovery, scheduler, worker pools, job monitor; DESIGN.md section 6).
The service is started before the server and stopped after it, next to the app and never imported by
it (``api`` and ``daemon`` are siblings; only this command knows both).

SIGTERM and SIGINT stop uvicorn (it stops accepting requests and finishes the open ones), then the
service: every running group's stop event is set and the runs are waited for, at most
``--stop-timeout`` seconds; the command then exits 0. uvicorn re-raises the signal it handled once it
has shut down; ``_signals_recorded`` catches that so the service still gets its clean stop.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click
import uvicorn
from fastapi import FastAPI

from snapkeep import __version__
from snapkeep.api.http import create_app
from snapkeep.cli.main import Context
from snapkeep.daemon.service import Service
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


STOP_TIMEOUT = 20.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _signals_recorded() -> Iterator[list[int]]:
    """While the block runs, SIGINT/SIGTERM outside uvicorn's own handling are only recorded."""
    received: list[int] = []

    def record(number: int, _frame: FrameType | None) -> None:
        received.append(number)

    previous = {number: signal.signal(number, record) for number in STOP_SIGNALS}
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _log_to_stderr(level: str) -> None:
    logger = logging.getLogger("snapkeep")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


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
@click.option(
    "--stop-timeout",
    default=STOP_TIMEOUT,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="Seconds to wait for running backups to stop on SIGTERM/SIGINT.",
)
@click.option(
    "--api-only",
    is_flag=True,
    help="Serve the API without the scheduler and workers (another snapkeep serve runs the queue).",
)
@click.pass_obj
def serve_command(
    context: Context, host: str, port: int, log_level: str, stop_timeout: float, api_only: bool
) -> None:
    """Serve the API over HTTP (GET /?api=1&function=..., POST /) with bearer tokens, and run the
    scheduler and the workers that carry out queued backups, restores and downloads."""
    home: Path = context.home
    home.mkdir(parents=True, exist_ok=True)
    _log_to_stderr(log_level)
    catalog = Catalog.open(home, context.catalog_url)
    service: Service | None = None
    try:
        with _signals_recorded() as received:
            announce_token(catalog, click.echo)
            if not api_only:
                service = Service(catalog, home)
                service.start()
                for group in service.recovered:
                    click.echo(f"queue group {group['_id']} was interrupted: marked Never Finished")
            click.echo(f"snapkeep {__version__}: API on http://{host}:{port}/ (data directory {home})")
            sys.stdout.flush()
            if not received:
                run_server(create_app(catalog), host, port, log_level)
            if service is not None:
                left = service.stop(stop_timeout)
                service = None
                if left:
                    click.echo(f"stopped waiting for {len(left)} run(s): {', '.join(left)}", err=True)
    finally:
        if service is not None:
            service.stop(stop_timeout)
        catalog.close()
