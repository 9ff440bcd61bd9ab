"""repair: every index file lost → ``repair index`` → check clean, restore identical; a snapshot with a
missing data pack → ``repair snapshots`` → a new snapshot (tag ``repaired``) restores the rest; and
a killed backup's unindexed packs are reclaimed by the next backup, never while another lock is held."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from snapkeep.engine.backup import backup
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.format import DATA_PREFIX, INDEX_PREFIX, BlobType, pack_name
from snapkeep.engine.maintenance.check import check, open_without_index
from snapkeep.engine.maintenance.repair import REPAIRED_TAG, repair_index, repair_snapshots
from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import restore
from snapkeep.errors import RepositoryError
from snapkeep.storage.local import LocalStore

FAST = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
PASSWORD = "repair"
BOOT = "import sys; from snapkeep.cli.main import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(params=[PASSWORD, None], ids=["encrypted", "plain"])
def password(request: pytest.FixtureRequest) -> str | None:
    return request.param  # type: ignore[no-any-return]


def make_source(root: Path) -> Path:
    source = root / "src"
    for number in range(10):
        folder = source / f"d{number % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{number}.bin").write_bytes(os.urandom(30_000 + number))
    (source / "empty").mkdir()
    return source


def digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        if path.is_file()
        else "dir"
        for path in sorted(root.rglob("*"))
    }


def setup(tmp_path: Path, password: str | None) -> tuple[Path, Path, Snapshot]:
    folder = tmp_path / "repo"
    source = make_source(tmp_path)
    with Repository.init(LocalStore(folder), password=password, kdf_params=FAST, pack_size=60_000) as repo:
        snapshot = backup(repo, [str(source)])
    return folder, source, snapshot


def restored(folder: Path, password: str | None, snapshot_id: str, target: Path, source: Path) -> Path:
    with Repository.open(LocalStore(folder), password=password) as repository:
        result = restore(repository, repository.load_snapshot(snapshot_id), str(target))
    assert result.ok, result.failures
    return target / source.relative_to("/")


def test_every_index_file_lost_then_repair_index(tmp_path: Path, password: str | None) -> None:
    folder, source, snapshot = setup(tmp_path, password)
    store = LocalStore(folder)
    for info in list(store.list(INDEX_PREFIX)):
        store.delete(info.name)

    with open_without_index(LocalStore(folder), password=password) as repository:
        before = check(repository)
    assert not before.ok
    assert all("intact in unindexed pack" in p.message for p in before.problems), before.problems
    assert not any("not in the index or any pack" in p.message for p in before.problems)

    with open_without_index(LocalStore(folder), password=password) as repository:
        report = repair_index(repository)
        assert report.index_files_written == 1
        assert report.blobs_recovered == report.blobs > 10
        assert not report.unreadable_packs
        assert check(repository, read_data=True).ok
    out = restored(folder, password, snapshot.id, tmp_path / "out", source)
    assert digest(out) == digest(source)


def test_repair_index_keeps_what_old_index_files_know_and_is_idempotent(tmp_path: Path) -> None:
    folder, source, snapshot = setup(tmp_path, PASSWORD)
    with open_without_index(LocalStore(folder), password=PASSWORD) as repository:
        first = repair_index(repository)
        assert first.blobs_recovered == 0
        second = repair_index(repository)
        assert (second.blobs, second.index_files_written, second.blobs_recovered) == (first.blobs, 1, 0)
        assert check(repository).ok
    assert digest(restored(folder, PASSWORD, snapshot.id, tmp_path / "out", source)) == digest(source)


def test_missing_data_pack_then_repair_snapshots(tmp_path: Path, password: str | None) -> None:
    folder, source, snapshot = setup(tmp_path, password)
    store = LocalStore(folder)
    with Repository.open(store, password=password) as repository:
        data_packs = sorted({loc.pack_id for loc in repository.index if loc.blob_type is BlobType.DATA})
        victim = data_packs[0]
        gone = {loc.blob_id for loc in repository.index if loc.pack_id == victim}
    store.delete(pack_name(victim))

    with Repository.open(LocalStore(folder), password=password) as repository:
        affected = {a.path for a in check(repository).affected}
        dry = repair_snapshots(repository, dry_run=True)
        assert dry.repaired[0].new_snapshot is None
        assert repository.snapshots.ids() == [snapshot.id]
        report = repair_snapshots(repository)
    (item,) = report.repaired
    assert item.salvageable
    assert not item.forgotten
    assert {path for path, _ in item.removed} == affected
    assert all("file removed" in why for _, why in item.removed)
    assert item.new_snapshot is not None

    with Repository.open(LocalStore(folder), password=password) as repository:
        assert sorted(repository.snapshots.ids()) == sorted([snapshot.id, item.new_snapshot])
        new = repository.load_snapshot(item.new_snapshot)
        assert REPAIRED_TAG in new.tags
        assert new.stats["repaired_from"] == snapshot.id
        assert new.paths == snapshot.paths
        assert new.time == snapshot.time
    out = restored(folder, password, item.new_snapshot, tmp_path / "out", source)
    removed = {str(Path(path).relative_to(source)) for path, _ in item.removed}
    expected = {name: value for name, value in digest(source).items() if name not in removed}
    assert digest(out) == expected
    assert len(expected) < len(digest(source))
    assert gone

    # The original goes only with --forget; then a rebuilt index leaves a clean repository.
    with Repository.open(LocalStore(folder), password=password) as repository:
        again = repair_snapshots(repository, snapshot_ids=[snapshot.id], forget=True)
        assert again.repaired[0].forgotten
        assert again.repaired[0].new_snapshot == item.new_snapshot  # the earlier copy, not another
        assert repository.snapshots.ids() == [item.new_snapshot]
        repair_index(repository)
        assert check(repository, read_data=True).ok


def test_repair_snapshots_refuses_while_packs_are_unindexed(tmp_path: Path) -> None:
    folder, _, _ = setup(tmp_path, PASSWORD)
    store = LocalStore(folder)
    for info in list(store.list(INDEX_PREFIX)):
        store.delete(info.name)
    with Repository.open(LocalStore(folder), password=PASSWORD) as repository:
        with pytest.raises(RepositoryError, match="repair index"):
            repair_snapshots(repository, forget=True)
        assert len(repository.snapshots.ids()) == 1


def test_an_unreadable_root_cannot_be_salvaged(tmp_path: Path) -> None:
    folder, _, snapshot = setup(tmp_path, None)
    store = LocalStore(folder)
    with Repository.open(store, password=None) as repository:
        tree_packs = {loc.pack_id for loc in repository.index if loc.blob_type is BlobType.TREE}
    for pack_id in tree_packs:
        store.delete(pack_name(pack_id))
    with Repository.open(LocalStore(folder), password=None) as repository:
        report = repair_snapshots(repository)
        assert [(i.snapshot, i.salvageable, i.new_snapshot) for i in report.repaired] == [
            (snapshot.id, False, None)
        ]
        assert repository.snapshots.ids() == [snapshot.id]


def test_repair_commands_on_the_command_line(tmp_path: Path) -> None:
    folder, source, snapshot = setup(tmp_path, None)
    store = LocalStore(folder)
    for info in list(store.list(INDEX_PREFIX)):
        store.delete(info.name)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", BOOT, "repo", *args], capture_output=True, text=True, timeout=120
        )

    done = cli("repair", "index", str(folder))
    assert done.returncode == 0, done.stderr
    assert "listed in no index file before" in done.stdout
    done = cli("check", str(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note: unencrypted repository" in done.stderr
    done = cli("repair", "snapshots", str(folder))
    assert done.returncode == 0, done.stderr
    assert "1 intact, 0 damaged" in done.stdout
    assert digest(restored(folder, None, snapshot.id, tmp_path / "out", source)) == digest(source)


# --- a killed backup's packs ------------------------------------------------------------------------


def unindexed(folder: Path) -> set[str]:
    with Repository.open(LocalStore(folder), password=PASSWORD) as repository:
        packs = {info.name.rsplit("/", 1)[-1] for info in repository.store.list(DATA_PREFIX)}
        return packs - repository.index.pack_ids()


def leave_an_unindexed_pack(folder: Path) -> str:
    """What a backup killed after uploading a pack leaves: a stored pack no index file lists."""
    repository = Repository.open(LocalStore(folder), password=PASSWORD)
    repository.add_blob(BlobType.DATA, os.urandom(5000))
    repository._packer.flush()  # uploaded, never indexed: the process "dies" here
    (pack,) = unindexed(folder)
    return pack


def test_the_next_backup_reclaims_a_killed_backups_packs(tmp_path: Path) -> None:
    folder, source, _ = setup(tmp_path, PASSWORD)
    pack = leave_an_unindexed_pack(folder)
    with (
        Repository.open(LocalStore(folder), password=PASSWORD) as repository,
        repository.lock(exclusive=False),
    ):
        backup(repository, [str(source)])
    assert unindexed(folder) == set()
    assert not LocalStore(folder).exists(pack_name(pack))
    with Repository.open(LocalStore(folder), password=PASSWORD) as repository:
        assert check(repository, read_data=True).ok


def test_no_reclaim_while_another_lock_is_held_or_without_a_lock(tmp_path: Path) -> None:
    folder, _, _ = setup(tmp_path, PASSWORD)
    pack = leave_an_unindexed_pack(folder)
    other = Repository.open(LocalStore(folder), password=PASSWORD)
    with (
        other.lock(exclusive=False, holder="another backup"),
        Repository.open(LocalStore(folder), password=PASSWORD) as repository,
    ):
        with repository.lock(exclusive=False):
            assert repository.reclaim_unfinished_packs() == []
        assert repository.reclaim_unfinished_packs() == []  # holds no lock
    assert unindexed(folder) == {pack}
    with (
        Repository.open(LocalStore(folder), password=PASSWORD) as repository,
        repository.lock(exclusive=False),
    ):
        assert repository.reclaim_unfinished_packs() == [pack]
    other.close()


def test_repair_index_keeps_old_entries_of_a_pack_whose_trailer_is_damaged(tmp_path: Path) -> None:
    folder, source, snapshot = setup(tmp_path, PASSWORD)
    store = LocalStore(folder)
    with Repository.open(store, password=PASSWORD) as repository:
        victim = sorted(repository.index.pack_ids())[0]
    name = pack_name(victim)
    data = bytearray(store.load(name))
    data[-20] ^= 0x01  # inside the sealed trailer: the blobs before it are intact
    store.store(name, bytes(data))
    with open_without_index(LocalStore(folder), password=PASSWORD) as repository:
        report = repair_index(repository)
        assert [pack for pack, _ in report.unreadable_packs] == [victim]
        assert victim in repository.index.pack_ids()
        assert check(repository).ok
    assert digest(restored(folder, PASSWORD, snapshot.id, tmp_path / "out", source)) == digest(source)


def test_no_reclaim_after_breaking_the_lock_of_a_process_that_may_still_run(tmp_path: Path) -> None:
    """A lock broken for its old heartbeat (another host: perhaps a paused backup) stops the reclaim."""
    folder, _, _ = setup(tmp_path, PASSWORD)
    pack = leave_an_unindexed_pack(folder)
    stale = {
        "holder": "snapkeep backup",
        "pid": 1,
        "host": "another-host",
        "exclusive": False,
        "created": 0.0,
        "heartbeat": 0.0,
        "timeout": 1800.0,
    }
    LocalStore(folder).store("locks/" + "ab" * 12, json.dumps(stale).encode())
    with Repository.open(LocalStore(folder), password=PASSWORD) as repository:
        with repository.lock(exclusive=False) as lock:
            assert lock.broken == ["locks/" + "ab" * 12]
            assert repository.reclaim_unfinished_packs() == []
        with repository.lock(exclusive=False):  # the next one finds no such lock
            assert repository.reclaim_unfinished_packs() == [pack]
