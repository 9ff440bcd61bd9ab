"""API users and their tokens (docs/users.md).

A user is ``root`` (the administrator, fixed ID ``ROOT_ID``, always there), a ``reseller`` (owns the
hosting accounts whose provider ``owner`` is its name, plus the ``accounts`` root lists for it) or an
``account`` owner (one hosting account, ``account`` = its username). Root also sets, per user, which
kinds of items it may restore and download (``permissions``) and whether a reseller may manage
destinations of its own (``manage_destinations``).

Tokens belong to a user: the bearer string is ``NAME:SECRET``; only the secret's SHA-256 is stored
(32 random bytes: no salt or slow hash needed), looked up by that hash so an unknown user and a wrong
token cost the same. A token may expire and may be revoked; either way it no longer authenticates.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update

from snapkeep.clock import isoformat
from snapkeep.errors import ConflictError, NotFoundError, ValidationError
from snapkeep.ids import is_id, new_id
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.migrations.m0006_users import ROOT_ID
from snapkeep.jobs.models.destination import SECRET_MASK as MASKED

ROOT = "root"
RESELLER = "reseller"
ACCOUNT = "account"
ROLES = (ROOT, RESELLER, ACCOUNT)
LABEL = "User"
TOKEN_BYTES = 32
#: seconds between two writes of a token's ``last_used`` (a read-mostly table stays read-mostly)
LAST_USED_EVERY = 60
#: token kinds: a bearer token for scripts, or a panel session (cookie + CSRF header only)
API_TOKEN = "api"
SESSION = "session"
#: a panel session ends this long after sign-in, or after this long without a request
SESSION_LIFETIME = _dt.timedelta(hours=12)
SESSION_IDLE = _dt.timedelta(minutes=30)
#: a session's ``last_used`` is written at most this often (it is what the idle limit reads)
SESSION_TOUCH_EVERY = 30
PASSWORD_MIN = 8
PASSWORD_MAX = 1024
#: Argon2id with argon2-cffi's defaults (RFC 9106 low-memory: t=3, m=64 MiB, p=4)
HASHER = PasswordHasher()
NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

#: Items an account's backups hold, as root grants them (JetBackup's per-item permissions).
ITEMS = ("files", "databases", "email", "cron", "dns", "certificates", "ftp")
#: Each component of an account backup and the item permission that covers it; ``config`` (the
#: account's own settings, package and owner) is root's and resellers' only.
COMPONENT_ITEMS = {
    "homedir": "files",
    "databases": "databases",
    "database_users": "databases",
    "email": "email",
    "cron": "cron",
    "domains": "dns",
    "certificates": "certificates",
    "ftp": "ftp",
}
ACTIONS = ("restore", "download")


def all_allowed() -> dict[str, dict[str, bool]]:
    """The default permissions: every item may be restored and downloaded."""
    return {action: dict.fromkeys(ITEMS, True) for action in ACTIONS}


@dataclass(frozen=True)
class User:
    """A user row."""

    id: str
    name: str
    role: str
    account: str
    accounts: tuple[str, ...]
    permissions: dict[str, dict[str, bool]]
    manage_destinations: bool
    created: _dt.datetime
    modified: _dt.datetime
    has_password: bool = False
    #: role account: the node its hosting account is on ("" = any node: a user from before nodes)
    node: str = ""

    @classmethod
    def of(cls, row: Any) -> User:
        document = dict(row.document or {})
        permissions = all_allowed()
        for action, items in dict(document.get("permissions") or {}).items():
            if action in permissions and isinstance(items, Mapping):
                for item, allowed in items.items():
                    if item in ITEMS:
                        permissions[action][item] = bool(allowed)
        return cls(
            id=str(row.id),
            name=str(row.name),
            role=str(row.role),
            account=str(document.get("account") or ""),
            accounts=tuple(str(name) for name in document.get("accounts") or ()),
            permissions=permissions,
            manage_destinations=bool(document.get("manage_destinations")),
            created=row.created,
            modified=row.modified,
            has_password=bool(getattr(row, "password", None)),
            node=str(document.get("node") or ""),
        )

    def present(self) -> dict[str, Any]:
        """The user in API shape."""
        return {
            "_id": self.id,
            "name": self.name,
            "role": self.role,
            "account": self.account or None,
            "node": self.node or None,
            "accounts": list(self.accounts),
            "permissions": {
                action: {k: int(v) for k, v in items.items()} for action, items in self.permissions.items()
            },
            "manage_destinations": 1 if self.manage_destinations else 0,
            "password": MASKED if self.has_password else "",
            "created": isoformat(self.created),
            "modified": isoformat(self.modified),
        }


def check_name(name: Any, field: str = "name") -> str:
    """A user name: letters, digits, ``_ . -``, at most 64, not starting with a symbol."""
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name):
        raise ValidationError(
            field=field,
            problem="must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
    return name


def get(tx: Transaction, ident: str) -> User | None:
    """The user with ID ``ident``, or None."""
    if not is_id(ident):
        return None
    row = tx.connection.execute(select(schema.users).where(schema.users.c.id == ident)).first()
    return None if row is None else User.of(row)


def require(tx: Transaction, ident: str) -> User:
    """Like ``get``; raises NotFoundError("User not found: ID")."""
    found = get(tx, ident)
    if found is None:
        raise NotFoundError(kind=LABEL, ident=ident)
    return found


def by_name(tx: Transaction, name: str) -> User | None:
    """The user called ``name``, or None."""
    row = tx.connection.execute(select(schema.users).where(schema.users.c.name == name)).first()
    return None if row is None else User.of(row)


def named(tx: Transaction, name: str) -> User:
    """The user called ``name``; raises NotFoundError."""
    found = by_name(tx, name)
    if found is None:
        raise NotFoundError(f"no user named {name!r}", kind=LABEL, ident=name)
    return found


def all_users(tx: Transaction) -> list[User]:
    """Every user, root first, then by creation."""
    users = schema.users
    rows = tx.connection.execute(select(users).order_by(users.c.created, users.c.id)).all()
    return sorted((User.of(row) for row in rows), key=lambda user: user.id != ROOT_ID)


def names(tx: Transaction) -> dict[str, str]:
    """``{user ID: name}`` for presenting owners."""
    users = schema.users
    return {str(row.id): str(row.name) for row in tx.connection.execute(select(users.c.id, users.c.name))}


def save(tx: Transaction, ident: str | None, *, name: str, role: str, document: dict[str, Any]) -> str:
    """Create (``ident`` None) or replace a user; return its ID. Raises ConflictError for a taken name."""
    users = schema.users
    other = by_name(tx, name)
    if other is not None and other.id != ident:
        raise ConflictError(f"a user named {name!r} already exists ({other.id})")
    now = tx.clock.now()
    if ident is None:
        ident = new_id(tx.clock)
        tx.connection.execute(
            users.insert().values(
                id=ident, name=name, role=role, created=now, modified=now, document=document
            )
        )
    else:
        tx.connection.execute(
            update(users)
            .where(users.c.id == ident)
            .values(name=name, role=role, modified=now, document=document)
        )
    return ident


def owned_objects(tx: Transaction, ident: str) -> list[str]:
    """What still belongs to user ``ident``: ``["2 Backup Jobs", ...]``."""
    found = []
    for kind, label in (
        ("jobs", "Backup Jobs"),
        ("destinations", "Destinations"),
        ("schedules", "Schedules"),
        ("hooks", "Hooks"),
        ("account_filters", "Account Filters"),
    ):
        table = schema.TABLES[kind]
        count = tx.connection.execute(
            select(func.count()).select_from(table).where(table.c.owner == ident)
        ).scalar_one()
        if count:
            found.append(f"{count} {label}")
    return found


def remove(tx: Transaction, ident: str) -> None:
    """Delete a user and its tokens. Refuses root, and a user that still owns objects."""
    user = require(tx, ident)
    if user.id == ROOT_ID:
        raise ConflictError("the root user cannot be deleted")
    still = owned_objects(tx, ident)
    if still:
        raise ConflictError(
            f"user {user.name!r} still owns {', '.join(still)}: delete them or give them to another user"
        )
    tx.connection.execute(schema.tokens.delete().where(schema.tokens.c.user_id == ident))
    tx.connection.execute(schema.users.delete().where(schema.users.c.id == ident))


# --- tokens ----------------------------------------------------------------------------------


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(
    tx: Transaction,
    user: User,
    *,
    name: str = "",
    expires: _dt.datetime | None = None,
    kind: str = API_TOKEN,
) -> tuple[str, str]:
    """A new token for ``user``: ``(token ID, "NAME:SECRET")``; only the secret's hash is stored."""
    secret = secrets.token_hex(TOKEN_BYTES)
    ident = new_id(tx.clock)
    tx.connection.execute(
        schema.tokens.insert().values(
            id=ident,
            user=user.name,
            user_id=user.id,
            name=name,
            secret_hash=_hash(secret),
            created=tx.clock.now(),
            expires=expires,
            kind=kind,
        )
    )
    return ident, f"{user.name}:{secret}"


def present_token(row: Any, now: _dt.datetime) -> dict[str, Any]:
    """A token in API shape: never its secret or hash."""
    state = (
        "revoked"
        if row.revoked
        else "expired"
        if row.expires is not None and row.expires <= now
        else "active"
    )
    return {
        "_id": str(row.id),
        "user_id": str(row.user_id),
        "user": str(row.user),
        "name": str(row.name or ""),
        "created": isoformat(row.created),
        "expires": isoformat(row.expires),
        "last_used": isoformat(row.last_used),
        "revoked": isoformat(row.revoked),
        "state": state,
        "kind": str(getattr(row, "kind", API_TOKEN) or API_TOKEN),
    }


def list_tokens(tx: Transaction, user_id: str | None = None) -> list[dict[str, Any]]:
    """Every token (of one user when given), oldest first."""
    tokens = schema.tokens
    query = select(tokens).order_by(tokens.c.created, tokens.c.id)
    if user_id is not None:
        query = query.where(tokens.c.user_id == user_id)
    now = tx.clock.now()
    return [present_token(row, now) for row in tx.connection.execute(query)]


def revoke_token(tx: Transaction, ident: str) -> dict[str, Any]:
    """Revoke token ``ident`` (kept, marked revoked); return it. Raises NotFoundError."""
    tokens = schema.tokens
    row = tx.connection.execute(select(tokens).where(tokens.c.id == ident)).first() if is_id(ident) else None
    if row is None:
        raise NotFoundError(kind="Token", ident=ident)
    if row.revoked is None:
        tx.connection.execute(update(tokens).where(tokens.c.id == ident).values(revoked=tx.clock.now()))
        row = tx.connection.execute(select(tokens).where(tokens.c.id == ident)).first()
    return present_token(row, tx.clock.now())


@dataclass(frozen=True)
class TokenMatch:
    """A token that authenticates: whose it is, and whether ``last_used`` is due for a write."""

    token_id: str
    user_id: str
    touch: bool


def check_token(tx: Transaction, bearer: str, *, kind: str = API_TOKEN) -> TokenMatch | None:
    """The token of ``kind`` a ``NAME:SECRET`` bearer string is, or None (unknown, wrong, another
    kind, expired, revoked, or a session idle too long). Reads only: ``touch_token`` records the use
    when ``touch`` says it is due."""
    name, separator, secret = bearer.strip().partition(":")
    if not separator or not name or not secret:
        return None
    tokens = schema.tokens
    row = tx.connection.execute(select(tokens).where(tokens.c.secret_hash == _hash(secret))).first()
    if row is None or not hmac.compare_digest(str(row.user).encode(), name.encode()):
        return None
    now = tx.clock.now()
    if row.revoked is not None or (row.expires is not None and row.expires <= now):
        return None
    if str(row.kind) != kind:
        return None
    every = LAST_USED_EVERY
    if kind == SESSION:
        if now - (row.last_used or row.created) >= SESSION_IDLE:
            return None
        every = SESSION_TOUCH_EVERY
    touch = row.last_used is None or (now - row.last_used).total_seconds() >= every
    return TokenMatch(token_id=str(row.id), user_id=str(row.user_id), touch=touch)


def touch_token(tx: Transaction, token_id: str) -> None:
    """Record that a token was used now."""
    tokens = schema.tokens
    tx.connection.execute(update(tokens).where(tokens.c.id == token_id).values(last_used=tx.clock.now()))


def parse_duration(text: str, field: str = "expires") -> _dt.timedelta:
    """``30d``, ``12h``, ``90m``, ``2w`` as a time span. Raises ValidationError."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*([mhdw])\s*", text or "")
    if not match:
        raise ValidationError(
            field=field, problem=f"must be a number and a unit m, h, d or w, e.g. 30d (got {text!r})"
        )
    number, unit = int(match.group(1)), match.group(2)
    if number == 0:
        raise ValidationError(field=field, problem="must be longer than zero")
    return {
        "m": _dt.timedelta(minutes=number),
        "h": _dt.timedelta(hours=number),
        "d": _dt.timedelta(days=number),
        "w": _dt.timedelta(weeks=number),
    }[unit]


__all__ = [
    "ACCOUNT",
    "ACTIONS",
    "COMPONENT_ITEMS",
    "ITEMS",
    "MASKED",
    "RESELLER",
    "ROLES",
    "ROOT",
    "ROOT_ID",
    "SESSION",
    "User",
    "all_allowed",
    "check_token",
    "create_session",
    "create_token",
    "csrf_secret",
    "hash_password",
    "list_tokens",
    "revoke_token",
    "touch_token",
]


# --- passwords and panel sessions (docs/panel.md) -----------------------------------------------

#: verified against when the user is unknown or has no password, so every failure costs one Argon2id
_DUMMY_HASH = HASHER.hash("snapkeep: no such user")


def check_password_text(password: Any, field: str = "password") -> str:
    """A password a user may be given: a string of 8 to 1,024 characters. Raises ValidationError."""
    if not isinstance(password, str):
        raise ValidationError(field=field, problem="must be a string")
    if len(password) < PASSWORD_MIN:
        raise ValidationError(field=field, problem=f"must be at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise ValidationError(field=field, problem=f"must be at most {PASSWORD_MAX} characters")
    return password


def hash_password(password: str) -> str:
    """The Argon2id PHC string of ``password`` (random salt inside)."""
    return HASHER.hash(password)


def set_password(tx: Transaction, ident: str, password_hash: str | None) -> None:
    """Store (or, with None, remove) user ``ident``'s password hash. Raises NotFoundError."""
    require(tx, ident)
    users = schema.users
    tx.connection.execute(
        update(users).where(users.c.id == ident).values(password=password_hash, modified=tx.clock.now())
    )


def password_hash_of(tx: Transaction, name: str) -> tuple[User | None, str]:
    """The user called ``name`` and its stored hash (a dummy one when either is missing)."""
    row = tx.connection.execute(select(schema.users).where(schema.users.c.name == name)).first()
    if row is None or not row.password:
        return None, _DUMMY_HASH
    return User.of(row), str(row.password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches an Argon2id PHC string (constant work either way)."""
    try:
        return HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_session(tx: Transaction, user: User) -> tuple[str, str]:
    """A new panel session for ``user``: ``(token ID, "NAME:SECRET")``; it ends at the latest
    ``SESSION_LIFETIME`` from now. Sessions that ended (expired, idle too long, signed out) are
    removed first, so the table does not grow with every sign-in."""
    purge_sessions(tx)
    return create_token(
        tx, user, name="panel session", expires=tx.clock.now() + SESSION_LIFETIME, kind=SESSION
    )


def purge_sessions(tx: Transaction) -> int:
    """Delete every panel session that can no longer authenticate; return how many."""
    tokens = schema.tokens
    now = tx.clock.now()
    ended = (
        (tokens.c.expires <= now)
        | tokens.c.revoked.is_not(None)
        | (func.coalesce(tokens.c.last_used, tokens.c.created) <= now - SESSION_IDLE)
    )
    result = tx.connection.execute(tokens.delete().where((tokens.c.kind == SESSION) & ended))
    return int(result.rowcount or 0)


def csrf_secret(bearer: str) -> str:
    """The CSRF secret of a session: an HMAC of its bearer string, so it is known only to whoever
    holds the session (the page it was given to) and needs no storage."""
    return hmac.new(bearer.encode("utf-8"), b"snapkeep panel csrf", hashlib.sha256).hexdigest()


def session_of(tx: Transaction, bearer: str) -> TokenMatch | None:
    """The live session ``bearer`` is, or None (not a session, unknown, revoked, expired, idle)."""
    return check_token(tx, bearer, kind=SESSION)
