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
    [databases.postgresql]                    # the same, and maintenance_database
    user = "postgres"

With no ``inventory`` key and no ``<home>/accounts.toml`` the host has no accounts (an empty list);
a configured inventory that cannot be read is a ``ConfigError``. Every error names the key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from snapkeep.errors import ConfigError
from snapkeep.jobs.catalog import Transaction
from snapkeep.sources.accounts import open_provider
from snapkeep.sources.accounts.base import Account, AccountProvider, account_id, find_account
from snapkeep.sources.dbclient import DatabaseSettings, ServerSettings
from snapkeep.sources.filters import groups_from_documents, select_accounts

CONFIG_FILE = "config.toml"
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
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None


def _table(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"config.toml: [{name}] must be a table")
    return dict(value)


def _server(section: Mapping[str, Any], engine: str, default: ServerSettings) -> ServerSettings:
    values: dict[str, Any] = {}
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
