"""The ``linux`` provider: the host's own users as accounts.

Accounts are the passwd entries whose UID lies in ``uid_min``..``uid_max`` (default 1000-59999,
the range ``adduser`` hands out) and whose home exists. For each: the crontab from the system spool
(``/var/spool/cron/crontabs/<user>``), the Maildir under the home (``~/Maildir`` by default), MariaDB
databases and users named ``<username>_*`` (the hosting convention; the user ``<username>`` too),
PostgreSQL databases owned by a role named ``<username>`` and that role. Databases are found by
asking the servers through their clients (``DatabaseSettings``); a server that does not answer
leaves that engine's lists empty and records why in ``extra["discovery_errors"]``.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from snapkeep.errors import ConfigError, DatabaseError
from snapkeep.sources.accounts.base import (
    POSTGRESQL,
    Account,
    Database,
    DatabaseUser,
    find_account,
    measure_home,
)
from snapkeep.sources.dbclient import DatabaseSettings
from snapkeep.sources.dbusers import (
    mariadb_databases_of,
    mariadb_users_of,
    postgres_databases_of,
    postgres_role_exists,
)

MARIADB_ENGINE = "mariadb"


@dataclass(frozen=True, slots=True)
class LinuxOptions:
    """What the provider looks at; every part is injectable for tests and unusual hosts."""

    uid_min: int = 1000
    uid_max: int = 59999
    cron_spool: str = "/var/spool/cron/crontabs"
    maildir: str = "Maildir"
    #: Which engines to ask for databases and users (empty: none).
    engines: tuple[str, ...] = (MARIADB_ENGINE, POSTGRESQL)
    #: Measure each home's disk usage and inodes (a walk of the home) when listing.
    measure: bool = True
    #: Usernames that count as suspended (plain Linux has no such state).
    suspended: tuple[str, ...] = ()


class LinuxProvider:
    """Accounts from the system's user database."""

    name = "linux"

    def __init__(
        self,
        options: LinuxOptions | None = None,
        *,
        settings: DatabaseSettings | None = None,
        users: Callable[[], Iterable[pwd.struct_passwd]] = pwd.getpwall,
    ) -> None:
        self.options = options or LinuxOptions()
        if self.options.uid_min > self.options.uid_max:
            raise ConfigError(
                f"linux accounts: uid_min {self.options.uid_min} is above uid_max {self.options.uid_max}"
            )
        self.settings = settings or DatabaseSettings()
        self._users = users

    def _entries(self) -> list[pwd.struct_passwd]:
        options = self.options
        chosen = {
            entry.pw_name: entry
            for entry in self._users()
            if options.uid_min <= entry.pw_uid <= options.uid_max and os.path.isdir(entry.pw_dir)
        }
        return [chosen[name] for name in sorted(chosen)]

    def _account(self, entry: pwd.struct_passwd) -> Account:
        options = self.options
        username, home = entry.pw_name, entry.pw_dir.rstrip("/") or "/"
        cron_file = os.path.join(options.cron_spool, username)
        mail_root = os.path.join(home, options.maildir) if options.maildir else ""
        databases: list[Database] = []
        users: list[DatabaseUser] = []
        errors: list[str] = []
        if MARIADB_ENGINE in options.engines:
            try:
                databases += mariadb_databases_of(self.settings, username)
                users += mariadb_users_of(self.settings, username)
            except DatabaseError as error:
                errors.append(str(error))
        if POSTGRESQL in options.engines:
            try:
                databases += postgres_databases_of(self.settings, username)
                if postgres_role_exists(self.settings, username):
                    users.append(DatabaseUser(POSTGRESQL, username))
            except DatabaseError as error:
                errors.append(str(error))
        used, inodes = measure_home(home) if options.measure else (0, 0)
        return Account(
            username=username,
            home=home,
            owner="root",
            suspended=username in options.suspended,
            disk_usage=used,
            inodes=inodes,
            databases=tuple(databases),
            database_users=tuple(users),
            mail_root=mail_root if mail_root and os.path.isdir(mail_root) else "",
            cron_file=cron_file if os.path.isfile(cron_file) else "",
            extra={"uid": entry.pw_uid, "gid": entry.pw_gid, "discovery_errors": errors}
            if errors
            else {"uid": entry.pw_uid, "gid": entry.pw_gid},
        )

    def list_accounts(self) -> list[Account]:
        """Every user in the UID range with an existing home, sorted by username."""
        return [self._account(entry) for entry in self._entries()]

    def get_account(self, username: str) -> Account:
        """One user's account; raises ``NotFoundError`` when it is not in the range or has no home."""
        for entry in self._entries():
            if entry.pw_name == username:
                return self._account(entry)
        return find_account([], username)
