"""Chunk boundaries and blob IDs are part of the repository format: pinned on a fixed input.

A FastCDC change (a ``pyfastcdc`` release, a changed parameter in ``format.py``) would move cut
points and so silently break dedup against every existing repository; a change of the BLAKE3 keying
would give every chunk a new ID. Both would pass the self-consistency tests in ``test_chunker.py``;
these fail instead. The expected values were recorded once from the released code and must never be
edited to make a test pass.

The input is 40 MiB: 24 MiB of BLAKE3 XOF output, 10 MiB of zeros (no cut point inside: a chunk of
the maximum size ends there) and 6 MiB more XOF output. It is cut the way a backup cuts a file
(``chunk_into`` over an unbuffered file with a reused buffer, as ``walker.read_file_content`` does)
and the other ways the engine cuts (``chunk_buffer``, ``chunk_file``, ``chunks``), which must agree.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import blake3
import pytest

from snapkeep.engine.backup.chunker import buffer_size, chunk_buffer, chunk_file, chunk_into, chunks
from snapkeep.engine.format import CHUNK_MAX_SIZE
from snapkeep.engine.repository.codec import BlobCodec
from snapkeep.engine.repository.crypto import NullCipher

MIB = 1024 * 1024
#: BLAKE3 of the input itself, so a changed generator is not mistaken for moved cut points.
INPUT_BLAKE3 = "5d3b220ed5fb5c354635941aa2045adb04c8a70db8745b383acab72684d7a48b"
#: Where each chunk ends (the last one is the end of the input).
CUTS = [
    707771, 1483958, 2319212, 3459192, 4498398, 5275973, 6420710, 6954914, 8135566, 9285402,
    10613467, 11349271, 12075286, 12798536, 13579640, 15409670, 16207681, 17214849, 18091826,
    19844042, 20462178, 21859290, 22755165, 23499361, 24635530, 33024138, 35993002, 37691264,
    38358760, 39312997, 41440791, 41943040,
]  # fmt: skip
#: The repository's ID key is random; the test uses a fixed one.
ID_KEY = bytes(range(32))
FIRST_IDS = [
    "81e16e9709581e65706f04bdd663e6a19b211c1f625930f8d0872fe9d073a44a",
    "f6700e1a5860f208e9cca640c04c63185a55c34d6765d5296fcec78f7c026e18",
    "4ba667a86673d7773e3257cacefe19459183eed8c26984777375e5a287172509",
]
#: The chunk that ends inside the zeros, cut at the maximum chunk size.
MAX_SIZE_CHUNK_ID = "10dd188f1e44cd42e01f6ac479914f872ce7d6d1ce6c5201b659d252ed869016"
#: BLAKE3 of all the chunk IDs, concatenated in order.
ALL_IDS_BLAKE3 = "a89404e9ab4b32aa115744ce2c8cdf6d1cc2ac3918aa1217a2d75d8eb0ebf65e"


def make_input() -> bytes:
    head = blake3.blake3(b"snapkeep chunk boundaries v1").digest(length=24 * MIB)
    tail = blake3.blake3(b"tail").digest(length=6 * MIB)
    return head + bytes(10 * MIB) + tail


@pytest.fixture(scope="module")
def data() -> bytes:
    made = make_input()
    assert blake3.blake3(made).hexdigest() == INPUT_BLAKE3, "the test input itself changed"
    return made


@pytest.fixture(scope="module")
def input_file(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("boundaries") / "input.bin"
    path.write_bytes(data)
    return path


def ends(pieces: Iterable[bytes | memoryview]) -> list[int]:
    return list(itertools.accumulate(len(piece) for piece in pieces))


def backup_cut(path: Path) -> list[bytes]:
    """The chunks of ``path`` as a backup reads them (copied: the views are reused)."""
    with open(path, "rb", buffering=0) as handle:
        return [bytes(chunk) for chunk in chunk_into(handle, bytearray(buffer_size()))]


def test_backup_cut_points_are_pinned(input_file: Path) -> None:
    assert ends(backup_cut(input_file)) == CUTS


def test_every_way_of_cutting_gives_the_pinned_cut_points(data: bytes, input_file: Path) -> None:
    assert ends(chunk_buffer(data)) == CUTS
    assert ends(chunks(data)) == CUTS
    assert ends(chunks(input_file)) == CUTS  # larger than WHOLE_READ_LIMIT: read in pieces
    with open(input_file, "rb", buffering=0) as handle:
        assert ends(chunk_file(handle, size_hint=len(data))) == CUTS
    with open(input_file, "rb", buffering=0) as handle:
        handle.seek(CUTS[-6])  # the whole-read path, from a cut point of the file
        assert ends(chunk_file(handle)) == [cut - CUTS[-6] for cut in CUTS[-5:]]


def test_keyed_chunk_ids_are_pinned(input_file: Path) -> None:
    codec = BlobCodec(NullCipher(), ID_KEY, compression_level=3)
    pieces = backup_cut(input_file)
    ids = [codec.blob_id(piece) for piece in pieces]
    assert [blob_id.hex() for blob_id in ids[:3]] == FIRST_IDS
    assert ids[25].hex() == MAX_SIZE_CHUNK_ID
    assert len(pieces[25]) == CHUNK_MAX_SIZE  # cut by the size limit inside the zeros
    assert blake3.blake3(b"".join(ids)).hexdigest() == ALL_IDS_BLAKE3
    assert BlobCodec(NullCipher(), bytes(32), compression_level=3).blob_id(pieces[0]) != ids[0], (
        "the ID depends on the key"
    )
