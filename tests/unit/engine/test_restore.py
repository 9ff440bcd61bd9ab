"""Restore: chosen paths, never outside the target, damaged blobs fail loudly, metadata."""

from __future__ import annotations

import datetime as dt
import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.engine.backup import backup
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.data.tree import DIR, FILE, Node
from snapkeep.engine.format import BlobType
from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import plan as plan_module
from snapkeep.engine.restore import restore
from snapkeep.errors import NotFoundError, UnsafePathError
from snapkeep.storage.memory import MemoryStore

FAST_KDF = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def repository(store: MemoryStore) -> Iterator[Repository]:
    repo = Repository.init(store, password="secret", kdf_params=FAST_KDF)
    yield repo
    repo.close()


def make_source(root: Path) -> Path:
    source = root / "source"
    (source / "docs" / "deep").mkdir(parents=True)
    (source / "docs" / "a.txt").write_bytes(b"alpha")
    (source / "docs" / "deep" / "b.txt").write_bytes(b"beta" * 1000)
    (source / "other").mkdir()
    (source / "other" / "c.txt").write_bytes(b"gamma")
    (source / "top.txt").write_bytes(b"top")
    return source


def save_crafted_tree(repository: Repository, nodes: list[dict[str, object]]) -> Snapshot:
    """Store a hand-written root tree (bypassing Tree.encode's checks) and a snapshot of it."""
    data = json.dumps({"v": 1, "nodes": nodes}).encode()
    tree_id = repository.blob_id(data)
    repository.add_blob(BlobType.TREE, data, tree_id)
    snapshot = Snapshot(
        id="", time=dt.datetime.now(dt.UTC), hostname="h", paths=["/crafted"], tree=tree_id.hex()
    )
    snapshot.id = repository.save_snapshot(snapshot)
    return snapshot


def file_entry(name: str, blob_id: bytes, size: int) -> dict[str, object]:
    raw = Node(name=b"x", type=FILE, mode=0o644, size=size, content=[blob_id]).to_json()
    raw["name"] = name
    return raw


@pytest.mark.parametrize("name", ["..", "../escape", "a/b", "/etc/passwd", "."])
def test_crafted_unsafe_names_are_refused(repository: Repository, tmp_path: Path, name: str) -> None:
    blob_id = repository.blob_id(b"evil")
    repository.add_blob(BlobType.DATA, b"evil", blob_id)
    snapshot = save_crafted_tree(repository, [file_entry(name, blob_id, 4)])
    target = tmp_path / "target"
    with pytest.raises(UnsafePathError):
        restore(repository, snapshot, str(target))
    assert sorted(os.listdir(tmp_path)) == ["target"]
    assert os.listdir(target) == []


def test_unsafe_name_in_a_subtree_is_refused(repository: Repository, tmp_path: Path) -> None:
    blob_id = repository.blob_id(b"evil")
    repository.add_blob(BlobType.DATA, b"evil", blob_id)
    inner = json.dumps({"v": 1, "nodes": [file_entry("..", blob_id, 4)]}).encode()
    inner_id = repository.blob_id(inner)
    repository.add_blob(BlobType.TREE, inner, inner_id)
    folder = Node(name=b"sub", type=DIR, mode=0o755, subtree=inner_id).to_json()
    snapshot = save_crafted_tree(repository, [folder])
    with pytest.raises(UnsafePathError):
        restore(repository, snapshot, str(tmp_path / "target"))
    assert sorted(os.listdir(tmp_path)) == ["target"]
    assert os.listdir(tmp_path / "target") == ["sub"]
    assert os.listdir(tmp_path / "target" / "sub") == []


def test_include_paths_must_stay_inside(repository: Repository, tmp_path: Path) -> None:
    source = make_source(tmp_path)
    snapshot = backup(repository, [source])
    with pytest.raises(UnsafePathError):
        restore(repository, snapshot, str(tmp_path / "t"), includes=["../x"])
    with pytest.raises(NotFoundError):
        restore(repository, snapshot, str(tmp_path / "t"), includes=[str(source / "nope")])


def test_planted_symlinks_in_the_target_are_not_followed(repository: Repository, tmp_path: Path) -> None:
    source = make_source(tmp_path)
    snapshot = backup(repository, [source])
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    restored = Path(str(target) + str(source))
    restored.mkdir(parents=True)
    os.symlink(outside, restored / "docs")  # a folder replaced by a link to elsewhere
    os.symlink(outside / "top-victim", restored / "top.txt")  # a file replaced by a link
    result = restore(repository, snapshot, str(target))
    assert result.ok
    assert os.listdir(outside) == []
    assert not (restored / "docs").is_symlink()
    assert (restored / "docs" / "a.txt").read_bytes() == b"alpha"
    assert not (restored / "top.txt").is_symlink()
    assert (restored / "top.txt").read_bytes() == b"top"


def test_restore_chosen_paths(repository: Repository, tmp_path: Path) -> None:
    source = make_source(tmp_path)
    snapshot = backup(repository, [source])
    target = tmp_path / "target"
    result = restore(repository, snapshot, str(target), includes=[f"{source}/docs/deep", f"{source}/top.txt"])
    restored = Path(str(target) + str(source))
    assert result.ok
    assert sorted(os.listdir(restored)) == ["docs", "top.txt"]
    assert os.listdir(restored / "docs") == ["deep"]
    assert (restored / "docs" / "deep" / "b.txt").read_bytes() == b"beta" * 1000
    assert result.files == 2


def test_damaged_blob_fails_its_file_loudly_and_others_restore(
    repository: Repository, store: MemoryStore, tmp_path: Path
) -> None:
    source = make_source(tmp_path)
    snapshot = backup(repository, [source])
    damaged_id = repository.blob_id(b"gamma")
    location = repository.lookup(damaged_id)
    assert location is not None
    name = next(info.name for info in store.list("data/") if info.name.endswith(location.pack_id))
    pack = bytearray(store.load(name))
    pack[location.offset + location.length // 2] ^= 0x01
    store.store(name, bytes(pack))
    target = tmp_path / "target"
    result = restore(repository, snapshot, str(target))
    restored = Path(str(target) + str(source))
    assert not result.ok
    assert [path for path, _ in result.failures] == [f"{source}/other/c.txt"]
    assert damaged_id.hex() in result.failures[0][1]
    assert not (restored / "other" / "c.txt").exists()  # never silently wrong
    assert (restored / "docs" / "a.txt").read_bytes() == b"alpha"
    assert (restored / "docs" / "deep" / "b.txt").read_bytes() == b"beta" * 1000
    assert (restored / "top.txt").read_bytes() == b"top"


def test_metadata_acl_and_links(repository: Repository, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    data = source / "data"
    data.write_bytes(b"payload")
    acl = struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", tag, perm, ident)
        for tag, perm, ident in [
            (1, 6, 0xFFFFFFFF),
            (2, 4, 1234),
            (4, 4, 0xFFFFFFFF),
            (0x10, 4, 0xFFFFFFFF),
            (0x20, 0, 0xFFFFFFFF),
        ]
    )
    os.setxattr(data, "system.posix_acl_access", acl)
    os.setxattr(data, "user.comment", b"\x00binary\xff")
    os.utime(data, ns=(5, 1_234_567_890_123_456_789))
    os.link(data, source / "hard")
    os.symlink("data", source / "link")
    os.utime(source / "link", ns=(7, 2_000_000_000_000_000_001), follow_symlinks=False)
    ro = source / "readonly"
    ro.mkdir()
    (ro / "inside").write_bytes(b"in")
    os.chmod(ro, 0o555)
    os.utime(ro, ns=(1, 1_111_111_111_111_111_111))
    if os.geteuid() == 0:
        os.chown(data, 4321, 4322)
    snapshot = backup(repository, [source])
    target = tmp_path / "target"
    result = restore(repository, snapshot, str(target))
    assert result.ok, result.failures
    restored = Path(str(target) + str(source))
    info = os.lstat(restored / "data")
    assert info.st_mtime_ns == 1_234_567_890_123_456_789
    assert os.getxattr(restored / "data", "user.comment") == b"\x00binary\xff"
    assert os.getxattr(restored / "data", "system.posix_acl_access") == acl
    assert os.lstat(restored / "hard").st_ino == info.st_ino
    assert os.readlink(restored / "link") == "data"
    assert os.lstat(restored / "link").st_mtime_ns == 2_000_000_000_000_000_001
    assert os.lstat(restored / "readonly").st_mode & 0o777 == 0o555
    assert os.lstat(restored / "readonly").st_mtime_ns == 1_111_111_111_111_111_111
    if os.geteuid() == 0:
        assert (info.st_uid, info.st_gid) == (4321, 4322)


def test_the_last_batches_of_a_whole_restore_are_smaller(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Near the end of the files its snapshot declares, the plan hands the workers smaller batches
    (they write the last files while the plan finishes); every file is still restored."""
    source = tmp_path / "source"
    for folder in range(4):
        (source / f"d{folder}").mkdir(parents=True)
        for number in range(40):
            (source / f"d{folder}" / f"f{number}").write_bytes(f"{folder}-{number}".encode() * 50)
    snapshot = backup(repository, [str(source)])
    monkeypatch.setattr(plan_module, "_BATCH_FILES", 32)  # 160 files: the last 64 in batches of 4
    sizes: list[int] = []
    submit = plan_module.RestorePlanner.submit_planned

    def counting(self: plan_module.RestorePlanner) -> None:
        sizes.append(len({id(job) for users in self.blob_users.values() for job, _ in users}))
        submit(self)

    monkeypatch.setattr(plan_module.RestorePlanner, "submit_planned", counting)
    result = restore(repository, snapshot, tmp_path / "target")
    assert result.ok
    assert result.files == 160
    assert sizes[:3] == [32, 32, 32]
    assert set(sizes[3:-1]) == {4}  # the tail; the last call hands over what is left
    restored = tmp_path / "target" / str(source).lstrip("/")
    assert (restored / "d3" / "f39").read_bytes() == b"3-39" * 50
