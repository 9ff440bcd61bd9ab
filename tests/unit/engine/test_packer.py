"""Pack streaming: small blobs are joined into pieces, large ones pass through, nothing is lost."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

import blake3
import pytest

from snapkeep.engine.format import BlobType, Compression, pack_name
from snapkeep.engine.repository import packer as packer_module
from snapkeep.engine.repository.crypto import NullCipher
from snapkeep.engine.repository.pack_format import STREAM_PIECE, coalesce, parse_pack
from snapkeep.engine.repository.packer import Packer, SpooledParts, SpooledStage
from snapkeep.errors import StorageError, StorageFullError
from snapkeep.storage.local import LocalStore
from snapkeep.storage.memory import MemoryStore
from snapkeep.storage.wrappers import LimitedStore, RetryingStore, StoreWrapper


def test_coalesce_joins_small_parts_and_keeps_large_ones_in_order() -> None:
    sizes = [
        10,
        2 * STREAM_PIECE,
        STREAM_PIECE // 3,
        STREAM_PIECE // 3,
        STREAM_PIECE // 2,
        7,
        STREAM_PIECE,
        5,
    ]
    parts = [os.urandom(size) for size in sizes]
    expected = b"".join(parts)
    given = list(parts)
    pieces = coalesce(given)
    assert b"".join(pieces) == expected
    assert given == []  # consumed: the pack is not held twice while it is joined
    assert [len(piece) for piece in pieces] == [
        10,
        2 * STREAM_PIECE,
        STREAM_PIECE // 3 * 2 + STREAM_PIECE // 2,
        7,
        STREAM_PIECE,
        5,
    ]
    assert coalesce([]) == []


class _Recording(MemoryStore):
    """A memory store that records, per write, how many parts were still held by the packer."""

    def __init__(self, replays: bool) -> None:
        super().__init__()
        self.replays_writes = replays
        self.kinds: list[str] = []

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        self.kinds.append("sequence" if isinstance(chunks, Sequence) else "released")
        return super().store_stream(name, chunks)


def _two_part_pack(store: MemoryStore) -> list[str]:
    uploaded: list[str] = []
    packer = Packer(store, NullCipher(), lambda pack_id, entries: uploaded.append(pack_id), pack_size=1)
    for number in range(2):
        data = os.urandom(2 * STREAM_PIECE)  # large blobs: each its own part
        packer.add(bytes([number]) * 32, BlobType.DATA, Compression.NONE, data, len(data))
    packer.flush()
    packer.close()
    return uploaded


def test_a_store_that_never_writes_twice_gets_the_parts_released_as_written() -> None:
    """Parts handed out one by one (the pack's memory goes as it is written); a store that may
    write a sequence again after a dropped connection gets a sequence it can read again (the pack
    spooled to a temporary file)."""
    for replays, kind in ((False, "released"), (True, "sequence")):
        store = _Recording(replays)
        uploaded = _two_part_pack(store)
        assert len(uploaded) == 2
        assert set(store.kinds) == {kind}
        for pack_id in uploaded:  # what was written is the whole pack, whatever the way
            assert blake3.blake3(store.load(pack_name(pack_id))).hexdigest() == pack_id


class _DropsTheFirstWrite(MemoryStore):
    """Takes a piece of each pack, fails as a dropped connection would, then writes the pack again
    from the start, as a remote store (or ``RetryingStore``) does with a sequence."""

    replays_writes = True

    def __init__(self) -> None:
        super().__init__()
        self.given: list[type] = []

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        assert isinstance(chunks, Sequence)
        self.given.append(type(chunks))
        next(iter(chunks))  # the first piece went out, then the connection dropped
        return super().store_stream(name, chunks)


def test_a_pack_written_twice_is_read_again_from_its_temporary_file() -> None:
    store = _DropsTheFirstWrite()
    uploaded = _two_part_pack(store)
    assert store.given == [SpooledParts, SpooledParts]
    for pack_id in uploaded:
        assert blake3.blake3(store.load(pack_name(pack_id))).hexdigest() == pack_id


def test_without_a_writable_temporary_folder_the_pack_is_replayed_from_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(packer_module.tempfile, "TemporaryFile", refused)
    store = _DropsTheFirstWrite()
    uploaded = _two_part_pack(store)
    assert store.given == [list, list]
    for pack_id in uploaded:
        assert blake3.blake3(store.load(pack_name(pack_id))).hexdigest() == pack_id


def test_spooled_parts_read_back_in_pieces_and_empty_the_list() -> None:
    parts = [os.urandom(size) for size in (10, SpooledParts.PIECE + 5, 3, SpooledParts.PIECE)]
    whole = b"".join(parts)
    spooled = SpooledParts(parts)
    try:
        assert parts == []  # the pack's memory is released once it is in the file
        assert spooled.size == len(whole)
        assert len(spooled) == 3
        assert [len(piece) for piece in spooled] == [SpooledParts.PIECE, SpooledParts.PIECE, 18]
        assert b"".join(spooled) == whole
        assert b"".join(spooled) == whole  # as often as asked
        assert spooled[-1] == whole[2 * SpooledParts.PIECE :]
        assert b"".join(spooled[1:]) == whole[SpooledParts.PIECE :]
        with pytest.raises(IndexError):
            spooled[3]
    finally:
        spooled.close()
    with pytest.raises(OSError, match="Bad file descriptor"):
        spooled[0]


class _Held(MemoryStore):
    """Holds every write until ``release`` is set; counts the writes begun."""

    def __init__(self, replays: bool) -> None:
        super().__init__()
        self.replays_writes = replays
        self.release = threading.Event()
        self.begun = 0

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        self.begun += 1
        assert self.release.wait(30)
        return super().store_stream(name, chunks)


def _packs_added_before_blocking(store: _Held) -> int:
    packer = Packer(store, NullCipher(), lambda pack_id, entries: None, pack_size=1, uploaders=2)
    added = 0

    def add_packs() -> None:
        nonlocal added
        for number in range(4):
            data = os.urandom(2 * STREAM_PIECE)
            packer.add(bytes([number]) * 32, BlobType.DATA, Compression.NONE, data, len(data))
            added += 1

    producer = threading.Thread(target=add_packs)
    producer.start()
    deadline = time.monotonic() + 10
    while store.begun < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # what the producer manages while both uploads are held
    seen = added
    store.release.set()
    producer.join(10)
    packer.flush()
    packer.close()
    assert store.begun == 4
    return seen


def test_a_store_that_may_write_twice_has_no_full_pack_waiting_in_memory() -> None:
    """Its packs are spooled by the uploaders: a full pack waits for a free uploader, not in the
    queue (one pack less in memory); other stores keep one pack queued behind the uploads."""
    assert _packs_added_before_blocking(_Held(replays=True)) == 2
    assert _packs_added_before_blocking(_Held(replays=False)) == 3


def test_a_local_store_gets_each_pack_written_as_it_fills(tmp_path: Path) -> None:
    """A store that stages objects (a local folder) has the open pack written into it as blobs
    arrive, never held in memory; flushed, it is named by its hash; an open pack dropped by
    ``close`` leaves no file."""
    store = LocalStore(tmp_path)
    uploaded: list[tuple[str, int]] = []
    packer = Packer(store, NullCipher(), lambda pack_id, entries: uploaded.append((pack_id, len(entries))))
    blobs = [os.urandom(size) for size in (3000, 2 * STREAM_PIECE, 500, 70_000)]
    for number, blob in enumerate(blobs):
        packer.add(bytes([number]) * 32, BlobType.DATA, Compression.NONE, blob, len(blob))
    [temporary] = list(store.temporary_files())
    assert temporary.stat().st_size >= 3000 + 2 * STREAM_PIECE  # on disk already, not in memory
    packer.flush()
    [(pack_id, count)] = uploaded
    assert count == 4
    data = store.load(pack_name(pack_id))
    assert blake3.blake3(data).hexdigest() == pack_id
    assert [entry.blob_id for entry in parse_pack(data, NullCipher(), pack_id=pack_id)] == [
        bytes([number]) * 32 for number in range(4)
    ]
    assert list(store.temporary_files()) == []
    packer.add(b"\x09" * 32, BlobType.DATA, Compression.NONE, b"left open", 9)
    assert len(list(store.temporary_files())) == 1
    packer.close()
    assert list(store.temporary_files()) == []
    assert len(uploaded) == 1


class _FailingStage:
    def __init__(self) -> None:
        self.discarded = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        raise StorageFullError("local store: no space left on device")

    def publish(self, name: str) -> int:
        raise AssertionError("never published")

    def discard(self) -> None:
        self.discarded = True


class _FullDisk(MemoryStore):
    replays_writes = False

    def __init__(self) -> None:
        super().__init__()
        self.staged: list[_FailingStage] = []

    def stage(self) -> _FailingStage:
        self.staged.append(_FailingStage())
        return self.staged[-1]


def test_a_staged_pack_that_cannot_be_written_fails_the_backup_and_is_dropped() -> None:
    store = _FullDisk()
    packer = Packer(store, NullCipher(), lambda pack_id, entries: None)
    big = os.urandom(2 * STREAM_PIECE)  # written at once
    with pytest.raises(StorageFullError):
        packer.add(b"\x01" * 32, BlobType.DATA, Compression.NONE, big, len(big))
    assert store.staged[0].discarded
    with pytest.raises(StorageError, match="uploading a pack failed"):
        packer.add(b"\x02" * 32, BlobType.DATA, Compression.NONE, b"later", 5)
    with pytest.raises(StorageError):
        packer.flush()
    packer.close()
    assert len(store.staged) == 1
    assert list(store.list()) == []


def test_only_a_local_store_and_its_retries_stage(tmp_path: Path) -> None:
    local = LocalStore(tmp_path)
    for store, stages in (
        (local, True),
        (RetryingStore(local, attempts=2), True),
        (StoreWrapper(local), False),  # a wrapper that counts or alters writes sees every byte
        (LimitedStore(local, 2), False),
        (MemoryStore(), False),
    ):
        staged = store.stage()
        assert (staged is not None) == stages, store
        if staged is not None:
            staged.discard()


class _Remote(MemoryStore):
    """A store that asks for spooled packs, as SFTP and S3 do, and notes how each was stored."""

    spools_packs = True
    replays_writes = True

    def __init__(self) -> None:
        super().__init__()
        self.files: list[int] = []

    def store_file(self, name: str, file: BinaryIO, size: int) -> int:
        self.files.append(size)
        return super().store_file(name, file, size)


def test_a_remote_store_gets_each_pack_from_a_temporary_file_written_as_it_fills(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _Remote()
    made: list[SpooledStage] = []
    original = SpooledStage.__init__

    def spy(self: SpooledStage, store: _Remote) -> None:
        original(self, store)
        made.append(self)

    monkeypatch.setattr(SpooledStage, "__init__", spy)
    uploaded: list[str] = []
    packer = Packer(store, NullCipher(), lambda pack_id, entries: uploaded.append(pack_id))
    blobs = [os.urandom(size) for size in (5000, 2 * STREAM_PIECE, 300)]
    for number, blob in enumerate(blobs):
        packer.add(bytes([number]) * 32, BlobType.DATA, Compression.NONE, blob, len(blob))
    assert made[0].size >= 5000 + 2 * STREAM_PIECE  # in the file already, not in memory
    packer.flush()
    packer.close()
    [pack_id] = uploaded
    data = store.load(pack_name(pack_id))
    assert store.files == [len(data)]
    assert blake3.blake3(data).hexdigest() == pack_id
    assert len(parse_pack(data, NullCipher(), pack_id=pack_id)) == 3


def test_without_a_temporary_file_a_remote_store_gets_packs_from_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(packer_module.tempfile, "TemporaryFile", refused)
    store = _Remote()
    uploaded: list[str] = []
    packer = Packer(store, NullCipher(), lambda pack_id, entries: uploaded.append(pack_id))
    packer.add(b"\x01" * 32, BlobType.DATA, Compression.NONE, b"small", 5)
    packer.flush()
    packer.close()
    assert store.files == []
    assert blake3.blake3(store.load(pack_name(uploaded[0]))).hexdigest() == uploaded[0]
