"""Tree blobs: deterministic encoding, byte names, and validation of unsafe names."""

from __future__ import annotations

import json

import pytest

from snapkeep.engine.data.tree import DIR, FILE, SYMLINK, Node, Tree, validate_name
from snapkeep.errors import IntegrityError, UnsafePathError


def full_node(name: bytes) -> Node:
    return Node(
        name=name,
        type=FILE,
        mode=0o4755,
        uid=1001,
        gid=1002,
        user="alice",
        group="staff",
        mtime_ns=1_700_000_000_123_456_789,
        ctime_ns=1_700_000_001_000_000_001,
        size=12345,
        inode=99,
        device=2049,
        links=2,
        xattrs={"user.a": b"\x00\xff", "system.posix_acl_access": b"\x02\x00\x00\x00"},
        hardlink="2049:99",
        sparse=True,
        content=[bytes(range(32)), bytes(32)],
    )


def test_round_trip_keeps_every_field_and_non_utf8_names() -> None:
    nodes = [
        full_node(b"caf\xe9-latin1"),
        Node(name="répertoire".encode(), type=DIR, mode=0o755, subtree=b"\x11" * 32),
        Node(name=b"link", type=SYMLINK, target=b"../\xff\xfe-target"),
    ]
    decoded = Tree.decode(Tree(nodes).encode())
    assert decoded.by_name() == {node.name: node for node in nodes}


def test_encoding_is_deterministic_whatever_the_order() -> None:
    first = [full_node(b"b"), full_node(b"a"), full_node(b"\xff")]
    second = list(reversed(first))
    assert Tree(first).encode() == Tree(second).encode()
    assert [node.name for node in Tree.decode(Tree(first).encode()).nodes] == [b"a", b"b", b"\xff"]


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(IntegrityError, match="duplicate"):
        Tree([full_node(b"a"), full_node(b"a")]).encode()


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "/etc", "a\u0000b"])
def test_decode_rejects_unsafe_names(name: str) -> None:
    raw = Node(name=b"x", type=FILE).to_json()
    raw["name"] = name
    blob = json.dumps({"v": 1, "nodes": [raw]}).encode()
    with pytest.raises(UnsafePathError):
        Tree.decode(blob)


def test_decode_rejects_unsafe_base64_names() -> None:
    raw = Node(name=b"x", type=FILE).to_json()
    del raw["name"]
    raw["name_b64"] = "Li4="  # ".."
    with pytest.raises(UnsafePathError):
        Tree.decode(json.dumps({"v": 1, "nodes": [raw]}).encode())


@pytest.mark.parametrize(
    "blob",
    [
        b"not json",
        b'{"v": 99, "nodes": []}',
        b'{"v": 1, "nodes": [{"name": "a", "type": "weird", "mode": 0, "uid": 0, "gid": 0, '
        b'"mtime": 0, "ctime": 0, "inode": 0, "dev": 0}]}',
        b'{"v": 1, "nodes": [{"name": "a", "type": "dir", "mode": 0, "uid": 0, "gid": 0, '
        b'"mtime": 0, "ctime": 0, "inode": 0, "dev": 0}]}',
        b'{"v": 1, "nodes": [{"name": "a"}]}',
    ],
)
def test_decode_rejects_malformed_trees(blob: bytes) -> None:
    with pytest.raises(IntegrityError):
        Tree.decode(blob)


def test_validate_name_accepts_ordinary_names() -> None:
    assert validate_name(b"...") == b"..."
    assert validate_name(b"\xff\xfe") == b"\xff\xfe"
