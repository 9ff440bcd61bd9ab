"""A backup killed with ``kill -9`` after storing packs leaves them unindexed; the next backup removes
them at its start (no prune needed), and ``check --read-data`` is clean afterwards.

The commands run through the real command root in subprocesses (as ``test_crash``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from snapkeep.engine.repository import Repository
from snapkeep.storage.local import LocalStore

FAST = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}
PASSWORD = "reclaim test"
BOOT = "import sys; from snapkeep.cli.main import main; sys.exit(main(sys.argv[1:]))"


def command(*args: str) -> list[str]:
    return [sys.executable, "-c", BOOT, "repo", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "SNAPKEEP_PASSWORD": PASSWORD}


def stored_packs(repo: Path) -> set[str]:
    return {path.name for path in (repo / "data").glob("*/*") if not path.name.startswith(".")}


def test_killed_backup_packs_are_reclaimed_by_the_next_backup(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    source = tmp_path / "source"
    source.mkdir()
    for number in range(6):
        (source / f"big{number}.bin").write_bytes(os.urandom(12 * 1024 * 1024))
    Repository.init(LocalStore(repo), password=PASSWORD, kdf_params=FAST).close()

    process = subprocess.Popen(
        command("backup", str(repo), str(source)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
    )
    deadline = time.monotonic() + 120
    while not stored_packs(repo) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the backup finished before it could be killed"
    left = stored_packs(repo)
    assert left
    assert not list(repo.glob("index/*"))  # killed before any index file: garbage packs
    assert list((repo / "locks").iterdir())  # and its lock (of a dead process)

    source.joinpath("big0.bin").unlink()  # the next backup needs none of the killed one's data
    done = subprocess.run(
        command("backup", str(repo), str(source)),
        capture_output=True,
        text=True,
        env=environment(),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not left & stored_packs(repo)

    done = subprocess.run(
        command("check", "--read-data", str(repo)),
        capture_output=True,
        text=True,
        env=environment(),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not indexed" not in done.stdout
    assert "no errors" in done.stdout.splitlines()
