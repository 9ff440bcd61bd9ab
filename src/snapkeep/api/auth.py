"""Who is calling: the ``Authorization: Bearer USER:TOKEN`` header checked against the catalog, or
the web panel's session cookie together with its CSRF header (API.md section 2, "Doors";
docs/panel.md).

Tokens are stored hashed in the catalog (``jobs.users``); this module only reads the header, asks the
catalog, and turns the answer into a dispatcher ``Caller`` (the token's user, ``jobs.access``) or an
``AuthError``. It knows nothing of HTTP frameworks, so any door can use it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from snapkeep.api.dispatch import Caller
from snapkeep.errors import AuthError
from snapkeep.jobs import access, users
from snapkeep.jobs.catalog import Catalog

SCHEME = "bearer"
#: the panel's session cookie and the header that must carry the session's CSRF secret
SESSION_COOKIE = "snapkeep_session"
CSRF_HEADER = "x-csrf-token"
SESSION_FAILED = "unknown, expired or signed-out session; sign in again"


class CsrfError(AuthError):
    """A valid session cookie without the right CSRF header: refused (403), not counted as a guess."""


def bearer_from_header(header: str | None) -> str:
    """Return the ``USER:TOKEN`` part of an ``Authorization`` header value.

    Raises:
        AuthError: the header is missing, not of the ``Bearer`` scheme, or not ``USER:TOKEN``.
    """
    if header is None or not header.strip():
        raise AuthError(reason='missing "Authorization: Bearer USER:TOKEN" header')
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != SCHEME:
        raise AuthError(reason=f"Authorization scheme must be Bearer, not {scheme[:20]!r}")
    credentials = credentials.strip()
    user, separator, secret = credentials.partition(":")
    if not separator or not user or not secret:
        raise AuthError(reason="the Bearer token must have the form USER:TOKEN")
    return credentials


def authenticate(catalog: Catalog, header: str | None) -> Caller:
    """Check an ``Authorization`` header value and return the caller it names: the token's user with
    what that user may reach (``jobs.access.principal``). Revoked and expired tokens fail like
    unknown ones.

    Raises:
        AuthError: the header is missing or malformed, or the token is unknown, wrong, expired or
        revoked (one message for all: nothing tells which).
    """
    bearer = bearer_from_header(header)
    user_id = catalog.verify_token(bearer)
    if user_id is None:
        raise AuthError(reason="unknown, wrong, expired or revoked token")
    return caller_of(catalog, user_id)


def caller_of(catalog: Catalog, user_id: str) -> Caller:
    """The dispatcher caller for user ``user_id``. Raises AuthError when the user is gone."""
    with catalog.transaction(write=False) as tx:
        user = users.get(tx, user_id)
        if user is None:
            raise AuthError(reason="unknown, wrong, expired or revoked token")
        return access.principal(tx, user, catalog.home)


def authenticate_session(catalog: Catalog, cookie: str | None, csrf: str | None) -> Caller:
    """The caller of a panel session cookie presented with its CSRF header.

    Raises:
        AuthError: the cookie names no live session (unknown, signed out, expired, idle too long).
        CsrfError: the session is live but the CSRF header is missing or wrong.
    """
    bearer = (cookie or "").strip()
    user_id = catalog.verify_token(bearer, kind=users.SESSION) if bearer else None
    if user_id is None:
        raise AuthError(reason=SESSION_FAILED)
    expected = users.csrf_secret(bearer)
    if not csrf or not hmac.compare_digest(expected.encode(), csrf.strip().encode("utf-8", "replace")):
        raise CsrfError(reason=f"the session cookie must come with the {CSRF_HEADER} header of its session")
    return caller_of(catalog, user_id)


@dataclass(frozen=True)
class Session:
    """A signed-in panel session: the cookie value, its CSRF secret and who it is."""

    cookie: str
    csrf: str
    user: users.User


def sign_in(catalog: Catalog, *, name: str = "", password: str = "", token: str = "") -> Session:
    """Start a panel session with a user name and password, or with an API token (``USER:TOKEN``).

    Every failed attempt costs about the same (an unknown user is checked against a dummy hash).

    Raises:
        AuthError: wrong name, password or token (one message for all).
    """
    failed = AuthError(reason="wrong user name, password or token")
    if token:
        user_id = catalog.verify_token(token.strip())
        if user_id is None:
            raise failed
        with catalog.transaction(write=False) as tx:
            user = users.get(tx, user_id)
    else:
        if len(password) > users.PASSWORD_MAX or len(name) > 64:
            raise failed
        with catalog.transaction(write=False) as tx:
            user, stored = users.password_hash_of(tx, name)
        if not users.verify_password(stored, password) or user is None:
            raise failed
    if user is None:
        raise failed
    with catalog.transaction() as tx:
        _ident, bearer = users.create_session(tx, user)
    return Session(cookie=bearer, csrf=users.csrf_secret(bearer), user=user)


def sign_out(catalog: Catalog, cookie: str) -> None:
    """Revoke the session ``cookie`` names (nothing when it names none)."""
    with catalog.transaction() as tx:
        found = users.session_of(tx, cookie) if cookie else None
        if found is not None:
            users.revoke_token(tx, found.token_id)
