"""A damaged or forged repository costs a little data, never everything, and never the machine.

Crafted key files (huge Argon2 time and memory, huge scrypt N) are refused before any derivation;
a zstd bomb, a file declaring 8 TiB with a 6-byte blob, a tree of too many entries and entries
named ``..``, ``/etc/x`` or ``a/../../b`` are named by ``check`` and refused by restore without a
traceback; a truncated data pack loses only the files whose chunks it held (folder listings live
in packs of their own). The CLI runs in subprocesses that report their own peak RSS.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import blake3
import pytest
import zstandard

from snapkeep.engine.backup import backup
from snapkeep.engine.data import tree as tree_module
from snapkeep.engine.data.bounds import MAX_DATA_BLOB, MAX_TREE_BLOB, MAX_TREE_ENTRIES
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.data.tree import FILE, Node, Tree, encode_entries
from snapkeep.engine.format import DATA_PREFIX, KEYS_PREFIX, BlobType, Compression, pack_name
from snapkeep.engine.maintenance.check import check, open_without_index
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository.keys import check_kdf_params
from snapkeep.engine.repository.pack_format import PackBuilder
from snapkeep.engine.restore import restore
from snapkeep.errors import IntegrityError, RepositoryError
from snapkeep.storage.local import LocalStore

FAST = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
PASSWORD = "hostile"
#: Runs the command root and prints its peak RSS (KiB) as the last line of stderr: VmHWM, the peak
#: of this program's own memory (``ru_maxrss`` would include the forking test process's).
BOOT = (
    "import re, sys\n"
    "from snapkeep.cli.main import main\n"
    "try:\n    code = main(sys.argv[1:])\n"
    "except SystemExit as stop:\n    code = stop.code\n"
    "status = open('/proc/self/status').read()\n"
    "print('maxrss', re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_cli(*args: str, password: str | None = None, timeout: float = 120) -> tuple[int, str, str, int]:
    """Exit code, stdout, stderr (without the RSS line) and peak RSS in KiB of ``snapkeep ARGS``."""
    environment = {key: value for key, value in os.environ.items() if key != "SNAPKEEP_PASSWORD"}
    if password is not None:
        environment["SNAPKEEP_PASSWORD"] = password
    done = subprocess.run(
        [sys.executable, "-c", BOOT, *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        check=False,
    )
    lines = done.stderr.splitlines()
    rss = int(lines[-1].split()[1]) if lines and lines[-1].startswith("maxrss") else -1
    return done.returncode, done.stdout, "\n".join(lines[:-1]), rss


# --- key files --------------------------------------------------------------------------------------


def forge_key(folder: Path, kdf: str, **params: int) -> None:
    """Rewrite the repository's key file with ``params`` (what anyone with write access can do)."""
    store = LocalStore(folder)
    (name,) = [info.name for info in store.list(KEYS_PREFIX)]
    document = json.loads(store.load(name))
    document["kdf"] = kdf
    salt = document["kdf_params"]["salt"]
    document["kdf_params"] = {**params, "salt": salt}
    store.store(name, json.dumps(document).encode())


@pytest.mark.parametrize(
    ("kdf", "params", "named"),
    [
        ("argon2id", {"time_cost": 100_000, "memory_cost": 19456, "parallelism": 1}, "time_cost"),
        ("argon2id", {"time_cost": 1, "memory_cost": 2**20, "parallelism": 1}, "memory_cost"),
        ("argon2id", {"time_cost": 1, "memory_cost": 2**31, "parallelism": 1}, "memory_cost"),
        ("argon2id", {"time_cost": 1, "memory_cost": 19456, "parallelism": 4096}, "parallelism"),
        ("scrypt", {"n": 2**24, "r": 8, "p": 1}, "kdf_params.n"),
        ("scrypt", {"n": 2**20, "r": 8, "p": 1}, "1024 MiB"),
        ("scrypt", {"n": 2**14, "r": 8, "p": 10**6}, "kdf_params.p"),
        ("scrypt", {"n": 3000, "r": 8, "p": 1}, "power of two"),
    ],
)
def test_forged_key_parameters_are_refused_before_deriving(
    tmp_path: Path, kdf: str, params: dict[str, int], named: str
) -> None:
    Repository.init(LocalStore(tmp_path), password=PASSWORD, kdf_params=FAST).close()
    forge_key(tmp_path, kdf, **params)
    started = time.monotonic()
    with pytest.raises(RepositoryError) as raised:
        Repository.open(LocalStore(tmp_path), password=PASSWORD)
    assert time.monotonic() - started < 2
    message = str(raised.value)
    assert named in message, message
    assert KEYS_PREFIX in message, message


def test_forged_key_on_the_command_line_fails_fast_with_bounded_memory(tmp_path: Path) -> None:
    Repository.init(LocalStore(tmp_path), password=PASSWORD, kdf_params=FAST).close()
    forge_key(tmp_path, "argon2id", time_cost=100_000, memory_cost=2**20, parallelism=1)
    started = time.monotonic()
    code, _, err, rss = run_cli("repo", "check", str(tmp_path), password=PASSWORD)
    assert code == 6, err
    assert time.monotonic() - started < 20
    assert "time_cost = 100000 is outside the accepted 1-10" in err
    assert "Traceback" not in err
    assert 0 < rss < 150 * 1024  # KiB: the 1 GiB the key asks for is never allocated


def test_a_forged_key_does_not_lock_out_the_real_one(tmp_path: Path) -> None:
    repository = Repository.init(LocalStore(tmp_path), password=PASSWORD, kdf_params=FAST)
    forged = json.loads(LocalStore(tmp_path).load(next(iter(LocalStore(tmp_path).list(KEYS_PREFIX))).name))
    forged["kdf_params"]["time_cost"] = 10**6
    LocalStore(tmp_path).store(f"{KEYS_PREFIX}0000", json.dumps(forged).encode())  # sorted first
    repository.close()
    Repository.open(LocalStore(tmp_path), password=PASSWORD).close()


def test_every_kdf_setting_snapkeep_wrote_is_accepted() -> None:
    salt = "AAAAAAAAAAAAAAAAAAAAAA=="
    for params in (
        {"time_cost": 3, "memory_cost": 65536, "parallelism": 2},
        {"time_cost": 2, "memory_cost": 19456, "parallelism": 1},
    ):
        check_kdf_params(engine_kdf("argon2id"), {**params, "salt": salt})
    check_kdf_params(engine_kdf("scrypt"), {"n": 2**15, "r": 8, "p": 1, "salt": salt})


def engine_kdf(name: str) -> Any:
    from snapkeep.engine.format import kdf_by_name

    return kdf_by_name(name)


# --- crafted blobs and trees (unencrypted: anyone who can write the destination can do this) ------


def plant(
    repository: Repository,
    payload: bytes,
    raw_length: int,
    *,
    blob_type: BlobType = BlobType.DATA,
    compression: Compression = Compression.ZSTD,
    blob_id: bytes | None = None,
) -> bytes:
    """Store ``payload`` as a blob declaring ``raw_length`` in a pack and index file of its own."""
    blob_id = blob_id or blake3.blake3(payload).digest()
    builder = PackBuilder()
    builder.add(blob_id, blob_type, compression, repository.cipher.seal(payload, blob_id), raw_length)
    entries = list(builder.entries)
    pack_id, data = builder.finish(repository.cipher)
    repository.store.store(pack_name(pack_id), data)
    repository.write_index_file([entry.located_in(pack_id) for entry in entries])
    repository.reload_index()
    return blob_id


def file_node(name: bytes, content: list[bytes], size: int, *, sparse: bool = False) -> Node:
    return Node(name=name, type=FILE, mode=0o644, size=size, content=content, sparse=sparse)


def save_root(repository: Repository, entries: list[dict[str, Any]]) -> Snapshot:
    """A snapshot whose root folder lists ``entries`` (raw, not validated: a forger's tree)."""
    data = encode_entries(entries)
    tree_id = repository.blob_id(data)
    repository.add_blob(BlobType.TREE, data, tree_id)
    snapshot = Snapshot(
        id="",
        time=repository.clock.now(),
        hostname="forger",
        paths=["/forged"],
        tree=tree_id.hex(),
    )
    repository.save_snapshot(snapshot)
    return snapshot


@pytest.fixture
def plain(tmp_path: Path) -> Repository:
    repository = Repository.init(LocalStore(tmp_path / "repo"), password=None)
    yield repository
    repository.close()


def good_file(repository: Repository, name: bytes, data: bytes) -> dict[str, Any]:
    blob_id = repository.blob_id(data)
    repository.add_blob(BlobType.DATA, data, blob_id)
    return file_node(name, [blob_id], len(data)).to_json()


def zstd_frame(size: int, *, content_size: bool = True) -> bytes:
    """A zstd frame of ``size`` zero bytes, compressed in pieces (never ``size`` bytes in memory)."""
    compressor = zstandard.ZstdCompressor(level=1, write_content_size=content_size)
    chunk = bytes(64 * 1024 * 1024)
    out = compressor.compressobj(size=size if content_size else -1)
    parts = []
    left = size
    while left:
        piece = min(left, len(chunk))
        parts.append(out.compress(memoryview(chunk)[:piece]))
        left -= piece
    parts.append(out.flush())
    return b"".join(parts)


@pytest.mark.parametrize(
    ("frame_size", "declared", "content_size"),
    [
        (2**30, 2**30, True),  # the attack report's bomb: 1 GiB declared and expanded
        (10 * 2**30, 6, True),  # a 10 GiB frame declaring 6 bytes
        (10 * 2**30, MAX_DATA_BLOB, False),  # no size in the frame header: capped while expanding
    ],
    ids=["declared-1GiB", "frame-10GiB", "frame-10GiB-no-header-size"],
)
def test_a_zstd_bomb_is_refused_per_file(
    plain: Repository, tmp_path: Path, frame_size: int, declared: int, content_size: bool
) -> None:
    frame = zstd_frame(frame_size, content_size=content_size)
    assert len(frame) < 1024 * 1024
    bomb = plant(plain, frame, declared)
    good = good_file(plain, b"good.txt", b"still here\n")
    snapshot = save_root(plain, [json_of(file_node(b"bomb", [bomb], min(declared, MAX_DATA_BLOB))), good])

    report = check(plain, read_data=True)
    assert not report.ok
    assert any(p.name == bomb.hex() or bomb.hex() in p.message for p in report.problems), report.problems
    assert {a.path for a in report.affected} == {"/bomb"}

    result = restore(plain, snapshot, str(tmp_path / "out"))
    assert [path for path, _ in result.failures] == ["/bomb"]
    assert (tmp_path / "out" / "good.txt").read_bytes() == b"still here\n"
    assert not (tmp_path / "out" / "bomb").exists()


def json_of(node: Node) -> dict[str, Any]:
    return node.to_json()


def test_bomb_repository_on_the_command_line_stays_small(plain: Repository, tmp_path: Path) -> None:
    """The attack report's repository (one 1 GiB blob of zeros in 80 KB): 1,084 MB before."""
    bomb = plant(plain, zstd_frame(2**30), 2**30)
    good = good_file(plain, b"good.txt", b"still here\n")
    save_root(plain, [json_of(file_node(b"bomb", [bomb], 6)), good])
    location = plain.store.location
    code, out, err, rss_check = run_cli("repo", "check", "--read-data", location)
    assert code == 8, err
    assert "Traceback" not in err
    assert "declares 1073741824 bytes of content" in err
    assert "note: unencrypted repository" in err
    code, out, err, rss_restore = run_cli("repo", "restore", location, "latest", str(tmp_path / "out"))
    assert code == 3, out + err
    assert "Traceback" not in err
    assert (tmp_path / "out" / "good.txt").exists()
    print(f"peak RSS: check --read-data {rss_check // 1024} MiB, restore {rss_restore // 1024} MiB")
    assert rss_check < 150 * 1024
    assert rss_restore < 150 * 1024


def test_a_file_declaring_8_tib_with_a_6_byte_blob_is_refused(plain: Repository, tmp_path: Path) -> None:
    """Named by check; restore refuses that one file and restores the rest of its folder."""
    blob = good_file(plain, b"x", b"sixby!")["content"]
    huge = file_node(b"huge", [bytes.fromhex(blob[0])], 2**43, sparse=True).to_json()
    snapshot = save_root(plain, [huge, good_file(plain, b"good.txt", b"ok")])
    report = check(plain)
    assert [(a.path, a.reason) for a in report.affected] == [
        ("/huge", "declares 8796093022208 bytes but its 1 chunks hold 6")
    ]
    result = restore(plain, snapshot, str(tmp_path / "out"))
    assert [path for path, _ in result.failures] == ["/huge"]
    assert "declares 8796093022208 bytes" in result.failures[0][1]
    assert not (tmp_path / "out" / "huge").exists()
    assert (tmp_path / "out" / "good.txt").read_bytes() == b"ok"


def test_a_file_size_other_than_its_chunks_is_named_by_check(plain: Repository) -> None:
    """Within the per-chunk bound, only the index tells: check and ``file_problem`` name it."""
    content = good_file(plain, b"x", b"sixby!")["content"]
    node = file_node(b"liar", [bytes.fromhex(content[0])], 7 * 2**20, sparse=True)
    save_root(plain, [node.to_json(), good_file(plain, b"good.txt", b"ok")])
    report = check(plain)
    assert any("declares 7340032 bytes but its 1 chunks hold 6" in p.message for p in report.problems)
    assert [(a.path, a.reason) for a in report.affected] == [
        ("/liar", "declares 7340032 bytes but its 1 chunks hold 6")
    ]
    assert plain.file_problem(node) == "declares 7340032 bytes but its 1 chunks hold 6"
    node.size = 6
    assert plain.file_problem(node) is None


def test_tree_entry_and_size_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RepositoryError, match="above the 500000 one folder listing may hold"):
        encode_entries([{}] * (MAX_TREE_ENTRIES + 1))
    with pytest.raises(IntegrityError, match="above the 67108864 a tree may hold"):
        Tree.decode(b" " * (MAX_TREE_BLOB + 1))
    monkeypatch.setattr(tree_module, "MAX_TREE_ENTRIES", 3)
    nodes = [file_node(b"f%d" % n, [], 0) for n in range(4)]
    with pytest.raises(IntegrityError, match="4 entries, above the 3"):
        Tree.decode(json.dumps({"v": 1, "nodes": [n.to_json() for n in nodes]}).encode())


def test_a_tree_of_too_many_entries_is_damage_not_a_crash(
    plain: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = [file_node(b"f%06d" % n, [], 0).to_json() for n in range(50)]
    snapshot = save_root(plain, entries)
    monkeypatch.setattr(tree_module, "MAX_TREE_ENTRIES", 40)
    report = check(plain)
    assert [p.kind for p in report.problems] == ["tree"]
    assert "50 entries" in report.problems[0].message
    with pytest.raises(IntegrityError, match="50 entries"):
        restore(plain, snapshot, str(tmp_path / "out"))


def test_numbers_beyond_a_file_system_are_refused() -> None:
    base = file_node(b"f", [], 0).to_json()
    for field, value in (("mode", 0o100644), ("uid", 2**40), ("mtime", 2**100), ("size", -1)):
        with pytest.raises(IntegrityError):
            Tree.decode(json.dumps({"v": 1, "nodes": [{**base, field: value}]}).encode())


@pytest.mark.parametrize("name", ["..", "/etc/x", "a/../../b", ".", "", "a\0b"])
def test_unsafe_names_are_refused_without_traceback(plain: Repository, tmp_path: Path, name: str) -> None:
    entry = {**good_file(plain, b"placeholder", b"evil"), "name": name}
    save_root(plain, [entry])
    report = check(plain)
    assert [p.kind for p in report.problems] == ["tree"], report.problems
    outside = tmp_path / "b"
    code, _out, err, _ = run_cli(
        "repo", "restore", plain.store.location, "latest", str(tmp_path / "target" / "t")
    )
    assert code != 0, err
    assert "Traceback" not in err
    assert "unsafe path" in err or "name" in err
    assert not outside.exists()
    assert not (tmp_path / "target" / "x").exists()
    assert not Path("/etc/x").exists()


# --- a truncated data pack loses only its files --------------------------------------------------


def test_a_truncated_data_pack_loses_only_its_files(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for number in range(12):
        folder = source / f"d{number % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{number}.bin").write_bytes(os.urandom(20_000 + number))
    store = LocalStore(tmp_path / "repo")
    repository = Repository.init(store, password=PASSWORD, kdf_params=FAST, pack_size=50_000)
    snapshot = backup(repository, [str(source)])
    by_pack: dict[str, set[BlobType]] = {}
    for location in repository.index:
        by_pack.setdefault(location.pack_id, set()).add(location.blob_type)
    assert all(len(kinds) == 1 for kinds in by_pack.values())  # trees never share a pack with data
    data_packs = sorted(pack for pack, kinds in by_pack.items() if kinds == {BlobType.DATA})
    victim = data_packs[-1]  # the last one: before, the folder listings were at its end
    name = pack_name(victim)
    full = store.load(name)
    cut = len(full) // 2
    store.store(name, full[:cut])
    # Blobs wholly before the cut still read; the others (and the trailer) are gone.
    held = {
        loc.blob_id for loc in repository.index if loc.pack_id == victim and loc.offset + loc.length > cut
    }
    repository.close()

    lost = set()
    for path in source.rglob("*.bin"):
        node_content = repository_node_content(tmp_path / "repo", snapshot, path)
        if held & set(node_content):
            lost.add("/" + str(path.relative_to("/")))
    assert lost
    assert len(lost) < 12

    repository = open_without_index(LocalStore(tmp_path / "repo"), password=PASSWORD)
    report = check(repository, read_data=True)
    assert {a.path for a in report.affected} == lost
    assert any(p.kind == "pack" and p.name == victim for p in report.problems)
    assert not any(p.kind == "tree" for p in report.problems)
    repository.close()

    repository = Repository.open(LocalStore(tmp_path / "repo"), password=PASSWORD)
    result = restore(repository, repository.load_snapshot(snapshot.id), str(tmp_path / "out"))
    assert {path for path, _ in result.failures} == lost
    for path in source.rglob("*.bin"):
        restored = tmp_path / "out" / path.relative_to("/")
        if "/" + str(path.relative_to("/")) in lost:
            assert not restored.exists()
        else:
            assert restored.read_bytes() == path.read_bytes()
    repository.close()


def repository_node_content(folder: Path, snapshot: Snapshot, path: Path) -> list[bytes]:
    repository = Repository.open(LocalStore(folder), password=PASSWORD)
    tree_id = bytes.fromhex(snapshot.tree)
    node = None
    for part in os.fsencode(path).strip(b"/").split(b"/"):
        node = Tree.decode(repository.load_blob(tree_id)).by_name()[part]
        tree_id = node.subtree or b""
    repository.close()
    assert node is not None
    return node.content


def test_data_and_tree_packs_are_listed_apart_in_the_store(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a").write_bytes(os.urandom(1000))
    repository = Repository.init(LocalStore(tmp_path / "repo"), password=None)
    backup(repository, [str(source)])
    packs = [info.name for info in repository.store.list(DATA_PREFIX)]
    assert len(packs) == 2
    kinds = sorted(
        {entry.blob_type for entry in repository.read_pack_trailer(name.rsplit("/", 1)[-1])}.pop()
        for name in packs
    )
    assert kinds == [BlobType.DATA, BlobType.TREE]
    repository.close()


def test_oversized_metadata_files_are_damage_read_with_a_ceiling(
    plain: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    from snapkeep.engine import repository as repository_module
    from snapkeep.engine.repository import snapshot_store

    save_root(plain, [good_file(plain, b"good.txt", b"ok")])
    reads: list[tuple[str, int | None]] = []
    load = plain.store.load

    def recording(name: str, offset: int = 0, length: int | None = None) -> bytes:
        reads.append((name, length))
        return load(name, offset, length)

    monkeypatch.setattr(plain.store, "load", recording)
    monkeypatch.setattr(snapshot_store, "MAX_SNAPSHOT_FILE", 100)
    monkeypatch.setattr(repository_module, "MAX_INDEX_FILE", 100)
    report = check(plain)
    kinds = sorted({problem.kind for problem in report.problems})
    assert kinds == ["index", "snapshot"], report.problems
    assert all(
        "larger than the 100 bytes it can be" in p.message for p in report.problems if p.kind != "blob"
    )
    metadata = [length for name, length in reads if name.startswith(("snapshots/", "index/"))]
    assert metadata
    assert set(metadata) == {101}  # never read whole


def test_check_reports_what_a_shared_subtree_fan_out_expands_to(plain: Repository) -> None:
    """The attack report's depth-24 fan-out: folders ``a`` and ``b`` name the same subtree."""
    leaf = encode_entries([good_file(plain, b"f", b"x" * 10)])
    tree_id = plain.blob_id(leaf)
    plain.add_blob(BlobType.TREE, leaf, tree_id)
    for _ in range(24):
        entries = [
            Node(name=name, type="dir", mode=0o755, subtree=tree_id).to_json() for name in (b"a", b"b")
        ]
        data = encode_entries(entries)
        tree_id = plain.blob_id(data)
        plain.add_blob(BlobType.TREE, data, tree_id)
    snapshot = Snapshot(id="", time=plain.clock.now(), hostname="forger", paths=["/x"], tree=tree_id.hex())
    plain.save_snapshot(snapshot)
    started = time.monotonic()
    report = check(plain)
    assert time.monotonic() - started < 5
    assert report.ok
    assert report.trees == 25
    assert report.expanded[snapshot.id] == {
        "files": 2**24,
        "dirs": 2**25 - 2,
        "others": 0,
        "bytes": 10 * 2**24,
    }
    assert report.to_dict()["expanded"][snapshot.id]["dirs"] == 2**25 - 2


def test_the_backup_never_writes_what_it_could_not_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "wide"
    source.mkdir()
    for number in range(5):
        (source / f"f{number}").write_bytes(b"x")
    repository = Repository.init(LocalStore(tmp_path / "repo"), password=None)
    with pytest.raises(RepositoryError, match="a DATA blob of 8388609 bytes is above the 8388608"):
        repository.add_blob(BlobType.DATA, bytes(MAX_DATA_BLOB + 1))
    monkeypatch.setattr(tree_module, "MAX_TREE_ENTRIES", 3)
    with pytest.raises(RepositoryError, match="a folder of 5 entries is above the 3"):
        backup(repository, [str(source)])
    assert repository.snapshots.ids() == []
    repository.close()


def test_a_folder_fan_out_far_beyond_the_declared_entries_stops_the_restore(
    plain: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folders ``a`` and ``b`` share one subtree, 12 levels deep: 8 KB of trees, 2^13 folders.
    A whole restore stops once it passes twice what the snapshot declares plus the slack."""
    from snapkeep.engine.restore import plan as plan_module

    monkeypatch.setattr(plan_module, "ENTRY_SLACK", 1000)
    leaf = Tree([file_node(b"leaf", [], 0)]).encode()
    tree_id = plain.blob_id(leaf)
    plain.add_blob(BlobType.TREE, leaf, tree_id)
    for _ in range(12):
        folder = Tree(
            [Node(b"a", "dir", mode=0o755, subtree=tree_id), Node(b"b", "dir", mode=0o755, subtree=tree_id)]
        ).encode()
        tree_id = plain.blob_id(folder)
        plain.add_blob(BlobType.TREE, folder, tree_id)
    snapshot = plain.load_snapshot(
        plain.save_snapshot(
            Snapshot(id="", time=_dt.datetime.now(_dt.UTC), hostname="x", paths=["/"], tree=tree_id.hex())
        )
    )
    with pytest.raises(IntegrityError, match="expand to more than 1000 entries"):
        restore(plain, snapshot, str(tmp_path / "out"))
    created = sum(len(dirs) + len(files) for _, dirs, files in os.walk(tmp_path / "out"))
    assert created <= 1100
    # the same snapshot, declaring what it holds, restores (a legitimately shared subtree)
    honest = plain.load_snapshot(
        plain.save_snapshot(
            Snapshot(
                id="",
                time=_dt.datetime.now(_dt.UTC),
                hostname="x",
                paths=["/"],
                tree=tree_id.hex(),
                stats={"files": 2**12, "dirs": 2**13},
            )
        )
    )
    result = restore(plain, honest, str(tmp_path / "honest"))
    assert result.ok
    assert result.files == 2**12
