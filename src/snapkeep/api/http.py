"""The HTTP door onto the dispatcher: a FastAPI app served by ``snapkeep serve``.

Routes (see docs/http.md):

- ``GET /?api=1&function=NAME&...`` and ``POST /`` with the parameters in the query string, a form body
  (``application/x-www-form-urlencoded`` or ``multipart/form-data``) or a JSON object body.
- ``GET|POST /function/NAME``: the same call with the function named in the path; the OpenAPI document
  describes one such path per function, so a schema-driven client or fuzzer knows every parameter.
- ``GET /download/GROUP_ID``: the file of a finished download (``addQueueItems`` type 4), streamed with
  its ``Content-Length``. The function ``downloadBackupFile`` decides (the same permission rule as every
  door: the user who queued it, or root); 404 with the envelope when it is not ready, expired or gone.
  A download made on another node is forwarded there (``api/forward.py``, docs/nodes.md).

Status codes follow API.md section 2: 401 for a missing or wrong token, 400 only for a body that cannot
be parsed as a form or as JSON at all, 413 for a body beyond ``bodies.MAX_BODY_BYTES``, and 200 with the
envelope for everything else (unknown functions and bad parameters included). Parameter bytes reach the
params decoder undecoded, so non-UTF-8 input is refused naming its field.

Hostile callers (attack report LOW-11, LOW-12): an address with too many failed authentications gets
429 (``api/throttle.py``) before anything else is done; a body that stalls gets 408; a client that
goes away mid-body is dropped quietly; any other surprise answers an envelope with an incident id that
is also in the log, never a traceback, an exception's name or a path, and never a 5xx (but the 502
and 503 of a download whose node cannot give it).
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from snapkeep import __version__
from snapkeep.api import envelope, forward
from snapkeep.api.auth import (
    CSRF_HEADER,
    SESSION_COOKIE,
    CsrfError,
    authenticate,
    authenticate_session,
    bearer_from_header,
)
from snapkeep.api.bodies import (
    BODY_IDLE_TIMEOUT,
    BODY_TOTAL_TIMEOUT,
    MAX_BODY_BYTES,
    BadBody,
    BodyTimeout,
    BodyTooLarge,
    decode_parameters,
    parse_body,
    parse_multipart,
    read_body,
)
from snapkeep.api.connections import HeadLimit
from snapkeep.api.dispatch import FUNCTIONS, Api
from snapkeep.api.forward import FORWARDED_HEADER
from snapkeep.api.functions.base import CallContext, Caller
from snapkeep.api.functions.restore import DownloadElsewhere
from snapkeep.api.openapi import build_openapi
from snapkeep.api.panel import PREFIX as PANEL_PREFIX
from snapkeep.api.panel import mount_panel
from snapkeep.api.permissions import decide
from snapkeep.api.throttle import AuthThrottle
from snapkeep.errors import AccessDenied, AuthError, NotFoundError, ParameterError, SnapkeepError
from snapkeep.jobs import nodes
from snapkeep.jobs.catalog import Catalog

log = logging.getLogger(__name__)

# Keys of the request that address the door, not the function.
FUNCTION_KEY = "function"
DOOR_KEYS = ("api",)

#: The dispatcher function behind ``GET /download/GROUP_ID``, and the size of each streamed piece.
DOWNLOAD_FUNCTION = "downloadBackupFile"
DOWNLOAD_BLOCK = 1024 * 1024


def incident_id() -> str:
    """A short random id naming one logged failure; the answer carries it instead of the detail."""
    return secrets.token_hex(4)


def auth_failure_reason(header: str | None) -> str | None:
    """A fixed phrase for the log saying why authentication failed (never the token), or None when
    no credential was presented at all: a missing header is not a guess, so it is not counted."""
    if header is None or not header.strip():
        return None
    try:
        bearer_from_header(header)
    except AuthError:
        return "malformed Authorization header"
    return "unknown or wrong token"


@dataclass(frozen=True)
class Credentials:
    """What a request presents: its ``Authorization`` header, or the panel's session cookie and
    CSRF header (used only when there is no ``Authorization`` header)."""

    header: str | None = None
    cookie: str | None = None
    csrf: str | None = None

    @classmethod
    def of(cls, request: Request) -> Credentials:
        return cls(
            request.headers.get("authorization"),
            request.cookies.get(SESSION_COOKIE),
            request.headers.get(CSRF_HEADER),
        )


class Door:
    """What every route does: throttle, authenticate, decode, call. Authentication and everything
    after it run in a worker thread (the catalog is synchronous); the catalog's own transactions
    keep concurrent calls apart."""

    def __init__(self, catalog: Catalog, throttle: AuthThrottle) -> None:
        self.catalog = catalog
        self.throttle = throttle
        self.api = Api(catalog)

    def authenticated(
        self, credentials: Credentials | str | None, address: str
    ) -> Caller | tuple[int, dict[str, Any]]:
        """The caller, or the 401 answer (403 for a live session cookie without its CSRF header);
        a presented but wrong credential counts against ``address``. The catalog looks tokens up
        by their hash, so an unknown user and a wrong token cost the same, and both are counted
        the same."""
        if not isinstance(credentials, Credentials):
            credentials = Credentials(credentials)
        header = credentials.header
        try:
            if header is None and credentials.cookie:
                return authenticate_session(self.catalog, credentials.cookie, credentials.csrf)
            return authenticate(self.catalog, header)
        except CsrfError as error:  # not a guess: the cookie is right (a cross-site request)
            return 403, envelope.failure(str(error))
        except AuthError as error:
            reason = auth_failure_reason(header)
            if reason is None and header is None and credentials.cookie:
                reason = "unknown, expired or signed-out session cookie"
            if reason is not None:
                self.throttle.failed(address, reason)
            return 401, envelope.failure(str(error))
        except Exception:  # a bug in checking: not authenticated; logged, not echoed
            incident = incident_id()
            log.exception("authentication from %s could not be checked (incident %s)", address, incident)
            self.throttle.failed(address, "authentication could not be checked")
            return 401, envelope.failure(
                f"Authentication failed: could not be checked (logged as {incident})"
            )

    def decode_and_call(
        self,
        header: Credentials | str | None,
        address: str,
        function_in_path: str | None,
        query: bytes,
        content_type: str,
        body: bytes,
    ) -> tuple[int, dict[str, Any]]:
        """Authenticate first, then decode the parameters and call: nothing an unauthenticated
        caller sends is decoded (attack report HIGH-2)."""
        caller = self.authenticated(header, address)
        if not isinstance(caller, Caller):
            return caller
        try:
            params = decode_parameters(query, content_type, body)
        except BadBody as error:
            return 400, envelope.failure(str(error))
        except ParameterError as error:
            return 200, envelope.failure(str(error))
        except Exception:  # a decoder bug: the request is refused, the detail goes to the log
            incident = incident_id()
            log.exception("request parameters from %s could not be read (incident %s)", address, incident)
            return 400, envelope.failure(f"request: could not be read (logged as {incident})")
        function = function_in_path
        requested = params.pop(FUNCTION_KEY, None)
        if function is None:
            if requested is not None and not isinstance(requested, str):
                return 200, envelope.failure(f"{FUNCTION_KEY}: must be the name of a function")
            function = requested
        for key in DOOR_KEYS:
            params.pop(key, None)
        if not function:
            return 200, envelope.failure(f"{FUNCTION_KEY}: missing; name the function to call")
        return 200, self.api.call(function, params, caller)


def create_app(
    catalog: Catalog,
    *,
    throttle: AuthThrottle | None = None,
    body_idle_timeout: float = BODY_IDLE_TIMEOUT,
    body_total_timeout: float = BODY_TOTAL_TIMEOUT,
) -> FastAPI:
    """Build the FastAPI app that serves the dispatcher over ``catalog``. ``throttle`` counts failed
    authentications per client address (a fresh ``AuthThrottle`` when not given); the timeouts are
    ``read_body``'s."""
    door = Door(catalog, throttle or AuthThrottle())
    app = FastAPI(
        title="snapkeep",
        version=__version__,
        description="JetBackup-5-compatible function API of snapkeep (see docs/http.md).",
        # FastAPI's /docs page loads Swagger UI from a CDN: nothing a page loads may come from
        # elsewhere (review F15), so the API is described by /openapi.json alone
        docs_url=None,
        redoc_url=None,
    )

    async def answer(request: Request, function_in_path: str | None) -> Response:
        address = client_address(request)
        refused = throttled(door.throttle, address)
        if refused is not None:
            return refused
        try:
            body = await read_body(request, idle_timeout=body_idle_timeout, total_timeout=body_total_timeout)
        except BodyTooLarge as error:
            return JSONResponse(envelope.failure(str(error)), status_code=413)
        except BodyTimeout as error:
            log.info("request body from %s: %s", address, error.message)
            return JSONResponse(
                envelope.failure(str(error)), status_code=408, headers={"Connection": "close"}
            )
        except ClientDisconnect:
            log.info("client %s went away while sending its request body", address)
            return Response(status_code=400, headers={"Connection": "close"})
        status, answer_body = await run_in_threadpool(
            door.decode_and_call,
            Credentials.of(request),
            address,
            function_in_path,
            request.scope.get("query_string", b""),
            request.headers.get("content-type", ""),
            body,
        )
        return JSONResponse(answer_body, status_code=status)

    @app.api_route("/", methods=["GET", "POST"], include_in_schema=False)
    async def root(request: Request) -> Response:
        if request.method == "GET" and is_plain_visit(request):
            return RedirectResponse(f"{PANEL_PREFIX}/", status_code=307)
        return await answer(request, None)

    @app.api_route("/function/{name}", methods=["GET", "POST"], include_in_schema=False)
    async def by_path(request: Request, name: str) -> Response:
        return await answer(request, name)

    @app.get("/download/{group_id}", include_in_schema=False)
    async def download(request: Request, group_id: str) -> Response:
        address = client_address(request)
        refused = throttled(door.throttle, address)
        if refused is not None:
            return refused
        caller = await run_in_threadpool(door.authenticated, download_credentials(request), address)
        if not isinstance(caller, Caller):
            return JSONResponse(caller[1], status_code=caller[0])
        opened = await run_in_threadpool(open_download, catalog, caller, group_id)
        if opened.elsewhere and FORWARDED_HEADER not in request.headers:
            return await forwarded_download(catalog, request, opened.elsewhere, group_id)
        status, body, descriptor, name = opened.status, opened.body, opened.descriptor, opened.name
        if descriptor < 0:
            return JSONResponse(body, status_code=status)
        size = os.fstat(descriptor).st_size
        return StreamingResponse(
            _stream(descriptor, size),
            media_type="application/zstd",
            headers={"Content-Length": str(size), "Content-Disposition": f'attachment; filename="{name}"'},
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> Response:
        """Unknown paths (404) and methods (405) answer the envelope too, not FastAPI's ``detail``."""
        message = f"HTTP {error.status_code}: no such route or method; see /openapi.json"
        return JSONResponse(envelope.failure(message), status_code=error.status_code, headers=error.headers)

    mount_panel(app, catalog, door.throttle, client_address, throttled)
    app.add_middleware(HeadLimit)
    openapi_builder: Callable[[], dict[str, Any]] = lambda: build_openapi(app)  # noqa: E731
    app.openapi = openapi_builder  # type: ignore[method-assign]
    return app


def is_plain_visit(request: Request) -> bool:
    """A browser opening ``/``: no ``api`` or ``function`` parameter and no ``Authorization``
    header. It is sent to the panel; every API call keeps its envelope."""
    query = request.query_params
    return (
        not any(key in query for key in (*DOOR_KEYS, FUNCTION_KEY)) and "authorization" not in request.headers
    )


def download_credentials(request: Request) -> Credentials:
    """A download is a link the browser follows, so the panel puts its CSRF secret in the query
    (``?csrf=``) rather than in a header; everything else is as for a call."""
    credentials = Credentials.of(request)
    if credentials.csrf is None and credentials.header is None:
        credentials = Credentials(None, credentials.cookie, request.query_params.get("csrf"))
    return credentials


def client_address(request: Request) -> str:
    """The peer's address (no proxy header is trusted: a client could forge it)."""
    return request.client.host if request.client else "unknown"


def throttled(throttle: AuthThrottle, address: str) -> Response | None:
    """The 429 answer when ``address`` failed authentication too often, else None."""
    wait = throttle.retry_after(address)
    if wait is None:
        return None
    message = f"too many failed authentications from {address}; retry in {wait} s"
    return JSONResponse(envelope.failure(message), status_code=429, headers={"Retry-After": str(wait)})


async def forwarded_download(catalog: Catalog, request: Request, node: str, group_id: str) -> Response:
    """The download made on ``node``, fetched from it with the caller's own credentials and
    streamed on (``api/forward.py``); the answer to give when that node cannot be reached."""
    target = await run_in_threadpool(forward.peer, catalog, node, group_id)
    if not isinstance(target, forward.Peer):
        return JSONResponse(target[1], status_code=target[0])
    credentials = download_credentials(request)
    headers = {"Authorization": credentials.header} if credentials.header else {}
    if not headers and credentials.cookie:
        headers = {"Cookie": f"{SESSION_COOKIE}={credentials.cookie}", CSRF_HEADER: credentials.csrf or ""}
    me = await run_in_threadpool(local_node, catalog)
    upstream = await run_in_threadpool(forward.fetch, target, group_id, headers, me)
    if upstream.status != 200 or upstream.response is None:
        return JSONResponse(upstream.body, status_code=upstream.status)
    log.info("download %s forwarded from node %s", group_id, target.name)
    passed = {
        key: upstream.headers[key.lower()]
        for key in ("Content-Length", "Content-Disposition", "Content-Type")
        if key.lower() in upstream.headers
    }
    return StreamingResponse(upstream.chunks(DOWNLOAD_BLOCK), headers=passed)


def local_node(catalog: Catalog) -> str:
    """This node's ID (sent on with a forwarded request), or "" for a catalog without a home."""
    return nodes.local_id(catalog.home) if catalog.home is not None else ""


@dataclass(frozen=True)
class Opened:
    """An authenticated download request: its status and envelope, the open descriptor (-1 when
    none) and file name; ``elsewhere`` is the node the file was made on when it is not here."""

    status: int
    body: dict[str, Any]
    descriptor: int = -1
    name: str = ""
    elsewhere: str = ""


def open_download(catalog: Catalog, caller: Caller, group_id: str) -> Opened:
    """Decide and open the file of a download request (``Opened``)."""
    params = {"_id": group_id}
    try:
        # the dispatcher's one decision point first, as for every call (api.permissions)
        decide(lambda: catalog.transaction(write=False), caller, DOWNLOAD_FUNCTION, params)
        message, data = FUNCTIONS[DOWNLOAD_FUNCTION].handler(CallContext(catalog, caller), params)
        descriptor = os.open(data["file"], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except AccessDenied as error:
        log.warning(
            "permission denied: %s for user %s (%s): %s",
            DOWNLOAD_FUNCTION,
            caller.name,
            caller.role,
            error.reason,
        )
        return Opened(403, envelope.failure(f"permission denied: {DOWNLOAD_FUNCTION}"))
    except DownloadElsewhere as error:
        return Opened(404, envelope.failure(error.message), elsewhere=error.node)
    except NotFoundError as error:
        return Opened(404, envelope.failure(error.message))
    except FileNotFoundError:
        return Opened(404, envelope.failure(f"download {group_id}: its file was removed"))
    except SnapkeepError as error:
        return Opened(400, envelope.failure(error.message))
    except Exception:  # a bug: logged under an incident id, not echoed
        incident = incident_id()
        log.exception("download %s failed (incident %s)", group_id, incident)
        return Opened(400, envelope.failure(f"download: internal error (logged as {incident})"))
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        return Opened(404, envelope.failure(f"download {group_id}: its file was removed"))
    return Opened(200, envelope.success(message, data), descriptor, str(data["name"]))


def _stream(descriptor: int, size: int) -> Iterator[bytes]:
    """The first ``size`` bytes of the open file (its size when it was opened: the promised
    ``Content-Length``), piece by piece; the descriptor is closed at the end or when the client
    goes away."""
    try:
        remaining = size
        while remaining > 0:
            piece = os.read(descriptor, min(DOWNLOAD_BLOCK, remaining))
            if not piece:
                raise OSError(f"the download shrank while it was sent ({remaining} bytes missing)")
            remaining -= len(piece)
            yield piece
    finally:
        os.close(descriptor)


# The body handling moved to ``bodies.py``; these names stay importable from here.
__all__ = [
    "MAX_BODY_BYTES",
    "BadBody",
    "BodyTimeout",
    "BodyTooLarge",
    "Door",
    "create_app",
    "open_download",
    "parse_body",
    "parse_multipart",
    "read_body",
]
