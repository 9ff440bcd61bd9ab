"""Database dumps streamed into the engine, database users as SQL, and their restore.

``open_dump`` starts ``mariadb-dump --single-transaction --routines --triggers --events`` (or
``pg_dump``) and returns a ``DumpStream``: a readable stream of the dump's bytes that the engine
chunks straight from the pipe, no temporary file. After the last byte, ``DumpStream.finish()``
decides whether the dump is good: the process must exit 0 (not killed) and the dump must end with
its trailer (``-- Dump completed`` for MariaDB, ``-- PostgreSQL database dump complete`` for
PostgreSQL). Otherwise it raises ``DumpError`` and the caller must not store the file: a truncated
dump is never presented as good.

MariaDB dumps leave out ``CREATE DATABASE``/``USE`` and PostgreSQL dumps are plain SQL without
``--create``, so ``restore_database`` can recreate a database under another name.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterable
from typing import IO

from snapkeep.errors import DatabaseError, DumpError
from snapkeep.sources.accounts.base import MARIADB, POSTGRESQL, Database
from snapkeep.sources.dbclient import (
    DatabaseSettings,
    client_environment,
    connection_args,
    mariadb_command,
    mariadb_identifier,
    mariadb_literal,
    mariadb_query,
    postgres_identifier,
    postgres_literal,
    postgres_query,
    psql_command,
    run_client,
)

MARIADB_TRAILER = b"-- Dump completed"
POSTGRESQL_TRAILER = b"-- PostgreSQL database dump complete"
_TAIL = 512
_STDERR_LIMIT = 8192


def database_size(settings: DatabaseSettings, database: Database) -> int:
    """The size of ``database`` in bytes (MariaDB: data + index length from information_schema;
    PostgreSQL: ``pg_database_size``). Raises ``DatabaseError``."""
    if database.engine == MARIADB:
        sql = (
            "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
            f"WHERE table_schema = {mariadb_literal(database.name)}"
        )
        rows = mariadb_query(settings, sql, what=f"size of {database.name!r}")
    else:
        sql = f"SELECT pg_database_size({postgres_literal(database.name)})"
        rows = postgres_query(settings, sql, what=f"size of {database.name!r}")
    try:
        return int(rows[0][0])
    except (IndexError, ValueError):
        raise DatabaseError(
            engine=database.engine, what=f"size of {database.name!r}", reason=f"unexpected answer {rows!r}"
        ) from None


def database_exists(settings: DatabaseSettings, database: Database) -> bool:
    """Whether ``database`` exists on its server. Raises ``DatabaseError``."""
    if database.engine == MARIADB:
        sql = (
            f"SELECT 1 FROM information_schema.schemata WHERE schema_name = {mariadb_literal(database.name)}"
        )
        return bool(mariadb_query(settings, sql, what="database lookup"))
    sql = f"SELECT 1 FROM pg_database WHERE datname = {postgres_literal(database.name)}"
    return bool(postgres_query(settings, sql, what="database lookup"))


def dump_command(settings: DatabaseSettings, database: Database) -> list[str]:
    """The dump command for ``database`` (stdout is the dump)."""
    if database.engine == MARIADB:
        return [
            settings.mariadb_dump,
            "--no-defaults",
            *connection_args(MARIADB, settings),
            "--single-transaction",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--default-character-set=utf8mb4",
            "--comments",
            "--skip-dump-date",  # byte-identical dumps of unchanged databases dedup whole
            database.name,
        ]
    if database.engine == POSTGRESQL:
        return [
            settings.pg_dump,
            *connection_args(POSTGRESQL, settings),
            "--format=plain",
            f"--dbname={database.name}",
        ]
    raise DatabaseError(engine=database.engine, what="dump", reason="unknown database engine")


class DumpStream:
    """The running dump of one database as a binary stream (``read``/``readinto``).

    Read it to its end, then call ``finish()``: it raises ``DumpError`` unless the dump process
    exited 0 and its output ended with the trailer. ``close()`` kills a dump still running (an
    aborted backup). Use as a context manager: leaving the block early kills the process."""

    def __init__(self, database: Database, process: subprocess.Popen[bytes]) -> None:
        self.database = database
        self.process = process
        self.bytes_read = 0
        self._tail = b""
        self._stderr = bytearray()
        self._stdout: IO[bytes] = process.stdout  # type: ignore[assignment]
        self._drain = threading.Thread(target=self._read_stderr, name="snapkeep-dump-stderr", daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if len(self._stderr) < _STDERR_LIMIT:
                self._stderr += line[: _STDERR_LIMIT - len(self._stderr)]

    def _seen(self, data: bytes | memoryview) -> None:
        count = len(data)
        self.bytes_read += count
        if count >= _TAIL:
            self._tail = bytes(data[-_TAIL:])
        else:
            self._tail = (self._tail + bytes(data))[-_TAIL:]

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` from the dump; 0 at its end."""
        count = self._stdout.readinto(buffer)  # type: ignore[attr-defined]
        if count:
            self._seen(memoryview(buffer)[:count])
        return int(count or 0)

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that remain when negative); ``b""`` at the end."""
        data = self._stdout.read(size)
        if data:
            self._seen(data)
        return data

    @property
    def trailer(self) -> bytes:
        return MARIADB_TRAILER if self.database.engine == MARIADB else POSTGRESQL_TRAILER

    def finish(self) -> int:
        """Wait for the dump to end and check it; returns the dump's size in bytes. Raises
        ``DumpError`` for a non-zero exit, a killed process, unread output or a missing trailer."""
        leftover = self._stdout.read(1)
        if leftover:
            self.close()
            raise DumpError(
                engine=self.database.engine, database=self.database.name, reason="output not read to its end"
            )
        status = self.process.wait()
        self._drain.join(timeout=5)
        self._stdout.close()
        message = self._stderr.decode("utf-8", "replace").strip()
        if status < 0:
            reason = f"dump process killed by signal {-status}"
        elif status > 0:
            reason = f"exit status {status}" + (f": {message[-1000:]}" if message else "")
        elif self.trailer not in self._tail:
            reason = f"the dump ends without its trailer {self.trailer.decode()!r} (truncated)"
        else:
            return self.bytes_read
        raise DumpError(engine=self.database.engine, database=self.database.name, reason=reason)

    def close(self) -> None:
        """Kill the dump if it still runs and release its pipes (idempotent)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._stdout.close()
        self._drain.join(timeout=5)

    def __enter__(self) -> DumpStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_dump(settings: DatabaseSettings, database: Database) -> DumpStream:
    """Start dumping ``database``; raises ``DumpError`` when the dump program cannot start."""
    command = dump_command(settings, database)
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=client_environment(database.engine, settings),
        )
    except OSError as error:
        raise DumpError(
            engine=database.engine, database=database.name, reason=f"cannot run {command[0]}: {error}"
        ) from None
    return DumpStream(database, process)


# --- restore -----------------------------------------------------------------------------------


def create_database(
    settings: DatabaseSettings, database: Database, *, owner: str = "", replace: bool = False
) -> None:
    """Create an empty ``database`` (PostgreSQL: owned by ``owner`` when given). An existing one is
    refused with ``DatabaseError`` unless ``replace`` drops it first."""
    if database_exists(settings, database):
        if not replace:
            raise DatabaseError(
                engine=database.engine,
                what=f"restore of {database.name!r}",
                reason="the database exists (ask to replace it)",
            )
        drop_database(settings, database)
    if database.engine == MARIADB:
        sql = f"CREATE DATABASE {mariadb_identifier(database.name)}"
        run_client(MARIADB, settings, mariadb_command(settings, "-e", sql), f"create {database.name!r}")
        return
    sql = f"CREATE DATABASE {postgres_identifier(database.name)}"
    if owner:
        sql += f" OWNER {postgres_identifier(owner)}"
    run_client(
        POSTGRESQL,
        settings,
        psql_command(settings, settings.postgresql.maintenance_database, "-c", sql),
        f"create {database.name!r}",
    )


def drop_database(settings: DatabaseSettings, database: Database) -> None:
    """Drop ``database`` if it exists. Raises ``DatabaseError``."""
    if database.engine == MARIADB:
        sql = f"DROP DATABASE IF EXISTS {mariadb_identifier(database.name)}"
        run_client(MARIADB, settings, mariadb_command(settings, "-e", sql), f"drop {database.name!r}")
        return
    sql = f"DROP DATABASE IF EXISTS {postgres_identifier(database.name)} WITH (FORCE)"
    run_client(
        POSTGRESQL,
        settings,
        psql_command(settings, settings.postgresql.maintenance_database, "-c", sql),
        f"drop {database.name!r}",
    )


def load_sql(
    settings: DatabaseSettings, engine: str, sql: Iterable[bytes], *, database: str = "", what: str
) -> None:
    """Feed SQL chunks (a dump read back from a snapshot) to the client, connected to ``database``.
    Raises ``DatabaseError`` with the client's message when any statement fails."""
    if engine == MARIADB:
        command = mariadb_command(settings, *([database] if database else []))
    else:
        command = psql_command(settings, database or settings.postgresql.maintenance_database, "-q")
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=client_environment(engine, settings),
        )
    except OSError as error:
        raise DatabaseError(engine=engine, what=what, reason=f"cannot run {command[0]}: {error}") from None
    errors = bytearray()

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if len(errors) < _STDERR_LIMIT:
                errors.extend(line)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    assert process.stdin is not None
    try:
        for piece in sql:
            process.stdin.write(piece)
        process.stdin.close()
    except BrokenPipeError:
        pass  # the client stopped on an error; its status and message say which
    status = process.wait()
    reader.join(timeout=5)
    if status != 0:
        message = errors.decode("utf-8", "replace").strip() or f"exit status {status}"
        raise DatabaseError(engine=engine, what=what, reason=message[-2000:])


def restore_database(
    settings: DatabaseSettings,
    database: Database,
    dump: Iterable[bytes],
    *,
    owner: str = "",
    replace: bool = False,
) -> None:
    """Recreate ``database`` (its ``name`` may differ from the one dumped) from a dump's bytes.

    Creates it first (``create_database``: refused when it exists unless ``replace``); a dump that
    fails to load drops the half-made database again and raises ``DatabaseError``."""
    create_database(settings, database, owner=owner, replace=replace)
    try:
        load_sql(
            settings, database.engine, dump, database=database.name, what=f"restore of {database.name!r}"
        )
    except DatabaseError:
        drop_database(settings, database)
        raise
