"""FastCDC chunking: boundaries, the measured mean size, reading strategies and dedup."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from snapkeep.engine.backup import chunker
from snapkeep.engine.format import CHUNK_MAX_SIZE, CHUNK_MIN_SIZE

MIB = 1024 * 1024


def random_bytes(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def test_empty_input_has_no_chunk_and_small_input_is_one_chunk(tmp_path: Path) -> None:
    assert list(chunker.chunks(b"")) == []
    small = random_bytes(CHUNK_MIN_SIZE - 1)
    assert [bytes(c) for c in chunker.chunks(small)] == [small]
    path = tmp_path / "small"
    path.write_bytes(small)
    assert [bytes(c) for c in chunker.chunks(path)] == [small]
    (tmp_path / "empty").write_bytes(b"")
    assert list(chunker.chunks(tmp_path / "empty")) == []


def test_mean_chunk_on_random_data_is_about_one_mebibyte() -> None:
    data = random_bytes(96 * MIB)
    sizes = [len(c) for c in chunker.chunk_buffer(data)]
    assert sum(sizes) == len(data)
    complete = sizes[:-1]
    assert min(complete) >= CHUNK_MIN_SIZE
    assert max(sizes) <= CHUNK_MAX_SIZE
    mean = sum(complete) / len(complete)
    assert 0.9 * MIB <= mean <= 1.1 * MIB, f"mean chunk {mean / MIB:.3f} MiB"


def test_piecewise_file_reading_cuts_exactly_like_the_whole_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = random_bytes(20 * MIB, seed=3)
    reference = [bytes(c) for c in chunker.chunk_buffer(data)]
    path = tmp_path / "big"
    path.write_bytes(data)
    for piece in (1 * MIB, 3 * MIB + 17, 9 * MIB):
        monkeypatch.setattr(chunker, "PIECE_SIZE", piece)
        monkeypatch.setattr(chunker, "WHOLE_READ_LIMIT", 2 * MIB)
        assert [bytes(c) for c in chunker.chunks(path)] == reference
        with open(path, "rb") as handle:
            assert [bytes(c) for c in chunker.chunk_file(handle)] == reference


def test_a_file_that_grew_after_stat_is_read_to_its_end() -> None:
    data = random_bytes(3 * MIB, seed=5)
    stream = io.BytesIO(data)
    got = b"".join(bytes(c) for c in chunker.chunk_file(stream, size_hint=MIB))
    assert got == data


def test_unreadable_path_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(chunker.chunks(tmp_path / "missing"))


def test_inserting_bytes_near_the_start_changes_only_a_chunk_or_two() -> None:
    original = random_bytes(24 * MIB, seed=11)
    edited = original[:1000] + b"inserted bytes" + original[1000:]
    before = {bytes(c) for c in chunker.chunk_buffer(original)}
    after = [bytes(c) for c in chunker.chunk_buffer(edited)]
    changed = [c for c in after if c not in before]
    assert len(changed) <= 2
    assert len(after) >= 10


def test_chunk_into_a_reused_buffer_cuts_exactly_like_the_whole_buffer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = random_bytes(20 * MIB, seed=3)
    reference = [bytes(c) for c in chunker.chunk_buffer(data)]
    for piece in (64 * 1024 + 3, 1 * MIB, 3 * MIB + 17, 9 * MIB, 32 * MIB):
        monkeypatch.setattr(chunker, "INTO_PIECE_SIZE", piece)
        buffer = bytearray(chunker.buffer_size())
        # Each view is copied before the next is asked for: the buffer is reused.
        assert [bytes(c) for c in chunker.chunk_into(io.BytesIO(data), buffer)] == reference
        assert [bytes(c) for c in chunker.chunk_into(io.BytesIO(data[:1000]), buffer)] == [data[:1000]]
        assert list(chunker.chunk_into(io.BytesIO(b""), buffer)) == []
    with pytest.raises(ValueError, match="needs a buffer"):
        list(chunker.chunk_into(io.BytesIO(data), bytearray(10)))
