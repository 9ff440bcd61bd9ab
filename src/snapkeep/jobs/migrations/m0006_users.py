"""Migration 6: API users with roles, tokens that belong to them, and owners that are user IDs.

``users``: one row per API user (``root``, a ``reseller`` or an ``account`` owner) with its name
(unique), role and a document (the account it is, the accounts and permissions root gave it). The
administrator ``root`` always exists with the fixed ID ``ROOT_ID``.

``tokens`` gain ``user_id`` (the user the token belongs to), ``name`` (a label), ``expires`` and
``revoked``. ``destinations``, ``schedules``, ``hooks`` and ``account_filters`` gain an ``owner``
column like ``jobs``.

Data: every owner recorded so far was a user *name* (``root`` almost always). ``root`` becomes
``ROOT_ID``; any other name gets a user of role ``account`` for the account of that name (before this
migration such a token was an administrator in all but name: it now sees only that account's
backups, which is what its name promised), and its tokens, jobs, queue groups and logs move to that
user's ID.

Frozen: once released, this file never changes. A later migration alters what it made.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Connection, MetaData, String, Table, select, text, update

from snapkeep.clock import SYSTEM
from snapkeep.ids import new_id
from snapkeep.jobs.migrations.m0001_initial import UtcDateTime

NAME = "users"
ROOT_ID = "000000000000000000000000"
OWNED = ("destinations", "schedules", "hooks", "account_filters")


def define(metadata: MetaData) -> dict[str, Table]:
    """Define the version-6 ``users`` table on ``metadata`` and return it by name."""
    table = Table(
        "users",
        metadata,
        Column("id", String(24), primary_key=True),
        Column("name", String(64), nullable=False, unique=True),
        Column("role", String(16), nullable=False),
        Column("created", UtcDateTime, nullable=False),
        Column("modified", UtcDateTime, nullable=False),
        Column("document", JSON, nullable=False),
    )
    return {table.name: table}


def token_columns() -> list[Column[Any]]:
    """The version-6 columns of ``tokens`` (``schema`` appends them to the table)."""
    return [
        Column("user_id", String(24), nullable=False, server_default=text(f"'{ROOT_ID}'"), index=True),
        Column("name", String(255), nullable=False, server_default=text("''")),
        Column("expires", UtcDateTime),
        Column("revoked", UtcDateTime),
    ]


def owner_column() -> Column[str]:
    """The ``owner`` column the objects of ``OWNED`` gain (a user ID)."""
    return Column("owner", String(255), nullable=False, server_default=text(f"'{ROOT_ID}'"), index=True)


def upgrade(connection: Connection) -> None:
    """Create ``users`` with root, add the token and owner columns, and turn owner names into IDs."""
    metadata = MetaData()
    users = define(metadata)["users"]
    metadata.create_all(connection)
    now = SYSTEM.now()
    blank_user = {"account": "", "accounts": [], "permissions": {}, "manage_destinations": False}
    connection.execute(
        users.insert().values(
            id=ROOT_ID, name="root", role="root", created=now, modified=now, document=blank_user
        )
    )
    connection.execute(
        text(f"ALTER TABLE tokens ADD COLUMN user_id VARCHAR(24) NOT NULL DEFAULT '{ROOT_ID}'")
    )
    connection.execute(text("ALTER TABLE tokens ADD COLUMN name VARCHAR(255) NOT NULL DEFAULT ''"))
    stamp = "TIMESTAMP WITH TIME ZONE" if connection.dialect.name == "postgresql" else "DATETIME"
    connection.execute(text(f"ALTER TABLE tokens ADD COLUMN expires {stamp}"))
    connection.execute(text(f"ALTER TABLE tokens ADD COLUMN revoked {stamp}"))
    for kind in OWNED:
        connection.execute(
            text(f"ALTER TABLE {kind} ADD COLUMN owner VARCHAR(255) NOT NULL DEFAULT '{ROOT_ID}'")
        )
    for kind in (*OWNED, "tokens", "jobs", "queue_groups", "logs"):
        column = "user_id" if kind == "tokens" else "owner"
        connection.execute(text(f"CREATE INDEX ix_{kind}_{column}_m6 ON {kind} ({column})"))

    ids: dict[str, str] = {"root": ROOT_ID}

    def user_for(name: str) -> str:
        if name not in ids:
            ident = new_id(SYSTEM)
            document = {**blank_user, "account": name}
            connection.execute(
                users.insert().values(
                    id=ident, name=name[:64], role="account", created=now, modified=now, document=document
                )
            )
            ids[name] = ident
        return ids[name]

    meta = MetaData()
    tokens = Table(
        "tokens", meta, Column("id", String(24)), Column("user", String(255)), Column("user_id", String(24))
    )
    for row in connection.execute(select(tokens.c.id, tokens.c.user)).all():
        connection.execute(
            update(tokens).where(tokens.c.id == row.id).values(user_id=user_for(str(row.user)))
        )
    for kind in ("queue_groups", "logs"):
        table = Table(kind, meta, Column("owner", String(255)))
        for name in connection.execute(select(table.c.owner).distinct()).scalars().all():
            connection.execute(update(table).where(table.c.owner == name).values(owner=user_for(str(name))))
    jobs = Table(
        "jobs", meta, Column("id", String(24)), Column("owner", String(255)), Column("document", JSON)
    )
    for job in connection.execute(select(jobs.c.id, jobs.c.owner, jobs.c.document)).all():
        ident = user_for(str(job.owner))
        document = {**dict(job.document or {}), "owner": ident}
        connection.execute(update(jobs).where(jobs.c.id == job.id).values(owner=ident, document=document))
    backups = Table("backups", meta, Column("id", String(24)), Column("document", JSON))
    for backup in connection.execute(select(backups.c.id, backups.c.document)).all():
        document = dict(backup.document or {})
        if "owner" in document:
            document["owner"] = user_for(str(document["owner"]))
            connection.execute(update(backups).where(backups.c.id == backup.id).values(document=document))
