"""The repository: init/open, blobs in packs, index files, resume, errors, snapshots."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from pathlib import Path

import pytest

from snapkeep.clock import UTC, FrozenClock
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.format import BlobType, Compression, pack_name
from snapkeep.engine.repository import Repository
from snapkeep.errors import (
    BlobNotFoundError,
    IntegrityError,
    LockError,
    NotFoundError,
    RepositoryError,
    RepositoryNotFoundError,
    StorageError,
    WrongPasswordError,
)
from snapkeep.storage.local import LocalStore
from snapkeep.storage.memory import MemoryStore
from snapkeep.storage.wrappers import ReadOnlyStore

FAST = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


def new_repository(
    store: MemoryStore | None = None, password: str | None = "secret", **options: object
) -> Repository:
    return Repository.init(store or MemoryStore(), password=password, kdf_params=FAST, **options)  # type: ignore[arg-type]


def names(store: MemoryStore, prefix: str) -> list[str]:
    return sorted(info.name for info in store.list(prefix))


class FailingStore(MemoryStore):
    """Fails every pack write after the first ``good_packs`` ones."""

    def __init__(self, good_packs: int) -> None:
        super().__init__()
        self.good_packs = good_packs
        self.pack_writes = 0

    def store(self, name: str, data: bytes) -> None:
        if name.startswith("data/"):
            self.pack_writes += 1
            if self.pack_writes > self.good_packs:
                raise StorageError(f"disk full while writing {name}")
        super().store(name, data)


@pytest.mark.parametrize("password", ["secret", None], ids=["encrypted", "plain"])
def test_blobs_round_trip_through_a_reopened_repository(password: str | None) -> None:
    store = MemoryStore()
    repository = new_repository(store, password)
    blobs = [os.urandom(50_000), b"a" * 100_000, b"", b"tree document"]
    ids = [repository.blob_id(blob) for blob in blobs]
    assert [repository.add_blob(BlobType.DATA, blob) for blob in blobs] == [True] * 4
    assert repository.add_blob(BlobType.DATA, blobs[0]) is False
    assert repository.has_blob(ids[0])
    repository.flush()
    assert [repository.load_blob(i) for i in ids] == blobs
    repository.close()

    reopened = Repository.open(store, password=password)
    assert reopened.config.encrypted == (password is not None)
    assert [reopened.load_blob(i) for i in ids] == blobs
    compressible = reopened.lookup(ids[1])
    random_blob = reopened.lookup(ids[0])
    assert compressible is not None
    assert random_blob is not None
    assert compressible.compression is Compression.ZSTD
    assert compressible.length < 1000
    assert random_blob.compression is Compression.NONE
    assert reopened.blob_id(blobs[0]) == ids[0]
    reopened.close()


def test_blob_ids_are_keyed_per_repository() -> None:
    first, second = new_repository(password=None), new_repository(password=None)
    assert first.blob_id(b"same") != second.blob_id(b"same")
    assert len(first.blob_id(b"same")) == 32


def test_init_refuses_an_existing_repository_and_bad_options() -> None:
    store = MemoryStore()
    new_repository(store)
    with pytest.raises(RepositoryError, match="already exists"):
        new_repository(store)
    with pytest.raises(RepositoryError, match="cipher: unknown cipher"):
        Repository.init(MemoryStore(), password="x", cipher="rot13")
    with pytest.raises(RepositoryError, match="kdf: unknown key derivation"):
        Repository.init(MemoryStore(), password="x", kdf="md5")
    with pytest.raises(RepositoryError, match="compression_level"):
        Repository.init(MemoryStore(), password=None, compression_level=99)


def test_open_errors_are_clear() -> None:
    with pytest.raises(RepositoryNotFoundError, match="no repository at memory://"):
        Repository.open(MemoryStore(), password="x")
    store = MemoryStore()
    new_repository(store)
    with pytest.raises(WrongPasswordError, match="wrong password"):
        Repository.open(store, password="not it")
    with pytest.raises(WrongPasswordError, match="password is required"):
        Repository.open(store, password=None)
    config = json.loads(store.load("config"))
    config["version"] = 2
    store.store("config", json.dumps(config).encode())
    with pytest.raises(RepositoryError, match="format version 2 is not supported"):
        Repository.open(store, password="secret")


def test_wrong_password_writes_nothing() -> None:
    store = MemoryStore()
    new_repository(store).close()
    before = names(store, "")
    with pytest.raises(WrongPasswordError):
        Repository.open(store, password="nope")
    assert names(store, "") == before


def test_concurrent_adds_of_the_same_blob_store_it_once() -> None:
    store = MemoryStore()
    repository = new_repository(store, pack_size=4096)
    blobs = [os.urandom(3000) for _ in range(20)]
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for blob in blobs:
            added = repository.add_blob(BlobType.DATA, blob)
            with lock:
                results.append(added)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    repository.flush()
    assert results.count(True) == len(blobs)
    assert len(repository.index) == len(blobs)
    stored = sum(len(repository.read_pack_trailer(n.rsplit("/", 1)[1])) for n in names(store, "data/"))
    assert stored == len(blobs)
    repository.close()


def test_load_blobs_groups_reads_and_verifies() -> None:
    store = MemoryStore()
    repository = new_repository(store)
    blobs = [os.urandom(1000 + n) for n in range(10)]
    for blob in blobs:
        repository.add_blob(BlobType.DATA, blob)
    repository.flush()
    locations = [repository.lookup(repository.blob_id(blob)) for blob in blobs]
    assert all(location is not None for location in locations)
    pack_id = locations[0].pack_id  # type: ignore[union-attr]
    got = dict(repository.load_blobs(pack_id, [loc for loc in reversed(locations) if loc]))
    assert got == {repository.blob_id(blob): blob for blob in blobs}
    repository.close()


@pytest.mark.parametrize("password", ["secret", None], ids=["encrypted", "plain"])
def test_a_damaged_blob_is_named_with_its_pack(password: str | None) -> None:
    store = MemoryStore()
    repository = new_repository(store, password)
    blob = os.urandom(5000)
    blob_id = repository.blob_id(blob)
    repository.add_blob(BlobType.DATA, blob)
    repository.flush()
    location = repository.lookup(blob_id)
    assert location is not None
    name = pack_name(location.pack_id)
    data = bytearray(store.load(name))
    data[location.offset + 100] ^= 0xFF
    store.store(name, bytes(data))
    expected = f"blob {blob_id.hex()} in pack {location.pack_id}"
    with pytest.raises(IntegrityError, match=expected):
        repository.load_blob(blob_id)
    with pytest.raises(IntegrityError, match=expected):
        list(repository.load_blobs(location.pack_id, [location]))
    store.delete(name)
    with pytest.raises(IntegrityError, match="is missing"):
        repository.load_blob(blob_id)
    with pytest.raises(BlobNotFoundError, match="is not in the index"):
        repository.load_blob(b"\0" * 32)
    repository.close()


class IndexFailingStore(MemoryStore):
    """Refuses index files once ``refuse`` is set."""

    refuse = False

    def store(self, name: str, data: bytes) -> None:
        if self.refuse and name.startswith("index/"):
            raise StorageError(f"disk full while writing {name}")
        super().store(name, data)


def test_a_failed_last_index_write_is_raised_by_close() -> None:
    store = IndexFailingStore()
    repository = new_repository(store, pack_size=2048)
    for _ in range(5):
        repository.add_blob(BlobType.DATA, os.urandom(3000))  # full packs go to the uploaders
    store.refuse = True
    with pytest.raises(StorageError, match="disk full while writing index/"):
        repository.close()
    assert names(store, "data/")
    assert not names(store, "index/")


def test_an_error_in_flight_wins_over_a_failed_close() -> None:
    store = IndexFailingStore()
    repository = new_repository(store, pack_size=2048)

    def fail_with_the_repository_open() -> None:
        with repository:
            for _ in range(5):
                repository.add_blob(BlobType.DATA, os.urandom(3000))
            store.refuse = True
            raise ValueError("the run failed")

    with pytest.raises(ValueError, match="the run failed") as raised:
        fail_with_the_repository_open()
    assert any("closing the repository failed too" in note for note in raised.value.__notes__)


def test_upload_errors_surface_and_never_commit_a_snapshot() -> None:
    store = FailingStore(good_packs=1)
    repository = new_repository(store, pack_size=2048)
    tree = b"root tree"

    def back_up() -> None:
        for _ in range(50):
            repository.add_blob(BlobType.DATA, os.urandom(3000))
        repository.add_blob(BlobType.TREE, tree)
        repository.save_snapshot(
            Snapshot(
                id="",
                time=dt.datetime.now(UTC),
                hostname="h",
                paths=["/"],
                tree=repository.blob_id(tree).hex(),
            )
        )

    with pytest.raises(StorageError, match="disk full"):
        back_up()
    with pytest.raises(StorageError, match="uploading a pack failed"):
        repository.flush()
    assert names(store, "snapshots/") == []
    repository.close()


def test_interrupted_backup_resumes_without_uploading_again() -> None:
    store = FailingStore(good_packs=5)
    repository = new_repository(store, pack_size=10_000, index_interval=0)
    blobs = [os.urandom(6000) for _ in range(12)]

    def back_up() -> None:
        for blob in blobs:
            repository.add_blob(BlobType.DATA, blob)
        repository.flush()

    with pytest.raises(StorageError):
        back_up()
    repository.close()
    assert len(names(store, "index/")) == 5

    store.good_packs = 10**6
    writes_before = store.pack_writes
    resumed = Repository.open(store, password="secret")
    new = [resumed.add_blob(BlobType.DATA, blob) for blob in blobs]
    resumed.flush()
    assert new.count(False) == 10  # two blobs per pack in the 5 packs that made it
    assert store.pack_writes - writes_before == 1
    assert all(resumed.load_blob(resumed.blob_id(blob)) == blob for blob in blobs)
    resumed.close()


def test_index_files_are_written_periodically_and_on_flush() -> None:
    clock = FrozenClock()
    store = MemoryStore()
    repository = new_repository(store, pack_size=2048, index_interval=300, clock=clock)
    for _ in range(3):
        repository.add_blob(BlobType.DATA, os.urandom(3000))
    repository._packer.flush()  # wait for the uploads without writing an index
    assert names(store, "index/") == []
    clock.advance(301)
    repository.add_blob(BlobType.DATA, os.urandom(3000))
    repository._packer.flush()
    assert len(names(store, "index/")) == 1
    repository.add_blob(BlobType.DATA, os.urandom(3000))
    repository.flush()
    assert len(names(store, "index/")) == 2
    assert len(Repository.open(store, password="secret").index) == 5
    repository.close()


def test_index_files_are_also_written_every_so_many_blobs() -> None:
    """A long backup does not hold every location until the interval: an index file is written
    once ``index_file_entries`` blobs wait for one (the clock never moves here)."""
    clock = FrozenClock()
    store = MemoryStore()
    repository = new_repository(store, pack_size=2048, index_interval=300, clock=clock, uploaders=1)
    repository.index_file_entries = 4
    blobs = [os.urandom(3000) for _ in range(9)]  # one blob per pack
    for blob in blobs[:3]:
        repository.add_blob(BlobType.DATA, blob)
    repository._packer.flush()
    assert names(store, "index/") == []
    for blob in blobs[3:]:
        repository.add_blob(BlobType.DATA, blob)
    repository._packer.flush()
    assert len(names(store, "index/")) == 2  # at the fourth and the eighth blob
    repository.flush()
    assert len(names(store, "index/")) == 3  # the ninth
    reopened = Repository.open(store, password="secret")
    assert all(reopened.load_blob(reopened.blob_id(blob)) == blob for blob in blobs)
    repository.close()


def test_snapshots_save_list_load_and_delete(tmp_path: object) -> None:
    store = LocalStore(str(tmp_path))
    repository = Repository.init(store, password=None)
    with pytest.raises(RepositoryError, match=r"root tree 0+ is not in the repository"):
        repository.save_snapshot(
            Snapshot(id="", time=dt.datetime.now(UTC), hostname="h", paths=[], tree="00" * 32)
        )
    tree_id = repository.blob_id(b"tree")
    repository.add_blob(BlobType.TREE, b"tree")
    saved = []
    for hour in (1, 2):
        snapshot = Snapshot(
            id="",
            time=dt.datetime(2026, 1, 1, hour, tzinfo=UTC),
            hostname="h",
            paths=["/"],
            tree=tree_id.hex(),
        )
        saved.append(repository.save_snapshot(snapshot))
        assert snapshot.id == saved[-1]
    assert repository.load_blob(tree_id) == b"tree"
    assert [s.id for s in repository.list_snapshots()] == saved
    assert repository.load_snapshot("latest").id == saved[1]
    assert repository.load_snapshot(saved[0][:12]).id == saved[0]
    repository.delete_snapshot(saved[1][:12])
    assert repository.load_snapshot("latest").id == saved[0]
    with pytest.raises(NotFoundError):
        repository.load_snapshot(saved[1])
    repository.close()


def test_a_key_left_by_an_interrupted_init_is_ignored() -> None:
    store = MemoryStore()
    new_repository(store, "secret").close()
    stale = json.loads(store.load("config"))
    store.delete("config")  # as if init had stopped after writing its key file
    repository = new_repository(store, "secret")
    assert repository.config.repository_id != stale["id"]
    assert len(names(store, "keys/")) == 2
    repository.add_blob(BlobType.DATA, b"payload")
    repository.flush()
    repository.close()
    reopened = Repository.open(store, password="secret")
    assert reopened.master_key == repository.master_key
    assert reopened.load_blob(reopened.blob_id(b"payload")) == b"payload"
    reopened.close()


def test_repository_lock_is_exclusive_against_other_holders() -> None:
    store = MemoryStore()
    repository = new_repository(store)
    with (
        repository.lock(exclusive=True, holder="snapkeep prune"),
        pytest.raises(LockError, match="exclusive lock held by snapkeep prune"),
    ):
        Repository.open(store, password="secret").lock(exclusive=False).acquire()
    with repository.lock(exclusive=False), repository.lock(exclusive=False):
        assert len(names(store, "locks/")) == 2
    assert names(store, "locks/") == []
    repository.close()


def test_opening_removes_old_leftovers_of_interrupted_writes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "repo")
    new_repository(store).close()
    old = tmp_path / "repo" / "data" / ".tmp-crashed"
    old.parent.mkdir(exist_ok=True)
    old.write_bytes(b"half a pack")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    fresh = tmp_path / "repo" / "keys" / ".tmp-in-flight"
    fresh.write_bytes(b"being written")
    with Repository.open(store, password="secret") as repository:
        assert repository.cleanup_error is None
    assert not old.exists()
    assert fresh.exists()  # a write in flight keeps touching its file
    read_only = ReadOnlyStore(store)
    old.write_bytes(b"again")
    os.utime(old, (two_days_ago, two_days_ago))
    Repository.open(read_only, password="secret").close()
    assert old.exists()  # a read-only store removes nothing
