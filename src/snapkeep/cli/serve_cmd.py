"""``snapkeep serve``: the long-running service.

It serves the HTTP API (FastAPI on uvicorn) over the catalog and, in the same process, the daemon
(``daemon.service.Service``: crash recovery, scheduler, worker pools, job monitor; DESIGN.md section 6).
The service is started before the server and stopped after it, next to the app and never imported by
it (``api`` and ``daemon`` are siblings; only this command knows both).

SIGTERM and SIGINT stop uvicorn (it stops accepting requests and finishes the open ones), then the
service: every running group's stop event is set and the runs are waited for, at most
``--stop-timeout`` seconds; the command then exits 0. uvicorn re-raises the signal it handled once it
has shut down; ``_signals_recorded`` catches that so the service still gets its clean stop.

Transport (docs/http.md): HTTPS with ``--tls-cert/--tls-key`` or ``--tls-self-signed`` (``cli/tls.py``);
a non-loopback address without TLS is refused (exit 2) unless ``--insecure-http``. Slow clients are
held off by a request-head timeout (``api/connections.py``), a header size cap and the body
timeouts of ``api/bodies.read_body``.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import shlex
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import click
import uvicorn
from fastapi import FastAPI

from snapkeep import __version__
from snapkeep.api.bodies import BODY_IDLE_TIMEOUT, BODY_TOTAL_TIMEOUT
from snapkeep.api.connections import HEADER_TIMEOUT, MAX_HEADER_BYTES, guarded_protocol
from snapkeep.api.http import create_app
from snapkeep.cli.humane import plural
from snapkeep.cli.main import Context
from snapkeep.cli.tls import fingerprint, is_loopback, self_signed
from snapkeep.daemon.service import Service
from snapkeep.errors import ValidationError
from snapkeep.jobs import nodes
from snapkeep.jobs.catalog import Catalog

DEFAULT_HOST = "127.0.0.1"
#: listening addresses that are no address to reach the node at (``advertised_url``)
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 (compared with, never bound)
DEFAULT_PORT = 3035
TOKEN_HEADING = 'API token (send as "Authorization: Bearer <token>"):'
TOKENS_HASHED = (
    "API tokens are stored hashed and cannot be shown again; `snapkeep --home {home} token create` "
    "makes a new one."
)


def announce_token(catalog: Catalog, echo: Callable[[str], None], home: Path) -> str | None:
    """On the first start (no token in the catalog) create a root token and print it.

    Returns the new token, or None when tokens already exist (then says how to make another, with
    the ``--home`` this service uses, so the hint works from any shell).
    """
    if catalog.count_tokens() == 0:
        token = catalog.create_token()
        echo(TOKEN_HEADING)
        echo(token)
        return token
    echo(TOKENS_HASHED.format(home=shlex.quote(str(home))))
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


@dataclass(frozen=True)
class Transport:
    """How ``serve`` listens: the TLS files (None: plain HTTP) and the slow-client limits."""

    cert: Path | None = None
    key: Path | None = None
    header_timeout: float = HEADER_TIMEOUT
    #: the certificate's SHA-256 fingerprint (``AB:CD:...``), recorded for the other nodes to pin
    fingerprint: str = ""

    @property
    def scheme(self) -> str:
        return "https" if self.cert else "http"


def choose_transport(
    home: Path,
    host: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_self_signed: bool,
    insecure_http: bool,
    echo: Callable[[str], None],
) -> Transport:
    """Check the TLS options against the bind address and say what the server will speak.

    Raises:
        click.UsageError: contradicting options, or plain HTTP on a non-loopback address without
            ``--insecure-http`` (exit 2).
    """
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together: give both, or neither")
    if tls_self_signed and tls_cert is not None:
        raise click.UsageError("--tls-self-signed makes its own certificate: do not give --tls-cert too")
    tls = tls_self_signed or tls_cert is not None
    if tls and insecure_http:
        raise click.UsageError("--insecure-http contradicts the TLS options: choose one")
    if tls_self_signed:
        made = self_signed(home, host)
        if made.replaced:
            echo(f"the kept TLS certificate did not name {host}: replaced it (clients must re-pin it)")
        elif made.created:
            echo(f"made a self-signed TLS certificate: {made.cert}")
        tls_cert, tls_key = made.cert, made.key
    if tls_cert is not None and tls_key is not None:
        try:
            pin = fingerprint(tls_cert.read_bytes())
        except ValueError as error:
            raise click.UsageError(f"--tls-cert {tls_cert}: not a PEM certificate ({error})") from None
        echo(f"TLS certificate SHA-256 fingerprint: {pin}")
        return Transport(tls_cert, tls_key, fingerprint=pin)
    if is_loopback(host):
        echo(
            f"plain HTTP on {host} (loopback only); use --tls-cert/--tls-key or --tls-self-signed "
            "for other addresses"
        )
        return Transport()
    if not insecure_http:
        raise click.UsageError(
            f"refusing plain HTTP on {host}: API tokens would cross the network in clear. Use "
            "--tls-self-signed or --tls-cert FILE --tls-key FILE, or --insecure-http if a TLS proxy "
            "terminates HTTPS in front of snapkeep"
        )
    echo(f"WARNING: plain HTTP on {host} (--insecure-http): API tokens travel in clear")
    return Transport()


def advertised_url(advertise: str | None, host: str, port: int, transport: Transport) -> str:
    """Where the other nodes reach this node's API: ``--advertise-url``, else the listening
    address (the host name when it listens on every address). Raises click.BadParameter."""
    if advertise is None:
        if host in WILDCARD_HOSTS:
            host = socket.gethostname()
        shown = f"[{host}]" if ":" in host else host
        advertise = f"{transport.scheme}://{shown}:{port}"
    try:
        return nodes.check_api_url(advertise)
    except ValidationError as error:
        raise click.BadParameter(error.problem, param_hint="--advertise-url") from None


def run_server(
    app: FastAPI, host: str, port: int, log_level: str, transport: Transport | None = None
) -> None:
    """Serve ``app`` with uvicorn until SIGINT/SIGTERM. uvicorn exits the process if it cannot bind.

    The h11 protocol is uvicorn's with a request-head timeout (``api/connections.py``); request heads
    are capped at ``MAX_HEADER_BYTES`` (uvicorn answers 400 beyond).
    """
    transport = transport or Transport()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        http=guarded_protocol(transport.header_timeout),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        ssl_certfile=str(transport.cert) if transport.cert else None,
        ssl_keyfile=str(transport.key) if transport.key else None,
    )
    uvicorn.Server(config).run()


def check_port_free(host: str, port: int) -> None:
    """Exit 2 with one line when ``host:port`` cannot be listened on (issue 14: a port in use used to
    start the scheduler and print a token before uvicorn's bind error)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as error:
            reason = (
                "address already in use" if error.errno == errno.EADDRINUSE else error.strerror or str(error)
            )
            click.echo(
                f"snapkeep: cannot listen on {host}:{port}: {reason} "
                "(another snapkeep serve? choose another --port)",
                err=True,
            )
            sys.exit(2)


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
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM certificate (chain) to serve HTTPS with; needs --tls-key.",
)
@click.option(
    "--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="PEM private key."
)
@click.option(
    "--tls-self-signed",
    is_flag=True,
    help="Serve HTTPS with a self-signed certificate kept in the data directory (tls/); its "
    "fingerprint is printed.",
)
@click.option(
    "--insecure-http",
    is_flag=True,
    help="Allow plain HTTP on a non-loopback address (only behind a TLS-terminating proxy).",
)
@click.option(
    "--header-timeout",
    default=HEADER_TIMEOUT,
    show_default=True,
    type=click.FloatRange(0.5, 600),
    help="Seconds a client has to send a request's line and headers.",
)
@click.option(
    "--body-timeout",
    default=BODY_IDLE_TIMEOUT,
    show_default=True,
    type=click.FloatRange(0.5, 600),
    help=f"Seconds a request body may stall (the whole body: at most {BODY_TOTAL_TIMEOUT:.0f} s).",
)
@click.option(
    "--node",
    "node_name",
    envvar="SNAPKEEP_NODE",
    default=None,
    help="This server's node name on a shared catalog (default: the host name; docs/nodes.md).",
)
@click.option(
    "--advertise-url",
    envvar="SNAPKEEP_ADVERTISE_URL",
    default=None,
    help="Where the other nodes reach this node's API (default: the --host and --port it listens "
    "on; the host name when --host is 0.0.0.0 or ::).",
)
@click.option(
    "--node-timeout",
    envvar="SNAPKEEP_NODE_TIMEOUT",
    default=nodes.DEFAULT_TIMEOUT,
    show_default=True,
    type=click.FloatRange(nodes.MIN_TIMEOUT, nodes.MAX_TIMEOUT),
    help="Seconds without a heartbeat after which the other nodes declare this one down.",
)
@click.pass_obj
def serve_command(
    context: Context,
    host: str,
    port: int,
    log_level: str,
    stop_timeout: float,
    api_only: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_self_signed: bool,
    insecure_http: bool,
    header_timeout: float,
    body_timeout: float,
    node_name: str | None,
    advertise_url: str | None,
    node_timeout: float,
) -> None:
    """Serve the API over HTTP(S) (GET /?api=1&function=..., POST /) with bearer tokens, and run the
    scheduler and the workers that carry out queued backups, restores and downloads."""
    home: Path = context.home
    check_port_free(host, port)  # before anything starts: one clear line, no token, no runs
    home.mkdir(parents=True, exist_ok=True)
    _log_to_stderr(log_level)
    transport = choose_transport(home, host, tls_cert, tls_key, tls_self_signed, insecure_http, click.echo)
    transport = dataclasses.replace(transport, header_timeout=header_timeout)
    advertise = advertised_url(advertise_url, host, port, transport)
    catalog = Catalog.open(home, context.catalog_url)
    service: Service | None = None
    try:
        # a node without the catalog's master key would fail every run that opens a secret
        nodes.check_master_key(catalog)
        me = nodes.Me(
            id=nodes.local_id(home),
            name=node_name or socket.gethostname(),
            timeout=node_timeout,
            api=advertise,
            tls_fingerprint=transport.fingerprint,
        )
        with _signals_recorded() as received:
            announce_token(catalog, click.echo, home)
            if not api_only:
                service = Service(catalog, home, node=me)
                service.start()
                click.echo(f"node {me.name!r} ({me.id}) up on the catalog")
                for group in service.recovered:
                    click.echo(f"queue group {group['_id']} was interrupted: marked Never Finished")
            shown = f"[{host}]" if ":" in host else host
            click.echo(
                f"snapkeep {__version__}: API on {transport.scheme}://{shown}:{port}/ (data directory {home})"
            )
            sys.stdout.flush()
            if not received:
                app = create_app(catalog, body_idle_timeout=body_timeout)
                run_server(app, host, port, log_level, transport)
            if service is not None:
                left = service.stop(stop_timeout)
                service = None
                if left:
                    click.echo(f"stopped waiting for {plural(len(left), 'run')}: {', '.join(left)}", err=True)
    finally:
        if service is not None:
            service.stop(stop_timeout)
        catalog.close()
