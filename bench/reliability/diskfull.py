"""Full disks: a Local destination and the catalog's file system fill up during a run.

Each file system is a small tmpfs mounted for the series (root is needed to mount; the series says so
and fails without it). What must hold: the run fails with a clear message (no traceback), the
catalog is not corrupt (SQLite ``integrity_check``), earlier backups are intact and restore
identically, and once space is freed the next run succeeds.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.reliability.common import (
    FAST_KDF,
    PASSWORD,
    Outcome,
    digest,
    first_line,
    fresh,
    has_traceback,
    make_tree,
    snapkeep,
)
from snapkeep.engine.maintenance.check import check
from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import restore
from snapkeep.storage.local import LocalStore


@contextlib.contextmanager
def small_filesystem(path: Path, size_mib: int) -> Iterator[Path]:
    """A tmpfs of ``size_mib`` MiB mounted at ``path`` for the duration."""
    fresh(path)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        raise RuntimeError(f"cannot mount a tmpfs at {path} (root is needed): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> Path:
    """Write a filler file until the file system is full; returns it."""
    filler = folder / "filler"
    block = bytes(1024 * 1024)
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(block)
                out.flush()
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    with contextlib.suppress(OSError), open(filler, "ab") as out:  # the last partial MiB
        while True:
            out.write(b"\0" * 4096)
            out.flush()
    return filler


def destination_full(root: Path, rng: random.Random) -> Outcome:
    """A Local repository on a 48 MiB file system: a backup of 80 MiB more fails cleanly."""
    source = fresh(root / "source")
    make_tree(source, rng, files=100, big=2)
    figures: dict[str, Any] = {}
    problems: list[str] = []
    with small_filesystem(root / "mnt-destination", 48) as mount:
        repo = mount / "repo"
        Repository.init(LocalStore(repo), password=PASSWORD, kdf_params=FAST_KDF).close()
        first = snapkeep("repo", "backup", str(repo), str(source), "--json")
        if first.returncode != 0:
            raise AssertionError(f"first backup failed: {first.stderr}")
        first_id, expected = json.loads(first.stdout)["id"], digest(source)
        (source / "large.bin").write_bytes(rng.randbytes(80 * 1024 * 1024))
        full = snapkeep("repo", "backup", str(repo), str(source), "--json")
        figures["full_backup"] = {"code": full.returncode, "says": first_line(full.stderr)}
        if full.returncode == 0:
            problems.append("the backup that cannot fit succeeded")
        if has_traceback(full.stdout + full.stderr):
            problems.append("traceback on a full destination")
        if "space" not in (full.stdout + full.stderr).lower():
            problems.append("the error does not say the destination is full")
        (source / "large.bin").unlink()
        problems += _intact(repo, root, {first_id: expected}, source)
        again = snapkeep("repo", "backup", str(repo), str(source), "--json")
        if again.returncode != 0:
            problems.append(f"backup after freeing space failed: {first_line(again.stderr)}")
        pruned = snapkeep("repo", "prune", str(repo))
        if pruned.returncode != 0:
            problems.append(f"prune failed: {first_line(pruned.stderr)}")
        problems += _intact(repo, root, {first_id: expected}, source, read_data=True)
    return Outcome(
        "disk full", "Local destination full during a backup", not problems, "; ".join(problems), figures
    )


def _intact(
    repo: Path,
    root: Path,
    expected: dict[str, dict[str, tuple[object, ...]]],
    source: Path,
    *,
    read_data: bool = False,
) -> list[str]:
    problems = []
    repository = Repository.open(LocalStore(repo), password=PASSWORD)
    try:
        report = check(repository, read_data=read_data)
        if not report.ok:
            problems.append(f"check: {report.problems[:2]}")
        for snapshot_id, tree in expected.items():
            target = fresh(root / "verify")
            result = restore(repository, repository.load_snapshot(snapshot_id), str(target))
            if not result.ok or digest(target / source.relative_to("/")) != tree:
                problems.append(f"snapshot {snapshot_id[:8]} no longer restores identically")
            shutil.rmtree(target)
    finally:
        repository.close()
    return problems


def catalog_full(root: Path, rng: random.Random, headroom: int) -> Outcome:
    """The home (catalog, logs) on a 24 MiB file system with ``headroom`` bytes left when a run starts
    (0: full before it starts; a few hundred KiB: it fills during the run)."""
    source = fresh(root / "catalog-source")
    make_tree(source, rng, files=60, big=1)
    backups = fresh(root / "catalog-backups")
    figures: dict[str, Any] = {}
    problems: list[str] = []
    with small_filesystem(root / "mnt-home", 24) as home:

        def api(function: str, query: str) -> dict[str, Any]:
            answer = snapkeep("--home", str(home), "api", "-F", function, "-D", query, "-O", "json")
            if answer.returncode != 0:
                raise AssertionError(f"{function}: {answer.stdout}{answer.stderr}")
            data: dict[str, Any] = json.loads(answer.stdout)["data"]
            return data

        destination = api("manageDestination", f"action=create&name=Disk&type=Local&options[path]={backups}")[
            "_id"
        ]
        job = api(
            "manageBackupJob",
            f"action=create&name=Folders&type=2&destination[]={destination}&contains=511"
            f"&structure=1&include_list[]={source}",
        )["_id"]
        first = snapkeep("--home", str(home), "run", job)
        if first.returncode != 0:
            raise AssertionError(f"first run failed: {first.stdout}{first.stderr}")
        filler = fill(home)
        if headroom:
            os.truncate(filler, filler.stat().st_size - headroom)
        (source / "more.dat").write_bytes(rng.randbytes(100_000))
        full = snapkeep("--home", str(home), "run", job)
        figures["run_on_full_home"] = {
            "code": full.returncode,
            "says": first_line(full.stderr or full.stdout),
        }
        (root / "run-on-full-home.log").write_text(full.stdout + full.stderr)
        if full.returncode == 0 and not headroom:
            problems.append("a run with a full catalog file system reported success")
        if has_traceback(full.stdout + full.stderr):
            problems.append("traceback on a full catalog file system")
        filler.unlink()
        with sqlite3.connect(home / "catalog.db") as connection:
            verdict = connection.execute("PRAGMA integrity_check").fetchone()[0]
        figures["integrity_check"] = verdict
        if verdict != "ok":
            problems.append(f"catalog integrity_check: {verdict}")
        listed = api("listBackups", "limit=100")["backups"]
        figures["backups_listed_after"] = len(listed)
        if not listed:
            problems.append("the earlier backup is no longer listed")
        again = snapkeep("--home", str(home), "run", job)
        if again.returncode != 0:
            problems.append(f"run after freeing space failed: {first_line(again.stderr or again.stdout)}")
        target = fresh(root / "catalog-restore")
        newest = api("listBackups", "limit=100&sort[created]=-1")["backups"][0]["_id"]
        restored = snapkeep("--home", str(home), "restore", newest, "--target", str(target))
        if restored.returncode != 0 or digest(target / source.relative_to("/")) != digest(source):
            problems.append(f"restore after the full disk differs: {first_line(restored.stderr)}")
    name = (
        f"catalog file system with {headroom // 1024} KiB free when a run starts"
        if headroom
        else "catalog file system full when a run starts"
    )
    return Outcome("disk full", name, not problems, "; ".join(problems), figures)


def diskfull_series(root: Path, rng: random.Random) -> list[Outcome]:
    if os.geteuid() != 0:
        raise RuntimeError("the disk-full series mounts tmpfs file systems: run it as root")
    return [destination_full(root, rng)] + [
        catalog_full(fresh(root / f"catalog-{headroom}"), rng, headroom)
        for headroom in (0, 64 * 1024, 512 * 1024)
    ]
