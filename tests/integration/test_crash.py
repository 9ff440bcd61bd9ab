"""Crash: ``kill -9`` of ``snapkeep repo backup`` at 20 seeded random moments, then of ``repo prune``.

After each kill: ``check`` is clean (unindexed packs allowed; the dead process's lock is stale), every
earlier snapshot restores exactly (contents and metadata), and the next backup succeeds. The
commands run through the real command root in subprocesses.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snapkeep.engine.maintenance.check import check
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository.locks import is_stale, list_locks
from snapkeep.engine.restore import restore
from snapkeep.storage.local import LocalStore

PROJECT = Path(__file__).resolve().parents[2]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from bench.reliability.common import digest, make_tree, mutate  # noqa: E402

FAST = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}
PASSWORD = "crash test"
SEED = 20260301
KILLS = 20
BOOT = "import sys; from snapkeep.cli.main import main; sys.exit(main(sys.argv[1:]))"


def command(*args: str) -> list[str]:
    return [sys.executable, "-c", BOOT, "repo", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "SNAPKEEP_PASSWORD": PASSWORD}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), capture_output=True, text=True, env=environment(), timeout=300, check=False
    )


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.repo = tmp_path / "repo"
        self.source = tmp_path / "source"
        Repository.init(LocalStore(self.repo), password=PASSWORD, kdf_params=FAST).close()
        self.expected: dict[str, dict[str, tuple[object, ...]]] = {}
        self.restores = 0

    def backup_done(self, result: subprocess.CompletedProcess[str] | tuple[int, str, str]) -> None:
        code, out, err = (
            result if isinstance(result, tuple) else (result.returncode, result.stdout, result.stderr)
        )
        assert code == 0, out + err
        self.expected[json.loads(out)["id"]] = digest(self.source)

    def adopt_committed(self) -> None:
        """A backup killed after storing its snapshot (before exiting) committed: record it."""
        committed = set(Repository.open(LocalStore(self.repo), password=PASSWORD).snapshots.ids())
        for snapshot_id in committed - set(self.expected):
            self.expected[snapshot_id] = digest(self.source)

    def verify(self, moment: str) -> None:
        """check is clean and every snapshot recorded so far restores exactly."""
        repository = Repository.open(LocalStore(self.repo), password=PASSWORD)
        report = check(repository)
        assert report.ok, (moment, report.problems)
        now = time.time()
        assert all(is_stale(info, now) for info in list_locks(repository.store).values()), moment
        assert sorted(self.expected) == sorted(repository.snapshots.ids()), moment
        for snapshot_id, expected in self.expected.items():
            target = self.tmp / "restore"
            result = restore(repository, repository.load_snapshot(snapshot_id), str(target))
            assert result.ok, (moment, snapshot_id, result.failures)
            assert digest(target / self.source.relative_to("/")) == expected, (moment, snapshot_id)
            shutil.rmtree(target)
            self.restores += 1
        repository.close()

    def kill_at(self, args: tuple[str, ...], delay: float) -> tuple[int, str, str]:
        process = subprocess.Popen(
            command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment()
        )
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        out, err = process.communicate(timeout=60)
        return process.returncode, out, err


@pytest.mark.slow
def test_kill_backup_and_prune_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    harness = Harness(tmp_path)
    make_tree(harness.source, rng)
    started = time.monotonic()
    harness.backup_done(run("backup", str(harness.repo), str(harness.source), "--json"))
    mutate(harness.source, rng, 0)
    started = time.monotonic()
    harness.backup_done(run("backup", str(harness.repo), str(harness.source), "--json"))
    duration = time.monotonic() - started  # a backup with about 2 MiB of new data

    killed_midway = 0
    for round_ in range(1, KILLS + 1):
        mutate(harness.source, rng, round_)
        moment = rng.uniform(0.05, 1.0) * duration
        code, out, err = harness.kill_at(("backup", str(harness.repo), str(harness.source), "--json"), moment)
        if code == 0:  # it finished before the signal: a normal snapshot
            harness.backup_done((code, out, err))
        else:
            assert code == -signal.SIGKILL, err
            killed_midway += 1
            harness.adopt_committed()
        harness.verify(f"after backup kill {round_} at {moment:.2f}s")
        harness.backup_done(run("backup", str(harness.repo), str(harness.source), "--json"))
    assert killed_midway >= KILLS // 2, f"only {killed_midway} kills landed during a backup"

    forgotten = run("forget", str(harness.repo), "--keep-last", "4", "--json")
    assert forgotten.returncode == 0, forgotten.stderr
    for removed in json.loads(forgotten.stdout)["remove"]:
        del harness.expected[removed["id"]]
    trial = tmp_path / "trial"
    shutil.copytree(harness.repo, trial)
    started = time.monotonic()
    measured = run("prune", str(trial), "--json")
    prune_duration = time.monotonic() - started
    assert measured.returncode == 0, measured.stderr
    assert json.loads(measured.stdout)["deleted_packs"], "the forgotten snapshots left garbage"
    for attempt in range(3):
        moment = rng.uniform(0.1, 1.0) * prune_duration
        code, _, err = harness.kill_at(("prune", str(harness.repo)), moment)
        assert code in (0, -signal.SIGKILL), err
        harness.verify(f"after prune kill {attempt} at {moment:.2f}s")
    final = run("prune", str(harness.repo), "--json")
    assert final.returncode == 0, final.stderr
    harness.verify("after the final prune")
    repository = Repository.open(LocalStore(harness.repo), password=PASSWORD)
    assert check(repository, read_data=True).unindexed_packs == [], final.stdout
    harness.backup_done(run("backup", str(harness.repo), str(harness.source), "--json"))


def test_forget_and_prune_commands_report_in_json_and_text(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    rng = random.Random(1)
    (harness.source / "d").mkdir(parents=True)
    for _ in range(3):
        (harness.source / "d" / "file").write_bytes(rng.randbytes(5000))
        harness.backup_done(run("backup", str(harness.repo), str(harness.source), "--json"))
    dry = run("forget", str(harness.repo), "--keep-last", "1", "--dry-run")
    assert dry.returncode == 0, dry.stdout
    assert dry.stdout.count("would remove snapshot") == 2, dry.stdout
    missing = run("forget", str(harness.repo))
    assert missing.returncode == 2
    assert "give a --keep-* rule (--keep-last N, --keep-daily N, ...) or the snapshot IDs" in missing.stderr
    oldest = min(harness.expected)
    done = run("forget", str(harness.repo), oldest[:10])
    assert done.returncode == 0
    assert f"removed snapshot {oldest[:12]}" in done.stdout
    del harness.expected[oldest]
    text = run("prune", str(harness.repo), "--dry-run")
    assert text.returncode == 0, text.stdout
    # The forgotten snapshot's file data and its folder listings (packs of their own).
    assert "would delete 2 packs" in text.stdout, text.stdout
    pruned = run("prune", str(harness.repo), "--json")
    assert pruned.returncode == 0
    assert len(json.loads(pruned.stdout)["deleted_packs"]) == 2
    clean = run("check", str(harness.repo), "--read-data")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "no errors" in clean.stdout, clean.stdout + clean.stderr
    harness.verify("after forget and prune")
