"""Property tests for the repository core's round trips (seal/open, packs, index, chunks, blobs)."""

from __future__ import annotations

import random

import blake3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapkeep.engine.backup.chunker import chunk_buffer
from snapkeep.engine.format import CHUNK_MIN_SIZE, BlobType, Compression
from snapkeep.engine.repository import Repository, keys
from snapkeep.engine.repository import index as index_module
from snapkeep.engine.repository.crypto import AesGcmCipher, ChaChaCipher, NullCipher
from snapkeep.engine.repository.index import BlobLocation, Index, decode_index_file, encode_index_file
from snapkeep.engine.repository.pack_format import PackBuilder, parse_pack
from snapkeep.storage.memory import MemoryStore

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CIPHERS = st.sampled_from([AesGcmCipher(bytes(32)), ChaChaCipher(bytes(range(32))), NullCipher()])
blob_ids = st.binary(min_size=32, max_size=32)
pack_ids = st.binary(min_size=32, max_size=32).map(bytes.hex)
u32 = st.integers(min_value=0, max_value=2**32 - 1)
locations = st.builds(
    BlobLocation,
    blob_ids,
    pack_ids,
    u32,
    u32,
    u32,
    st.sampled_from(list(BlobType)),
    st.sampled_from(list(Compression)),
)


@SETTINGS
@given(cipher=CIPHERS, plaintext=st.binary(max_size=4096), associated=st.binary(max_size=64))
def test_seal_open(cipher: AesGcmCipher, plaintext: bytes, associated: bytes) -> None:
    assert cipher.open(cipher.seal(plaintext, associated), associated) == plaintext


@SETTINGS
@given(
    cipher=CIPHERS,
    blobs=st.lists(
        st.tuples(blob_ids, st.sampled_from(list(BlobType)), st.binary(max_size=2000)), max_size=30
    ),
)
def test_pack_build_parse(cipher: AesGcmCipher, blobs: list[tuple[bytes, BlobType, bytes]]) -> None:
    builder = PackBuilder()
    for blob_id, blob_type, sealed in blobs:
        builder.add(blob_id, blob_type, Compression.NONE, sealed, len(sealed))
    expected = list(builder.entries)
    pack_id, data = builder.finish(cipher)
    entries = parse_pack(data, cipher, pack_id=pack_id)
    assert entries == expected
    for entry, (_, _, sealed) in zip(entries, blobs, strict=True):
        assert data[entry.offset : entry.offset + entry.length] == sealed


@SETTINGS
@given(st.lists(locations, max_size=60))
def test_index_file_encode_decode(items: list[BlobLocation]) -> None:
    assert decode_index_file(encode_index_file(items), what="x") == items


@SETTINGS
@given(st.lists(locations, max_size=300), st.lists(blob_ids, max_size=20))
def test_index_agrees_with_a_dict(items: list[BlobLocation], absent: list[bytes]) -> None:
    index = Index()
    model: dict[bytes, BlobLocation] = {}
    for item in items:
        index.add(item)
        model.setdefault(item.blob_id, item)
    assert len(index) == len(model)
    for blob_id, item in model.items():
        assert index.lookup(blob_id) == item
    for blob_id in absent:
        assert index.lookup(blob_id) == model.get(blob_id)
    assert list(index) == [model[k] for k in sorted(model)]


@SETTINGS
@given(seed=st.integers(0, 2**32), size=st.integers(0, 6 * CHUNK_MIN_SIZE))
def test_chunks_join_to_the_input(seed: int, size: int) -> None:
    data = random.Random(seed).randbytes(size)
    assert b"".join(bytes(c) for c in chunk_buffer(data)) == data


@settings(max_examples=10, deadline=None)
@given(password=st.text(max_size=30))
def test_key_wrap_unwrap(password: str) -> None:
    master = keys.MasterKey.generate()
    data = keys.wrap(master, password, "scrypt", kdf_params={"n": 2**4, "r": 1, "p": 1})
    assert keys.unwrap(data, password) == master


ENCRYPTED = Repository.init(
    MemoryStore(), password="pw", kdf_params={"time_cost": 1, "memory_cost": 8, "parallelism": 1}
)
PLAIN = Repository.init(MemoryStore(), password=None)


@SETTINGS
@given(
    encrypted=st.booleans(),
    blobs=st.lists(
        st.one_of(st.binary(max_size=3000), st.binary(max_size=50).map(lambda b: b * 40)), max_size=10
    ),
)
def test_repository_blobs_round_trip(encrypted: bool, blobs: list[bytes]) -> None:
    repository = ENCRYPTED if encrypted else PLAIN
    for blob in blobs:
        repository.add_blob(BlobType.DATA, blob)
    repository.flush()
    for blob in blobs:
        blob_id = repository.blob_id(blob)
        assert blob_id == blake3.blake3(blob, key=repository.master_key.id_key).digest()
        assert repository.load_blob(blob_id) == blob


@SETTINGS
@given(st.lists(st.lists(locations, max_size=80), max_size=6), st.sampled_from([1, 3, 50]))
def test_index_bulk_loads_agree_with_the_files(files: list[list[BlobLocation]], batch: int) -> None:
    original = index_module.BUCKET_LOAD
    index_module.BUCKET_LOAD = batch
    try:
        index = Index()
        candidates: dict[bytes, list[BlobLocation]] = {}
        for number, items in enumerate(files):
            if number % 2:
                index.add_many(items)
            else:
                index.add_index_file(encode_index_file(items), what="x")
            for item in items:
                candidates.setdefault(item.blob_id, []).append(item)
        assert len(index) == len(candidates)
        for blob_id, choices in candidates.items():
            assert index.lookup(blob_id) in choices
    finally:
        index_module.BUCKET_LOAD = original
