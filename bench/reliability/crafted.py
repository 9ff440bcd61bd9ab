"""Damaged and forged repositories: what ``check`` says, what restore does, how much memory it takes.

A pristine repository (encrypted, and unencrypted) holds one incremental snapshot and one
Compressed archive of a small tree. Each case copies it, damages or forges something (file-level
damage: truncated, bit-flipped or deleted packs, index files, snapshots, archives, manifests, key
files; forged content written with the repository's own key: tree entries named ``..``, ``/x`` or
``a/../../b``, a symlink out of the target and a folder through it, device nodes and set-ID files,
a zstd frame that expands to 10 GiB, a 6-byte blob declared as a 1 TiB file, a 300,000-entry tree,
a folder DAG of depth 24) and runs ``snapkeep repo check``, ``check --read-data`` and ``repo restore``
as children measured by ``bench.measure`` (wall time, peak RSS), each with a timeout.

A case passes when: no command prints a Python traceback or runs into the timeout; peak memory stays
under ``RSS_LIMIT_MIB``; nothing outside the restore target changes (a sentinel folder with a victim
file, and the absolute names the forgeries aim at); damage is named by ``check`` (exit code not 0);
and restore either refuses with a message or restores what is intact.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import random
import secrets
import shutil
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import zstandard

from bench.measure import run_measured
from bench.reliability.common import (
    FAST_KDF,
    PASSWORD,
    Outcome,
    digest,
    environment,
    first_line,
    fresh,
    has_traceback,
    snapkeep,
    snapkeep_command,
)
from snapkeep.engine.archive import archive_name, manifest_name, write_archive
from snapkeep.engine.archive.manifest import ArchiveManifest, encode_manifest
from snapkeep.engine.archive.reader import _member_mtime, _member_type, member_xattrs
from snapkeep.engine.archive.segments import SEGMENT_SIZE, seal_segments
from snapkeep.engine.archive.writer import ArchiveEntry, xattrs_digest
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.data.tree import encode_entries
from snapkeep.engine.format import CIPHER_NAMES, BlobType, CipherId, Compression, pack_name
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository.pack_format import PackBuilder
from snapkeep.storage.local import LocalStore

RSS_LIMIT_MIB = 512
TIMEOUT_S = 240.0
ESCAPE = "/tmp/snapkeep-reliability-escape"  # forged absolute names aim here  # noqa: S108


@dataclass
class Pristine:
    root: Path
    repo: Path
    source: Path
    encrypted: bool
    snapshot: str
    archive: str


def build_pristine(root: Path, *, encrypted: bool, rng: random.Random) -> Pristine:
    """A small tree (24 files, one of 4 MiB) backed up once as a snapshot and once as an archive."""
    source = fresh(root / "source")
    for number in range(23):
        (source / f"file{number:02}.txt").write_bytes(rng.randbytes(rng.randrange(100, 60000)))
    (source / "big.bin").write_bytes(rng.randbytes(4 * 1024 * 1024))
    repo = root / ("repo-encrypted" if encrypted else "repo-plain")
    shutil.rmtree(repo, ignore_errors=True)
    Repository.init(LocalStore(repo), password=PASSWORD if encrypted else None, kdf_params=FAST_KDF).close()
    done = snapkeep("repo", "backup", str(repo), str(source), "--json", env=_env(encrypted))
    if done.returncode != 0:
        raise AssertionError(f"backup failed: {done.stderr}")
    repository = _open(repo, encrypted)
    try:
        manifest = write_archive(repository, [str(source)], compressed=True)
    finally:
        repository.close()
    return Pristine(root, repo, source, encrypted, json.loads(done.stdout)["id"], manifest.id)


def _env(encrypted: bool) -> dict[str, str]:
    env = environment()
    if not encrypted:
        env.pop("SNAPKEEP_PASSWORD", None)
    return env


def _open(repo: Path, encrypted: bool) -> Repository:
    return Repository.open(LocalStore(repo), password=PASSWORD if encrypted else None)


# -- file-level damage --------------------------------------------------------------------------


def _one(repo: Path, prefix: str, largest: bool = False) -> Path:
    files = sorted(
        (p for p in (repo / prefix).rglob("*") if p.is_file()), key=lambda p: (p.stat().st_size, p.name)
    )
    if not files:
        raise AssertionError(f"nothing under {prefix}")
    return files[-1] if largest else files[0]


def _flip(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x40
    path.write_bytes(bytes(data))


def _truncate(path: Path, share: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * share)])


def _archive_file(repo: Path, suffix: str) -> Path:
    return next(p for p in (repo / "archives").iterdir() if p.name.endswith(suffix))


def _key_params(repo: Path, **params: Any) -> None:
    key = _one(repo, "keys")
    document = json.loads(key.read_text())
    if "kdf_params" not in document:
        raise AssertionError("an unencrypted repository has no KDF")
    document["kdf_params"].update(params)
    key.write_text(json.dumps(document))


def _scrypt_huge(repo: Path) -> None:
    key = _one(repo, "keys")
    document = json.loads(key.read_text())
    document["kdf"] = "scrypt"
    document["kdf_params"] = {"n": 2**24, "r": 8, "p": 1, "salt": document["kdf_params"]["salt"]}
    key.write_text(json.dumps(document))


Damage = Callable[[Path], None]

#: name -> (what it does to the copy, structure restored afterwards, encrypted-only)
DAMAGE: dict[str, tuple[Damage, str, bool]] = {
    "pack flipped byte (largest pack)": (lambda r: _flip(_one(r, "data", largest=True)), "snapshot", False),
    "pack truncated to half (largest)": (
        lambda r: _truncate(_one(r, "data", largest=True), 0.5),
        "snapshot",
        False,
    ),
    "pack deleted (largest)": (lambda r: _one(r, "data", largest=True).unlink(), "snapshot", False),
    "pack with junk appended": (
        lambda r: _one(r, "data").write_bytes(_one(r, "data").read_bytes() + b"junk" * 100),
        "snapshot",
        False,
    ),
    "index file flipped byte": (lambda r: _flip(_one(r, "index")), "snapshot", False),
    "every index file deleted": (
        lambda r: [p.unlink() for p in (r / "index").iterdir()] and None,
        "snapshot",
        False,
    ),
    "snapshot file flipped byte": (lambda r: _flip(_one(r, "snapshots")), "snapshot", False),
    "snapshot file truncated to 0": (lambda r: _truncate(_one(r, "snapshots"), 0), "snapshot", False),
    "config garbage": (lambda r: (r / "config").write_text("{not json"), "snapshot", False),
    "key file: Argon2 time_cost 100000": (
        lambda r: _key_params(r, time_cost=100_000, memory_cost=65536),
        "snapshot",
        True,
    ),
    "key file: Argon2 memory 4 GiB": (
        lambda r: _key_params(r, memory_cost=4 * 1024 * 1024),
        "snapshot",
        True,
    ),
    "key file: scrypt N = 2^24": (_scrypt_huge, "snapshot", True),
    "archive flipped byte": (lambda r: _flip(_archive_file(r, ".tar.zst")), "archive", False),
    "archive truncated to half": (lambda r: _truncate(_archive_file(r, ".tar.zst"), 0.5), "archive", False),
    "archive manifest flipped byte": (lambda r: _flip(_archive_file(r, ".manifest")), "archive", False),
    "archive manifest deleted": (lambda r: _archive_file(r, ".manifest").unlink(), "archive", False),
}


# -- forged content -----------------------------------------------------------------------------


def _entry(name: str, kind: str, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "type": kind,
        "mode": fields.pop("mode", 0o644),
        "uid": 0,
        "gid": 0,
    }
    entry.update({"mtime": 1_700_000_000 * 10**9, "ctime": 1_700_000_000 * 10**9, "inode": 0, "dev": 0})
    entry.update(fields)
    return entry


def _tree(repository: Repository, entries: list[dict[str, Any]]) -> str:
    data = encode_entries(sorted(entries, key=lambda e: e["name"].encode()))
    blob_id = repository.blob_id(data)
    repository.add_blob(BlobType.TREE, data, blob_id)
    return blob_id.hex()


def _data(repository: Repository, data: bytes) -> str:
    blob_id = repository.blob_id(data)
    repository.add_blob(BlobType.DATA, data, blob_id)
    return blob_id.hex()


def _save(repository: Repository, root_tree: str, note: str, stats: dict[str, Any] | None = None) -> str:
    snapshot = Snapshot(
        id="",
        time=_dt.datetime.now(_dt.UTC),
        hostname="forged",
        paths=["/forged"],
        tree=root_tree,
        tags=[note],
        stats=stats or {},
    )
    return repository.save_snapshot(snapshot)


def _folder(repository: Repository, name: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return _entry(name, "dir", mode=0o755, subtree=_tree(repository, entries))


def forge_names(repository: Repository, name: str) -> str:
    ok = _entry("ok.txt", "file", size=6, content=[_data(repository, b"intact")])
    evil = _entry(name, "file", size=5, content=[_data(repository, b"owned")])
    return _save(repository, _tree(repository, [ok, evil]), f"name {name}")


def forge_symlink_escape(repository: Repository, outside: Path) -> tuple[str, str]:
    """Snapshot 1: ``d -> outside``; snapshot 2: folder ``d`` holding ``victim``. Restored in turn
    into one target, the second must not write through the first's link."""
    first = _save(repository, _tree(repository, [_entry("d", "symlink", target=str(outside))]), "link out")
    victim = _entry("victim", "file", size=6, content=[_data(repository, b"forged")])
    second = _save(repository, _tree(repository, [_folder(repository, "d", [victim])]), "through link")
    return first, second


def forge_specials(repository: Repository) -> str:
    entries = [
        _entry("mem", "chardev", mode=0o666, rdev=os.makedev(1, 1)),
        _entry("sda", "blockdev", mode=0o666, rdev=os.makedev(8, 0)),
        _entry("fifo", "fifo", mode=0o666),
        _entry("suid-sh", "file", mode=0o4755, size=6, content=[_data(repository, b"#!/bin")]),
    ]
    return _save(repository, _tree(repository, entries), "specials")


def forge_huge_size(repository: Repository) -> str:
    entry = _entry("huge", "file", size=2**40, sparse=True, content=[_data(repository, b"tiny!!")])
    return _save(repository, _tree(repository, [entry]), "1 TiB from 6 bytes")


def forge_zstd_bomb(repository: Repository, expanded: int) -> str:
    """A DATA blob whose stored zstd frame expands to ``expanded`` bytes of zeros while the index
    declares the frame's own length as its content (so every stored-length bound holds and only the
    frame header tells), in a pack and index file of its own. The frame is compressed piece by
    piece: never ``expanded`` bytes in memory."""
    piece = bytes(16 * 1024 * 1024)
    compressor = zstandard.ZstdCompressor(level=1).compressobj(size=expanded)
    frame = bytearray()
    for start in range(0, expanded, len(piece)):
        frame += compressor.compress(memoryview(piece)[: min(len(piece), expanded - start)])
    frame += compressor.flush()
    blob_id = secrets.token_bytes(32)  # never reached: the frame is refused before it expands
    builder = PackBuilder()
    declared = len(frame)
    builder.add(
        blob_id, BlobType.DATA, Compression.ZSTD, repository.cipher.seal(bytes(frame), blob_id), declared
    )
    entries = list(builder.entries)
    pack_id, data = builder.finish(repository.cipher)
    repository.store.store(pack_name(pack_id), data)
    repository.write_index_file([entry.located_in(pack_id) for entry in entries])
    repository.reload_index()
    entry = _entry("bomb", "file", size=declared, content=[blob_id.hex()])
    return _save(repository, _tree(repository, [entry]), "zstd bomb")


def forge_wide(repository: Repository, count: int) -> str:
    """One folder of ``count`` files, declared honestly in the snapshot's stats: a large listing
    within the bounds, restored whole."""
    blob = _data(repository, b"x")
    entries = [_entry(f"f{number:06}", "file", size=1, content=[blob]) for number in range(count)]
    stats = {"files": count, "dirs": 0}
    return _save(repository, _tree(repository, entries), f"{count} entries", stats=stats)


def forge_fanout(repository: Repository, depth: int) -> str:
    tree = _tree(repository, [_entry("leaf", "file", size=1, content=[_data(repository, b"x")])])
    for _ in range(depth):
        tree = _tree(
            repository,
            [_entry("a", "dir", mode=0o755, subtree=tree), _entry("b", "dir", mode=0o755, subtree=tree)],
        )
    return _save(repository, tree, f"fan-out depth {depth}")


def forge_archive(repository: Repository, members: list[tuple[tarfile.TarInfo, bytes]]) -> str:
    """An Archived archive holding ``members``, with a manifest that matches the stream field by
    field (sealed in segments for an encrypted repository): only the member names and links are
    hostile, so what is tested is the restore's path safety, not the manifest check."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    raw = buffer.getvalue()
    entries = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for member in tar:
            extracted = tar.extractfile(member) if member.isfile() else None
            data = extracted.read() if extracted is not None else b""
            entries.append(
                ArchiveEntry(
                    path=member.name.rstrip("/") if member.isdir() else member.name,
                    type=_member_type(member),
                    mode=member.mode,
                    uid=member.uid,
                    gid=member.gid,
                    mtime_ns=_member_mtime(member),
                    size=member.size if member.isfile() else 0,
                    link=member.linkname if member.issym() or member.islnk() else "",
                    blake3=blake3.blake3(data).hexdigest() if member.isfile() else "",
                    xattrs=xattrs_digest(member_xattrs(member)),
                )
            )
    archive_id = secrets.token_hex(32)
    encrypted = repository.cipher.cipher_id is not CipherId.NONE
    stored = (
        b"".join(seal_segments(iter([raw]), repository.cipher, archive_id.encode(), SEGMENT_SIZE))
        if encrypted
        else raw
    )
    repository.store.store(archive_name(archive_id, False), stored)
    manifest = ArchiveManifest(
        id=archive_id,
        time=_dt.datetime.now(_dt.UTC),
        structure="archived",
        compression="none",
        encryption=CIPHER_NAMES[repository.cipher.cipher_id],
        segment_size=SEGMENT_SIZE if encrypted else 0,
        sources=["/forged"],
        size=len(stored),
        blake3=blake3.blake3(stored).hexdigest(),
        entries=entries,
    )
    repository.store.store(manifest_name(archive_id), encode_manifest(manifest, repository.cipher))
    return archive_id


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, *, mode: int = 0o644, link: str = "", dev: int = 0
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, link, 1_700_000_000
    info.devmajor, info.devminor = os.major(dev), os.minor(dev)
    return info


def forge_tar_name(repository: Repository, name: str) -> str:
    return forge_archive(repository, [(_member("ok.txt"), b"intact"), (_member(name), b"owned")])


def forge_tar_link_escape(repository: Repository, outside: Path) -> str:
    return forge_archive(
        repository,
        [
            (_member("d", tarfile.SYMTYPE, mode=0o777, link=str(outside)), b""),
            (_member("d/victim"), b"forged"),
        ],
    )


def forge_tar_hardlink_out(repository: Repository) -> str:
    return forge_archive(
        repository,
        [(_member("ok.txt"), b"intact"), (_member("h", tarfile.LNKTYPE, link="../../../../etc/passwd"), b"")],
    )


def forge_tar_specials(repository: Repository) -> str:
    return forge_archive(
        repository,
        [
            (_member("mem", tarfile.CHRTYPE, mode=0o666, dev=os.makedev(1, 1)), b""),
            (_member("fifo", tarfile.FIFOTYPE, mode=0o666), b""),
            (_member("suid-sh", mode=0o4755), b"#!/bin"),
        ],
    )


# -- running the commands ---------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    code: int
    seconds: float
    rss_mib: float
    message: str
    traceback: bool
    timed_out: bool


def run_step(name: str, args: list[str], logs: Path, encrypted: bool) -> Step:
    measured = run_measured(
        snapkeep_command(*args), log_prefix=logs / name, env=_env(encrypted), timeout=TIMEOUT_S
    )
    out = Path(f"{logs / name}.out").read_text(errors="replace")
    err = Path(f"{logs / name}.err").read_text(errors="replace")
    return Step(
        name,
        measured.returncode,
        round(measured.wall_s, 2),
        round(measured.max_rss_kib / 1024, 1),
        first_line(err) or first_line(out),
        has_traceback(out + err),
        measured.timed_out,
    )


def watched(outside: Path) -> dict[str, Any]:
    """What must not change: the sentinel folder and the absolute names forgeries aim at."""
    return {"outside": digest(outside), "escape": os.path.lexists(ESCAPE), "etc": os.path.lexists("/etc/x")}


def specials_created(target: Path) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(target):
        for name in dirs + files:
            mode = os.lstat(os.path.join(folder, name)).st_mode
            if (
                stat.S_ISCHR(mode)
                or stat.S_ISBLK(mode)
                or stat.S_ISFIFO(mode)
                or mode & (stat.S_ISUID | stat.S_ISGID)
            ):
                found.append(name)
    return found


def run_case(
    pristine: Pristine,
    name: str,
    prepare: Callable[[Path], list[str]],
    *,
    damage: bool,
    work: Path,
) -> Outcome:
    """Copy the pristine repository, ``prepare`` it (returns the IDs to restore in turn), then run
    check, check --read-data and every restore, and judge the case."""
    flavour = "encrypted" if pristine.encrypted else "plain"
    case_dir = fresh(work / f"{flavour}-{''.join(c if c.isalnum() else '_' for c in name)[:60]}")
    repo = case_dir / "repo"
    shutil.copytree(pristine.repo, repo)
    outside = fresh(case_dir / "outside")
    (outside / "victim").write_text("original")
    before = watched(outside)
    references = prepare(repo)
    logs = case_dir / "logs"
    steps = [
        run_step("check", ["repo", "check", str(repo)], logs, pristine.encrypted),
        run_step("check-read-data", ["repo", "check", str(repo), "--read-data"], logs, pristine.encrypted),
    ]
    target = fresh(case_dir / "target")
    for number, reference in enumerate(references):
        steps.append(
            run_step(
                f"restore{number}",
                ["repo", "restore", str(repo), reference, str(target)],
                logs,
                pristine.encrypted,
            )
        )
    problems = []
    for step in steps:
        if step.traceback:
            problems.append(f"{step.name} printed a traceback")
        if step.timed_out:
            problems.append(f"{step.name} ran past {TIMEOUT_S:.0f} s")
        if step.rss_mib > RSS_LIMIT_MIB:
            problems.append(f"{step.name} peaked at {step.rss_mib} MiB")
    if watched(outside) != before:
        problems.append("something outside the target changed")
    if damage and steps[0].code == 0 and steps[1].code == 0:
        problems.append("check did not see the damage")
    specials = specials_created(target)
    if specials:
        problems.append(f"special files created: {specials}")
    shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(repo, ignore_errors=True)
    return Outcome(
        f"crafted ({flavour})",
        name,
        not problems,
        "; ".join(problems),
        {
            step.name: {"code": step.code, "s": step.seconds, "rss_mib": step.rss_mib, "says": step.message}
            for step in steps
        },
    )


def crafted_series(
    root: Path, rng: random.Random, *, bomb_bytes: int, wide: int, depth: int
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for encrypted in (True, False):
        pristine = build_pristine(
            fresh(root / ("pristine-enc" if encrypted else "pristine-plain")), encrypted=encrypted, rng=rng
        )
        work = root / "cases"
        for name, (damage_it, structure, encrypted_only) in DAMAGE.items():
            if encrypted_only and not encrypted:
                continue
            reference = pristine.snapshot if structure == "snapshot" else pristine.archive

            def prepare(repo: Path, damage_it: Damage = damage_it, reference: str = reference) -> list[str]:
                damage_it(repo)
                return [reference]

            outcomes.append(run_case(pristine, name, prepare, damage=True, work=work))
        #: name -> (forge, whether check must call it damage)
        forgeries: dict[str, tuple[Callable[[Repository, Path], list[str]], bool]] = {
            "tree entry named ..": (lambda r, o: [forge_names(r, "..")], True),
            f"tree entry named {ESCAPE}": (lambda r, o: [forge_names(r, ESCAPE)], True),
            "tree entry named a/../../b": (lambda r, o: [forge_names(r, "a/../../b")], True),
            "symlink out of the target, then a folder through it": (
                lambda r, o: list(forge_symlink_escape(r, o)),
                False,
            ),
            "device nodes, a FIFO and a set-user-ID file": (lambda r, o: [forge_specials(r)], False),
            "6-byte blob declared as a 1 TiB file": (lambda r, o: [forge_huge_size(r)], True),
            f"zstd frame expanding to {bomb_bytes / 2**30:.0f} GiB (its own length declared)": (
                lambda r, o: [forge_zstd_bomb(r, bomb_bytes)],
                True,
            ),
            f"one tree of {wide:,} entries": (lambda r, o: [forge_wide(r, wide)], False),
            f"folder DAG of depth {depth} (2^{depth} paths)": (lambda r, o: [forge_fanout(r, depth)], False),
            "tar member named a/../../b": (lambda r, o: [forge_tar_name(r, "a/../../b")], False),
            "tar member named ../escape": (lambda r, o: [forge_tar_name(r, "../escape")], False),
            f"tar member named {ESCAPE}": (lambda r, o: [forge_tar_name(r, ESCAPE)], False),
            "tar symlink out of the target, then a member through it": (
                lambda r, o: [forge_tar_link_escape(r, o)],
                False,
            ),
            "tar hard link to ../../../../etc/passwd": (lambda r, o: [forge_tar_hardlink_out(r)], False),
            "tar device node, FIFO and set-user-ID member": (lambda r, o: [forge_tar_specials(r)], False),
        }
        for name, (forge, is_damage) in forgeries.items():

            def prepare_forged(
                repo: Path,
                forge: Callable[[Repository, Path], list[str]] = forge,
                encrypted: bool = encrypted,
            ) -> list[str]:
                repository = _open(repo, encrypted)
                try:
                    return forge(repository, repo.parent / "outside")
                finally:
                    repository.close()

            outcomes.append(run_case(pristine, name, prepare_forged, damage=is_damage, work=work))
    return outcomes
