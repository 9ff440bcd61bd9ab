"""The contract every store backend must pass (restic ``backend/test``, kopia ``blobtesting``).

A test module subclasses ``StoreContract`` and provides a ``store`` fixture yielding an empty store::

    class TestLocalStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path: Path) -> Iterator[Store]:
            with LocalStore(tmp_path / "repo") as store:
                yield store

Every test method then runs against that backend. The tests exercise only the ``Store`` interface,
so SFTP and S3 join by subclassing. It lives under ``tests/`` so the installed package never needs pytest.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from snapkeep.errors import InvalidNameError, ObjectNotFoundError, TransientStorageError
from snapkeep.storage.base import MAX_NAME_LENGTH, Store

#: Names that break each rule of ``validate_name``, with the rule they break.
INVALID_NAMES = [
    ("", "empty"),
    ("/data/x", "leading slash (empty segment)"),
    ("data/x/", "trailing slash (empty segment)"),
    ("data//x", "empty segment"),
    ("data/./x", "'.' segment"),
    ("data/../x", "'..' segment"),
    ("..", "'..' alone"),
    (".hidden", "segment starting with a dot"),
    ("data/.tmp-1234", "temporary dot name"),
    ("data x", "space"),
    ("data\\x", "backslash"),
    ("données", "non-ASCII"),
    ("data\x00x", "NUL byte"),
    ("x" * (MAX_NAME_LENGTH + 1), "too long"),
]


def _names(store: Store, prefix: str = "") -> list[str]:
    return sorted(item.name for item in store.list(prefix))


class StoreContract:
    """Test methods shared by every backend. Subclasses provide the ``store`` fixture."""

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        raise NotImplementedError("a StoreContract subclass must provide the 'store' fixture")

    # --- store and load ---------------------------------------------------------------------

    def test_store_load_round_trip(self, store: Store) -> None:
        store.store("snapshots/abc", b"hello world")
        assert store.load("snapshots/abc") == b"hello world"

    def test_binary_data_every_byte_value(self, store: Store) -> None:
        data = bytes(range(256)) * 64 + b"\x00\r\n\x00"
        store.store("data/00/binary", data)
        assert store.load("data/00/binary") == data

    def test_large_object(self, store: Store) -> None:
        data = os.urandom(3 * 1024 * 1024 + 17)
        store.store("data/ff/large", data)
        assert store.load("data/ff/large") == data
        assert store.stat("data/ff/large").size == len(data)

    def test_empty_object(self, store: Store) -> None:
        store.store("empty", b"")
        assert store.load("empty") == b""
        assert store.stat("empty").size == 0

    def test_load_missing_raises_not_found(self, store: Store) -> None:
        with pytest.raises(ObjectNotFoundError, match="missing/object"):
            store.load("missing/object")

    def test_ranged_loads(self, store: Store) -> None:
        data = bytes(range(100))
        store.store("ranged", data)
        assert store.load("ranged", 10, 5) == data[10:15]
        assert store.load("ranged", 0, 0) == b""
        assert store.load("ranged", 95) == data[95:]
        assert store.load("ranged", 90, 50) == data[90:], "a range past the end is cut at the end"
        assert store.load("ranged", 100) == b""
        assert store.load("ranged", 150, 10) == b""

    def test_negative_range_is_rejected(self, store: Store) -> None:
        store.store("ranged", b"abc")
        with pytest.raises(ValueError, match="offset"):
            store.load("ranged", -1)
        with pytest.raises(ValueError, match="length"):
            store.load("ranged", 0, -2)

    def test_overwrite_replaces_whole_object(self, store: Store) -> None:
        store.store("config", b"first version, rather long")
        store.store("config", b"second")
        assert store.load("config") == b"second"
        assert _names(store) == ["config"]

    def test_overwrite_is_atomic_for_concurrent_readers(self, store: Store) -> None:
        old, new = b"a" * 300_000, b"b" * 200_000
        store.store("index/atomic", old)
        stop = threading.Event()
        seen: set[bytes] = set()

        def reader() -> None:
            while not stop.is_set():
                seen.add(store.load("index/atomic"))

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for round_number in range(20):
                store.store("index/atomic", new if round_number % 2 == 0 else old)
        finally:
            stop.set()
            thread.join()
        assert seen <= {old, new}, "a reader saw a partial object"

    # --- store_stream ---------------------------------------------------------------------------

    def test_store_stream_many_chunks(self, store: Store) -> None:
        chunks = [os.urandom(size) for size in (1, 0, 65536, 7, 1_000_003, 4096)]
        size = store.store_stream("archives/stream.tar", iter(chunks))
        assert size == sum(len(chunk) for chunk in chunks)
        assert store.load("archives/stream.tar") == b"".join(chunks)

    def test_store_file_writes_the_file_from_its_start_every_time(self, store: Store) -> None:
        """``store_file`` (a backup's spooled pack): the first ``size`` bytes of an open file, read
        from its start; called again (a write tried again) it stores the same object."""
        content = os.urandom(2 * 1024 * 1024 + 17)
        with tempfile.TemporaryFile() as file:
            file.write(content + b"not part of the object")
            file.flush()
            for _ in range(2):
                assert store.store_file("data/ab/spooled", file, len(content)) == len(content)
                assert store.load("data/ab/spooled") == content
            assert store.store_file("data/ab/empty", file, 0) == 0
        assert store.load("data/ab/empty") == b""

    def test_store_stream_zero_chunks(self, store: Store) -> None:
        assert store.store_stream("archives/nothing", iter(())) == 0
        assert store.load("archives/nothing") == b""
        assert store.stat("archives/nothing").size == 0

    def test_store_stream_hides_object_until_complete(self, store: Store) -> None:
        observed: list[list[str]] = []

        def chunks() -> Iterator[bytes]:
            yield b"x" * 1000
            observed.append(_names(store, "archives/"))
            yield b"y" * 1000

        store.store_stream("archives/pending", chunks())
        assert observed == [[]], "list showed an object (or temporary file) before it was complete"
        assert store.load("archives/pending") == b"x" * 1000 + b"y" * 1000

    def test_store_stream_failure_leaves_old_object(self, store: Store) -> None:
        store.store("archives/kept", b"old contents")

        def failing() -> Iterator[bytes]:
            yield b"new partial contents"
            raise RuntimeError("source broke")

        with pytest.raises(RuntimeError, match="source broke"):
            store.store_stream("archives/kept", failing())
        with pytest.raises(RuntimeError, match="source broke"):
            store.store_stream("archives/never", failing())
        assert store.load("archives/kept") == b"old contents"
        assert not store.exists("archives/never")
        assert _names(store) == ["archives/kept"]

    # --- list, stat, exists, delete ---------------------------------------------------------------

    def test_list_with_prefixes(self, store: Store) -> None:
        names = ["config", "keys/k1", "data/ab/ab01", "data/ab/ab02", "data/cd/cd01", "index/i1", "datum"]
        for number, name in enumerate(names):
            store.store(name, b"z" * number)
        assert _names(store) == sorted(names)
        assert _names(store, "data/") == ["data/ab/ab01", "data/ab/ab02", "data/cd/cd01"]
        assert _names(store, "data/ab/") == ["data/ab/ab01", "data/ab/ab02"]
        assert _names(store, "data/ab/ab0") == ["data/ab/ab01", "data/ab/ab02"]
        assert _names(store, "dat") == ["data/ab/ab01", "data/ab/ab02", "data/cd/cd01", "datum"]
        assert _names(store, "snapshots/") == []
        sizes = {item.name: item.size for item in store.list()}
        assert sizes == {name: number for number, name in enumerate(names)}

    def test_list_yields_each_object_once(self, store: Store) -> None:
        for number in range(30):
            store.store(f"data/{number % 3:02x}/object{number}", b"x")
        listed = [item.name for item in store.list("data/")]
        assert len(listed) == len(set(listed)) == 30

    def test_stat(self, store: Store) -> None:
        store.store("keys/key1", b"12345")
        info = store.stat("keys/key1")
        assert (info.name, info.size) == ("keys/key1", 5)
        with pytest.raises(ObjectNotFoundError):
            store.stat("keys/key2")

    def test_a_folder_is_not_an_object(self, store: Store) -> None:
        store.store("data/ab/ab01", b"x")
        assert not store.exists("data/ab")
        with pytest.raises(ObjectNotFoundError):
            store.stat("data")

    def test_exists(self, store: Store) -> None:
        assert not store.exists("locks/l1")
        store.store("locks/l1", b"")
        assert store.exists("locks/l1")

    def test_delete(self, store: Store) -> None:
        store.store("locks/l1", b"held")
        store.delete("locks/l1")
        assert not store.exists("locks/l1")
        with pytest.raises(ObjectNotFoundError, match="locks/l1"):
            store.delete("locks/l1")
        store.delete("locks/l1", missing_ok=True)
        with pytest.raises(ObjectNotFoundError):
            store.load("locks/l1")
        assert _names(store) == []

    # --- names ------------------------------------------------------------------------------------

    @pytest.mark.parametrize(("name", "rule"), INVALID_NAMES, ids=[rule for _, rule in INVALID_NAMES])
    def test_invalid_names_are_rejected(self, store: Store, name: str, rule: str) -> None:
        with pytest.raises(InvalidNameError):
            store.store(name, b"x")
        with pytest.raises(InvalidNameError):
            store.store_stream(name, iter([b"x"]))
        with pytest.raises(InvalidNameError):
            store.load(name)
        with pytest.raises(InvalidNameError):
            store.stat(name)
        with pytest.raises(InvalidNameError):
            store.delete(name, missing_ok=True)
        assert _names(store) == []

    def test_longest_valid_name(self, store: Store) -> None:
        name = "/".join(["d" * 200] * 5)[:MAX_NAME_LENGTH]
        store.store(name, b"long")
        assert store.load(name) == b"long"

    # --- concurrency and info -----------------------------------------------------------------------

    def test_concurrent_stores_and_loads(self, store: Store) -> None:
        errors: list[BaseException] = []

        def again(operation: Callable[[], object]) -> object:
            """A server's transient 5xx is retried, as ``RetryingStore`` does in every run: rclone's
            local backend now and then answers 500 to PUTs racing to make one folder (seen once in
            CI); what this test checks is that one store is safe to share between threads."""
            for attempt in range(3):
                try:
                    return operation()
                except TransientStorageError:
                    if attempt == 2:
                        raise
                    time.sleep(0.05 * (attempt + 1))
            return None

        def worker(number: int) -> None:
            try:
                for item in range(15):
                    name = f"data/{number:02x}/object-{item}"
                    payload = f"{number}:{item}:".encode() * (item + 1)
                    again(lambda: store.store(name, payload))  # noqa: B023 - called at once
                    assert again(lambda: store.load(name)) == payload  # noqa: B023
                    stream = f"stream/{number}-{item}"
                    again(lambda: store.store_stream(stream, iter([payload, payload])))  # noqa: B023
                    assert again(lambda: store.load(stream)) == payload * 2  # noqa: B023
            except BaseException as error:  # noqa: BLE001 - reported to the main thread below
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(number,)) for number in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], [repr(error) for error in errors]
        assert len(_names(store, "data/")) == 8 * 15
        assert len(_names(store, "stream/")) == 8 * 15

    def test_info_fields(self, store: Store) -> None:
        store.store("data/ab/ab01", b"x" * 1000)
        info = store.info()
        for field in (info.usage, info.free, info.total):
            assert field is None or (isinstance(field, int) and field >= 0)
        if info.usage is not None:
            assert info.usage >= 1000
        if info.free is not None and info.total is not None:
            assert info.free <= info.total
