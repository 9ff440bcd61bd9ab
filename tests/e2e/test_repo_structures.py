"""Every backup is recoverable from its destination alone: ``snapkeep repo`` on all three structures.

A job of each structure (Incremental, Archived, Compressed), encrypted and plain, runs through the
catalog; its key is exported with ``snapkeep keys export``; then the home is deleted and
``snapkeep repo snapshots/ls/restore/check`` work on the destination with nothing but the key.
An Accounts job with MariaDB databases is recovered one component and one database at a time.
Damaged archives (a flipped byte in a sealed segment, a truncated archive, a deleted or damaged
manifest, a flipped byte inside a plain ``.tar.zst``) are each named by ``repo check``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import pytest
import zstandard
from tests.conftest import require_server
from tests.integration.runner_helpers import World, make_tree, tree_state
from tests.integration.test_account_runs import Site, accounts_job, mariadb, mariadb_checksum, servers_answer

from servers import RcloneS3Server
from snapkeep.engine.archive.bounded_tar import MAX_HEADER_BYTES
from snapkeep.engine.archive.manifest import decode_manifest, encode_manifest
from snapkeep.engine.repository import Repository
from snapkeep.sources.dbclient import DatabaseSettings, mariadb_command, run_client
from snapkeep.storage.local import LocalStore

SNAPKEEP = Path(sys.executable).parent / "snapkeep"
STRUCTURES = {"incremental": 1, "archived": 2, "compressed": 4}


def bare_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no snapkeep home, no password variable and an empty HOME."""
    empty = tmp_path / "empty-home"
    empty.mkdir(exist_ok=True)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(empty), "LANG": "C.UTF-8"}


def repo(env: dict[str, str], *args: str | Path, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(SNAPKEEP), "repo", *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )
    if check is not None:
        assert done.returncode == check, (args, done.returncode, done.stdout, done.stderr)
    return done


def export_key(home: Path, job_id: str, where: Path) -> list[str]:
    """``snapkeep keys export JOB`` into a 0600 file; the ``--password-file`` arguments."""
    exported = subprocess.run(
        [str(SNAPKEEP), "--home", str(home), "keys", "export", job_id],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert len(exported) >= 32
    where.write_text(exported + "\n")
    where.chmod(0o600)
    return ["--password-file", str(where)]


def inside(target: Path, source: Path) -> Path:
    return target / str(source).lstrip("/")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    yield made
    made.close()


def run_job(world: World, destination: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    job = world.job(destination, **fields)
    status, group = world.run(job)
    assert status == 100, world.log_text(group)
    return job


def lose_home(world: World) -> None:
    world.close()
    shutil.rmtree(world.home)


@pytest.mark.parametrize("encrypted", [1, 0], ids=["encrypted", "plain"])
@pytest.mark.parametrize("structure", list(STRUCTURES))
def test_each_structure_recovers_from_the_destination_alone(
    world: World, tmp_path: Path, structure: str, encrypted: int
) -> None:
    make_tree(world.source, 1)
    job = run_job(world, structure=STRUCTURES[structure], encrypted=encrypted)
    first_state = tree_state(world.source)
    make_tree(world.source, 2)
    (world.source / "sub" / "deep" / "only-in-1.txt").unlink()
    run_job_again = world.run(job)
    assert run_job_again[0] == 100, world.log_text(run_job_again[1])
    state = tree_state(world.source)
    password = export_key(world.home, job["_id"], tmp_path / "job.key") if encrypted else []
    lose_home(world)
    env = bare_env(tmp_path)
    location = world.backups / job["_id"]

    if encrypted:
        refused = repo(env, "snapshots", location, check=7)
        assert "password is required" in refused.stderr
    listed = json.loads(repo(env, "snapshots", location, *password, "--json").stdout)
    assert [item["structure"] for item in listed] == [structure, structure]
    assert all(item["job_id"] == job["_id"] for item in listed)
    assert all(item["paths"] == [str(world.source)] for item in listed)
    text = repo(env, "snapshots", location, *password).stdout
    assert listed[0]["short_id"] in text
    assert structure in text
    expected_count = (
        "2 snapshots" if structure == "incremental" else f"0 snapshots, 2 archives (2 {structure})"
    )
    assert expected_count in text
    only = json.loads(repo(env, "snapshots", location, *password, "--structure", structure, "--json").stdout)
    assert len(only) == 2

    # ls: the whole backup, a subfolder, the long form; by `latest`, `latest:STRUCTURE` and a prefix
    paths = repo(env, "ls", location, "latest", *password).stdout.splitlines()
    assert f"{world.source}/sub/deep/only-in-2.txt" in paths
    assert f"{world.source}/sub/deep/only-in-1.txt" not in paths
    older = repo(env, "ls", location, listed[0]["id"][:10], f"{world.source}/sub/deep", *password).stdout
    assert f"{world.source}/sub/deep/only-in-1.txt" in older.splitlines()
    long_form = repo(env, "ls", location, f"latest:{structure}", f"{world.source}/link", "-l", *password)
    assert long_form.stdout.startswith("lrwxrwxrwx ")  # as `ls -l` shows it
    assert " -> " in long_form.stdout
    as_json = [
        json.loads(line)
        for line in repo(
            env, "ls", location, "latest", f"{world.source}/a.txt", "--json", *password
        ).stdout.splitlines()
    ]
    assert as_json[0]["type"] == "file"
    assert as_json[0]["size"] == len((world.source / "a.txt").read_bytes())
    other = "archived" if structure != "archived" else "compressed"
    missing = repo(env, "ls", location, f"latest:{other}", *password, check=2)
    assert f"no {other} backup" in missing.stderr

    # restore: the newest whole, the oldest by ID prefix, one path of it
    target = tmp_path / "restored"
    done = json.loads(repo(env, "restore", location, "latest", target, "--json", *password).stdout)
    assert done["failures"] == []
    assert tree_state(inside(target, world.source)) == state
    # an edited file in the target: a dry run only says what would change; --overwrite never keeps it
    edited = inside(target, world.source) / "a.txt"
    edited.write_text("edited after the restore\n")
    dry = repo(env, "restore", location, "latest", target, "--dry-run", *password)
    assert f"overwrite {world.source}/a.txt" in dry.stdout.splitlines()
    assert "dry run, would be: " in dry.stdout
    assert edited.read_text() == "edited after the restore\n"
    kept = json.loads(
        repo(env, "restore", location, "latest", target, "--overwrite", "never", "--json", *password).stdout
    )
    assert kept["skipped"] > 0
    assert kept["overwritten"] == 0
    assert edited.read_text() == "edited after the restore\n"
    repo(env, "restore", location, "latest", target, *password)
    assert tree_state(inside(target, world.source)) == state
    old = tmp_path / "old"
    repo(env, "restore", location, listed[0]["id"][:12], old, *password)
    assert tree_state(inside(old, world.source)) == first_state
    part = tmp_path / "part"
    repo(env, "restore", location, "latest", part, "--include", f"{world.source}/sub", *password)
    assert sorted(os.listdir(inside(part, world.source))) == ["sub"]
    assert (inside(part, world.source) / "sub" / "b.bin").read_bytes() == (
        world.source / "sub" / "b.bin"
    ).read_bytes()

    # check, cheap and full, reports by structure
    cheap = repo(env, "check", location, *password)
    assert cheap.stdout.splitlines()[-1] == "no errors", cheap.stdout
    full = json.loads(repo(env, "check", location, "--read-data", "--json", *password).stdout)
    assert full["ok"] is True
    if structure == "incremental":
        assert full["snapshots"] == 2
        assert full["archives"]["count"] == 0
    else:
        assert full["snapshots"] == 0
        assert full["archives"]["archives"] == {structure: 2}
        assert full["archives"]["archives_read"] == 2
        assert full["archives"]["members_verified"] > 10
        assert full["archives"]["sealed_checked"] == (2 if encrypted else 0)
    subset = repo(env, "check", location, "--read-data-subset", "50%", *password)
    assert "archives: " in subset.stdout
    assert subset.stdout.splitlines()[-1] == "no errors"


def test_encrypted_archives_recover_from_an_s3_bucket(
    world: World, tmp_path: Path, s3_server: RcloneS3Server
) -> None:
    """The same recovery on a remote destination: an encrypted Compressed job in an S3 bucket."""
    bucket = s3_server.make_bucket("structures")
    prefix = f"site/{secrets.token_hex(4)}"
    destination = world.ok(
        "manageDestination",
        {
            "action": "create",
            "name": "Bucket",
            "type": "S3",
            "options": {
                "bucket": bucket,
                "endpoint": s3_server.endpoint,
                "access_key": s3_server.access_key,
                "secret_key": s3_server.secret_key,
                "path": prefix,
            },
        },
    )
    make_tree(world.source, 1)
    job = run_job(world, destination, structure=STRUCTURES["compressed"], encrypted=1)
    state = tree_state(world.source)
    password = export_key(world.home, job["_id"], tmp_path / "job.key")
    lose_home(world)
    env = {
        **bare_env(tmp_path),
        "SNAPKEEP_S3_ACCESS_KEY": s3_server.access_key,
        "SNAPKEEP_S3_SECRET_KEY": s3_server.secret_key,
    }
    location = f"s3+http://127.0.0.1:{s3_server.port}/{bucket}/{prefix}/{job['_id']}"
    listed = json.loads(repo(env, "snapshots", location, *password, "--json").stdout)
    assert [item["structure"] for item in listed] == ["compressed"]
    assert listed[0]["encryption"] != "none"
    paths = repo(env, "ls", location, listed[0]["id"][:8], *password).stdout.splitlines()
    assert f"{world.source}/sub/b.bin" in paths
    repo(env, "restore", location, "latest:compressed", tmp_path / "out", *password)
    assert tree_state(inside(tmp_path / "out", world.source)) == state
    checked = json.loads(repo(env, "check", location, "--read-data", "--json", *password).stdout)
    assert checked["ok"] is True
    assert checked["archives"]["sealed_checked"] == 1
    assert checked["archives"]["archives_read"] == 1


def test_wrong_or_missing_key_for_an_encrypted_archive(world: World, tmp_path: Path) -> None:
    make_tree(world.source, 1)
    job = run_job(world, structure=STRUCTURES["compressed"], encrypted=1)
    lose_home(world)
    env = bare_env(tmp_path)
    location = world.backups / job["_id"]
    wrong = tmp_path / "wrong.key"
    wrong.write_text("0" * 64 + "\n")
    for command in (["snapshots", location], ["restore", location, "latest", tmp_path / "t"]):
        assert "wrong password" in repo(env, *command, "--password-file", wrong, check=7).stderr
    assert not (tmp_path / "t").exists()


def archive_files(location: Path) -> dict[str, Path]:
    """Archive ID -> its data file, in no particular order."""
    return {
        path.name.split(".")[0]: path
        for path in (location / "archives").iterdir()
        if path.name.endswith((".tar", ".tar.zst"))
    }


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_check_names_each_damaged_archive(world: World, tmp_path: Path) -> None:
    """Four plain Compressed archives and one encrypted Archived job, each damaged another way."""
    make_tree(world.source, 1)
    (world.source / "big.bin").write_bytes(os.urandom(600_000))
    plain = run_job(world, structure=STRUCTURES["compressed"], encrypted=0)
    for version in (2, 3, 4):
        make_tree(world.source, version)
        status, group = world.run(plain)
        assert status == 100, world.log_text(group)
    sealed = run_job(world, structure=STRUCTURES["archived"], encrypted=1)
    password = export_key(world.home, sealed["_id"], tmp_path / "sealed.key")
    lose_home(world)
    env = bare_env(tmp_path)
    plain_location, sealed_location = world.backups / plain["_id"], world.backups / sealed["_id"]
    ids = [item["id"] for item in json.loads(repo(env, "snapshots", plain_location, "--json").stdout)]
    files = archive_files(plain_location)
    flipped, truncated, no_manifest, bad_manifest = ids

    # a flipped byte in the middle of a plain .tar.zst: only --read-data sees it
    flip(files[flipped], files[flipped].stat().st_size // 2)
    cheap = repo(env, "check", plain_location)
    assert cheap.stdout.splitlines()[-1] == "no errors", cheap.stdout + cheap.stderr
    full = repo(env, "check", plain_location, "--read-data", check=8)
    assert f"error: archive archives/{flipped}.tar.zst: " in full.stderr, full.stderr
    assert "1 ERRORS" in full.stdout

    # truncated, manifest deleted, manifest damaged: the cheap check names each
    with files[truncated].open("r+b") as handle:
        handle.truncate(files[truncated].stat().st_size - 100)
    (plain_location / "archives" / f"{no_manifest}.manifest").unlink()
    flip(plain_location / "archives" / f"{bad_manifest}.manifest", 50)
    cheap = repo(env, "check", plain_location, check=8)
    assert f"error: archive archives/{truncated}.tar.zst: " in cheap.stderr
    assert "(truncated)" in cheap.stderr
    assert f"error: archive archives/{no_manifest}.tar.zst: the archive has no manifest" in cheap.stderr
    assert f"error: manifest archives/{bad_manifest}.manifest: " in cheap.stderr
    assert flipped not in cheap.stderr
    report = json.loads(repo(env, "check", plain_location, "--read-data", "--json", check=8).stdout)
    assert report["ok"] is False
    assert sorted(report["archives"]["damaged"]) == sorted(ids)
    assert {(problem["kind"], problem["archive"]) for problem in report["problems"]} == {
        ("archive", flipped),
        ("archive", truncated),
        ("archive", no_manifest),
        ("manifest", bad_manifest),
    }
    # the listing leaves the damaged manifest out with a warning; a damaged archive refuses to restore
    listing = repo(env, "snapshots", plain_location)
    assert f"archive {bad_manifest[:12]} left out" in listing.stderr
    assert "2 archives (2 compressed)" in listing.stdout
    broken = repo(env, "restore", plain_location, flipped[:12], tmp_path / "broken", check=8)
    assert "damaged" in broken.stderr
    assert not (inside(tmp_path / "broken", world.source) / "big.bin").exists()

    # a flipped byte in a sealed segment: the cheap check opens every seal
    data = archive_files(sealed_location)
    (sealed_id, sealed_file) = next(iter(data.items()))
    flip(sealed_file, sealed_file.stat().st_size // 2)
    cheap = repo(env, "check", sealed_location, *password, check=8)
    assert f"error: archive archives/{sealed_id}.tar: " in cheap.stderr
    assert "segment" in cheap.stderr


# --- Accounts -------------------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path, world: World) -> Iterator[Site]:
    require_server(servers_answer(), "MariaDB at 127.0.0.1:3306 and PostgreSQL at 127.0.0.1:5432")
    made = Site(tmp_path, world.home)
    try:
        made.build()
        yield made
    finally:
        made.drop()


def test_account_component_and_database_from_the_destination_alone(
    world: World, site: Site, tmp_path: Path
) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    job = accounts_job(world, site, encrypted=1)
    status, group = world.run(job)
    assert status == 100, world.log_text(group)
    home_state = tree_state(site.account_home("alice") / "docs")
    public_state = tree_state(site.account_home("alice") / "public_html")
    checksum = mariadb_checksum(f"{alice}_wp")
    password = export_key(world.home, job["_id"], tmp_path / "accounts.key")
    lose_home(world)
    env = bare_env(tmp_path)
    location = world.backups / job["_id"]

    listed = json.loads(repo(env, "snapshots", location, *password, "--json").stdout)
    assert sorted(item["account"] for item in listed) == [alice, bob]
    mine = json.loads(repo(env, "snapshots", location, "--account", alice, *password, "--json").stdout)
    assert [item["account"] for item in mine] == [alice]
    assert f"account {alice}" in repo(env, "snapshots", location, *password).stdout

    dumps = repo(env, "ls", location, "latest", "--account", alice, "--component", "databases", *password)
    assert f"/databases/mariadb/{alice}_wp.sql" in dumps.stdout.splitlines()
    one = repo(env, "ls", location, "latest", "--account", alice, "--database", f"{alice}_wp", *password)
    assert one.stdout.splitlines() == [f"/databases/mariadb/{alice}_wp.sql"]

    # one component: the home folder
    home_target = tmp_path / "alice-home"
    repo(
        env,
        "restore",
        location,
        "latest",
        home_target,
        "--account",
        alice,
        "--component",
        "homedir",
        *password,
    )
    assert sorted(os.listdir(home_target)) == ["homedir"]
    assert tree_state(home_target / "homedir" / "docs") == home_state
    assert tree_state(home_target / "homedir" / "public_html") == public_state
    assert not (home_target / "homedir" / "cache" / "junk.tmp").exists()  # the account's excludes

    # one database dump, loaded into a new database: the same rows
    db_target = tmp_path / "alice-db"
    repo(
        env,
        "restore",
        location,
        "latest",
        db_target,
        "--account",
        alice,
        "--database",
        f"{alice}_wp",
        *password,
    )
    dump = db_target / "databases" / "mariadb" / f"{alice}_wp.sql"
    assert sorted(p.name for p in db_target.rglob("*") if p.is_file()) == [f"{alice}_wp.sql"]
    copy = f"{alice}_wp_copy"
    mariadb(f"CREATE DATABASE `{copy}`")
    settings = DatabaseSettings()
    run_client("mariadb", settings, mariadb_command(settings, copy), "load the dump", stdin=dump.read_bytes())
    assert mariadb_checksum(copy) == checksum

    # clear errors for what is not there
    wrong_db = repo(env, "restore", location, "latest", tmp_path / "x", "--account", alice,
        "--database", "nope", *password, check=2)  # fmt: skip
    assert f"{alice}_wp" in wrong_db.stderr
    assert "no dump of database 'nope'" in wrong_db.stderr
    wrong_component = repo(env, "ls", location, "latest", "--account", alice, "--component", "mailbox",
        *password, check=2)  # fmt: skip
    assert "homedir" in wrong_component.stderr
    nobody = repo(env, "ls", location, "latest", "--account", "nobody", *password, check=2)
    assert "account 'nobody'" in nobody.stderr
    bob_id = next(item["id"] for item in listed if item["account"] == bob)
    mismatch = repo(env, "ls", location, bob_id[:12], "--account", alice, *password, check=2)
    assert f"of account {bob!r}" in mismatch.stderr
    assert repo(env, "check", location, "--read-data", *password).stdout.splitlines()[-1] == "no errors"


# --- bounded memory on hostile archives -----------------------------------------------------------

PEAK_RSS = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(done.stdout)
sys.stderr.write(done.stderr)
print(f"peak-rss-kib={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
sys.exit(done.returncode)
"""
MEMORY_BOUND_KIB = 300 * 1024


def repo_peak(
    env: dict[str, str], *args: str | Path, check: int
) -> tuple[subprocess.CompletedProcess[str], int]:
    """``snapkeep repo ARGS`` and the peak resident memory (KiB) of that process."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(SNAPKEEP), "repo", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == check, (args, done.returncode, done.stdout, done.stderr)
    peak = int(done.stdout.rsplit("peak-rss-kib=", 1)[1])
    return done, peak


@pytest.mark.slow
def test_zstd_bomb_and_giant_tar_header_stay_in_bounded_memory(world: World, tmp_path: Path) -> None:
    world.source.mkdir()
    with (world.source / "zeros.bin").open("wb") as handle:
        handle.truncate(1024**3)  # 1 GiB of zeros: a Compressed archive of some 32 KiB
    job = run_job(world, structure=STRUCTURES["compressed"], encrypted=0)
    lose_home(world)
    env = bare_env(tmp_path)
    location = world.backups / job["_id"]
    (archive_id, data) = next(iter(archive_files(location).items()))
    assert data.stat().st_size < 1024**2

    checked, peak = repo_peak(env, "check", location, "--read-data", check=0)
    assert "verified 2 members: ok" in checked.stdout
    assert peak < MEMORY_BOUND_KIB, f"check --read-data of a 1 GiB stream peaked at {peak} KiB"
    _, peak = repo_peak(env, "restore", location, "latest", tmp_path / "out", check=0)
    assert (inside(tmp_path / "out", world.source) / "zeros.bin").stat().st_size == 1024**3
    assert peak < MEMORY_BOUND_KIB, f"restore of a 1 GiB stream peaked at {peak} KiB"
    shutil.rmtree(tmp_path / "out")

    # Forge the (unencrypted, so only checksummed) archive: a pax header that claims 512 MiB and has it.
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = 512 * 1024**2
    compressor = zstandard.ZstdCompressor(level=3, write_checksum=True).compressobj()
    hasher = blake3.blake3()
    with data.open("wb") as handle:
        pieces = [compressor.compress(header.tobuf(format=tarfile.USTAR_FORMAT))]
        block = b"a" * 1024**2
        pieces += (compressor.compress(block) for _ in range(512))
        pieces.append(compressor.flush())
        for piece in pieces:
            handle.write(piece)
            hasher.update(piece)
    store = LocalStore(location)
    repository = Repository.open(store, password=None)
    name = f"archives/{archive_id}.manifest"
    manifest = decode_manifest(store.load(name), repository.cipher, archive_id)
    manifest.size, manifest.blake3 = data.stat().st_size, hasher.hexdigest()
    store.store(name, encode_manifest(manifest, repository.cipher))
    repository.close()

    assert repo(env, "check", location).stdout.splitlines()[-1] == "no errors"  # size and head are right
    damaged, peak = repo_peak(env, "check", location, "--read-data", check=8)
    assert (
        f"error: archive archives/{archive_id}.tar.zst: tar stream damaged: extended header" in damaged.stderr
    )
    assert f"(at most {MAX_HEADER_BYTES})" in damaged.stderr
    assert peak < MEMORY_BOUND_KIB, f"check --read-data of a 512 MiB tar header peaked at {peak} KiB"
