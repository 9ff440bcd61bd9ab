"""The web panel (docs/panel.md): static pages under ``/ui/`` and the sign-in door ``/ui/session``.

The pages are plain HTML, CSS and JavaScript modules shipped in ``static/`` (no build step, nothing
fetched from elsewhere); they call the JSON API as the signed-in user, so they can never do more than
that user may. This module only serves those files and starts and ends sessions:

- ``POST /ui/session`` with a JSON body (``Content-Type: application/json``, else 415)
  ``{"name", "password"}`` or ``{"token": "USER:TOKEN"}``: a new session; the
  answer sets the ``HttpOnly; SameSite=Strict`` cookie (``Secure`` under HTTPS) and carries the
  session's CSRF secret in ``data.csrf``. A failure answers 401 and counts against the address in the
  failed-authentication throttle (429 once refused).
- ``GET /ui/session``: the signed-in user and the CSRF secret again (a reloaded page needs it; only a
  page of this origin can read the answer), or 401.
- ``DELETE /ui/session`` (cookie and CSRF header): revokes the session and clears the cookie.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from snapkeep.api import envelope
from snapkeep.api.auth import (
    CSRF_HEADER,
    SESSION_COOKIE,
    CsrfError,
    authenticate_session,
    sign_in,
    sign_out,
)
from snapkeep.api.bodies import BodyTimeout, BodyTooLarge, read_body
from snapkeep.api.throttle import AuthThrottle
from snapkeep.errors import AuthError, SnapkeepError
from snapkeep.jobs import users
from snapkeep.jobs.catalog import Catalog

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
PREFIX = "/ui"
#: why a presented session cookie counts as a failed authentication
STALE_COOKIE = "unknown, expired or signed-out session cookie"
#: the pages load only what this server sends: no CDN, no inline script, no framing
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
MAX_SIGN_IN_BODY = 16 * 1024


def who(user: users.User) -> dict[str, Any]:
    """What the pages need to know of the signed-in user (never a secret)."""
    shown = user.present()
    shown.pop("password", None)
    return shown


def static_file(name: str) -> Path | None:
    """The file ``name`` of the panel's static folder, or None (no escape from the folder)."""
    path = (STATIC / name).resolve()
    if not path.is_relative_to(STATIC.resolve()) or not path.is_file():
        return None
    return path


def mount_panel(
    app: FastAPI,
    catalog: Catalog,
    throttle: AuthThrottle,
    address_of: Callable[[Request], str],
    refused: Callable[[AuthThrottle, str], Response | None],
) -> None:
    """Add the panel's routes to ``app``."""

    def page(path: Path) -> Response:
        media = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}
        return FileResponse(
            path, media_type=media.get(path.suffix, "application/octet-stream"), headers=HEADERS
        )

    @app.get(PREFIX, include_in_schema=False)
    async def panel_bare() -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    @app.get(f"{PREFIX}/", include_in_schema=False)
    async def panel_index() -> Response:
        return page(STATIC / "index.html")

    @app.get(f"{PREFIX}/static/{{name:path}}", include_in_schema=False)
    async def panel_static(name: str) -> Response:
        path = static_file(name)
        if path is None:
            return JSONResponse(envelope.failure(f"no such panel file: {name[:100]}"), status_code=404)
        return page(path)

    @app.post(f"{PREFIX}/session", include_in_schema=False)
    async def session_start(request: Request) -> Response:
        address = address_of(request)
        answer = refused(throttle, address)
        if answer is not None:
            return answer
        fields = await sign_in_fields(request)
        if isinstance(fields, Response):
            return fields
        try:
            session = await run_in_threadpool(
                sign_in,
                catalog,
                name=fields.get("name", ""),
                password=fields.get("password", ""),
                token=fields.get("token", ""),
            )
        except AuthError as error:
            throttle.failed(address, "panel sign-in: wrong user name, password or token")
            return JSONResponse(envelope.failure(str(error)), status_code=401)
        log.info("panel: %s (%s) signed in from %s", session.user.name, session.user.role, address)
        response = JSONResponse(
            envelope.success("Signed In Successfully", {"user": who(session.user), "csrf": session.csrf})
        )
        response.set_cookie(
            SESSION_COOKIE,
            session.cookie,
            max_age=int(users.SESSION_LIFETIME.total_seconds()),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    def arrived(request: Request) -> tuple[str, str, Response | None]:
        """(the caller's address, its session cookie, the 429 answer when the address is throttled)."""
        address = address_of(request)
        return address, request.cookies.get(SESSION_COOKIE, ""), refused(throttle, address)

    @app.get(f"{PREFIX}/session", include_in_schema=False)
    async def session_show(request: Request) -> Response:
        address, cookie, answer = arrived(request)
        if answer is not None:
            return answer
        try:
            user = await run_in_threadpool(current_user, catalog, cookie)
        except AuthError as error:
            failed = JSONResponse(envelope.failure(str(error)), status_code=401)
            if cookie:  # a presented cookie that is wrong is a guess like any other; a stale one
                # is dropped from the browser so that reloading the page does not count again
                throttle.failed(address, STALE_COOKIE)
                failed.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
            return failed
        return JSONResponse(
            envelope.success("Session", {"user": who(user), "csrf": users.csrf_secret(cookie)})
        )

    @app.delete(f"{PREFIX}/session", include_in_schema=False)
    async def session_end(request: Request) -> Response:
        address, cookie, answer = arrived(request)
        if answer is not None:
            return answer
        try:
            await run_in_threadpool(authenticate_session, catalog, cookie, request.headers.get(CSRF_HEADER))
        except CsrfError as error:
            return JSONResponse(envelope.failure(str(error)), status_code=403)
        except AuthError as error:
            if cookie:
                throttle.failed(address, STALE_COOKIE)
            return JSONResponse(envelope.failure(str(error)), status_code=401)
        await run_in_threadpool(sign_out, catalog, cookie)
        response = JSONResponse(envelope.success("Signed Out Successfully", {}))
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response


async def sign_in_fields(request: Request) -> dict[str, str] | Response:
    """The fields of a sign-in request, or the answer refusing it (415, 413, 400)."""
    if not request.headers.get("content-type", "").lower().startswith("application/json"):
        # a cross-site form cannot send JSON without a preflight this server never grants, so
        # another site cannot sign a visitor in to an account of its choosing (login CSRF)
        return JSONResponse(envelope.failure("sign in with Content-Type: application/json"), status_code=415)
    try:
        body = await read_body(request, MAX_SIGN_IN_BODY)
    except (BodyTooLarge, BodyTimeout, ClientDisconnect):
        return JSONResponse(envelope.failure("sign-in request: too large or too slow"), status_code=413)
    try:
        fields = json.loads(body or b"{}")
    except ValueError:
        fields = None
    if not isinstance(fields, dict) or not all(isinstance(value, str) for value in fields.values()):
        return JSONResponse(
            envelope.failure('sign in with a JSON object {"name", "password"} or {"token"}'), status_code=400
        )
    return fields


def current_user(catalog: Catalog, cookie: str) -> users.User:
    """The user of a live session cookie. Raises AuthError."""
    user_id = catalog.verify_token(cookie, kind=users.SESSION) if cookie else None
    if user_id is None:
        raise AuthError(reason="no session; sign in")
    try:
        with catalog.transaction(write=False) as tx:
            return users.require(tx, user_id)
    except SnapkeepError:
        raise AuthError(reason="no session; sign in") from None
