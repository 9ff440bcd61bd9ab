"""Accounts for the jobs layer: the account provider and database settings from ``config.toml``,
the accounts a job selects, and accounts in API shape (``listAccounts``, ``getAccount``).

These settings belong to one server, so they live in its ``<home>/config.toml`` (the data
directory's configuration file, DESIGN.md section 7), not in the catalog several servers may share
(the shared ones are ``jobs.settings``: performance, time zone, log retention, notifications). Every
key is optional::

    [accounts]
    provider = "inventory"                    # "inventory" (default) or "linux"
    inventory = "/etc/snapkeep/accounts.toml" # default <home>/accounts.toml
    # linux provider: uid_min, uid_max, cron_spool, maildir, engines, measure, suspended

    [databases]
    mariadb_client = "mariadb"                # also mariadb_dump, psql, pg_dump
    [databases.mariadb]                       # host, port, user, password, socket
    host = "127.0.0.1"
    password = "sk-sealed:v1:..."             # from 'snapkeep keys seal-password mariadb'
    [databases.postgresql]                    # the same, and maintenance_database
    user = "postgres"
    password_file = "/etc/snapkeep/pg.pass"   # or the password in a file of mode 0600

Database passwords (docs/secrets.md): ``password`` may be a value sealed with the master key
(``snapkeep keys seal-password ENGINE`` prints it; purpose ``config/databases/<engine>/password``),
or ``password_file`` names an absolute path to a file holding it on its first line, readable by its
owner only. A password in clear is still read (``config.toml`` is 0600 in a 0700 data directory),
with a warning that it should be sealed.

With no ``inventory`` key and no ``<home>/accounts.toml`` the host has no accounts (an empty list);
a configured inventory that cannot be read is a ``ConfigError``. Every error names the key.
"""

from __future__ import annotations

import logging
import os
import stat
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from snapkeep.errors import ConfigError
from snapkeep.jobs import sealing
from snapkeep.jobs.catalog import Transaction
from snapkeep.sources.accounts import open_provider
from snapkeep.sources.accounts.base import Account, AccountProvider, account_id, find_account
from snapkeep.sources.dbclient import DatabaseSettings, ServerSettings
from snapkeep.sources.filters import groups_from_documents, select_accounts

log = logging.getLogger(__name__)

CONFIG_FILE = "config.toml"
#: the longest database password file read
MAX_PASSWORD_FILE = 4096
DEFAULT_INVENTORY = "accounts.toml"
_PROGRAMS = ("mariadb_client", "mariadb_dump", "psql", "pg_dump")
_SERVER_KEYS = {item.name: item.type for item in fields(ServerSettings)}


def load_config(home: Path) -> dict[str, Any]:
    """``<home>/config.toml`` as a dictionary ({} when there is none). Raises ConfigError when it
    cannot be read or is not valid TOML."""
    path = Path(home) / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {error}") from None
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    if sealing.has_key(home):  # its sealed database passwords open with the home's master key
        sealing.master_key(home, create=False)
    return config


def _table(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"config.toml: [{name}] must be a table")
    return dict(value)


def password_purpose(engine: str) -> str:
    """The sealing purpose of a database password in ``config.toml``."""
    return f"config/databases/{engine}/password"


def _password_file(value: Any, engine: str) -> str:
    """The password on the first line of ``password_file``: an absolute path to a regular file no one
    but its owner may read. Raises ConfigError naming the key."""
    where = f"config.toml: databases.{engine}.password_file"
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigError(f"{where}: must be an absolute path")
    try:
        descriptor = os.open(value, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise ConfigError(f"{where}: cannot open {value}: {error.strerror}") from None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) & 0o077:
            raise ConfigError(f"{where}: {value} must be a regular file of mode 0600 or 0400")
        data = handle.read(MAX_PASSWORD_FILE + 1)
    if len(data) > MAX_PASSWORD_FILE:
        raise ConfigError(f"{where}: {value} is too long for a password")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {value} is not UTF-8 text") from None
    return lines[0] if lines else ""


def _password(section: dict[str, Any], engine: str) -> str | None:
    """Take ``password``/``password_file`` out of ``section``: the password in clear (None: not
    set). Raises ConfigError for both at once, a bad file, or a sealed value that does not open."""
    password, file = section.pop("password", None), section.pop("password_file", None)
    if password is not None and file is not None:
        raise ConfigError(f"config.toml: databases.{engine}: give password or password_file, not both")
    if file is not None:
        return _password_file(file, engine)
    if password is None:
        return None
    if not isinstance(password, str):
        raise ConfigError(f"config.toml: databases.{engine}.password: must be a str")
    if sealing.is_sealed(password):
        return sealing.open_value(password, password_purpose(engine))
    if password:
        log.warning(
            "config.toml: databases.%s.password is in clear; seal it with 'snapkeep keys seal-password %s' "
            "or use password_file (docs/secrets.md)",
            engine,
            engine,
        )
    return password


def _server(section: Mapping[str, Any], engine: str, default: ServerSettings) -> ServerSettings:
    section = dict(section)
    password = _password(section, engine)
    values: dict[str, Any] = {} if password is None else {"password": password}
    for key, value in section.items():
        if key not in _SERVER_KEYS:
            raise ConfigError(f"config.toml: databases.{engine}.{key}: unknown key")
        wanted = int if key == "port" else str
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise ConfigError(f"config.toml: databases.{engine}.{key}: must be a {wanted.__name__}")
        values[key] = value
    return ServerSettings(**{**_defaults(default), **values})


def _defaults(server: ServerSettings) -> dict[str, Any]:
    return {name: getattr(server, name) for name in _SERVER_KEYS}


def database_settings(config: Mapping[str, Any]) -> DatabaseSettings:
    """The ``[databases]`` table as ``DatabaseSettings``. Raises ConfigError naming a bad key."""
    section = _table(config, "databases")
    base = DatabaseSettings()
    programs: dict[str, str] = {}
    for key, value in section.items():
        if key in ("mariadb", "postgresql"):
            continue
        if key not in _PROGRAMS:
            raise ConfigError(f"config.toml: databases.{key}: unknown key")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"config.toml: databases.{key}: must be a program name or path")
        programs[key] = value
    mariadb = _server(_table(section, "mariadb"), "mariadb", base.mariadb)
    postgresql = _server(_table(section, "postgresql"), "postgresql", base.postgresql)
    return DatabaseSettings(mariadb=mariadb, postgresql=postgresql, **programs)


def provider(home: Path, config: Mapping[str, Any] | None = None) -> AccountProvider | None:
    """The configured account provider; None when the default inventory file does not exist (a
    host without accounts). Raises ConfigError for a bad ``[accounts]`` table."""
    config = load_config(home) if config is None else config
    section = _table(config, "accounts")
    kind = section.pop("provider", "inventory")
    if kind == "inventory":
        configured = section.pop("inventory", None)
        if section:
            raise ConfigError(
                f"config.toml: accounts.{sorted(section)[0]}: unknown key for the inventory provider"
            )
        if configured is None:
            default = Path(home) / DEFAULT_INVENTORY
            return open_provider("inventory", path=str(default)) if default.exists() else None
        if not isinstance(configured, str) or not configured.startswith("/"):
            raise ConfigError(
                f"config.toml: accounts.inventory: must be an absolute path (got {configured!r})"
            )
        return open_provider("inventory", path=configured)
    if kind == "linux":
        options = {key: tuple(value) if isinstance(value, list) else value for key, value in section.items()}
        return open_provider("linux", settings=database_settings(config), **options)
    raise ConfigError(
        f"config.toml: accounts.provider: unknown account provider {kind!r} (inventory or linux)"
    )


def list_accounts(home: Path) -> list[Account]:
    """Every account of the configured provider, sorted by username. Raises ConfigError."""
    found = provider(home)
    return [] if found is None else found.list_accounts()


def get_account(home: Path, username: str) -> Account:
    """One account by username. Raises NotFoundError and ConfigError."""
    return find_account(list_accounts(home), username)


def job_accounts(tx: Transaction, accounts: Sequence[Account], job: Mapping[str, Any]) -> list[Account]:
    """The accounts ``job``'s ``filters`` select. Raises NotFoundError for a filter group that no
    longer exists, ValidationError for a stored filter that is not valid."""
    groups = groups_from_documents(tx.all("account_filters"))
    return select_accounts(accounts, [list(inner) for inner in job.get("filters") or []], groups)


def present(account: Account) -> dict[str, Any]:
    """An account in API shape: its record with ``_id`` (``account_id``: stable, 24 hex), ``name`` =
    the username, and the flags ``suspended`` and ``reseller`` as 1 or null (API.md section 1)."""
    record = account.to_record()
    record.update(suspended=1 if account.suspended else None, reseller=1 if account.reseller else None)
    return {**record, "_id": account_id(account.username), "name": account.username}
