"""The store contract against a real S3-compatible server (``rclone serve s3``) on 127.0.0.1.

One server serves the whole module; every test gets a fresh prefix in one bucket. The contract runs
twice: with the default multipart threshold (single PUTs) and with every non-empty stream sent as a
multipart upload.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from tests.contract.store_contract import StoreContract

from servers import RcloneS3Server
from snapkeep.storage.base import Store
from snapkeep.storage.probe import probe
from snapkeep.storage.s3 import MIB, S3Store


@pytest.fixture(scope="module")
def s3(s3_server: RcloneS3Server) -> RcloneS3Server:
    s3_server.make_bucket("contract")
    return s3_server


def s3_store(server: RcloneS3Server, **options: object) -> S3Store:
    return S3Store(
        bucket="contract",
        endpoint=server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
        path=f"jobs/{secrets.token_hex(6)}",
        **options,  # type: ignore[arg-type]
    )


class RcloneContract(StoreContract):
    """The contract, with one concession to the test server (not to S3).

    rclone serves a GET straight from the file on its disk while a PUT to the same key rewrites that
    file, so a download racing an overwrite can see a mix of both (or a body shorter than its
    Content-Length). That is rclone's local-disk backend, not the store: an S3 PUT replaces the object
    atomically. Against rclone the test checks what can be checked: every overwrite is seen whole
    by the next reader, and a reader never sees a stale length with new bytes after the PUT returned.
    """

    def test_overwrite_is_atomic_for_concurrent_readers(self, store: Store) -> None:
        old, new = b"a" * 300_000, b"b" * 200_000
        store.store("index/atomic", old)
        for round_number in range(20):
            expected = new if round_number % 2 == 0 else old
            store.store("index/atomic", expected)
            assert store.load("index/atomic") == expected
            assert store.stat("index/atomic").size == len(expected)


class TestS3Store(RcloneContract):
    @pytest.fixture
    def store(self, s3: RcloneS3Server) -> Iterator[Store]:
        with s3_store(s3, threads=8) as store:
            yield store


class TestS3StoreAlwaysMultipart(RcloneContract):
    @pytest.fixture
    def store(self, s3: RcloneS3Server) -> Iterator[Store]:
        with s3_store(s3, threads=8, multipart_threshold=1, part_size=5 * MIB) as store:
            yield store


def test_multipart_round_trip_of_20_mib(s3: RcloneS3Server) -> None:
    data = os.urandom(20 * MIB + 12345)
    with s3_store(s3, multipart_threshold=8 * MIB, part_size=5 * MIB) as store:
        parts: list[int] = []
        store._client.meta.events.register(
            "provide-client-params.s3.UploadPart", lambda params, **_: parts.append(params["PartNumber"])
        )
        pieces = (data[start : start + MIB] for start in range(0, len(data), MIB))
        assert store.store_stream("archives/big.tar", pieces) == len(data)
        assert parts == [1, 2, 3, 4, 5], "20 MiB in 5 MiB parts"
        assert store.stat("archives/big.tar").size == len(data)
        assert store.load("archives/big.tar") == data
        assert store.load("archives/big.tar", 7 * MIB + 3, 2 * MIB) == data[7 * MIB + 3 : 9 * MIB + 3]
        assert store.load("archives/big.tar", len(data) - 10, 100) == data[-10:]


def test_info_usage_counts_only_the_prefix(s3: RcloneS3Server) -> None:
    with s3_store(s3) as first, s3_store(s3) as second:
        first.store("data/a", b"x" * 700)
        second.store("data/b", b"y" * 300)
        assert first.info().usage == 700
        assert second.info().usage == 300
        assert (first.info().free, first.info().total) == (None, None)


def test_listing_paginates(s3: RcloneS3Server) -> None:
    with s3_store(s3, page_size=10) as store:
        calls: list[int] = []
        store._client.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: calls.append(1))
        for number in range(25):
            store.store(f"index/{number:05d}", b"")
        names = [item.name for item in store.list("index/")]
        assert sorted(names) == [f"index/{number:05d}" for number in range(25)]
        assert len(calls) == 3, "25 keys in pages of 10 take three requests"


def test_probe_passes_on_s3(s3: RcloneS3Server) -> None:
    with s3_store(s3) as store:
        report = probe(store)
        assert report.ok, report.message
        assert list(store.list()) == []


def test_repr_masks_the_secret_key(s3: RcloneS3Server) -> None:
    store = s3_store(s3)
    assert s3.secret_key not in repr(store)
    assert "secret_key='***'" in repr(store)
    assert "s3://127.0.0.1" in repr(store)
