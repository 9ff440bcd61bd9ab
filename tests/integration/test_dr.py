"""Disaster recovery: ``dr export`` sealed with a passphrase, the home deleted, ``dr import`` into an
empty one, a reindex and a byte-for-byte restore of encrypted jobs; wrong passphrases, damaged and
forged files, a non-empty home; and the commands (``dr export/import``, ``keys import``, ``reindex``)
as subprocesses of the installed ``snapkeep``."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import blake3
import pytest
from tests.integration.runner_helpers import World, make_tree, tree_state

from snapkeep.errors import ConflictError, IntegrityError, ValidationError, WrongPasswordError
from snapkeep.jobs import backups, dr, reindex, settings
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.codes import Structure
from snapkeep.jobs.keystore import KeyStore
from snapkeep.jobs.runs import execute_group

PASSPHRASE = "correct horse battery staple"
SNAPKEEP = Path(sys.executable).parent / "snapkeep"


def build_old_server(root: Path) -> tuple[World, dict[str, Any], dict[str, dict[str, Any]]]:
    """A server with a schedule, a hook, a filter, settings and three encrypted jobs (one per
    structure) that have run."""
    world = World(root)
    world.source.mkdir()
    destination = world.destination()
    schedule = world.ok(
        "manageSchedule", {"action": "create", "name": "Nightly", "type": 2, "type_data": [1]}
    )
    world.ok(
        "manageHook",
        {
            "action": "create",
            "name": "Notify",
            "position": 1,
            "position_type": 1,
            "script": "/bin/true",
        },
    )
    world.ok("manageAccountFilter", {"action": "create", "name": "Some", "type": 2, "list": ["alice"]})
    world.ok("manageSettingsPerformance", {"backup_forks": 3, "queueable_forks": 4})
    jobs = {
        "incremental": world.job(
            destination, name="Sites", encrypted=1, schedules=[{"_id": schedule["_id"], "retain": 5}]
        ),
        "archived": world.job(destination, name="Archive", encrypted=1, structure=2),
        "compressed": world.job(destination, name="Packed", encrypted=1, structure=4),
    }
    make_tree(world.source, 7)
    for job in jobs.values():
        status, group = world.run(job)
        assert status == 100, world.log_text(group)
    return world, destination, jobs


def catalog_objects(catalog: Catalog) -> dict[str, list[dict[str, Any]]]:
    with catalog.transaction(write=False) as tx:
        return {
            kind: sorted(
                ({k: v for k, v in item.items() if k not in dr.JOB_STATE} for item in tx.all(kind)),
                key=lambda item: str(item["_id"]),
            )
            for kind in dr.KINDS
        }


def test_export_delete_import_reindex_restore(tmp_path: Path) -> None:
    old, destination, jobs = build_old_server(tmp_path)
    expected_tree = tree_state(old.source)
    expected_objects = catalog_objects(old.catalog)
    expected_keys = KeyStore(old.catalog).all()
    expected_master = (old.home / "master.key").read_bytes()
    assert set(expected_keys) == {job["_id"] for job in jobs.values()}
    with old.catalog.transaction(write=False) as tx:
        expected_settings = settings.every_value(tx)
    export = tmp_path / "takeover.skdr"
    dr.write_file(export, dr.seal(dr.export_state(old.catalog, old.home), PASSPHRASE))
    assert export.stat().st_mode & 0o777 == 0o600
    raw = export.read_bytes()
    for secret in expected_keys.values():
        assert secret.encode() not in raw
    with pytest.raises(ConflictError, match="exists"):
        dr.write_file(export, b"other")
    old.close()
    shutil.rmtree(old.home)  # the server is gone; the destination and the export are left

    # wrong passphrase and damage: clear errors, nothing written
    new_home = tmp_path / "new" / "home"
    with pytest.raises(WrongPasswordError, match="wrong passphrase"):
        dr.open_sealed(raw, "not the passphrase")
    damaged = bytearray(raw)
    damaged[len(raw) // 2] ^= 0x01
    with pytest.raises(IntegrityError, match="damaged"):
        dr.open_sealed(bytes(damaged), PASSPHRASE)
    with pytest.raises(IntegrityError):
        dr.open_sealed(raw[: len(raw) - 100], PASSPHRASE)
    with pytest.raises(ValidationError, match="not a snapkeep disaster-recovery export"):
        dr.open_sealed(b"PK\x03\x04" + raw, PASSPHRASE)
    assert not new_home.exists()

    state = dr.open_sealed(raw, PASSPHRASE)
    new = World(tmp_path / "new")
    assert new.home == new_home
    new.source = old.source
    done = dr.import_state(new.catalog, new_home, state)
    assert done.counts == {"destinations": 1, "schedules": 1, "hooks": 1, "account_filters": 1, "jobs": 3}
    assert done.keys == 3
    assert catalog_objects(new.catalog) == expected_objects
    assert KeyStore(new.catalog).all() == expected_keys
    # the exported master key became the new server's: the sealed secrets came along unchanged
    assert (new_home / "master.key").read_bytes() == expected_master
    assert (new_home / "master.key").stat().st_mode & 0o777 == 0o600
    with new.catalog.transaction(write=False) as tx:
        assert settings.every_value(tx) == expected_settings
    assert new.ok("getSettingsPerformance")["backup_forks"] == 3
    # a second import is refused: the home is not empty any more, and nothing changes
    with pytest.raises(ConflictError, match="not empty"):
        dr.import_state(new.catalog, new_home, state)
    assert catalog_objects(new.catalog) == expected_objects

    # the backups come back from the destination, linked to their jobs, and restore byte for byte
    group = new.ok("reindexDestination", {"_id": destination["_id"]})
    assert execute_group(new.catalog, new_home, group["_id"], stop=threading.Event()) == 100
    listed = new.ok("listBackups", {"limit": 0})["backups"]
    assert sorted(item["job_id"] for item in listed) == sorted(job["_id"] for job in jobs.values())
    for item in listed:
        assert item["orphan"] == 0
        assert item["key_required"] == 0
        assert item["encrypted"] == 1
        target = tmp_path / f"restored-{item['_id']}"
        queued = new.ok(
            "addQueueItems", {"type": 2, "snapshot_id": item["_id"], "options": {"target": str(target)}}
        )
        status = execute_group(new.catalog, new_home, queued["_id"], stop=threading.Event())
        assert status == 100, new.log_text(new.ok("getQueueGroup", {"_id": queued["_id"]}))
        assert tree_state(target / str(old.source).lstrip("/")) == expected_tree
    # and the jobs run again on the new server, into the same repositories
    for job in jobs.values():
        assert new.run(new.ok("getBackupJob", {"_id": job["_id"]}))[0] == 100
    new.close()


def test_forged_kdf_parameters_are_refused_before_any_work(tmp_path: Path) -> None:
    sealed = dr.seal({"format": dr.FORMAT}, PASSPHRASE)
    (length,) = struct.unpack(">H", sealed[len(dr.MAGIC) : len(dr.MAGIC) + 2])
    start = len(dr.MAGIC) + 2
    header = json.loads(sealed[start : start + length])
    for name, value in (("memory_cost", 1 << 30), ("time_cost", 10_000), ("parallelism", 0)):
        forged_header = dict(header, kdf_params={**header["kdf_params"], name: value})
        encoded = json.dumps(forged_header).encode()
        body = dr.MAGIC + struct.pack(">H", len(encoded)) + encoded + sealed[start + length : -dr.HASH_SIZE]
        forged = body + blake3.blake3(body).digest()
        began = time.monotonic()
        with pytest.raises(ValidationError, match=f"kdf_params.{name}"):
            dr.open_sealed(forged, PASSPHRASE)
        assert time.monotonic() - began < 1.0
    oversized = dr.MAGIC + struct.pack(">H", 65535) + b"{}"
    with pytest.raises(IntegrityError):
        dr.open_sealed(oversized + blake3.blake3(oversized).digest(), PASSPHRASE)
    with pytest.raises(ValidationError, match="at least 8"):
        dr.seal({}, "short")


def test_chacha20_files_open_too() -> None:
    state = {"format": dr.FORMAT, "version": 1, "objects": {}, "settings": {}, "keys": {}}
    sealed = dr.seal(state, PASSPHRASE, cipher="chacha20-poly1305")
    assert dr.open_sealed(sealed, PASSPHRASE) == state


# --- the commands, as subprocesses ------------------------------------------------------------------


def snapkeep(home: Path, *args: str, passphrase: str | None = PASSPHRASE) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SNAPKEEP_")}
    env["SNAPKEEP_HOME"] = str(home)
    if passphrase is not None:
        env["SNAPKEEP_DR_PASSPHRASE"] = passphrase
    return subprocess.run(
        [str(SNAPKEEP), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_dr_keys_and_reindex_commands(tmp_path: Path) -> None:
    old, destination, jobs = build_old_server(tmp_path)
    expected_keys = KeyStore(old.catalog).all()
    old.close()
    export = tmp_path / "export.skdr"

    no_passphrase = snapkeep(old.home, "dr", "export", str(export), passphrase=None)
    assert no_passphrase.returncode == 2
    assert "SNAPKEEP_DR_PASSPHRASE" in no_passphrase.stderr
    done = snapkeep(old.home, "dr", "export", str(export))
    assert done.returncode == 0, done.stderr
    assert "3 jobs" in done.stdout
    assert "3 job keys" in done.stdout
    assert export.stat().st_mode & 0o777 == 0o600
    again = snapkeep(old.home, "dr", "export", str(export))
    assert again.returncode == 2
    assert "exists" in again.stderr

    # a passphrase file instead of the environment; a wrong one changes nothing
    wrong_file = tmp_path / "wrong.pass"
    wrong_file.write_text("a different passphrase\n")
    new_home = tmp_path / "taken-over"
    wrong = snapkeep(
        new_home, "dr", "import", str(export), "--passphrase-file", str(wrong_file), passphrase=None
    )
    assert wrong.returncode == WrongPasswordError.exit_code
    assert "wrong passphrase" in wrong.stderr
    assert not new_home.exists()
    right_file = tmp_path / "right.pass"
    right_file.write_text(PASSPHRASE + "\n")
    imported = snapkeep(
        new_home, "dr", "import", str(export), "--passphrase-file", str(right_file), passphrase=None
    )
    assert imported.returncode == 0, imported.stderr
    assert "3 jobs" in imported.stdout
    assert "snapkeep reindex" in imported.stdout
    refused = snapkeep(new_home, "dr", "import", str(export))
    assert refused.returncode == 2
    assert "not empty" in refused.stderr
    assert "3 jobs" in refused.stderr

    reindexed = snapkeep(new_home, "reindex", destination["name"])
    assert reindexed.returncode == 0, reindexed.stdout + reindexed.stderr
    assert "Completed" in reindexed.stdout
    catalog = Catalog.open(new_home)
    try:
        with catalog.transaction(write=False) as tx:
            rows = backups.rows(tx)
        assert sorted(row.job_id for row in rows) == sorted(job["_id"] for job in jobs.values())
    finally:
        catalog.close()
    missing = snapkeep(new_home, "reindex", "no such destination")
    assert missing.returncode == 2
    assert "Destination not found" in missing.stderr

    # keys import on a server that only has the destination: key required, then readable
    bare = World(tmp_path / "bare")
    bare_home = bare.home
    bare.destination(old.backups)
    bare.close()
    first = snapkeep(bare_home, "reindex", "Disk 0")
    assert first.returncode == 1
    assert "Partially Completed" in first.stdout
    job_id = jobs["archived"]["_id"]
    key_file = tmp_path / "archived.key"
    key_file.write_text(expected_keys[job_id] + "\n")
    stored = snapkeep(bare_home, "keys", "import", job_id, str(key_file))
    assert stored.returncode == 0, stored.stderr
    assert "stored" in stored.stdout
    bad = tmp_path / "bad.key"
    bad.write_text("line one\nline two\n")
    malformed = snapkeep(bare_home, "keys", "import", jobs["incremental"]["_id"], str(bad))
    assert malformed.returncode == 2
    assert "one password on one line" in malformed.stderr
    second = snapkeep(bare_home, "reindex", "Disk 0")
    assert second.returncode == 1  # the other job still needs its key
    catalog = Catalog.open(bare_home)
    try:
        with catalog.transaction(write=False) as tx:
            rows = backups.rows(tx)
    finally:
        catalog.close()
    by_job = {row.job_id: row for row in rows}
    assert by_job[job_id].key_required == 0
    assert by_job[job_id].orphan == 1
    assert by_job[jobs["incremental"]["_id"]].key_required == 1


def test_import_and_reindex_rows_on_each_catalog_backend(catalog: Catalog, tmp_path: Path) -> None:
    destination_id, job_id, orphan_id = "a" * 24, "b" * 24, "c" * 24
    destination = {"name": "Disk", "type": "Local", "options": {"path": str(tmp_path / "backups")}}
    job = {
        "name": "Sites",
        "owner": "root",
        "type": 2,
        "structure": 1,
        "encrypted": 1,
        "destination": [destination_id],
    }
    state = {
        "format": dr.FORMAT,
        "version": dr.VERSION,
        "objects": {
            "destinations": [{"_id": destination_id, **destination}],
            "jobs": [{"_id": job_id, **job}],
        },
        "settings": {"logs_ttl": 9},
        "keys": {job_id: "k" * 64},
    }
    home = tmp_path / "home"
    done = dr.import_state(catalog, home, dr.check_state(json.loads(json.dumps(state))))
    assert done.counts == {"destinations": 1, "schedules": 0, "hooks": 0, "account_filters": 0, "jobs": 1}
    assert (done.settings, done.keys) == (1, 1)
    with catalog.transaction(write=False) as tx:
        assert tx.get("jobs", job_id) is not None
        assert settings.general(tx).logs_ttl == 9
        stored = tx.require("destinations", destination_id, "Destination")
    assert KeyStore(catalog).get(job_id) == "k" * 64

    moment = catalog.clock.now()
    found = reindex.FoundBackup(engine_id="e" * 64, structure=Structure.INCREMENTAL, created=moment, size=5)
    for _ in range(2):  # the second time changes nothing
        with catalog.transaction() as tx:
            reindex.apply(
                tx, stored, reindex.RepositoryScan(job_id, encrypted=True, found=[found]), queue_group_id="g"
            )
            reindex.apply(
                tx,
                stored,
                reindex.RepositoryScan(orphan_id, encrypted=True, key_required=True),
                queue_group_id="g",
            )
    with catalog.transaction(write=False) as tx:
        rows = {row.job_id: row for row in backups.rows(tx)}
    assert len(rows) == 2
    assert (rows[job_id].orphan, rows[job_id].key_required, rows[job_id].engine_id) == (0, 0, "e" * 64)
    assert (rows[orphan_id].orphan, rows[orphan_id].key_required, rows[orphan_id].locked) == (1, 1, 1)
    with catalog.transaction() as tx:
        applied = reindex.apply(
            tx, stored, reindex.RepositoryScan(job_id, encrypted=True), queue_group_id="g"
        )
        assert applied.missing == [rows[job_id].id]
        assert (
            reindex.mark_lost_repositories(tx, stored, [job_id]) == []
        )  # the placeholder goes, nothing to mark
    with catalog.transaction(write=False) as tx:
        (left,) = backups.rows(tx)
    assert backups.present(left)["missing"] == 1
