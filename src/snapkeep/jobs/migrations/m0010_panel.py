"""Migration 10: the web panel's passwords and sessions (issue 15, docs/panel.md).

``users`` gain ``password``: an Argon2id hash (argon2-cffi's PHC string), NULL for a user that signs
in with tokens only. ``tokens`` gain ``kind``: ``api`` (a bearer token, as before) or ``session`` (a
panel sign-in, presented only in the session cookie, with idle and absolute lifetimes).

Frozen: once released, this file never changes. A later migration alters what it made.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Connection, String, text

NAME = "panel passwords and sessions"


def user_columns() -> list[Column[Any]]:
    """The version-10 columns of ``users`` (``schema`` appends them to the table)."""
    return [Column("password", String(255))]


def token_columns() -> list[Column[Any]]:
    """The version-10 columns of ``tokens``."""
    return [Column("kind", String(16), nullable=False, server_default=text("'api'"))]


def upgrade(connection: Connection) -> None:
    """Add ``users.password`` and ``tokens.kind`` (every existing token is an API token)."""
    connection.execute(text("ALTER TABLE users ADD COLUMN password VARCHAR(255)"))
    connection.execute(text("ALTER TABLE tokens ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'api'"))
