"""The ``inventory`` provider: accounts described in a TOML file.

The default on hosts without a control panel, and what the tests use. The file holds one
``[[account]]`` table per account::

    [[account]]
    username = "alice"                    # required: letters, digits, '.', '_', '-'
    home = "/home/alice"                  # required, absolute
    owner = "root"                        # the reseller (or root) who owns the account
    reseller = false                      # whether the account is itself a reseller
    package = "gold"
    suspended = false
    tags = ["vip"]
    disk_usage = 1048576                  # bytes; measured from the home when left out
    inodes = 120                          # measured from the home when left out
    mail_root = "/home/alice/Maildir"
    cron_file = "/var/spool/cron/crontabs/alice"
    certificates = ["/etc/ssl/alice.example.pem"]
    ftp_files = ["/etc/pure-ftpd/alice.passwd"]
    excludes = ["cache/**"]               # globs relative to the home
    [[account.databases]]                 # engine = "mariadb" | "postgresql"
    engine = "mariadb"
    name = "alice_wp"
    [[account.database_users]]
    engine = "mariadb"
    name = "alice_wp"
    host = "localhost"
    [[account.domains]]
    name = "alice.example"
    zone_file = "/var/named/alice.example.db"
    [[account.ftp_accounts]]
    name = "alice_ftp"
    directory = "/home/alice/public_html"

Every error names the account (by position and username) and the field.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from snapkeep.errors import ConfigError
from snapkeep.sources.accounts.base import (
    DATABASE_ENGINES,
    Account,
    Database,
    DatabaseUser,
    Domain,
    FtpAccount,
    find_account,
    measure_home,
)

USERNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")

_STRINGS = ("owner", "package", "mail_root", "cron_file")
_ABSOLUTE = ("mail_root", "cron_file")
_BOOLEANS = ("reseller", "suspended")
_COUNTS = ("disk_usage", "inodes")
_STRING_LISTS = ("tags", "certificates", "ftp_files", "excludes")
_ABSOLUTE_LISTS = ("certificates", "ftp_files")


def _record_fields(
    cls: Callable[..., Any], required: tuple[str, ...], optional: dict[str, type]
) -> Callable[[str, Any], Any]:
    """A parser for one sub-table kind (``databases`` items...) that checks keys and types."""

    def parse(where: str, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: must be a table, not {type(raw).__name__}")
        unknown = sorted(set(raw) - set(required) - set(optional))
        if unknown:
            raise ConfigError(f"{where}: unknown field {unknown[0]!r}")
        values: dict[str, Any] = {}
        for key in required:
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise ConfigError(f"{where}.{key}: required, a non-empty string")
            values[key] = raw[key]
        for key, kind in optional.items():
            if key in raw:
                if not isinstance(raw[key], kind) or isinstance(raw[key], bool) != (kind is bool):
                    raise ConfigError(f"{where}.{key}: must be a {kind.__name__}")
                values[key] = raw[key]
        return cls(**values)

    return parse


_DATABASE = _record_fields(Database, ("engine", "name"), {})
_DATABASE_USER = _record_fields(DatabaseUser, ("engine", "name"), {"host": str})
_DOMAIN = _record_fields(Domain, ("name",), {"zone_file": str})
_FTP = _record_fields(FtpAccount, ("name",), {"directory": str, "password_hash": str, "quota": int})
_TABLES: dict[str, Callable[[str, Any], Any]] = {
    "databases": _DATABASE,
    "database_users": _DATABASE_USER,
    "domains": _DOMAIN,
    "ftp_accounts": _FTP,
}
_KNOWN = {"username", "home", *_STRINGS, *_BOOLEANS, *_COUNTS, *_STRING_LISTS, *_TABLES}


def _string(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: must be a string")
    if key in _ABSOLUTE and value and not value.startswith("/"):
        raise ConfigError(f"{where}.{key}: must be an absolute path (got {value!r})")
    return value


def _boolean(where: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: must be true or false")
    return value


def _count(where: str, key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}.{key}: must be a non-negative integer")
    return value


def _string_list(where: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ConfigError(f"{where}.{key}: must be a list of non-empty strings")
    if key in _ABSOLUTE_LISTS:
        for item in value:
            if not item.startswith("/"):
                raise ConfigError(f"{where}.{key}: {item!r} is not an absolute path")
    return tuple(value)


def _table(where: str, key: str, value: Any) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}.{key}: must be an array of tables ([[account.{key}]])")
    parse = _TABLES[key]
    return tuple(parse(f"{where}.{key}[{index}]", item) for index, item in enumerate(value))


#: each optional field's checker, by the kind of value it takes
_FIELD_CHECKS: tuple[tuple[Iterable[str], Callable[[str, str, Any], Any]], ...] = (
    (_STRINGS, _string),
    (_BOOLEANS, _boolean),
    (_COUNTS, _count),
    (_STRING_LISTS, _string_list),
    (_TABLES, _table),
)


def _identity(raw: Any, position: int) -> tuple[str, dict[str, Any]]:
    """Where log lines name the account, and its ``username`` and ``home``; raises ConfigError."""
    where = f"account[{position}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    username = raw.get("username")
    if not isinstance(username, str) or not USERNAME.match(username):
        raise ConfigError(f"{where}.username: required, letters, digits, '.', '_' or '-' (got {username!r})")
    where = f"account[{position}] ({username})"
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r}")
    home = raw.get("home")
    if not isinstance(home, str) or not home.startswith("/"):
        raise ConfigError(f"{where}.home: required, an absolute path (got {home!r})")
    return where, {"username": username, "home": home.rstrip("/") or "/"}


def _check_engines(where: str, values: dict[str, Any]) -> None:
    for kind in ("databases", "database_users"):
        for item in values.get(kind, ()):
            if item.engine not in DATABASE_ENGINES:
                raise ConfigError(
                    f"{where}.{kind}: engine {item.engine!r} is not one of {', '.join(DATABASE_ENGINES)}"
                )


def parse_account(raw: Any, position: int, *, measure: bool = True) -> Account:
    """One ``[[account]]`` table as an ``Account``; raises ``ConfigError`` naming the field."""
    where, values = _identity(raw, position)
    for keys, check in _FIELD_CHECKS:
        for key in keys:
            if key in raw:
                values[key] = check(where, key, raw[key])
    _check_engines(where, values)
    if measure and ("disk_usage" not in values or "inodes" not in values):
        used, inodes = measure_home(values["home"])
        values.setdefault("disk_usage", used)
        values.setdefault("inodes", inodes)
    return Account(**values)


def parse_inventory(text: str, *, origin: str = "inventory", measure: bool = True) -> list[Account]:
    """Every account of an inventory document, sorted by username. Raises ``ConfigError`` for bad
    TOML, a bad field (named with its account) or a username given twice."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{origin}: not valid TOML: {error}") from None
    unknown = sorted(set(document) - {"account"})
    if unknown:
        raise ConfigError(f"{origin}: unknown top-level key {unknown[0]!r} (accounts are [[account]] tables)")
    raw_accounts = document.get("account", [])
    if not isinstance(raw_accounts, list):
        raise ConfigError(f"{origin}: 'account' must be an array of tables ([[account]])")
    accounts: dict[str, Account] = {}
    for position, raw in enumerate(raw_accounts):
        account = parse_account(raw, position, measure=measure)
        if account.username in accounts:
            raise ConfigError(f"{origin}: account[{position}] ({account.username}): username given twice")
        accounts[account.username] = account
    return [accounts[name] for name in sorted(accounts)]


class InventoryProvider:
    """Accounts from a TOML inventory file, read again on every call (edits apply at once)."""

    name = "inventory"

    def __init__(self, path: str | Path, *, measure: bool = True) -> None:
        self.path = Path(path)
        self.measure = measure

    def list_accounts(self) -> list[Account]:
        """Every account in the file. Raises ``ConfigError`` when it cannot be read or is invalid."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"account inventory {self.path}: cannot read: {error}") from None
        return parse_inventory(text, origin=f"account inventory {self.path}", measure=self.measure)

    def get_account(self, username: str) -> Account:
        """One account; raises ``NotFoundError`` when the file does not list it."""
        return find_account(self.list_accounts(), username)
