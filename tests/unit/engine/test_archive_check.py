"""``engine.archive.check.check_archives`` on a memory store: what the cheap check and ``read_data``
each find, the subset chooser, the member-level checks, and a backup publishing beside the check."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from snapkeep.engine.archive import ArchiveKeys, write_archive
from snapkeep.engine.archive.check import check_archives
from snapkeep.engine.archive.manifest import ArchiveManifest, decode_manifest, encode_manifest
from snapkeep.engine.format import CipherId
from snapkeep.engine.repository.crypto import NullCipher, make_cipher
from snapkeep.storage.base import ObjectInfo
from snapkeep.storage.memory import MemoryStore


def keys(encrypted: bool) -> ArchiveKeys:
    cipher = make_cipher(CipherId.AES_256_GCM, os.urandom(32)) if encrypted else NullCipher()
    return ArchiveKeys(MemoryStore(), cipher)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "source"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_bytes(b"alpha\n" * 2000)
    (root / "docs" / "random.bin").write_bytes(os.urandom(200_000))
    (root / "docs" / "link").symlink_to("a.txt")
    return root


def flip(destination: ArchiveKeys, name: str, offset: int) -> None:
    data = bytearray(destination.store.load(name))
    data[offset] ^= 0x01
    destination.store.store(name, bytes(data))


def reseal(destination: ArchiveKeys, manifest: ArchiveManifest, tar_bytes: bytes) -> None:
    """Replace a plain Archived archive's data and forge its (checksummed only) manifest to match."""
    destination.store.store(manifest.archive_name, tar_bytes)
    manifest.size, manifest.blake3 = len(tar_bytes), blake3.blake3(tar_bytes).hexdigest()
    destination.store.store(f"archives/{manifest.id}.manifest", encode_manifest(manifest, destination.cipher))


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize("compressed", [False, True], ids=["archived", "compressed"])
def test_intact_archives_pass_both_checks(source: Path, compressed: bool, encrypted: bool) -> None:
    destination = keys(encrypted)
    for _ in range(2):
        write_archive(destination, [str(source)], compressed=compressed, segment_size=64 * 1024)
    cheap = check_archives(destination)
    structure = "compressed" if compressed else "archived"
    assert cheap.ok, cheap.problems
    assert cheap.archives == {structure: 2}
    assert cheap.sealed_checked == (2 if encrypted else 0)
    assert cheap.archives_read == 0
    full = check_archives(destination, read_data=True)
    assert full.ok, full.problems
    assert full.archives_read == 2
    assert full.members_verified == 2 * 5  # the source folder, docs, two files and a symlink
    assert full.tar_bytes_read > 2 * 200_000


def test_choose_reads_only_the_chosen_archives(source: Path) -> None:
    destination = keys(False)
    ids = [write_archive(destination, [str(source)], compressed=True).id for _ in range(3)]
    offered: list[list[str]] = []

    def choose(candidates: list[str]) -> list[str]:
        offered.append(sorted(candidates))
        return candidates[:1]

    report = check_archives(destination, choose=choose)
    assert offered == [sorted(ids)]
    assert report.archives_read == 1
    assert report.ok


def test_a_flipped_byte_in_a_plain_archive_needs_read_data(source: Path) -> None:
    destination = keys(False)
    manifest = write_archive(destination, [str(source)], compressed=False)
    contents = (source / "docs" / "random.bin").read_bytes()
    where = destination.store.load(manifest.archive_name).find(contents[1000:1064])
    assert where > 0
    flip(destination, manifest.archive_name, where + 10)  # inside the file's contents
    assert check_archives(destination).ok
    report = check_archives(destination, read_data=True)
    assert [(problem.kind, problem.name) for problem in report.problems] == [
        ("archive", manifest.archive_name)
    ]
    assert "random.bin" in report.problems[0].message
    assert "do not match the manifest" in report.problems[0].message


def test_a_member_that_disagrees_with_the_manifest_is_named(source: Path) -> None:
    destination = keys(False)
    manifest = write_archive(destination, [str(source)], compressed=False)
    forged = io.BytesIO()
    with tarfile.open(fileobj=forged, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(manifest.entries[0].path)
        info.type = tarfile.DIRTYPE
        info.mode = 0o777  # the manifest says otherwise
        tar.addfile(info)
    reseal(destination, manifest, forged.getvalue())
    report = check_archives(destination, read_data=True)
    assert len(report.problems) == 1
    assert "mode is" in report.problems[0].message


def test_data_without_manifest_is_damage_unless_the_manifest_arrives_during_the_check(source: Path) -> None:
    destination = keys(True)
    manifest = write_archive(destination, [str(source)], compressed=True)
    name = f"archives/{manifest.id}.manifest"
    stored = destination.store.load(name)
    destination.store.delete(name)
    report = check_archives(destination)
    assert [(problem.kind, problem.name) for problem in report.problems] == [
        ("archive", manifest.archive_name)
    ]
    assert "has no manifest" in report.problems[0].message

    class PublishingStore(MemoryStore):
        """Publishes the manifest once the archives were listed: a backup finishing beside the check."""

        def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
            listed = list(super().list(prefix))
            if prefix == "archives/" and not super().exists(name):
                self.store(name, stored)
            return iter(listed)

    racing = ArchiveKeys(PublishingStore(), destination.cipher)
    racing.store.store(manifest.archive_name, destination.store.load(manifest.archive_name))
    assert check_archives(racing).ok


def test_a_manifest_moved_to_another_archive_is_named(source: Path) -> None:
    destination = keys(True)
    first = write_archive(destination, [str(source)], compressed=False)
    second = write_archive(destination, [str(source)], compressed=False)
    destination.store.store(
        f"archives/{second.id}.manifest", destination.store.load(f"archives/{first.id}.manifest")
    )
    report = check_archives(destination)
    assert [(problem.kind, problem.archive) for problem in report.problems] == [("manifest", second.id)]
    assert (
        decode_manifest(
            destination.store.load(f"archives/{first.id}.manifest"), destination.cipher, first.id
        ).id
        == first.id
    )
