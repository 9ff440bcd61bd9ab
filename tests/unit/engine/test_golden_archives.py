"""The checked-in Archived and Compressed archives must stay readable (tests/fixtures/golden-v1).

``archives-plain/`` and ``archives-encrypted/`` each hold one Archived (``.tar``) and one Compressed
(``.tar.zst``) archive with their manifests, beside the ``config`` and ``keys/`` that open them; the
encrypted ones are ``SKSEG001`` streams of several sealed segments. ``archives.json`` says what they
hold (``tests/fixtures/make_golden.py archives`` wrote them). Today's code lists them, reads their
manifests and restores them, whole and in part, to exactly the expected files.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import tarfile
from pathlib import Path

import pytest
import zstandard
from tests.fixtures.make_golden import restored_view

from snapkeep.clock import UTC
from snapkeep.engine.archive import ArchiveKeys, list_archives, load_manifest, restore_archive
from snapkeep.engine.archive.segments import SEGMENT_MAGIC
from snapkeep.engine.repository import Repository
from snapkeep.errors import IntegrityError
from snapkeep.storage.local import LocalStore
from snapkeep.storage.wrappers import ReadOnlyStore

GOLDEN = Path(__file__).parents[2] / "fixtures" / "golden-v1"
EXPECTED = json.loads((GOLDEN / "archives.json").read_text())
KINDS = ["encrypted", "plain"]
STRUCTURES = ["archived", "compressed"]


def open_golden(kind: str) -> Repository:
    store = ReadOnlyStore(LocalStore(GOLDEN / f"archives-{kind}", create=False))
    return Repository.open(store, password=EXPECTED["password"] if kind == "encrypted" else None)


def stored_bytes(kind: str, structure: str) -> bytes:
    suffix = ".tar.zst" if structure == "compressed" else ".tar"
    name = EXPECTED["archive_ids"][structure] + suffix
    return (GOLDEN / f"archives-{kind}" / "archives" / name).read_bytes()


@pytest.mark.parametrize("kind", KINDS)
def test_golden_archives_are_listed_with_their_manifests(kind: str) -> None:
    repository = open_golden(kind)
    manifests = list_archives(repository)
    assert [manifest.id for manifest in manifests] == [EXPECTED["archive_ids"][name] for name in STRUCTURES]
    for structure, manifest in zip(STRUCTURES, manifests, strict=True):
        assert manifest.structure == structure
        assert manifest.compression == ("zstd" if structure == "compressed" else "none")
        assert manifest.encryption == ("aes-256-gcm" if kind == "encrypted" else "none")
        assert manifest.segment_size == (EXPECTED["segment_size"] if kind == "encrypted" else 0)
        assert manifest.sources == [EXPECTED["source"]]
        assert (manifest.hostname, manifest.job_id, manifest.account) == (
            "golden-host",
            "6956ba0000000000000000ab",
            "golden",
        )
        assert (manifest.tags, manifest.components, manifest.excludes) == (
            ["golden", structure],
            ["homedir"],
            ["*.tmp"],
        )
        stored = EXPECTED["stored"][kind][structure]
        assert (manifest.size, manifest.blake3) == (stored["size"], stored["blake3"])
        assert manifest.stats["warnings"] == []
    assert manifests[0].time == dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert manifests[1].time == dt.datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert load_manifest(repository, "latest").id == EXPECTED["archive_ids"]["compressed"]
    repository.close()


@pytest.mark.parametrize("structure", STRUCTURES)
@pytest.mark.parametrize("kind", KINDS)
def test_golden_archive_restores_the_expected_tree(kind: str, structure: str, tmp_path: Path) -> None:
    repository = open_golden(kind)
    result = restore_archive(repository, EXPECTED["archive_ids"][structure], tmp_path)
    repository.close()
    assert result.warnings == []
    restored = tmp_path / EXPECTED["source"].lstrip("/")
    assert restored_view(restored) == EXPECTED["members"]
    assert (result.files, result.links) == (4, 2)  # readme.md's second path and the symlink are links


@pytest.mark.parametrize("kind", KINDS)
def test_golden_archive_restores_one_path(kind: str, tmp_path: Path) -> None:
    repository = open_golden(kind)
    wanted = EXPECTED["source"] + "/docs/run.sh"
    restore_archive(repository, EXPECTED["archive_ids"]["compressed"], tmp_path, includes=[wanted])
    repository.close()
    restored = tmp_path / EXPECTED["source"].lstrip("/")
    assert sorted(path.relative_to(restored).as_posix() for path in restored.rglob("*")) == [
        "docs",
        "docs/run.sh",
    ]
    assert restored_view(restored)["docs/run.sh"] == EXPECTED["members"]["docs/run.sh"]


@pytest.mark.parametrize("structure", STRUCTURES)
def test_golden_plain_archives_are_standard_tar_streams(structure: str) -> None:
    data = stored_bytes("plain", structure)
    if structure == "compressed":
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()  # as `zstd -d` does
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        names = {member.name for member in archive.getmembers()}
    prefix = EXPECTED["source"].lstrip("/")
    assert names == {prefix} | {f"{prefix}/{name}" for name in EXPECTED["members"]}


@pytest.mark.parametrize("structure", STRUCTURES)
def test_golden_encrypted_archives_are_segment_streams(structure: str) -> None:
    data = stored_bytes("encrypted", structure)
    assert data.startswith(SEGMENT_MAGIC)
    assert int.from_bytes(data[8:12], "little") == EXPECTED["segment_size"]
    assert b"golden archive" not in data


def test_golden_encrypted_archive_needs_its_own_manifest(tmp_path: Path) -> None:
    """A manifest opened under another archive's ID fails: the ID is sealed into it."""
    repository = open_golden("encrypted")
    archived, compressed = (EXPECTED["archive_ids"][name] for name in STRUCTURES)
    sealed = (GOLDEN / "archives-encrypted" / "archives" / f"{compressed}.manifest").read_bytes()
    copy = LocalStore(tmp_path / "copy")
    copy.store(f"archives/{archived}.manifest", sealed)
    with pytest.raises(IntegrityError, match="manifest"):
        load_manifest(ArchiveKeys(copy, repository.cipher), archived)
    repository.close()
