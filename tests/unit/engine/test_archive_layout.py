"""Layout archives (``engine.archive.layout``): members at layout names, streams of unknown size in
bounded parts, a failed stream left unlisted, reading one file back, and the memory a stream costs."""

from __future__ import annotations

import io
import os
import tarfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from snapkeep.engine.archive import ArchiveKeys, load_manifest, restore_archive, write_layout_archive
from snapkeep.engine.archive.check import check_archives
from snapkeep.engine.archive.layout import LayoutTarWriter, layout_files, read_member, stream_parts
from snapkeep.engine.archive.verify import verify_archive
from snapkeep.engine.format import CipherId
from snapkeep.engine.repository.crypto import NullCipher, make_cipher
from snapkeep.errors import DumpError, IntegrityError, NotFoundError
from snapkeep.storage.local import LocalStore
from snapkeep.storage.memory import MemoryStore


def keys(encrypted: bool, store: MemoryStore | LocalStore | None = None) -> ArchiveKeys:
    cipher = make_cipher(CipherId.AES_256_GCM, os.urandom(32)) if encrypted else NullCipher()
    return ArchiveKeys(store or MemoryStore(), cipher)


class Pipe:
    """A stream of ``size`` pseudo-random bytes read in small pieces, like a dump's pipe."""

    def __init__(self, size: int, *, fail: bool = False) -> None:
        self.left = size
        self.fail = fail
        self.hasher = blake3.blake3()
        self.block = os.urandom(65536)
        self.finished = False

    def read(self, size: int) -> bytes:
        count = min(size, self.left, 65536)
        self.left -= count
        data = self.block[:count]
        self.hasher.update(data)
        return data

    def finish(self) -> int:
        self.finished = True
        if self.fail:
            raise DumpError(engine="mariadb", database="db", reason="killed")
        return 0


@pytest.fixture
def home(tmp_path: Path) -> Path:
    root = tmp_path / "alice"
    (root / "www").mkdir(parents=True)
    (root / "www" / "index.php").write_text("<?php\n")
    (root / "cache").mkdir()
    (root / "cache" / "junk").write_text("x")
    return root


@pytest.mark.parametrize(("compressed", "encrypted"), [(False, False), (True, True)])
def test_layout_members_parts_and_reading_back(
    home: Path, tmp_path: Path, compressed: bool, encrypted: bool
) -> None:
    destination = keys(encrypted)
    small, large, failed = Pipe(3000), Pipe(10_000), Pipe(9000, fail=True)

    def produce(writer: LayoutTarWriter) -> Iterator[bytes]:
        yield from writer.folder("config")
        yield from writer.data("config/account.json", b'{"a": 1}\n')
        yield from writer.piped("databases/mariadb/small.sql", small.read, small.finish)
        yield from writer.piped("databases/mariadb/large.sql", large.read, large.finish)
        with pytest.raises(DumpError):
            yield from writer.piped("databases/mariadb/failed.sql", failed.read, failed.finish)
        yield from writer.path("homedir", str(home), [f"{home}/cache/**"])

    manifest = write_layout_archive(
        destination,
        produce,
        compressed=compressed,
        account="alice",
        components=["config", "homedir"],
        part_size=4096,
    )
    names = {entry.path for entry in manifest.entries}
    assert {"config", "config/account.json", "databases/mariadb", "homedir", "homedir/www/index.php"} <= names
    assert "homedir/cache/junk" not in names  # excluded by its host path
    assert "databases/mariadb/small.sql" in names  # one part: the file itself
    assert stream_parts(manifest, "databases/mariadb/large.sql") == [
        f"databases/mariadb/large.sql.part-0000{n}" for n in (1, 2, 3)
    ]
    assert manifest.stats["part_size"] == 4096
    assert "databases/mariadb/failed.sql" not in manifest.stats["streams"]  # never listed as complete
    assert failed.finished
    assert large.finished
    assert layout_files(manifest, "databases/mariadb") == ["large.sql", "small.sql"]  # no leftover parts

    reloaded = load_manifest(destination, manifest.id)
    assert blake3.blake3(
        b"".join(read_member(destination, reloaded, "databases/mariadb/large.sql"))
    ).hexdigest() == (large.hasher.hexdigest())
    assert b"".join(read_member(destination, reloaded, "/config/account.json")) == b'{"a": 1}\n'
    with pytest.raises(NotFoundError):
        list(read_member(destination, reloaded, "databases/mariadb/failed.sql"))

    # the tar stays whole: the check reads it clean, every member restores, leftover parts included
    report = check_archives(destination, read_data=True)
    assert report.ok, report
    assert verify_archive(destination, manifest.id).id == manifest.id
    result = restore_archive(destination, manifest.id, tmp_path / "out")
    assert (tmp_path / "out" / "homedir" / "www" / "index.php").read_text() == "<?php\n"
    assert result.files == len([entry for entry in manifest.entries if entry.type == "file"])
    if not compressed and not encrypted:  # a plain tar that tar itself reads
        data = destination.store.load(manifest.archive_name)
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            assert "databases/mariadb/large.sql.part-00002" in archive.getnames()


def test_a_damaged_part_is_refused_before_it_is_handed_out(tmp_path: Path) -> None:
    destination = keys(False)
    pipe = Pipe(9000)
    manifest = write_layout_archive(
        destination,
        lambda writer: writer.piped("databases/d.sql", pipe.read, pipe.finish),
        compressed=False,
        part_size=4096,
    )
    data = bytearray(destination.store.load(manifest.archive_name))
    second = next(entry for entry in manifest.entries if entry.path.endswith("part-00002"))
    data[second.offset + 1536] ^= 0xFF  # inside the second part's contents (after its pax headers)
    destination.store.store(manifest.archive_name, bytes(data))
    chunks = read_member(destination, manifest, "databases/d.sql")
    assert len(next(chunks)) == 4096  # the first part is good
    with pytest.raises(IntegrityError):
        next(chunks)


def test_a_large_stream_costs_one_part_of_memory(tmp_path: Path) -> None:
    """50 MB through the writer, compressed and stored on disk: the traced peak stays near two
    parts (4 MiB each: the one buffered, the compressor's), far below the stream's size."""
    destination = keys(False, LocalStore(tmp_path / "store"))
    size = 50 * 1024 * 1024
    pipe = Pipe(size)
    seen: list[LayoutTarWriter] = []

    def produce(writer: LayoutTarWriter) -> Iterator[bytes]:
        seen.append(writer)
        yield from writer.piped("databases/mariadb/big.sql", pipe.read, pipe.finish)

    tracemalloc.start()
    try:
        manifest = write_layout_archive(destination, produce, compressed=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen[0].largest_buffer == 4 * 1024 * 1024
    assert len(stream_parts(manifest, "databases/mariadb/big.sql")) == 13
    print(f"traced peak {peak} bytes for a {size} byte stream")
    assert peak < 12 * 1024 * 1024, peak  # about two parts' worth, not 50 MB
    joined = blake3.blake3()
    for chunk in read_member(destination, manifest, "databases/mariadb/big.sql"):
        joined.update(chunk)
    assert joined.hexdigest() == pipe.hasher.hexdigest()
