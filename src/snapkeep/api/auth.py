"""Who is calling: the ``Authorization: Bearer USER:TOKEN`` header checked against the catalog.

Tokens are stored hashed in the catalog (``Catalog.create_token`` / ``Catalog.verify_token``); this
module only reads the header, asks the catalog, and turns the answer into a dispatcher ``Caller``
or an ``AuthError``. It knows nothing of HTTP frameworks, so any door can use it.
"""

from __future__ import annotations

from typing import Protocol

from snapkeep.api.dispatch import Caller
from snapkeep.errors import AuthError

SCHEME = "bearer"


class TokenVerifier(Protocol):
    """The part of the catalog that checks tokens."""

    def verify_token(self, bearer: str) -> str | None: ...


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


def authenticate(verifier: TokenVerifier, header: str | None) -> Caller:
    """Check an ``Authorization`` header value and return the caller it names.

    Every token holder is an administrator for now; per-user scoping (account owners, resellers,
    DESIGN.md section 8) will narrow ``admin`` here, in one place.

    Raises:
        AuthError: the header is missing or malformed, or the token is unknown or wrong.
    """
    bearer = bearer_from_header(header)
    user = verifier.verify_token(bearer)
    if user is None:
        raise AuthError(reason="unknown or wrong token")
    return Caller(user=user, admin=True)
