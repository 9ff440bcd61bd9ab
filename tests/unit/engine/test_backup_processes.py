"""A local backup shared among processes (``backup.processes``): the same snapshot as one process,
every blob stored and indexed before the snapshot names it, a worker's failure never lost or left
running."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from restore_trees import backup_workers_take_first, describe, live_workers, make_sites, restored_root
from snapkeep.engine.backup import backup, processes
from snapkeep.engine.fs.walker import Excludes
from snapkeep.engine.maintenance.check import check
from snapkeep.engine.progress import ProgressCounter
from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import restore
from snapkeep.errors import RepositoryError
from snapkeep.storage.local import LocalStore
from snapkeep.storage.memory import MemoryStore
from snapkeep.storage.wrappers import RetryingStore, StoreWrapper

FAST_KDF = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[Repository]:
    repo = Repository.init(LocalStore(tmp_path / "repo"), password="secret", kdf_params=FAST_KDF)
    yield repo
    repo.close()


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Workers surely back up some folders of these small trees (``restore_trees``)."""
    return backup_workers_take_first(monkeypatch)


def test_two_processes_save_the_snapshot_one_process_saves(
    repository: Repository, tmp_path: Path, shared: list[int]
) -> None:
    source = make_sites(tmp_path)
    first = backup(repository, [str(source)], parent=None, processes=2)
    assert shared[-1] >= 1  # a worker backed up at least one folder
    assert _workers() == []
    # One process reading everything again finds every blob stored and indexed, and builds the
    # very same trees: same entries, same content lists, same root.
    alone = backup(repository, [str(source)], parent=None, processes=1)
    assert alone.tree == first.tree
    assert alone.stats["new_blobs"] == 0
    for name in ("files", "dirs", "other_entries", "bytes"):
        assert first.stats[name] == alone.stats[name], name
    # The hard link across site01 and site19 is read by each process that backs up one of them.
    across = (source / "home" / "site01" / "f2.txt").stat().st_size
    assert first.stats["read_bytes"] - alone.stats["read_bytes"] in (0, across)
    assert first.stats["new_blobs"] > 0
    report = check(repository, read_data=True)
    assert report.ok, report.problems
    assert not report.unindexed_packs
    target = tmp_path / "out"
    result = restore(repository, first, str(target), processes=1)
    assert result.ok, result.failures
    assert describe(restored_root(target, source)) == describe(source)
    home = restored_root(target, source) / "home"
    assert (home / "site01" / "f2.txt").stat().st_ino == (home / "site19" / "across.txt").stat().st_ino


def test_the_next_backup_reuses_unchanged_files_in_every_process(
    repository: Repository, tmp_path: Path, shared: list[int]
) -> None:
    source = make_sites(tmp_path)
    other = Repository.init(LocalStore(tmp_path / "other"), password="secret", kdf_params=FAST_KDF)
    try:
        first = backup(repository, [str(source)], processes=2)
        backup(other, [str(source)], processes=1)
        (source / "home" / "site18" / "f3.txt").write_bytes(b"changed in a worker's folder")
        (source / "home" / "site00" / "new.txt").write_bytes(b"new in this process's folder")
        second = backup(repository, [str(source)], processes=2)
        alone = backup(other, [str(source)], processes=1)
    finally:
        other.close()
    assert second.parent == first.id
    assert shared[-1] >= 1
    for name in ("files", "read_bytes", "new_blobs", "bytes"):
        assert second.stats[name] == alone.stats[name], name
    # A second name of a hard link is counted as a link, not as an unchanged file, by the process
    # that saw the first name: two groups (site01-site19, site02-site17) may span two processes.
    unchanged = alone.stats["unchanged_files"]
    assert unchanged <= second.stats["unchanged_files"] <= unchanged + 2
    assert second.stats["read_bytes"] == len(b"changed in a worker's folder") + len(
        b"new in this process's folder"
    )
    again = backup(repository, [str(source)], parent=None, processes=1)
    assert again.tree == second.tree


def test_excludes_and_warnings_hold_in_every_process(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared: list[int]
) -> None:
    source = make_sites(tmp_path)
    gone = source / "home" / "site19"
    original_start = processes.SharedBackupWalk.start

    def start(self: processes.SharedBackupWalk) -> None:
        # Deleted after the split was made: the worker that takes it (the last task) warns.
        for path in sorted(gone.rglob("*"), reverse=True):
            path.unlink() if not path.is_dir() or path.is_symlink() else path.rmdir()
        gone.rmdir()
        original_start(self)

    monkeypatch.setattr(processes.SharedBackupWalk, "start", start)
    progress = ProgressCounter()
    snapshot = backup(
        repository, [str(source)], excludes=["*.bin", "**/site17"], processes=2, progress=progress
    )
    # This process listed home/ before site19 went: it cannot describe it; the worker given it
    # (the last task) cannot list it. Both warnings reach the snapshot and the progress.
    warned = {warning["message"].split(":")[0] for warning in snapshot.stats["warnings"]}
    assert warned == {"cannot read metadata", "cannot list folder"}, snapshot.stats["warnings"]
    assert {warning["path"] for warning in snapshot.stats["warnings"]} == {str(gone)}
    assert snapshot.stats["warning_count"] == 2
    assert [path for path, _ in progress.warnings] == [str(gone), str(gone)]
    result = restore(repository, snapshot, str(tmp_path / "out"), processes=1)
    home = restored_root(tmp_path / "out", source) / "home"
    assert result.ok
    assert not list(home.rglob("*.bin"))
    kept = [f"site{site:02}" for site in range(17)] + ["site18"]
    assert sorted(path.name for path in home.iterdir()) == kept
    assert (home / "site18" / "f0.txt").read_bytes() == (source / "home" / "site18" / "f0.txt").read_bytes()


def test_a_worker_that_dies_fails_the_backup_naming_it_and_saves_nothing(
    repository: Repository, tmp_path: Path, shared: list[int]
) -> None:
    source = make_sites(tmp_path, files=150)

    class KillWorkers(ProgressCounter):
        def __init__(self) -> None:
            super().__init__()
            self.killed: list[int] = []

        def on_file(self, path: str, size: int) -> None:
            super().on_file(path, size)
            if threading.current_thread().name.startswith("snapkeep-backup-split") and not self.killed:
                for pid in _workers():
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(pid)

    progress = KillWorkers()
    with pytest.raises(RepositoryError, match=r"backup worker process \d+ ended unexpectedly") as raised:
        backup(repository, [str(source)], processes=2, progress=progress)
    assert progress.killed
    assert str(progress.killed[0]) in str(raised.value)
    assert repository.list_snapshots() == []
    assert _workers() == []


def test_a_worker_that_cannot_set_up_is_left_out(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared: list[int]
) -> None:
    """A worker of another installed version (the service's code upgraded under it) refuses the
    setup before it takes a folder: the backup goes on without it."""
    source = make_sites(tmp_path)
    monkeypatch.setattr(processes, "PROTOCOL", processes.PROTOCOL + 1)
    snapshot = backup(repository, [str(source)], processes=2)
    assert shared[-1] == 0
    alone = backup(repository, [str(source)], parent=None, processes=1)
    assert alone.tree == snapshot.tree
    assert _workers() == []


def test_when_no_process_can_be_started_this_process_backs_up_everything(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_sites(tmp_path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(processes.sharing.subprocess, "Popen", refuse)
    snapshot = backup(repository, [str(source)], processes=3)
    result = restore(repository, snapshot, str(tmp_path / "out"), processes=1)
    assert result.ok
    assert describe(restored_root(tmp_path / "out", source)) == describe(source)


def test_the_split_is_the_first_depth_with_enough_folders(repository: Repository, tmp_path: Path) -> None:
    source = make_sites(tmp_path)
    tasks = processes.split_folders(repository, [os.fsencode(source)], None, Excludes(()))
    assert [os.fsdecode(path) for path, _ in tasks] == [
        str(source / "home" / f"site{site:02}") for site in range(20)
    ]
    assert all(old is None for _, old in tasks)
    # Ten sites left: ten folders at depth 2, ten (deep/) at 3, ten (er/) at 4: never enough.
    fewer = processes.split_folders(repository, [os.fsencode(source)], None, Excludes(["**/site0*"]))
    assert fewer == []
    snapshot = backup(repository, [str(source)], processes=1)
    root = bytes.fromhex(snapshot.tree)
    again = processes.split_folders(repository, [os.fsencode(source)], root, Excludes(()))
    assert all(old is not None for _, old in again)  # each task starts from its parent subtree
    flat = tmp_path / "flat"
    flat.mkdir()
    for number in range(40):
        (flat / f"{number}.txt").write_bytes(b"x")
    assert processes.split_folders(repository, [os.fsencode(flat)], None, Excludes(())) == []


def test_only_a_plain_local_store_is_shared_by_default(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(processes.PROCESSES_VARIABLE, raising=False)
    assert processes.default_processes(repository) == min(processes.MAX_PROCESSES, os.cpu_count() or 1)
    monkeypatch.setenv(processes.PROCESSES_VARIABLE, "1")
    assert processes.default_processes(repository) == 1
    monkeypatch.delenv(processes.PROCESSES_VARIABLE)
    wrapped = Repository.open(StoreWrapper(LocalStore(tmp_path / "repo")), password="secret")
    memory = Repository.init(MemoryStore(), password="secret", kdf_params=FAST_KDF)
    retried = Repository.open(RetryingStore(LocalStore(tmp_path / "repo"), attempts=2), password="secret")
    try:
        assert processes.default_processes(wrapped) == 1
        assert processes.default_processes(memory, 3) == 1
        assert processes.default_processes(retried) == processes.default_processes(repository)
    finally:
        wrapped.close()
        memory.close()
        retried.close()


def _workers() -> list[int]:
    """The backup worker processes still alive (not zombies) below this one."""
    return live_workers(b"snapkeep.engine.backup.child")
