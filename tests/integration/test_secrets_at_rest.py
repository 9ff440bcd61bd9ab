"""Secrets sealed at rest (issue 11, part 3): a copy of the catalog alone, its SQLite WAL, or a
PostgreSQL dump reveals no destination password, S3 secret key, notification credential or job
key; the data directory is private whatever the umask."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import delete
from tests.conftest import require_server
from tests.integration.runner_helpers import World, make_tree

from snapkeep.api.dispatch import Api
from snapkeep.jobs import destinations, sealing, settings
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.keystore import KeyStore
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.runs import execute_group

SFTP_PASSWORD = "SFTPPASSWORD123"
SFTP_PASSPHRASE = "KEYPASSPHRASE789"
S3_SECRET = "SUPERSECRETS3KEY"
SMTP_PASSWORD = "SMTPPASSWORD456"
WEBHOOK_URL = "https://hooks.example.test/services/WEBHOOKTOKEN000"
JOB_KEY = "a1" * 32
FTP_PASSWORD = "FTPPASSWORD246"
SECRETS = (SFTP_PASSWORD, SFTP_PASSPHRASE, S3_SECRET, SMTP_PASSWORD, "WEBHOOKTOKEN000", JOB_KEY, FTP_PASSWORD)
JOB = "6b0a0000cccccccccccccccc"


def ok(api: Api, function: str, params: dict[str, Any]) -> Any:
    answer = api.call(function, params)
    assert answer["success"] == 1, answer["message"]
    return answer["data"]


def store_every_secret(catalog: Catalog) -> dict[str, str]:
    """Destinations with secrets, notification credentials and a job key, through the API and the
    key store; returns the destinations' IDs by type."""
    api = Api(catalog)
    sftp = ok(
        api,
        "manageDestination",
        {
            "action": "create",
            "name": "Remote SFTP",
            "type": "SFTP",
            "options": {
                "host": "backup.example.test",
                "username": "keeper",
                "password": SFTP_PASSWORD,
                "privatekey": "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----",
                "passphrase": SFTP_PASSPHRASE,
                "path": "/backups",
            },
        },
    )
    s3 = ok(
        api,
        "manageDestination",
        {
            "action": "create",
            "name": "Bucket",
            "type": "S3",
            "options": {"bucket": "my-bucket", "access_key": "AKIAEXAMPLE", "secret_key": S3_SECRET},
        },
    )
    ok(
        api,
        "manageDestination",
        {
            "action": "create",
            "name": "FTP server",
            "type": "FTP",
            "options": {
                "host": "ftp.example.test",
                "username": "keeper",
                "password": FTP_PASSWORD,
                "path": "/b",
            },
        },
    )
    ok(
        api,
        "manageSettingsNotification",
        {
            "email": {
                "host": "smtp.example.test",
                "username": "mailer",
                "password": SMTP_PASSWORD,
                "sender": "snapkeep@example.test",
                "recipients": "ops@example.test",
            },
            "webhook": {"url": WEBHOOK_URL},
        },
    )
    KeyStore(catalog).put(JOB, JOB_KEY)
    KeyStore(catalog).get_or_create("6b0a0000dddddddddddddddd")
    return {"SFTP": sftp["_id"], "S3": s3["_id"]}


def assert_secrets_still_open(catalog: Catalog, ids: dict[str, str]) -> None:
    """The sealed secrets are usable: the stores get them in clear, and so do notifications."""
    with catalog.transaction(write=False) as tx:
        sftp = destinations.store_params(tx.require("destinations", ids["SFTP"], "Destination"), "")
        s3 = destinations.store_params(tx.require("destinations", ids["S3"], "Destination"), "")
        channels = settings.notification(tx)
    assert (getattr(sftp, "password", None), getattr(sftp, "passphrase", None)) == (
        SFTP_PASSWORD,
        SFTP_PASSPHRASE,
    )
    assert getattr(s3, "secret_key", None) == S3_SECRET
    assert channels.email is not None
    assert channels.webhook is not None
    assert channels.email.password.get_secret_value() == SMTP_PASSWORD
    assert channels.webhook.url == WEBHOOK_URL
    assert KeyStore(catalog).get(JOB) == JOB_KEY


def test_neither_the_catalog_nor_its_wal_holds_a_secret(tmp_path: Path) -> None:
    home = tmp_path / "home"
    catalog = Catalog.open(home)
    try:
        ids = store_every_secret(catalog)
        master = sealing.master_key(home, create=False)
        # read while the catalog is open: the WAL is not checkpointed into the database yet
        wal = (home / "catalog.db-wal").read_bytes()
        database = (home / "catalog.db").read_bytes()
        assert len(wal) > 0
        assert b"Remote SFTP" in wal, "the WAL holds the new rows (so it is checked for real)"
        for secret in (*SECRETS, master.key.hex()):
            assert secret.encode() not in wal, secret
            assert secret.encode() not in database, secret
        assert_secrets_still_open(catalog, ids)
        # after a checkpoint the database file holds the rows, still sealed
        with catalog.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        database = (home / "catalog.db").read_bytes()
        assert b"Remote SFTP" in database
        for secret in SECRETS:
            assert secret.encode() not in database, secret
    finally:
        catalog.close()
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(home / "catalog.db", copy / "catalog.db")
    stolen = Catalog.open(copy)  # a copy of the catalog without the master key
    try:
        assert_secrets_still_open(stolen, ids)  # the key of this process is still loaded...
    finally:
        stolen.close()
    # ...but a process that only has the copy cannot open them
    script = (
        "import sys\n"
        "from snapkeep.jobs.catalog import Catalog\n"
        "from snapkeep.jobs.keystore import KeyStore\n"
        "from snapkeep.errors import ConfigError\n"
        "catalog = Catalog.open(sys.argv[1])\n"
        "try:\n"
        f"    KeyStore(catalog).get('{JOB}')\n"
        "except ConfigError as error:\n"
        "    print('refused:', error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(copy)], capture_output=True, text=True, check=True
    )
    assert "refused:" in result.stdout
    assert "master key" in result.stdout
    assert JOB_KEY not in result.stdout


def test_no_secret_in_any_catalog_row(catalog: Catalog) -> None:
    """Both backends: the rows hold only sealed values (what a PostgreSQL dump would show)."""
    ids = store_every_secret(catalog)
    dump = repr(catalog.dump())
    for secret in SECRETS:
        assert secret not in dump
    assert dump.count(sealing.PREFIX) == 9  # 3 SFTP + 1 S3 + 1 FTP + 2 notification + 2 job keys
    assert_secrets_still_open(catalog, ids)


def test_a_postgresql_dump_holds_no_secret(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = request.getfixturevalue("postgres_url")
    # `make test` installs postgresql-client; under CI=true a missing one fails, never skips
    require_server(shutil.which("pg_dump") is not None, "pg_dump (postgresql-client)")
    catalog = Catalog.open(tmp_path / "home", url)
    try:
        with catalog.transaction() as tx:  # the session's schema: earlier tests' rows go
            for table in schema.TABLES.values():
                tx.connection.execute(delete(table))
        store_every_secret(catalog)
        parsed = urlparse(url)
        search = parse_qs(parsed.query)["options"][0].split("=", 1)[1]
        dumped = subprocess.run(
            [
                "pg_dump",
                "-h",
                parsed.hostname or "127.0.0.1",
                "-p",
                str(parsed.port or 5432),
                "-U",
                parsed.username or "root",
                "-n",
                search,
                parsed.path.lstrip("/"),
            ],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
    finally:
        catalog.close()
    assert b"Remote SFTP" in dumped
    assert sealing.PREFIX.encode() in dumped
    for secret in SECRETS:
        assert secret.encode() not in dumped, secret


def test_the_data_directory_is_private_under_umask_000(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        world = World(tmp_path)
        try:
            store_every_secret(world.catalog)
            make_tree(world.source, 1)
            job = world.job(encrypted=1)
            status, _ = world.run(job)
            assert status == 100
            snapshot = world.ok("listBackups", {"account_id": job["_id"]})["backups"][0]["_id"]
            group = world.ok("addQueueItems", {"type": 4, "snapshot_id": snapshot})
            assert execute_group(world.catalog, world.home, group["_id"], stop=threading.Event()) == 100
            assert any((world.home / "downloads").glob("*.tar.zst"))
            assert (world.home / "catalog.db-wal").exists()
            assert (world.home / "catalog.db-shm").exists()
            assert any((world.home / "logs").iterdir())
            loose = [
                f"{path.relative_to(world.home)} {oct(stat.S_IMODE(path.lstat().st_mode))}"
                for path in [world.home, *world.home.rglob("*")]
                if not path.is_symlink()
                and stat.S_IMODE(path.lstat().st_mode) != (0o700 if path.is_dir() else 0o600)
            ]
            assert loose == []
        finally:
            world.close()
    finally:
        os.umask(old)
