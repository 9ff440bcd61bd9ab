"""The account model and the provider interface every account source implements.

An ``Account`` is one hosting account: its identity and the numbers account filters look at
(``owner``, ``reseller``, ``package``, ``suspended``, ``tags``, ``disk_usage``, ``inodes``), and where
each ``contains`` component lives (databases, database users, mail root, cron file, domains with their
zone files, certificate files, FTP accounts). Providers (``inventory``: a TOML file; ``linux``: the
host's users) build accounts; ``sources.components`` turns one into what the engine reads.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from snapkeep.errors import NotFoundError

MARIADB = "mariadb"
POSTGRESQL = "postgresql"
DATABASE_ENGINES = (MARIADB, POSTGRESQL)


@dataclass(frozen=True, slots=True)
class Database:
    """One database of an account: ``engine`` is ``mariadb`` (MariaDB/MySQL) or ``postgresql``."""

    engine: str
    name: str


@dataclass(frozen=True, slots=True)
class DatabaseUser:
    """A database login of an account. ``host`` is the MariaDB host part (``localhost``, ``%``);
    PostgreSQL roles have none (empty)."""

    engine: str
    name: str
    host: str = ""


@dataclass(frozen=True, slots=True)
class Domain:
    """A domain of the account and its DNS zone file (empty when the host keeps no zone)."""

    name: str
    zone_file: str = ""


@dataclass(frozen=True, slots=True)
class FtpAccount:
    """An FTP login of the account: its name, the folder it is confined to and its stored
    password hash (kept as the panel keeps it; never a clear password)."""

    name: str
    directory: str = ""
    password_hash: str = ""
    quota: int = 0


@dataclass(slots=True)
class Account:
    """One hosting account. Paths are absolute; empty strings mean "none"."""

    username: str
    home: str
    owner: str = "root"
    reseller: bool = False
    package: str = ""
    suspended: bool = False
    tags: tuple[str, ...] = ()
    disk_usage: int = 0
    inodes: int = 0
    databases: tuple[Database, ...] = ()
    database_users: tuple[DatabaseUser, ...] = ()
    mail_root: str = ""
    cron_file: str = ""
    domains: tuple[Domain, ...] = ()
    certificates: tuple[str, ...] = ()
    ftp_accounts: tuple[FtpAccount, ...] = ()
    ftp_files: tuple[str, ...] = ()
    #: Exclude globs relative to the home (``cache/**``), besides the job's ``exclude_list``.
    excludes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The account as a JSON-ready dictionary (the ``config/`` component, and the API answer)."""
        record = asdict(self)
        for key, value in record.items():
            if isinstance(value, tuple):
                record[key] = list(value)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Account:
        """The inverse of ``to_record`` (restoring ``config/account.json``). Raises ``KeyError`` or
        ``TypeError`` for a record that is not one."""
        values = dict(record)
        values["tags"] = tuple(values.get("tags", ()))
        values["databases"] = tuple(Database(**item) for item in values.get("databases", ()))
        values["database_users"] = tuple(DatabaseUser(**item) for item in values.get("database_users", ()))
        values["domains"] = tuple(Domain(**item) for item in values.get("domains", ()))
        values["certificates"] = tuple(values.get("certificates", ()))
        values["ftp_accounts"] = tuple(FtpAccount(**item) for item in values.get("ftp_accounts", ()))
        values["ftp_files"] = tuple(values.get("ftp_files", ()))
        values["excludes"] = tuple(values.get("excludes", ()))
        return cls(**values)


@runtime_checkable
class AccountProvider(Protocol):
    """Where accounts come from. Implementations raise ``ConfigError`` when their source (a file, a
    server) cannot be read and ``NotFoundError`` for an unknown username."""

    name: str

    def list_accounts(self) -> list[Account]:
        """Every account, sorted by username."""
        ...

    def get_account(self, username: str) -> Account:
        """One account by username; raises ``NotFoundError`` when there is none."""
        ...


def account_id(username: str) -> str:
    """An account's stable 24-hex ``_id`` (API.md section 1 IDs), derived from its username so that
    it needs no storage and survives a catalog rebuilt from the destination alone. (With several
    nodes the node will be part of it: issue 16.)"""
    return hashlib.blake2b(f"snapkeep-account:{username}".encode(), digest_size=12).hexdigest()


def find_account(accounts: list[Account], username: str) -> Account:
    """The account named ``username`` (or whose ``account_id`` it is) in ``accounts``; raises
    ``NotFoundError``."""
    for account in accounts:
        if account.username == username:
            return account
    for account in accounts:
        if account_id(account.username) == username:
            return account
    raise NotFoundError(kind="Account", ident=username)


def measure_home(path: str) -> tuple[int, int]:
    """``(bytes, inodes)`` used under ``path`` (file sizes, entries counted once per inode, the
    folder itself included); ``(0, 0)`` when it does not exist. Unreadable folders are skipped."""
    seen: set[tuple[int, int]] = set()
    total = 0
    try:
        info = os.lstat(path)
    except OSError:
        return 0, 0
    seen.add((info.st_dev, info.st_ino))
    pending = [path]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            key = (info.st_dev, info.st_ino)
            if key in seen:
                continue
            seen.add(key)
            if stat.S_ISDIR(info.st_mode):
                pending.append(entry.path)
            elif stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total, len(seen)
