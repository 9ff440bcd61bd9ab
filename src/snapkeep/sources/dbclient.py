"""Talking to MariaDB and PostgreSQL through their command-line clients.

snapkeep never links a database driver for backups: it runs ``mariadb``/``mariadb-dump`` and
``psql``/``pg_dump``, exactly as an administrator would, with connection settings from
``DatabaseSettings`` (passwords go through the environment, never the command line). Queries return
rows of strings. Quoting helpers build identifiers and literals for the statements snapkeep writes.

Every failure raises ``DatabaseError`` naming the engine, what was attempted and the client's message.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from snapkeep.errors import DatabaseError
from snapkeep.sources.accounts.base import MARIADB, POSTGRESQL

_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """How to reach one server. ``socket`` (a Unix socket path, or a folder for PostgreSQL) wins
    over ``host``/``port`` when set. ``password`` is passed in the environment only."""

    host: str = "127.0.0.1"
    port: int = 0
    user: str = "root"
    password: str = field(default="", repr=False)
    socket: str = ""
    #: PostgreSQL: the database to connect to for server-wide queries.
    maintenance_database: str = "postgres"


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """Connection settings and client programs for both engines (injectable for tests and hosts)."""

    mariadb: ServerSettings = ServerSettings(port=3306)
    postgresql: ServerSettings = ServerSettings(port=5432)
    mariadb_client: str = "mariadb"
    mariadb_dump: str = "mariadb-dump"
    psql: str = "psql"
    pg_dump: str = "pg_dump"

    def server(self, engine: str) -> ServerSettings:
        """The settings of ``engine``; raises ``DatabaseError`` for an unknown engine."""
        if engine == MARIADB:
            return self.mariadb
        if engine == POSTGRESQL:
            return self.postgresql
        raise DatabaseError(engine=engine, what="settings", reason="unknown database engine")


def connection_args(engine: str, settings: DatabaseSettings) -> list[str]:
    """Command-line options that select the server and user for ``engine``'s clients."""
    server = settings.server(engine)
    if engine == MARIADB:
        args = [f"--user={server.user}"]
        if server.socket:
            args.append(f"--socket={server.socket}")
        else:
            args += [f"--host={server.host}", f"--port={server.port or 3306}", "--protocol=TCP"]
        return args
    args = [f"--username={server.user}", "--no-password"]
    args += [f"--host={server.socket or server.host}", f"--port={server.port or 5432}"]
    return args


def client_environment(engine: str, settings: DatabaseSettings) -> dict[str, str]:
    """The environment for a client process: the password, no user option files."""
    environment = dict(os.environ)
    server = settings.server(engine)
    environment.pop("MYSQL_PWD", None)
    environment.pop("PGPASSWORD", None)
    if server.password:
        environment["MYSQL_PWD" if engine == MARIADB else "PGPASSWORD"] = server.password
    environment["PGCONNECT_TIMEOUT"] = "10"
    return environment


def mariadb_command(settings: DatabaseSettings, *extra: str) -> list[str]:
    """The ``mariadb`` client command (batch mode, no column names) with connection options."""
    return [settings.mariadb_client, "--no-defaults", *connection_args(MARIADB, settings), *extra]


def psql_command(settings: DatabaseSettings, database: str, *extra: str) -> list[str]:
    """The ``psql`` command for ``database``: no psqlrc, stop on the first error."""
    return [
        settings.psql,
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
        *connection_args(POSTGRESQL, settings),
        f"--dbname={database}",
        *extra,
    ]


def run_client(
    engine: str, settings: DatabaseSettings, command: Sequence[str], what: str, *, stdin: bytes | None = None
) -> bytes:
    """Run a client command and return its standard output. Raises ``DatabaseError`` naming
    ``what`` with the client's error text when it cannot start or exits non-zero."""
    try:
        result = subprocess.run(
            list(command),
            input=stdin,
            capture_output=True,
            env=client_environment(engine, settings),
            timeout=_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise DatabaseError(engine=engine, what=what, reason=f"cannot run {command[0]}: {error}") from None
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip() or f"exit status {result.returncode}"
        raise DatabaseError(engine=engine, what=what, reason=message[-2000:])
    return result.stdout


def _unescape_batch(field_text: str) -> str:
    """Undo the ``mariadb --batch`` escaping of ``\\n``, ``\\t``, ``\\0`` and ``\\\\``."""
    if "\\" not in field_text:
        return field_text
    out: list[str] = []
    index = 0
    while index < len(field_text):
        char = field_text[index]
        if char == "\\" and index + 1 < len(field_text):
            following = field_text[index + 1]
            out.append({"n": "\n", "t": "\t", "0": "\0", "\\": "\\"}.get(following, "\\" + following))
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def mariadb_query(settings: DatabaseSettings, sql: str, *, what: str) -> list[list[str]]:
    """Rows of a MariaDB query as lists of strings (``NULL`` is the string ``NULL``)."""
    output = run_client(
        MARIADB, settings, mariadb_command(settings, "--batch", "--skip-column-names", "-e", sql), what
    )
    text = output.decode("utf-8", "replace")
    return [[_unescape_batch(value) for value in line.split("\t")] for line in text.splitlines()]


def postgres_query(settings: DatabaseSettings, sql: str, *, what: str, database: str = "") -> list[list[str]]:
    """Rows of a PostgreSQL query (unaligned, tab-separated, NUL between rows)."""
    database = database or settings.postgresql.maintenance_database
    command = psql_command(settings, database, "-A", "-t", "-F", "\t", "-0", "-c", sql)
    output = run_client(POSTGRESQL, settings, command, what)
    text = output.decode("utf-8", "replace")
    return [row.split("\t") for row in text.split("\0") if row.strip("\n")]


# --- quoting -----------------------------------------------------------------------------------


def mariadb_identifier(name: str) -> str:
    """``name`` as a MariaDB identifier in backticks."""
    return "`" + name.replace("`", "``") + "`"


def mariadb_literal(value: str) -> str:
    """``value`` as a MariaDB string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def postgres_identifier(name: str) -> str:
    """``name`` as a PostgreSQL identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


def postgres_literal(value: str) -> str:
    """``value`` as a PostgreSQL string literal (standard conforming strings)."""
    return "'" + value.replace("'", "''") + "'"


def like_prefix(prefix: str) -> str:
    """A ``LIKE`` pattern matching names that start with ``prefix`` (``_`` and ``%`` escaped)."""
    return prefix.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%"
