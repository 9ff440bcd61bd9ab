"""An old data directory (job keys in ``keys/``, secrets in clear in the catalog, loose modes) is
sealed and tightened on open, idempotently and without ever losing a key; the master key travels
with ``dr export``/``dr import``."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, text

from snapkeep.api.dispatch import Api
from snapkeep.errors import ConfigError
from snapkeep.jobs import destinations, dr, sealing, settings
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.keystore import KeyStore
from snapkeep.jobs.migrations import schema, schema_migrations

JOB = "6b0a0000eeeeeeeeeeeeeeee"
KEY = "f0" * 32
SFTP = {"host": "backup.example.test", "username": "keeper", "password": "OLDCLEARPASSWORD", "path": "/b"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def ok(api: Api, function: str, params: dict[str, Any]) -> Any:
    answer = api.call(function, params)
    assert answer["success"] == 1, answer["message"]
    return answer["data"]


def make_old_home(home: Path) -> str:
    """A data directory as version 6 left it: clear secrets, ``keys/<job>``, world-readable files."""
    catalog = Catalog.open(home)
    destination = ok(
        Api(catalog),
        "manageDestination",
        {"action": "create", "name": "Old", "type": "SFTP", "options": SFTP},
    )
    with catalog.transaction() as tx:
        stored = tx.require("destinations", destination["_id"], "Destination")
        document = {key: value for key, value in stored.items() if key != "_id"}
        document["options"] = {**document["options"], "password": SFTP["password"]}
        tx.replace("destinations", destination["_id"], document)
        tx.connection.execute(
            schema.settings.insert().values(
                key=settings.EMAIL_KEY,
                value={
                    "enabled": True,
                    "host": "smtp.example.test",
                    "port": 25,
                    "security": "none",
                    "username": "u",
                    "password": "OLDSMTPPASSWORD",
                    "sender": "a@example.test",
                    "recipients": ["b@example.test"],
                    "levels": [2, 3],
                    "timeout": 10,
                },
            )
        )
        tx.connection.execute(delete(schema_migrations).where(schema_migrations.c.version == 7))
        tx.connection.execute(text("DROP TABLE job_keys"))
    catalog.close()
    (home / "master.key").unlink()  # version 6 had none
    keys = home / "keys"
    keys.mkdir(mode=0o700)
    (keys / JOB).write_text(KEY + "\n")
    (keys / JOB).chmod(0o600)
    (keys / f".{JOB}.0123abcd.tmp").write_text("half-written")
    (home / "logs").mkdir()
    (home / "logs" / "old.log").write_text("a run log naming /home/alice/secret.txt\n")
    for path, loose in [
        (home, 0o755),
        (home / "catalog.db", 0o644),
        (home / "logs", 0o755),
        (home / "logs" / "old.log", 0o644),
    ]:
        path.chmod(loose)
    return str(destination["_id"])


def test_an_old_home_is_sealed_and_tightened_on_open(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ident = make_old_home(home)
    catalog = Catalog.open(home)
    try:
        assert not (home / "keys").exists(), "key files moved into the catalog, folder removed"
        assert KeyStore(catalog).get(JOB) == KEY
        dump = catalog.dump()
        assert "OLDCLEARPASSWORD" not in repr(dump)
        assert "OLDSMTPPASSWORD" not in repr(dump)
        assert KEY not in repr(dump)
        assert 7 in {row["version"] for row in dump["schema_migrations"]}
        with catalog.transaction(write=False) as tx:
            stored = tx.require("destinations", ident, "Destination")
            email = settings.notification(tx).email
        assert destinations.open_options("SFTP", stored["options"])["password"] == SFTP["password"]
        assert email is not None
        assert email.password.get_secret_value() == "OLDSMTPPASSWORD"
        for path, wanted in [
            (home, 0o700),
            (home / "catalog.db", 0o600),
            (home / "master.key", 0o600),
            (home / "logs", 0o700),
            (home / "logs" / "old.log", 0o600),
        ]:
            assert mode(path) == wanted, path
    finally:
        catalog.close()
    again = Catalog.open(home)  # idempotent: a second open changes nothing
    try:
        assert again.dump() == dump
    finally:
        again.close()


def test_a_crash_between_commit_and_removal_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "home"
    make_old_home(home)
    Catalog.open(home).close()
    # the sealed copy committed, then the process died before removing the file: the next open
    # finds both, keeps the catalog's (the same) and removes the file
    (home / "keys").mkdir(mode=0o700)
    (home / "keys" / JOB).write_text(KEY + "\n")
    catalog = Catalog.open(home)
    assert not (home / "keys").exists()
    assert KeyStore(catalog).get(JOB) == KEY
    catalog.close()
    # a file that differs from the catalog's key is never removed, and the catalog still opens
    (home / "keys").mkdir(mode=0o700)
    (home / "keys" / JOB).write_text("0" * 64 + "\n")
    with caplog.at_level(logging.WARNING):
        catalog = Catalog.open(home)
    try:
        assert (home / "keys" / JOB).read_text() == "0" * 64 + "\n"
        assert KeyStore(catalog).get(JOB) == KEY
        assert f"differs from Backup Job {JOB}'s key in the catalog" in caplog.text
    finally:
        catalog.close()


def test_another_master_key_is_a_clear_error_naming_the_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ident = make_old_home(home)
    Catalog.open(home).close()
    old_key = (home / "master.key").read_bytes()
    (home / "master.key").write_text(os.urandom(32).hex() + "\n")
    script = (
        "import sys\n"
        "from snapkeep.jobs.catalog import Catalog\n"
        "from snapkeep.jobs import destinations\n"
        "catalog = Catalog.open(sys.argv[1])\n"
        "with catalog.transaction(write=False) as tx:\n"
        f"    destinations.store_params(tx.require('destinations', '{ident}', 'Destination'), '')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(home)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "ConfigError" in result.stderr
    assert str(home / "master.key") in result.stderr
    assert "SNAPKEEP_MASTER_KEY_FILE" in result.stderr
    (home / "master.key").write_bytes(old_key)


def test_dr_import_into_a_home_with_its_own_master_key_seals_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_home = tmp_path / "old"
    ident = make_old_home(old_home)
    old = Catalog.open(old_home)
    state = dr.export_state(old, old_home)
    old.close()
    assert state["master_key"] == bytes.fromhex((old_home / "master.key").read_text().strip()).hex()
    sealed = dr.open_sealed(dr.seal(state, "a good passphrase"), "a good passphrase")
    own = tmp_path / "own.key"
    sealing.write_key(own, os.urandom(32))
    monkeypatch.setenv(sealing.ENVIRONMENT, str(own))
    new_home = tmp_path / "new"
    new = Catalog.open(new_home)
    try:
        dr.import_state(new, new_home, sealed)
        assert not (new_home / "master.key").exists(), "the configured key is kept"
        own_id = sealing.master_key(new_home, create=False).ident
        with new.transaction(write=False) as tx:
            options = tx.require("destinations", ident, "Destination")["options"]
            email = settings.notification(tx).email
            raw_email = settings.every_value(tx)[settings.EMAIL_KEY]
        assert options["password"].startswith(f"{sealing.PREFIX}{own_id}:")
        assert raw_email["password"].startswith(f"{sealing.PREFIX}{own_id}:")
        assert destinations.open_options("SFTP", options)["password"] == SFTP["password"]
        assert email is not None
        assert email.password.get_secret_value() == "OLDSMTPPASSWORD"
        assert KeyStore(new).get(JOB) == KEY
    finally:
        new.close()


def test_a_malformed_exported_master_key_is_refused() -> None:
    state = {
        "format": dr.FORMAT,
        "version": 1,
        "objects": {},
        "settings": {},
        "keys": {},
        "master_key": "xyz",
    }
    with pytest.raises(Exception, match="master_key: must be 64 lowercase hex characters"):
        dr.check_state(state)
    with pytest.raises(ConfigError, match="a master key has 32 bytes"):
        sealing.write_key(Path("/nonexistent/never"), b"short")


def test_an_export_from_before_sealing_is_sealed_on_import(tmp_path: Path) -> None:
    """An export made before version 7 holds clear secrets and no master key: import seals them."""
    destination_id = "6b0a00000000000000000001"
    state = {
        "format": dr.FORMAT,
        "version": dr.VERSION,
        "objects": {
            "destinations": [
                {
                    "_id": destination_id,
                    "name": "Old",
                    "type": "SFTP",
                    "options": {**SFTP, "port": 22, "privatekey": "", "passphrase": "", "timeout": 30},
                    "disabled": False,
                    "readonly": False,
                    "threads": 1,
                    "disk_limit": 0,
                }
            ]
        },
        "settings": {
            settings.WEBHOOK_KEY: {
                "enabled": True,
                "url": "https://h.example.test/TOKEN9",
                "levels": [2],
                "timeout": 5,
            }
        },
        "keys": {JOB: KEY},
    }
    home = tmp_path / "home"
    catalog = Catalog.open(home)
    try:
        dr.import_state(catalog, home, dr.check_state(state))
        dump = repr(catalog.dump())
        for secret in (SFTP["password"], "TOKEN9", KEY):
            assert secret not in dump
        with catalog.transaction(write=False) as tx:
            options = tx.require("destinations", destination_id, "Destination")["options"]
            webhook = settings.notification(tx).webhook
        assert destinations.open_options("SFTP", options)["password"] == SFTP["password"]
        assert webhook is not None
        assert webhook.url == "https://h.example.test/TOKEN9"
        assert KeyStore(catalog).get(JOB) == KEY
        assert mode(home / "master.key") == 0o600
    finally:
        catalog.close()


def test_a_home_without_the_key_of_its_catalog_makes_no_second_key(tmp_path: Path) -> None:
    """Two servers on one catalog share one master key: a home that lacks it gets a clear error
    naming the key and the variable, never a new key that would seal values differently."""
    first = tmp_path / "first"
    catalog = Catalog.open(first)
    KeyStore(catalog).put(JOB, KEY)
    catalog.close()
    ident = sealing.master_key(first, create=False).ident
    second = tmp_path / "second"
    second.mkdir()
    (second / "catalog.db").write_bytes((first / "catalog.db").read_bytes())
    catalog = Catalog.open(second)
    try:
        answer = Api(catalog).call(
            "manageDestination", {"action": "create", "name": "New", "type": "SFTP", "options": SFTP}
        )
        assert answer["success"] == 0
        assert f"sealed with master key {ident}" in answer["message"]
        assert "SNAPKEEP_MASTER_KEY_FILE" in answer["message"]
        with pytest.raises(ConfigError, match=f"sealed with master key {ident}"):
            KeyStore(catalog).get_or_create("6b0a0000ffffffffffffffff")
        assert not (second / "master.key").exists()
    finally:
        catalog.close()


def test_several_processes_opening_an_old_home_at_once_move_each_key_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_old_home(home)
    script = (
        "import sys\n"
        "from snapkeep.jobs.catalog import Catalog\n"
        "from snapkeep.jobs.keystore import KeyStore\n"
        "catalog = Catalog.open(sys.argv[1])\n"
        f"print(KeyStore(catalog).get('{JOB}'))\n"
        "catalog.close()\n"
    )
    started = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(home)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [process.communicate(timeout=120) for process in started]
    assert [process.returncode for process in started] == [0, 0, 0, 0], results
    assert all(out.strip() == KEY for out, _ in results)
    assert not (home / "keys").exists()
    catalog = Catalog.open(home)
    try:
        assert KeyStore(catalog).all() == {JOB: KEY}
    finally:
        catalog.close()
