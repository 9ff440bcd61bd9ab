"""A local restore shared among processes (``restore.processes``): the same result as one process,
its limits shared, a worker's failure or a stop never lost or left running."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from restore_trees import describe, live_workers, make_sites, restored_root, workers_take_first
from snapkeep.engine.backup import backup
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.fs.restore_policy import RestoreOptions
from snapkeep.engine.progress import ProgressCounter
from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import RestoreResult, processes, restore
from snapkeep.errors import BackupAbortedError, RepositoryError
from snapkeep.storage.local import LocalStore
from snapkeep.storage.memory import MemoryStore
from snapkeep.storage.wrappers import RetryingStore, StoreWrapper

FAST_KDF = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


@pytest.fixture(autouse=True)
def workers_first(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every worker surely restores some folders (``restore_trees.workers_first``)."""
    return workers_take_first(monkeypatch)


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[Repository]:
    repo = Repository.init(LocalStore(tmp_path / "repo"), password="secret", kdf_params=FAST_KDF)
    yield repo
    repo.close()


def backed_up(repository: Repository, tmp_path: Path, files: int = 12) -> tuple[Path, Snapshot]:
    source = make_sites(tmp_path, files)
    return source, backup(repository, [str(source)])


def test_two_and_three_processes_restore_exactly_what_one_does(
    repository: Repository, tmp_path: Path, workers_first: list[int]
) -> None:
    source, snapshot = backed_up(repository, tmp_path)
    alone = restore(repository, snapshot, str(tmp_path / "one"), processes=1)
    assert alone.processes == 1
    expected = describe(source)
    assert describe(restored_root(tmp_path / "one", source)) == expected
    for count in (2, 3):
        target = tmp_path / f"shared{count}"
        result = restore(repository, snapshot, str(target), processes=count)
        assert result.processes == count
        assert result.ok, result.failures
        assert (result.files, result.dirs, result.others, result.bytes) == (
            alone.files,
            alone.dirs,
            alone.others,
            alone.bytes,
        )
        assert result.changes.counts == alone.changes.counts
        got = describe(restored_root(target, source))
        assert got == expected
        assert workers_first[-1] >= count - 1  # every worker restored at least one folder
        home = restored_root(target, source) / "home"
        assert (home / "site01" / "f2.txt").stat().st_ino == (home / "site19" / "across.txt").stat().st_ino
    assert _workers() == []


def test_includes_and_the_overwrite_policy_hold_in_every_process(
    repository: Repository, tmp_path: Path
) -> None:
    source, snapshot = backed_up(repository, tmp_path)
    target = tmp_path / "out"
    inside = restored_root(target, source) / "home"
    inside.mkdir(parents=True)
    (inside / "site07").mkdir()
    (inside / "site07" / "f3.txt").write_bytes(b"mine, kept")
    (inside / "site18").mkdir()
    (inside / "site18" / "f4.txt").write_bytes(b"also mine")
    result = _restore_home_keeping(repository, snapshot, source, target, 2)
    assert (inside / "site07" / "f3.txt").read_bytes() == b"mine, kept"
    assert (inside / "site18" / "f4.txt").read_bytes() == b"also mine"
    assert result.changes.counts["skip"] == 2
    assert sorted(path for action, path in result.changes.entries if action == "skip") == [
        f"{source}/home/site07/f3.txt",
        f"{source}/home/site18/f4.txt",
    ]
    assert (inside / "site12" / "deep" / "er" / "big.bin").read_bytes() == (
        source / "home" / "site12" / "deep" / "er" / "big.bin"
    ).read_bytes()

    only = tmp_path / "only"
    picked = restore(
        repository,
        snapshot,
        str(only),
        includes=[f"{source}/home/site03", f"{source}/home/site16/deep"],
        processes=2,
    )
    assert picked.ok, picked.failures
    below = restored_root(only, source) / "home"
    assert sorted(path.name for path in below.iterdir()) == ["site03", "site16"]
    assert sorted(path.name for path in (below / "site16").iterdir()) == ["deep"]


def _restore_home_keeping(
    repository: Repository, snapshot: Snapshot, source: Path, target: Path, count: int
) -> RestoreResult:
    """Restore the source's ``home`` into ``target`` with ``count`` processes, keeping what is there."""
    result = restore(
        repository,
        snapshot,
        str(target),
        includes=[str(source / "home")],
        processes=count,
        options=RestoreOptions(overwrite="never"),
    )
    assert result.processes == count
    return result


def test_a_hard_link_member_the_policy_keeps_is_kept_as_one_process_keeps_it(
    repository: Repository, tmp_path: Path
) -> None:
    source, snapshot = backed_up(repository, tmp_path)
    seen = []
    for count in (1, 2):
        target = tmp_path / f"out{count}"
        home = restored_root(target, source) / "home"
        (home / "site19").mkdir(parents=True)
        (home / "site19" / "across.txt").write_bytes(b"mine, kept")
        _restore_home_keeping(repository, snapshot, source, target, count)
        assert (home / "site19" / "across.txt").read_bytes() == b"mine, kept"
        assert (home / "site01" / "f2.txt").read_bytes() == (
            source / "home" / "site01" / "f2.txt"
        ).read_bytes()
        described = describe(restored_root(target, source))
        for made_before in ("home", "home/site19", "home/site19/across.txt"):  # their own times
            described.pop(made_before)
        seen.append(described)
    assert seen[0] == seen[1]


def test_a_missing_pack_fails_only_its_files_whichever_process_restores_them(tmp_path: Path) -> None:
    repository = Repository.init(
        LocalStore(tmp_path / "small-packs"), password="secret", kdf_params=FAST_KDF, pack_size=64 * 1024
    )
    source, snapshot = backed_up(repository, tmp_path)
    content = (source / "home" / "site15" / "deep" / "er" / "big.bin").read_bytes()
    big = repository.lookup(repository.blob_id(content))
    assert big is not None
    repository.store.delete(f"data/{big.pack_id[:2]}/{big.pack_id}")
    alone = restore(repository, snapshot, str(tmp_path / "one"), processes=1)
    result = restore(repository, snapshot, str(tmp_path / "out"), processes=2)
    assert result.processes == 2
    failed = {path for path, _ in result.failures}
    assert f"{source}/home/site15/deep/er/big.bin" in failed
    assert failed == {path for path, _ in alone.failures}
    assert result.files == alone.files
    home = restored_root(tmp_path / "out", source) / "home"
    assert not (home / "site15" / "deep" / "er" / "big.bin").exists()
    assert (home / "site15" / "f3.txt").read_bytes() == (source / "home" / "site15" / "f3.txt").read_bytes()
    repository.close()


class _KillWorkers(ProgressCounter):
    """Kills every restore worker when the first report of one arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.killed: list[int] = []

    def on_file(self, path: str, size: int) -> None:
        super().on_file(path, size)
        if threading.current_thread().name.startswith("snapkeep-restore-split") and not self.killed:
            for pid in _workers():
                os.kill(pid, signal.SIGKILL)
                self.killed.append(pid)


class _Stop(ProgressCounter):
    def on_file(self, path: str, size: int) -> None:
        super().on_file(path, size)
        if threading.current_thread().name.startswith("snapkeep-restore-split"):
            raise BackupAbortedError("stopped on request")


def test_a_worker_that_dies_fails_the_restore_naming_it(repository: Repository, tmp_path: Path) -> None:
    _, snapshot = backed_up(repository, tmp_path, files=150)
    progress = _KillWorkers()
    with pytest.raises(RepositoryError, match=r"restore worker process \d+ ended unexpectedly") as raised:
        restore(repository, snapshot, str(tmp_path / "out"), processes=2, progress=progress)
    assert progress.killed
    assert str(progress.killed[0]) in str(raised.value)
    assert _workers() == []


def test_a_stop_asked_for_ends_every_worker(repository: Repository, tmp_path: Path) -> None:
    _, snapshot = backed_up(repository, tmp_path, files=150)
    with pytest.raises(BackupAbortedError, match="stopped on request"):
        restore(repository, snapshot, str(tmp_path / "out"), processes=3, progress=_Stop())
    assert _workers() == []


def test_only_a_plain_local_store_is_shared_among_processes(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(processes.PROCESSES_VARIABLE, raising=False)
    assert processes.default_processes(repository) == min(processes.MAX_PROCESSES, os.cpu_count() or 1)
    monkeypatch.setenv(processes.PROCESSES_VARIABLE, "1")  # the operator turns sharing off
    assert processes.default_processes(repository) == 1
    monkeypatch.delenv(processes.PROCESSES_VARIABLE)
    wrapped = Repository.open(StoreWrapper(LocalStore(tmp_path / "repo")), password="secret")
    memory = Repository.init(MemoryStore(), password="secret", kdf_params=FAST_KDF)
    retried = Repository.open(RetryingStore(LocalStore(tmp_path / "repo"), attempts=2), password="secret")
    try:
        assert processes.default_processes(wrapped) == 1
        assert processes.default_processes(memory) == 1
        assert processes.default_processes(memory, 3) == 1  # asked for, but no worker could open it
        # The service opens a Local destination retried: its restores are shared too.
        assert processes.default_processes(retried) == processes.default_processes(repository)
    finally:
        wrapped.close()
        memory.close()
        retried.close()


def test_a_retried_local_store_is_restored_by_retried_workers(repository: Repository, tmp_path: Path) -> None:
    source, snapshot = backed_up(repository, tmp_path)
    retried = Repository.open(RetryingStore(LocalStore(tmp_path / "repo"), attempts=2), password="secret")
    try:
        result = restore(retried, snapshot, str(tmp_path / "out"), processes=2)
    finally:
        retried.close()
    assert result.processes == 2
    assert describe(restored_root(tmp_path / "out", source)) == describe(source)


def test_a_tree_that_never_fans_out_is_restored_by_one_process(
    repository: Repository, tmp_path: Path
) -> None:
    source = tmp_path / "flat"
    source.mkdir()
    for number in range(40):
        (source / f"{number}.txt").write_bytes(b"x" * number)
    snapshot = backup(repository, [str(source)])
    result = restore(repository, snapshot, str(tmp_path / "out"), processes=4)
    assert result.processes == 1
    assert result.files == 40


def _workers() -> list[int]:
    """The restore worker processes still alive (not zombies) below this one."""
    return live_workers(b"snapkeep.engine.restore.child")


def test_when_no_process_can_be_started_the_planning_process_restores_everything(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, snapshot = backed_up(repository, tmp_path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(processes.sharing.subprocess, "Popen", refuse)
    result = restore(repository, snapshot, str(tmp_path / "out"), processes=3)
    assert result.processes == 1
    assert result.ok, result.failures
    assert describe(restored_root(tmp_path / "out", source)) == describe(source)


def test_a_worker_that_cannot_set_up_is_left_out(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker of another installed version (the service's code upgraded under it) refuses the
    setup before it takes a folder: the restore goes on without it."""
    source, snapshot = backed_up(repository, tmp_path)
    monkeypatch.setattr(processes, "PROTOCOL", processes.PROTOCOL + 1)
    result = restore(repository, snapshot, str(tmp_path / "out"), processes=2)
    assert result.processes == 1
    assert result.ok, result.failures
    assert describe(restored_root(tmp_path / "out", source)) == describe(source)
    assert _workers() == []
