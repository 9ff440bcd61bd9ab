"""Who is calling: the ``Authorization: Bearer USER:TOKEN`` header checked against the catalog.

Tokens are stored hashed in the catalog (``jobs.users``); this module only reads the header, asks the
catalog, and turns the answer into a dispatcher ``Caller`` (the token's user, ``jobs.access``) or an
``AuthError``. It knows nothing of HTTP frameworks, so any door can use it.
"""

from __future__ import annotations

from snapkeep.api.dispatch import Caller
from snapkeep.errors import AuthError
from snapkeep.jobs import access, users
from snapkeep.jobs.catalog import Catalog

SCHEME = "bearer"


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
    with catalog.transaction(write=False) as tx:
        user = users.get(tx, user_id)
        if user is None:
            raise AuthError(reason="unknown, wrong, expired or revoked token")
        return access.principal(tx, user, catalog.home)
