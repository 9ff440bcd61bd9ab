"""Hypothesis strategies for random file trees, and helpers to build and compare them.

A tree spec is a nested ``Dir`` whose entries are files (sizes from empty to multi-chunk, some
sparse), symlinks, fifos, hard links to an earlier file, and sub-folders; names are bytes and may be
invalid UTF-8. ``materialize`` writes a spec to disk with the given modes, owners (as root) and
nanosecond mtimes; ``describe_tree`` gives a comparable description of a folder on disk.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
from dataclasses import dataclass, field

from hypothesis import strategies as st

SIZES = [0, 1, 17, 4096, 65_537, 700_000, 2_600_000]
FILE_MODES = [0o644, 0o600, 0o755, 0o640, 0o4755, 0o444]
DIR_MODES = [0o755, 0o700, 0o750, 0o1777, 0o555]
OWNERS = [(0, 0), (1000, 1000), (2001, 2002), (54321, 54321)]


@dataclass
class File:
    size: int
    seed: int
    mode: int
    mtime_ns: int
    owner: tuple[int, int]
    sparse: bool = False
    xattr: bytes | None = None


@dataclass
class Symlink:
    target: bytes
    mtime_ns: int


@dataclass
class Fifo:
    mode: int
    mtime_ns: int


@dataclass
class HardLink:
    index: int  # which earlier file (modulo the count so far)


@dataclass
class Dir:
    entries: dict[bytes, object] = field(default_factory=dict)
    mode: int = 0o755
    mtime_ns: int = 0


def _valid_name(name: bytes) -> bool:
    return bool(name) and name not in (b".", b"..") and b"/" not in name and b"\0" not in name


names = st.one_of(
    st.text(alphabet="abcdefXYZ0123 _.-éß中", min_size=1, max_size=10).map(lambda text: text.encode("utf-8")),
    st.binary(min_size=1, max_size=8).map(lambda raw: b"n" + raw),  # often invalid UTF-8
).filter(_valid_name)

mtimes = st.integers(min_value=0, max_value=2**34 * 10**9)

files = st.builds(
    File,
    size=st.sampled_from(SIZES),
    seed=st.integers(0, 2**32),
    mode=st.sampled_from(FILE_MODES),
    mtime_ns=mtimes,
    owner=st.sampled_from(OWNERS),
    sparse=st.booleans(),
    xattr=st.one_of(st.none(), st.binary(max_size=20)),
)
leaves = st.one_of(
    files,
    files,
    st.builds(
        Symlink, target=st.one_of(names, st.just(b"../../outside"), st.just(b"/etc/passwd")), mtime_ns=mtimes
    ),
    st.builds(Fifo, mode=st.sampled_from([0o644, 0o600]), mtime_ns=mtimes),
    st.builds(HardLink, index=st.integers(0, 50)),
)


def _dirs(children: st.SearchStrategy[object]) -> st.SearchStrategy[Dir]:
    return st.builds(
        Dir,
        entries=st.dictionaries(names, children, max_size=5),
        mode=st.sampled_from(DIR_MODES),
        mtime_ns=mtimes,
    )


trees = _dirs(st.recursive(leaves, _dirs, max_leaves=14))


def _content(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def materialize(spec: Dir, root: bytes, *, as_root: bool) -> None:
    """Create ``spec`` under the existing folder ``root``."""
    created: list[bytes] = []
    _make_dir(spec, root, created, as_root)


def _make_dir(spec: Dir, path: bytes, created: list[bytes], as_root: bool) -> None:
    for name, entry in spec.entries.items():
        child = path + b"/" + name
        if isinstance(entry, File):
            data = _content(entry.size, entry.seed)
            with open(child, "wb") as handle:
                if entry.sparse and entry.size >= 65_537:
                    # A hole in the middle: keep only the first and last 4 KiB as data.
                    handle.write(data[:4096])
                    handle.seek(entry.size - 4096)
                    handle.write(data[-4096:])
                else:
                    handle.write(data)
            if entry.xattr is not None:
                os.setxattr(child, "user.snapkeep-test", entry.xattr)
            if as_root:
                os.chown(child, *entry.owner)
            os.chmod(child, entry.mode)
            os.utime(child, ns=(entry.mtime_ns, entry.mtime_ns))
            created.append(child)
        elif isinstance(entry, Symlink):
            os.symlink(entry.target, child)
            os.utime(child, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
        elif isinstance(entry, Fifo):
            os.mkfifo(child, entry.mode)
            os.utime(child, ns=(entry.mtime_ns, entry.mtime_ns))
        elif isinstance(entry, HardLink):
            if created:
                os.link(created[entry.index % len(created)], child)
        elif isinstance(entry, Dir):
            os.mkdir(child)
            _make_dir(entry, child, created, as_root)
    os.chmod(path, spec.mode)
    os.utime(path, ns=(spec.mtime_ns, spec.mtime_ns))


def describe_tree(root: bytes) -> dict[bytes, tuple[object, ...]]:
    """Relative path -> comparable facts (type, mode, owner, mtime, size, content digest, link
    target, xattrs, hard-link partner set, sparse-ness) for everything under ``root``."""
    facts: dict[bytes, tuple[object, ...]] = {}
    inodes: dict[tuple[int, int], list[bytes]] = {}
    entries: list[tuple[bytes, os.stat_result]] = []
    for folder, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            relative = os.path.relpath(path, root)
            entries.append((relative, info))
            if stat.S_ISREG(info.st_mode):
                inodes.setdefault((info.st_dev, info.st_ino), []).append(relative)
    for relative, info in entries:
        path = os.path.join(root, relative)
        kind = stat.S_IFMT(info.st_mode)
        digest = target = b""
        sparse = False
        links: tuple[bytes, ...] = ()
        if stat.S_ISREG(info.st_mode):
            with open(path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).digest()
            sparse = info.st_size >= 65_537 and info.st_blocks * 512 < info.st_size // 2
            links = tuple(sorted(inodes[(info.st_dev, info.st_ino)]))
        elif stat.S_ISLNK(info.st_mode):
            target = os.readlink(path)
        xattrs = (
            tuple(sorted((key, os.getxattr(path, key)) for key in os.listxattr(path)))
            if not stat.S_ISLNK(info.st_mode)
            else ()
        )
        facts[relative] = (
            kind,
            stat.S_IMODE(info.st_mode) if not stat.S_ISLNK(info.st_mode) else 0,
            info.st_uid,
            info.st_gid,
            info.st_mtime_ns,
            info.st_size if not stat.S_ISDIR(info.st_mode) else 0,
            digest,
            target,
            xattrs,
            links,
            sparse,
        )
    return facts
