"""kill -9 at random moments during backup, prune, restore and reindex.

Each series runs the real command in a child process (``snapkeep repo backup|prune|restore``,
``snapkeep reindex``), sends SIGKILL after a random share of the time the same command took
uninterrupted, and then verifies: ``check`` is clean (packs that no index lists are allowed: a
killed backup's), the dead process's lock is stale, every snapshot recorded so far restores
identically (contents, modes, times), the next command succeeds, and at the end of the series
``check --read-data`` is clean. A *loss* is any earlier backup that no longer restores identically.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.reliability.common import (
    FAST_KDF,
    PASSWORD,
    Outcome,
    digest,
    environment,
    fresh,
    make_tree,
    mutate,
    snapkeep,
    snapkeep_command,
)
from snapkeep.engine.maintenance.check import check
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository.locks import is_stale, list_locks
from snapkeep.engine.restore import restore
from snapkeep.storage.local import LocalStore


def kill_after(args: tuple[str, ...], delay: float) -> tuple[int, str, str]:
    """Start ``snapkeep ARGS``, SIGKILL it after ``delay`` seconds; (code, stdout, stderr)."""
    process = subprocess.Popen(
        snapkeep_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment()
    )
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.monotonic()
    result = action()
    return time.monotonic() - started, result


class RepositoryTrials:
    """A repository, the tree it backs up, and what every snapshot must restore to."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.repo = root / "repo"
        self.source = root / "source"
        self.expected: dict[str, dict[str, tuple[object, ...]]] = {}
        self.restores = 0
        self.losses = 0
        self.round = 0
        Repository.init(LocalStore(self.repo), password=PASSWORD, kdf_params=FAST_KDF).close()
        make_tree(self.source, rng)

    def open(self) -> Repository:
        return Repository.open(LocalStore(self.repo), password=PASSWORD)

    def backup_args(self) -> tuple[str, ...]:
        return ("repo", "backup", str(self.repo), str(self.source), "--json")

    def backup(self) -> float:
        """A normal backup after a change of the tree; returns its duration."""
        self.round += 1
        mutate(self.source, self.rng, self.round)
        duration, done = timed(lambda: snapkeep(*self.backup_args()))
        if done.returncode != 0:
            raise AssertionError(f"backup failed: {done.stdout}{done.stderr}")
        self.expected[json.loads(done.stdout)["id"]] = digest(self.source)
        return duration

    def adopt_committed(self) -> None:
        """A backup killed after storing its snapshot (before it exited) committed: record it."""
        repository = self.open()
        try:
            for snapshot_id in set(repository.snapshots.ids()) - set(self.expected):
                self.expected[snapshot_id] = digest(self.source)
        finally:
            repository.close()

    def verify(self, moment: str, *, read_data: bool = False, pruned: bool = False) -> list[str]:
        """Problems found (empty when the repository is sound and every snapshot restores)."""
        problems: list[str] = []
        repository = self.open()
        try:
            report = check(repository, read_data=read_data)
            if not report.ok:
                problems.append(f"{moment}: check: {report.problems[:3]}")
            if pruned and report.unindexed_packs:
                problems.append(f"{moment}: {len(report.unindexed_packs)} unindexed packs after prune")
            now = time.time()
            if not all(is_stale(info, now) for info in list_locks(repository.store).values()):
                problems.append(f"{moment}: a live lock was left")
            if sorted(self.expected) != sorted(repository.snapshots.ids()):
                problems.append(f"{moment}: snapshots differ from the recorded ones")
            for snapshot_id, expected in self.expected.items():
                target = fresh(self.root / "verify")
                result = restore(repository, repository.load_snapshot(snapshot_id), str(target))
                self.restores += 1
                if not result.ok or digest(target / self.source.relative_to("/")) != expected:
                    self.losses += 1
                    problems.append(f"{moment}: snapshot {snapshot_id[:8]} does not restore identically")
            shutil.rmtree(self.root / "verify", ignore_errors=True)
        finally:
            repository.close()
        return problems


def backup_series(root: Path, rng: random.Random, trials: int) -> list[Outcome]:
    """Kill ``repo backup`` ``trials`` times; each time verify, then back up normally."""
    world = RepositoryTrials(root, rng)
    world.backup()
    duration = world.backup()
    outcomes = []
    for trial in range(1, trials + 1):
        world.round += 1
        mutate(world.source, rng, world.round)
        moment = rng.uniform(0.05, 1.0) * duration
        code, out, _ = kill_after(world.backup_args(), moment)
        if code == 0:
            world.expected[json.loads(out)["id"]] = digest(world.source)
        else:
            world.adopt_committed()
        problems = world.verify(f"backup kill {trial}")
        try:
            world.backup()
        except AssertionError as failure:
            problems.append(str(failure))
        outcomes.append(
            Outcome(
                "kill -9 backup",
                f"trial {trial}",
                not problems,
                "; ".join(problems) or ("finished before the signal" if code == 0 else "killed"),
                {"moment_s": round(moment, 3), "killed": code != 0, "snapshots": len(world.expected)},
            )
        )
    final = world.verify("backup series end", read_data=True)
    outcomes.append(Outcome("kill -9 backup", "check --read-data at the end", not final, "; ".join(final)))
    _record_totals(outcomes, world)
    return outcomes


def prune_series(root: Path, rng: random.Random, trials: int) -> list[Outcome]:
    """Make garbage (two backups, then forget), kill ``repo prune`` at a random moment; verify."""
    world = RepositoryTrials(root, rng)
    for _ in range(4):
        world.backup()
    outcomes = []
    for trial in range(1, trials + 1):
        world.backup()
        world.backup()
        forgotten = snapkeep("repo", "forget", str(world.repo), "--keep-last", "3", "--json")
        if forgotten.returncode != 0:
            raise AssertionError(f"forget failed: {forgotten.stderr}")
        for removed in json.loads(forgotten.stdout)["remove"]:
            world.expected.pop(removed["id"], None)
        trial_copy = root / "prune-timing"
        shutil.rmtree(trial_copy, ignore_errors=True)
        shutil.copytree(world.repo, trial_copy)
        duration, _ = timed(lambda: snapkeep("repo", "prune", str(trial_copy)))  # noqa: B023
        shutil.rmtree(trial_copy)
        moment = rng.uniform(0.05, 1.0) * duration
        code, _, err = kill_after(("repo", "prune", str(world.repo)), moment)
        problems = [] if code in (0, -signal.SIGKILL) else [f"prune failed: {err.strip()[-200:]}"]
        problems += world.verify(f"prune kill {trial}")
        outcomes.append(
            Outcome(
                "kill -9 prune",
                f"trial {trial}",
                not problems,
                "; ".join(problems) or ("finished before the signal" if code == 0 else "killed"),
                {"moment_s": round(moment, 3), "killed": code != 0},
            )
        )
    done = snapkeep("repo", "prune", str(world.repo))
    final = [] if done.returncode == 0 else [f"final prune: {done.stderr.strip()[-200:]}"]
    final += world.verify("prune series end", read_data=True, pruned=True)
    outcomes.append(Outcome("kill -9 prune", "prune, then check --read-data", not final, "; ".join(final)))
    _record_totals(outcomes, world)
    return outcomes


def restore_series(root: Path, rng: random.Random, trials: int) -> list[Outcome]:
    """Kill ``repo restore`` into a target, restore again into the same target: identical."""
    world = RepositoryTrials(root, rng)
    for _ in range(3):
        world.backup()
    snapshots = sorted(world.expected)
    timing_target = fresh(root / "timing")
    duration, _ = timed(
        lambda: snapkeep("repo", "restore", str(world.repo), snapshots[0], str(timing_target))
    )
    shutil.rmtree(timing_target)
    outcomes = []
    for trial in range(1, trials + 1):
        snapshot_id = rng.choice(snapshots)
        target = fresh(root / "target")
        moment = rng.uniform(0.05, 1.0) * duration
        args = ("repo", "restore", str(world.repo), snapshot_id, str(target))
        code, _, err = kill_after(args, moment)
        problems = [] if code in (0, -signal.SIGKILL) else [f"restore failed: {err.strip()[-200:]}"]
        again = snapkeep(*args)
        if again.returncode != 0:
            problems.append(f"second restore failed: {again.stderr.strip()[-200:]}")
        elif digest(target / world.source.relative_to("/")) != world.expected[snapshot_id]:
            world.losses += 1
            problems.append("the second restore is not identical to the backup")
        problems += world.verify(f"restore kill {trial}") if trial % 4 == 0 else []
        outcomes.append(
            Outcome(
                "kill -9 restore",
                f"trial {trial}",
                not problems,
                "; ".join(problems) or ("finished before the signal" if code == 0 else "killed"),
                {"moment_s": round(moment, 3), "killed": code != 0},
            )
        )
    final = world.verify("restore series end", read_data=True)
    outcomes.append(Outcome("kill -9 restore", "check --read-data at the end", not final, "; ".join(final)))
    _record_totals(outcomes, world)
    return outcomes


def _record_totals(outcomes: list[Outcome], world: RepositoryTrials) -> None:
    outcomes[-1].figures.update({"restores_verified": world.restores, "losses": world.losses})


# -- reindex: a catalog rebuilt from its destination -------------------------------------------


class CatalogWorld:
    """A home with two jobs (incremental and Compressed) on one Local destination, backed up."""

    def __init__(self, root: Path, rng: random.Random, runs: int) -> None:
        from snapkeep.api.dispatch import Api
        from snapkeep.jobs.catalog import Catalog

        self.root = root
        self.home = root / "home"
        self.source = root / "source"
        make_tree(self.source, rng, files=120, big=2)
        catalog = Catalog.open(self.home)
        try:
            api = Api(catalog)
            destination = self._ok(
                api,
                "manageDestination",
                {
                    "action": "create",
                    "name": "Disk",
                    "type": "Local",
                    "options": {"path": str(root / "backups")},
                },
            )
            self.destination = destination["_id"]
            self.jobs = [
                self._ok(
                    api,
                    "manageBackupJob",
                    {
                        "action": "create",
                        "name": f"Folders {structure}",
                        "type": 2,
                        "destination": [self.destination],
                        "contains": 511,
                        "structure": structure,
                        "include_list": [str(self.source)],
                    },
                )["_id"]
                for structure in (1, 4)
            ]
        finally:
            catalog.close()
        for round_ in range(runs):
            mutate_small(self.source, rng, round_)
            for job in self.jobs:
                done = snapkeep("--home", str(self.home), "run", job)
                if done.returncode != 0:
                    raise AssertionError(f"run failed: {done.stdout}{done.stderr}")
        self.expected = self.backups(self.home)

    @staticmethod
    def _ok(api: Any, function: str, params: dict[str, Any]) -> dict[str, Any]:
        answer = api.call(function, params)
        if answer["success"] != 1:
            raise AssertionError(f"{function}: {answer['message']}")
        result: dict[str, Any] = answer["data"]
        return result

    @staticmethod
    def backups(home: Path) -> list[tuple[str, int, str, int]]:
        """(job, structure, time, size) of every backup the catalog of ``home`` lists (a reindex
        may give a backup a new catalog ID, never a new job, time or size)."""
        answer = snapkeep("--home", str(home), "api", "-F", "listBackups", "-D", "limit=1000", "-O", "json")
        if answer.returncode != 0:
            raise AssertionError(f"listBackups: {answer.stdout}{answer.stderr}")
        rows = json.loads(answer.stdout)["data"]["backups"]
        return sorted((row["job_id"], row["backup_structure"], row["created"], row["size"]) for row in rows)

    def forget_catalog(self, home: Path) -> None:
        """Drop every backup row from the catalog of ``home`` (the destination keeps the data)."""
        with sqlite3.connect(home / "catalog.db") as connection:
            connection.execute("DELETE FROM backups")


def mutate_small(source: Path, rng: random.Random, round_: int) -> None:
    for _ in range(4):
        (source / f"d{rng.randrange(12)}" / f"r{round_}_{rng.randrange(1000)}.dat").write_bytes(
            rng.randbytes(3000)
        )


def reindex_series(root: Path, rng: random.Random, trials: int) -> list[Outcome]:
    """Kill ``snapkeep reindex DESTINATION`` in a home whose catalog lost its backups; reindex again."""
    world = CatalogWorld(root, rng, runs=3)
    template = root / "template"
    shutil.copytree(world.home, template)
    world.forget_catalog(template)
    args_for = lambda home: ("--home", str(home), "reindex", world.destination)  # noqa: E731
    timing = root / "timing-home"
    shutil.copytree(template, timing)
    duration, done = timed(lambda: snapkeep(*args_for(timing)))
    if done.returncode != 0:
        raise AssertionError(f"reindex failed: {done.stdout}{done.stderr}")
    if world.backups(timing) != world.expected:
        raise AssertionError("an uninterrupted reindex does not rebuild the backups list")
    shutil.rmtree(timing)
    outcomes = []
    for trial in range(1, trials + 1):
        home = root / "trial-home"
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(template, home)
        moment = rng.uniform(0.05, 1.0) * duration
        code, _, err = kill_after(args_for(home), moment)
        problems = [] if code in (0, -signal.SIGKILL) else [f"reindex failed: {err.strip()[-200:]}"]
        again = snapkeep(*args_for(home))
        if again.returncode != 0:
            problems.append(
                f"second reindex failed: {again.stdout.strip()[-200:]}{again.stderr.strip()[-200:]}"
            )
        elif world.backups(home) != world.expected:
            problems.append("the backups list differs from the original catalog's")
        outcomes.append(
            Outcome(
                "kill -9 reindex",
                f"trial {trial}",
                not problems,
                "; ".join(problems) or ("finished before the signal" if code == 0 else "killed"),
                {"moment_s": round(moment, 3), "killed": code != 0, "backups": len(world.expected)},
            )
        )
    return outcomes


SERIES: dict[str, Callable[[Path, random.Random, int], list[Outcome]]] = {
    "backup": backup_series,
    "prune": prune_series,
    "restore": restore_series,
    "reindex": reindex_series,
}
