"""Snapshot documents and the snapshot store: save, verify, resolve references, delete."""

from __future__ import annotations

import datetime as dt

import pytest

from snapkeep.clock import UTC
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.repository.crypto import AesGcmCipher, NullCipher
from snapkeep.engine.repository.snapshot_store import SnapshotStore
from snapkeep.errors import IntegrityError, NotFoundError, ValidationError
from snapkeep.storage.memory import MemoryStore


def make(hour: int, **fields: object) -> Snapshot:
    return Snapshot(
        id="",
        time=dt.datetime(2026, 1, 1, hour, tzinfo=UTC),
        hostname="web1",
        paths=["/home"],
        tree="ab" * 32,
        **fields,  # type: ignore[arg-type]
    )


def test_json_round_trip_keeps_every_field() -> None:
    snapshot = make(
        3,
        tags=["daily"],
        parent="cd" * 32,
        job_id="65a1b2c3d4e5f6a7b8c9d0e1",
        account="alice",
        components=["homedir", "databases"],
        schedules=["daily"],
        structure="incremental",
        stats={"files": 3, "warnings": ["x: vanished"]},
    )
    again = Snapshot.from_json(snapshot.to_json(), "id1")
    assert again.id == "id1"
    snapshot.id = "id1"
    assert again == snapshot


def test_naive_time_is_refused_and_other_zones_become_utc() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Snapshot(id="", time=dt.datetime(2026, 1, 1), hostname="h", paths=[], tree="")  # noqa: DTZ001
    east = dt.timezone(dt.timedelta(hours=2))
    assert Snapshot(
        id="", time=dt.datetime(2026, 1, 1, 2, tzinfo=east), hostname="h", paths=[], tree=""
    ).time == (dt.datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("document", [b"{", b"[]", b'{"version": 2}', b'{"version": 1}'])
def test_malformed_document_names_the_snapshot(document: bytes) -> None:
    with pytest.raises(IntegrityError, match="snapshot s1: malformed"):
        Snapshot.from_json(document, "s1")


@pytest.mark.parametrize("cipher", [AesGcmCipher(bytes(32)), NullCipher()], ids=["aes", "none"])
def test_store_save_list_resolve_delete(cipher: AesGcmCipher) -> None:
    snapshots = SnapshotStore(MemoryStore(), cipher)
    with pytest.raises(NotFoundError, match="no snapshot yet"):
        snapshots.resolve("latest")
    ids = [snapshots.save(make(hour)) for hour in (5, 1, 9)]
    assert [s.id for s in snapshots.list()] == [ids[1], ids[0], ids[2]]
    assert snapshots.resolve("latest") == ids[2]
    assert snapshots.resolve(ids[0][:10]) == ids[0]
    assert snapshots.resolve(ids[0][:10].upper()) == ids[0]
    assert snapshots.load(ids[0]).time.hour == 5
    with pytest.raises(NotFoundError, match="snapshot not found: ffff"):
        snapshots.resolve("ffff" if not any(i.startswith("ffff") for i in ids) else "0000000000")
    with pytest.raises(ValidationError, match="neither 'latest' nor a hex ID prefix"):
        snapshots.resolve("../etc")
    snapshots.delete(ids[0])
    with pytest.raises(NotFoundError):
        snapshots.load(ids[0])
    with pytest.raises(NotFoundError):
        snapshots.delete(ids[0])


def test_ambiguous_prefix_is_a_clear_error() -> None:
    snapshots = SnapshotStore(MemoryStore(), NullCipher())
    ids = [snapshots.save(make(hour)) for hour in range(24)]
    first_digits = [i[0] for i in ids]
    shared = next(d for d in first_digits if first_digits.count(d) > 1)
    with pytest.raises(ValidationError, match=f"prefix '{shared}' matches"):
        snapshots.resolve(shared)


def test_damaged_snapshot_file_is_named() -> None:
    store = MemoryStore()
    snapshots = SnapshotStore(store, AesGcmCipher(bytes(32)))
    snapshot_id = snapshots.save(make(1))
    name = f"snapshots/{snapshot_id}"
    data = bytearray(store.load(name))
    data[30] ^= 1
    store.store(name, bytes(data))
    with pytest.raises(IntegrityError, match=f"snapshot {snapshot_id}: contents do not match"):
        snapshots.load(snapshot_id)
