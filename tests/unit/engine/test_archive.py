"""Archived and Compressed structures: round trips, selection, manifests, tampering, unsafe members."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import tarfile
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from snapkeep.clock import FrozenClock
from snapkeep.engine.archive import (
    ArchiveKeys,
    delete_archive,
    list_archives,
    load_manifest,
    restore_archive,
    write_archive,
)
from snapkeep.engine.archive.check import check_archives
from snapkeep.engine.archive.manifest import ArchiveManifest, encode_manifest
from snapkeep.engine.archive.reader import ArchiveRestore
from snapkeep.engine.archive.segments import open_segments, seal_segments
from snapkeep.engine.archive.writer import ArchiveEntry
from snapkeep.engine.format import CipherId
from snapkeep.engine.progress import ProgressCounter
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository.crypto import NullCipher, make_cipher
from snapkeep.engine.restore import RestoreOptions
from snapkeep.errors import IntegrityError, NotFoundError, StorageError, UnsafePathError, WrongPasswordError
from snapkeep.storage.local import LocalStore
from snapkeep.storage.memory import MemoryStore
from snapkeep.storage.wrappers import FaultyStore

AS_ROOT = os.geteuid() == 0
COMBINATIONS = [(False, False), (True, False), (False, True), (True, True)]
IDS = ["archived-plain", "compressed-plain", "archived-encrypted", "compressed-encrypted"]


def keys(encrypted: bool, store: MemoryStore | None = None) -> ArchiveKeys:
    cipher = make_cipher(CipherId.AES_256_GCM, os.urandom(32)) if encrypted else NullCipher()
    return ArchiveKeys(store or MemoryStore(), cipher)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small tree with every kind of entry the tar structures keep."""
    root = tmp_path / "source"
    (root / "docs" / "empty-dir").mkdir(parents=True)
    (root / "docs" / "a.txt").write_bytes(b"alpha\n" * 1000)
    (root / "docs" / "empty").write_bytes(b"")
    (root / "docs" / "random.bin").write_bytes(os.urandom(300_000))
    os.link(root / "docs" / "a.txt", root / "docs" / "a-hardlink")
    (root / "docs" / "link").symlink_to("a.txt")
    (root / "docs" / "dangling").symlink_to("/nonexistent/../target")
    os.mkfifo(root / "docs" / "pipe")
    with open(root / "sparse.img", "wb") as handle:
        handle.write(b"head")
        handle.seek(8 * 1024 * 1024)
        handle.write(b"tail")
    bad_name = os.fsencode(root / "docs") + b"/caf\xe9-\xff"
    with open(bad_name, "wb") as handle:
        handle.write(b"latin-1 name")
    os.chmod(root / "docs" / "random.bin", 0o4750)
    os.setxattr(root / "docs" / "a.txt", "user.origin", b"\x00binary\xffvalue")
    if AS_ROOT:
        os.chown(root / "docs" / "random.bin", 1234, 5678)
        os.lchown(root / "docs" / "link", 4321, 8765)
    for number, path in enumerate(sorted(root.rglob("*"), reverse=True)):
        os.utime(
            path,
            ns=(1_600_000_000_123_456_789 + number, 1_600_000_000_123_456_789 + number),
            follow_symlinks=False,
        )
    os.utime(root, ns=(1_500_000_000_000_000_001, 1_500_000_000_000_000_001))
    return root


def describe(root: Path) -> dict[bytes, tuple[object, ...]]:
    """Comparable facts of everything below ``root`` (hard links by partner set)."""
    facts: dict[bytes, tuple[object, ...]] = {}
    inodes: dict[int, list[bytes]] = {}
    base = os.fsencode(root)
    for folder, folders, files in os.walk(base):
        for name in folders + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                inodes.setdefault(info.st_ino, []).append(os.path.relpath(path, base))
    for folder, folders, files in os.walk(base):
        for name in folders + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            content: object = None
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    content = hashlib.sha256(handle.read()).hexdigest()
                content = (content, tuple(sorted(inodes[info.st_ino])))
            elif stat.S_ISLNK(info.st_mode):
                content = os.readlink(path)
            xattrs = (
                ()
                if stat.S_ISLNK(info.st_mode)
                else tuple(sorted((key, os.getxattr(path, key)) for key in os.listxattr(path)))
            )
            mode = 0 if stat.S_ISLNK(info.st_mode) else info.st_mode
            facts[os.path.relpath(path, base)] = (
                mode,
                info.st_uid,
                info.st_gid,
                info.st_mtime_ns,
                info.st_size,
                content,
                xattrs,
            )
    return facts


def restored_root(target: Path, source: Path) -> Path:
    return target / str(source).lstrip("/")


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize(("compressed", "encrypted"), COMBINATIONS, ids=IDS)
def test_round_trip_keeps_contents_and_metadata(
    tmp_path: Path, source: Path, compressed: bool, encrypted: bool
) -> None:
    destination = keys(encrypted)
    progress = ProgressCounter()
    manifest = write_archive(
        destination, [str(source)], compressed=compressed, tags=["daily"], progress=progress
    )
    assert manifest.stats["warnings"] == []
    assert progress.finished
    assert progress.bytes == manifest.stats["bytes"]

    # special files asked for: the fifo comes back (fs.restore_policy leaves it out by default)
    with_fifo = RestoreOptions(special_files=True)
    result = ArchiveRestore(destination, manifest, tmp_path / "target", options=with_fifo).run()
    assert result.warnings == []
    target = restored_root(tmp_path / "target", source)
    assert describe(target) == describe(source)
    assert os.stat(target).st_mtime_ns == 1_500_000_000_000_000_001
    sparse = os.stat(target / "sparse.img")
    assert sparse.st_size == 8 * 1024 * 1024 + 4
    assert sparse.st_blocks * 512 < 1024 * 1024, "holes were not recreated"
    assert stat.S_ISFIFO(os.lstat(target / "docs" / "pipe").st_mode)
    assert os.stat(target / "docs" / "a.txt").st_ino == os.stat(target / "docs" / "a-hardlink").st_ino


@pytest.mark.parametrize(("compressed", "encrypted"), COMBINATIONS, ids=IDS)
def test_stored_layout_and_manifest(source: Path, compressed: bool, encrypted: bool) -> None:
    destination = keys(encrypted)
    clock = FrozenClock()
    manifest = write_archive(
        destination,
        [str(source)],
        compressed=compressed,
        tags=["t1"],
        job_id="job1",
        account="alice",
        clock=clock,
    )
    suffix = ".tar.zst" if compressed else ".tar"
    names = sorted(item.name for item in destination.store.list())
    assert names == sorted([f"archives/{manifest.id}{suffix}", f"archives/{manifest.id}.manifest"])
    loaded = load_manifest(destination, manifest.id[:12])
    assert loaded.to_json() == manifest.to_json()
    assert (loaded.structure, loaded.tags, loaded.job_id, loaded.account) == (
        "compressed" if compressed else "archived",
        ["t1"],
        "job1",
        "alice",
    )
    assert loaded.time == clock.now()
    by_path = {entry.path: entry for entry in loaded.entries}
    top = str(source).lstrip("/")
    # names are walked in byte order: "a-hardlink" comes first and carries the contents
    assert by_path[f"{top}/docs/a-hardlink"].blake3 == blake3.blake3(b"alpha\n" * 1000).hexdigest()
    assert (by_path[f"{top}/docs/a.txt"].type, by_path[f"{top}/docs/a.txt"].link) == (
        "hardlink",
        f"{top}/docs/a-hardlink",
    )
    assert by_path[f"{top}/docs/link"].link == "a.txt"
    assert by_path[f"{top}/docs/caf\udce9-\udcff"].size == len(b"latin-1 name")
    assert loaded.stats["files"] == 5
    stored = destination.store.load(manifest.archive_name)
    assert loaded.size == len(stored)
    if encrypted:
        assert b"alpha\nalpha" not in stored
        assert b"docs/a.txt" not in stored
        assert b"docs" not in destination.store.load(f"archives/{manifest.id}.manifest")
    elif not compressed:
        with tarfile.open(fileobj=io.BytesIO(stored)) as archive:  # a standard tar
            assert f"{top}/docs/a.txt" in archive.getnames()


def test_plain_compressed_archive_is_a_standard_zstd_tar(source: Path) -> None:
    import zstandard

    destination = keys(False)
    manifest = write_archive(destination, [str(source)], compressed=True)
    raw = zstandard.ZstdDecompressor().stream_reader(
        io.BytesIO(destination.store.load(manifest.archive_name))
    )
    with tarfile.open(fileobj=raw, mode="r|") as archive:
        assert any(name.endswith("docs/random.bin") for name in archive.getnames())


def test_one_password_opens_repository_and_archives(tmp_path: Path, source: Path) -> None:
    store = LocalStore(tmp_path / "destination")
    fast = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}
    repository = Repository.init(store, password="s3cret", kdf_params=fast)
    manifest = write_archive(repository, [str(source)], compressed=True)
    repository.close()
    with pytest.raises(WrongPasswordError):
        Repository.open(store, password="wrong")
    reopened = Repository.open(store, password="s3cret")
    latest = load_manifest(reopened, "latest")
    ArchiveRestore(reopened, latest, tmp_path / "target", options=RestoreOptions(special_files=True)).run()
    reopened.close()
    assert describe(restored_root(tmp_path / "target", source)) == describe(source)
    assert manifest.encryption != "none"


# --- selection, listing, excludes ------------------------------------------------------------------


def test_restore_chosen_paths(tmp_path: Path, source: Path) -> None:
    destination = keys(True)
    write_archive(destination, [str(source)], compressed=True)
    target = tmp_path / "target"
    result = restore_archive(
        destination, "latest", target, includes=[f"{source}/docs/a.txt", f"{source}/docs/empty-dir/"]
    )
    root = restored_root(target, source)
    found = sorted(str(path.relative_to(root)) for path in root.rglob("*"))
    assert found == ["docs", "docs/a.txt", "docs/empty-dir"]
    # a.txt is stored as a hard link to a-hardlink, which was not chosen: it carries the contents
    assert (root / "docs" / "a.txt").read_bytes() == b"alpha\n" * 1000
    assert os.getxattr(root / "docs" / "a.txt", "user.origin") == b"\x00binary\xffvalue"
    assert result.files == 1
    assert result.directories == 1
    with pytest.raises(NotFoundError, match="not in archive"):
        restore_archive(destination, "latest", target, includes=[f"{source}/nothing-here"])


def test_excludes_and_missing_sources_become_warnings(tmp_path: Path, source: Path) -> None:
    import socket

    destination = keys(False)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(source / "docs" / "control.sock"))
    manifest = write_archive(
        destination,
        [str(source), str(tmp_path / "vanished")],
        compressed=False,
        excludes=["*.bin", "/**/empty-dir"],
    )
    paths = {entry.path.rsplit("/", 1)[-1] for entry in manifest.entries}
    assert "random.bin" not in paths
    assert "empty-dir" not in paths
    assert "a.txt" in paths
    listener.close()
    assert [warning["path"] for warning in manifest.stats["warnings"]] == [str(tmp_path / "vanished")]
    assert manifest.stats["sockets_skipped"] == 1


def test_list_latest_prefix_and_delete(source: Path) -> None:
    destination = keys(True)
    clock = FrozenClock()
    first = write_archive(destination, [str(source)], compressed=False, archive_id="aa11", clock=clock)
    clock.advance(60)
    second = write_archive(destination, [str(source)], compressed=True, archive_id="aa22", clock=clock)
    assert [archive.id for archive in list_archives(destination)] == [first.id, second.id]
    assert load_manifest(destination, "latest").id == second.id
    with pytest.raises(NotFoundError, match="2 archives"):
        load_manifest(destination, "aa")
    with pytest.raises(NotFoundError):
        load_manifest(destination, "bb")
    delete_archive(destination, "aa1")
    assert [archive.id for archive in list_archives(destination)] == [second.id]
    assert sorted(item.name for item in destination.store.list()) == [
        "archives/aa22.manifest",
        "archives/aa22.tar.zst",
    ]


def test_interrupted_upload_leaves_no_listed_archive(source: Path) -> None:
    inner = MemoryStore()
    faulty = FaultyStore(inner, fail_on_call=1, operations={"store"})  # the manifest write fails
    destination = ArchiveKeys(faulty, NullCipher())
    with pytest.raises(StorageError, match="injected fault"):
        write_archive(destination, [str(source)], compressed=True)
    assert list_archives(destination) == []


def test_memory_stays_bounded_with_streaming(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "destination")
    sizes: list[int] = []
    original = store.store_stream

    def watching(name: str, chunks: Iterator[bytes]) -> int:
        def measured() -> Iterator[bytes]:
            for chunk in chunks:
                sizes.append(len(chunk))
                yield chunk

        return original(name, measured())

    store.store_stream = watching  # type: ignore[method-assign]
    big = tmp_path / "big"
    big.mkdir()
    (big / "file").write_bytes(os.urandom(12 * 1024 * 1024))
    write_archive(
        ArchiveKeys(store, make_cipher(CipherId.AES_256_GCM, os.urandom(32))), [str(big)], compressed=False
    )
    assert len(sizes) > 6
    assert max(sizes) <= 2 * 1024 * 1024 + 64


# --- damage is detected, never restored silently -------------------------------------------------------


def _assert_no_wrong_files(target: Path, source: Path) -> None:
    root = restored_root(target, source)
    if not root.exists():
        return
    for path in root.rglob("*"):
        assert not path.name.startswith(".snapkeep-restore-"), "a temporary file was left behind"
        if path.is_file() and not path.is_symlink():
            assert path.read_bytes() == (source / path.relative_to(root)).read_bytes(), path


@pytest.mark.parametrize(("compressed", "encrypted"), COMBINATIONS, ids=IDS)
def test_flipped_byte_anywhere_is_detected(
    tmp_path: Path, source: Path, compressed: bool, encrypted: bool
) -> None:
    (source / "sparse.img").unlink()  # keep the stream small: many positions are tried
    destination = keys(encrypted)
    manifest = write_archive(destination, [str(source)], compressed=compressed)
    good = destination.store.load(manifest.archive_name)
    positions = sorted({0, len(good) - 1, len(good) // 2, *range(0, len(good), max(len(good) // 23, 1))})
    for number, position in enumerate(positions):
        damaged = bytearray(good)
        damaged[position] ^= 0x40
        destination.store.store(manifest.archive_name, bytes(damaged))
        target = tmp_path / f"target-{number}"
        with pytest.raises(IntegrityError):
            restore_archive(destination, manifest.id, target)
        _assert_no_wrong_files(target, source)
    destination.store.store(manifest.archive_name, good)
    restore_archive(destination, manifest.id, tmp_path / "target-good")


@pytest.mark.parametrize(("compressed", "encrypted"), COMBINATIONS, ids=IDS)
def test_truncation_is_detected(tmp_path: Path, source: Path, compressed: bool, encrypted: bool) -> None:
    destination = keys(encrypted)
    manifest = write_archive(destination, [str(source)], compressed=compressed)
    good = destination.store.load(manifest.archive_name)
    for number, length in enumerate({0, 1, 600, len(good) // 3, len(good) - 1024, len(good) - 1}):
        destination.store.store(manifest.archive_name, good[:length])
        with pytest.raises(IntegrityError):
            restore_archive(destination, manifest.id, tmp_path / f"target-{number}")
        _assert_no_wrong_files(tmp_path / f"target-{number}", source)
    destination.store.store(manifest.archive_name, good + b"\x00" * 1024)
    with pytest.raises(IntegrityError):
        restore_archive(destination, manifest.id, tmp_path / "target-longer")


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_damaged_or_foreign_manifest_is_detected(source: Path, encrypted: bool) -> None:
    destination = keys(encrypted)
    first = write_archive(destination, [str(source)], compressed=False, archive_id="first")
    write_archive(destination, [str(source)], compressed=False, archive_id="second")
    name = "archives/first.manifest"
    good = destination.store.load(name)
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0x01
    destination.store.store(name, bytes(damaged))
    with pytest.raises(IntegrityError, match="manifest of archive first"):
        load_manifest(destination, "first")
    destination.store.store(name, destination.store.load("archives/second.manifest"))
    with pytest.raises(IntegrityError):
        load_manifest(destination, "first")
    destination.store.store(name, good)
    assert load_manifest(destination, "first").id == first.id
    other_key = ArchiveKeys(destination.store, make_cipher(CipherId.AES_256_GCM, os.urandom(32)))
    if encrypted:
        with pytest.raises(IntegrityError):
            load_manifest(other_key, "first")


def _segments(data: bytes) -> tuple[bytes, list[bytes]]:
    header, rest, frames = data[:12], data[12:], []
    while rest:
        (length,) = struct.unpack("<I", rest[:4])
        frames.append(rest[: 4 + length])
        rest = rest[4 + length :]
    return header, frames


def test_segments_detect_reordering_swapping_and_cuts() -> None:
    cipher = make_cipher(CipherId.CHACHA20_POLY1305, os.urandom(32))
    plaintext = os.urandom(10_000)
    sealed = b"".join(seal_segments([plaintext[:3000], plaintext[3000:]], cipher, b"one", segment_size=1000))
    assert b"".join(open_segments([sealed], cipher, b"one", what="t")) == plaintext
    header, frames = _segments(sealed)
    assert len(frames) == 10
    other = b"".join(seal_segments([plaintext], cipher, b"two", segment_size=1000))
    cases = {
        "reordered": header + b"".join([frames[1], frames[0], *frames[2:]]),
        "dropped final": header + b"".join(frames[:-1]),
        "dropped middle": header + b"".join(frames[:4] + frames[5:]),
        "duplicated": header + b"".join([*frames[:5], frames[4], *frames[5:]]),
        "from another archive": header + b"".join([*frames[:3], _segments(other)[1][3], *frames[4:]]),
        "final marked early": header + b"".join(frames[:3]) + _segments(other)[1][-1],
        "trailing bytes": sealed + b"x",
        "bad header": b"XXXXXXXX" + sealed[8:],
    }
    for case, data in cases.items():
        with pytest.raises(IntegrityError):
            b"".join(open_segments([data], cipher, b"one", what=case))
    exact = b"".join(seal_segments([bytes(3000)], cipher, b"x", segment_size=1000))
    assert b"".join(open_segments([exact], cipher, b"x", what="exact")) == bytes(3000)
    empty = b"".join(seal_segments([], cipher, b"x", segment_size=1000))
    assert b"".join(open_segments([empty], cipher, b"x", what="empty")) == b""


# --- crafted archives: nothing lands outside the target ----------------------------------------------


def _plant(destination: ArchiveKeys, members: list[tuple[tarfile.TarInfo, bytes]], archive_id: str) -> None:
    """Store a hand-made plain tar and a manifest that vouches for it (an attacker with write access)."""
    buffer = io.BytesIO()
    entries = []
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for member, data in members:
            member.size = len(data) if member.isfile() else 0
            member.mtime = 1_700_000_000
            archive.addfile(member, io.BytesIO(data) if member.isfile() else None)
            kind = {
                tarfile.REGTYPE: "file",
                tarfile.DIRTYPE: "dir",
                tarfile.SYMTYPE: "symlink",
                tarfile.LNKTYPE: "hardlink",
            }[member.type]
            entries.append(
                ArchiveEntry(
                    path=member.name.rstrip("/") if member.isdir() else member.name,
                    type=kind,
                    mode=member.mode,
                    uid=member.uid,
                    gid=member.gid,
                    mtime_ns=1_700_000_000 * 10**9,
                    size=member.size,
                    link=member.linkname,
                    blake3=blake3.blake3(data).hexdigest() if member.isfile() else "",
                )
            )
    stored = buffer.getvalue()
    destination.store.store(f"archives/{archive_id}.tar", stored)
    manifest = ArchiveManifest(
        id=archive_id,
        time=FrozenClock().now(),
        structure="archived",
        compression="none",
        encryption="none",
        segment_size=0,
        sources=["/"],
        size=len(stored),
        blake3=blake3.blake3(stored).hexdigest(),
        entries=entries,
    )
    destination.store.store(f"archives/{archive_id}.manifest", encode_manifest(manifest, destination.cipher))


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname, member.mode = kind, link, 0o644
    return member


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ([(_member("../escape"), b"x")], "'..'"),
        ([(_member("ok/../../escape"), b"x")], "'..'"),
        ([(_member("/tmp/absolute-escape"), b"x")], "absolute"),
        (
            [
                (_member("inside/link", tarfile.SYMTYPE, "../../outside"), b""),
                (_member("inside/link/f"), b"x"),
            ],
            "symlink",
        ),
        (
            [(_member("abs-link", tarfile.SYMTYPE, "/"), b""), (_member("abs-link/tmp/escape"), b"x")],
            "symlink",
        ),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-dir", "symlink-root"],
)
def test_members_leaving_the_target_are_refused(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]], reason: str
) -> None:
    destination = keys(False)
    _plant(destination, members, "evil")
    outside = tmp_path / "work"
    target = outside / "a" / "target"
    # refused by the path rule while extracting, or up front by the manifest's layout (below a link)
    with pytest.raises((UnsafePathError, IntegrityError), match=reason):
        restore_archive(destination, "evil", target)
    escaped = [path for path in tmp_path.rglob("*") if "escape" in path.name or path.name == "f"]
    assert escaped == []
    assert not (tmp_path / "outside").exists()


def test_hardlink_to_outside_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"do not link me")
    destination = keys(False)
    _plant(destination, [(_member("stolen", tarfile.LNKTYPE, str(secret)), b"")], "evil")
    with pytest.raises(IntegrityError, match="hard link"):
        restore_archive(destination, "evil", tmp_path / "target")
    assert not (tmp_path / "target" / "stolen").exists()


@pytest.mark.parametrize(
    ("members", "named"),
    [
        ([(_member("stolen", tarfile.LNKTYPE, "../../etc/passwd"), b"")], "hard link 'stolen'"),
        ([(_member("d", tarfile.SYMTYPE, "/tmp"), b""), (_member("d/f"), b"x")], "lies below 'd', a symlink"),
        ([(_member("f"), b"x"), (_member("f/g"), b"y")], "lies below 'f', a file"),
    ],
    ids=["hardlink-out", "below-symlink", "below-file"],
)
def test_check_names_a_forged_layout_without_reading_the_data(
    members: list[tuple[tarfile.TarInfo, bytes]], named: str
) -> None:
    """``tar`` never writes a member below a link or a file, nor a hard link to no earlier file:
    the cheap check names it from the manifest alone, and so does --read-data."""
    destination = keys(False)
    _plant(destination, members, "evil")
    for read_data in (False, True):
        report = check_archives(destination, read_data=read_data)
        assert not report.ok
        assert any(named in problem.message for problem in report.problems), report.problems


def test_existing_symlink_in_target_is_not_followed(tmp_path: Path, source: Path) -> None:
    destination = keys(False)
    write_archive(destination, [str(source / "docs" / "a.txt")], compressed=False)
    target = tmp_path / "target"
    target.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = str(source).lstrip("/").split("/")[0]
    (target / first).symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="symlink"):
        restore_archive(destination, "latest", target)
    assert list(elsewhere.iterdir()) == []
