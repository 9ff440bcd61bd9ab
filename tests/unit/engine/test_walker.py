"""Walking: exclude globs, sorted listings, metadata capture, sources, sparse detection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snapkeep.engine.data.tree import DIR, FIFO, FILE, SYMLINK
from snapkeep.engine.fs.walker import Describer, Excludes, has_holes, prepare_sources, scan_directory


@pytest.mark.parametrize(
    ("pattern", "path", "excluded"),
    [
        ("*.log", "/srv/a/b/x.log", True),
        ("*.log", "/srv/a/b/x.log2", False),
        ("*.log", "/srv/a/b/x.log/inner", False),
        ("cache", "/home/u/cache", True),
        ("cache", "/home/u/cached", False),
        ("/home/*/tmp", "/home/u1/tmp", True),
        ("/home/*/tmp", "/home/u1/x/tmp", False),
        ("/home/**/tmp", "/home/tmp", True),
        ("/home/**/tmp", "/home/u1/x/y/tmp", True),
        ("/home/**/tmp", "/srv/home/u1/tmp", False),
        ("**/node_modules", "/a/b/node_modules", True),
        ("public_html/*.bak", "/home/u/public_html/a.bak", True),
        ("public_html/*.bak", "/home/u/public_html/sub/a.bak", False),
        ("file?.txt", "/x/file1.txt", True),
        ("file?.txt", "/x/file12.txt", False),
        ("[ab]*.txt", "/x/beta.txt", True),
        ("[!ab]*.txt", "/x/beta.txt", False),
        ("/data/", "/data", True),
    ],
)
def test_exclude_globs(pattern: str, path: str, excluded: bool) -> None:
    assert Excludes([pattern]).match(path.encode()) is excluded


def test_excludes_combine_and_handle_non_utf8() -> None:
    excludes = Excludes(["*.tmp", "/var/cache"])
    assert excludes.match(b"/a/\xff.tmp")
    assert excludes.match(b"/var/cache")
    assert not excludes.match(b"/var/cache2")
    assert not Excludes([])
    assert not Excludes([]).match(b"/anything")


def test_scan_directory_is_sorted_by_bytes(tmp_path: Path) -> None:
    for name in [b"b", b"a", b"\xff", b"A"]:
        (tmp_path / os.fsdecode(name)).write_bytes(b"")
    names = [name for name, _ in scan_directory(os.fsencode(tmp_path))]
    assert names == [b"A", b"a", b"b", b"\xff"]


def test_describe_records_metadata(tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path)
    data = folder + b"/data"
    with open(data, "wb") as handle:
        handle.write(b"x" * 10)
    os.setxattr(data, "user.note", b"hello")
    os.chmod(data, 0o640)
    os.utime(data, ns=(1, 1_500_000_000_123_456_789))
    os.symlink(b"../\xff", folder + b"/link")
    os.mkfifo(folder + b"/pipe")
    describer = Describer()
    nodes = {
        name: describer.describe(name, folder + b"/" + name, info) for name, info in scan_directory(folder)
    }
    assert nodes[b"data"].type == FILE
    assert nodes[b"data"].mode == 0o640
    assert nodes[b"data"].size == 10
    assert nodes[b"data"].mtime_ns == 1_500_000_000_123_456_789
    assert nodes[b"data"].xattrs == {"user.note": b"hello"}
    assert nodes[b"data"].inode == os.lstat(data).st_ino
    assert nodes[b"link"].type == SYMLINK
    assert nodes[b"link"].target == b"../\xff"
    assert nodes[b"pipe"].type == FIFO
    assert describer.describe(b"x", folder, os.lstat(folder)).type == DIR
    if os.geteuid() == 0:
        assert nodes[b"data"].user == "root"


def test_has_holes(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as handle:
        handle.write(b"a")
        handle.seek(4 * 1024 * 1024)
        handle.write(b"b")
    dense = tmp_path / "dense"
    dense.write_bytes(b"c" * 100_000)
    for path, expected in [(sparse, True), (dense, False)]:
        fd = os.open(path, os.O_RDONLY)
        try:
            assert has_holes(fd, os.fstat(fd).st_size, os.fstat(fd)) is expected
        finally:
            os.close(fd)


def test_prepare_sources_drops_nested_and_reports_missing(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    base = os.fsencode(tmp_path)
    roots, missing = prepare_sources(
        [str(tmp_path / "a" / "b"), str(tmp_path / "a"), str(tmp_path / "gone"), str(tmp_path / "a") + "/"]
    )
    assert roots == [base + b"/a"]
    assert missing == [base + b"/gone"]
