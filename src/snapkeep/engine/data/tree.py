"""Tree blobs: one per directory, listing its entries (``Node``) in a deterministic encoding.

A tree is stored as one TREE blob of compact JSON: ``{"v":1,"nodes":[...]}`` with nodes sorted by
their name bytes and every field written in a fixed order, only when it differs from its default.
The same directory therefore always encodes to the same bytes, so unchanged directories dedup like
any blob. Names and symlink targets are bytes: when they are valid UTF-8 they are written as
strings (``name``/``target``), otherwise base64 (``name_b64``/``target_b64``). Content and subtree
IDs are hex. Extended attributes (POSIX ACLs included: they are the ``system.posix_acl_access`` and
``system.posix_acl_default`` attributes) map the attribute name to its base64 value.

``Tree.decode`` validates every name: an empty name, ``.``, ``..`` or a name holding ``/`` or NUL
raises ``UnsafePathError``. The restorer relies on that to never write outside its target.

It also holds every tree to ``data.bounds`` (at most ``MAX_TREE_BLOB`` bytes and
``MAX_TREE_ENTRIES`` entries) and every number to what a file system can hold (mode bits within
0o7777, IDs within 32 bits, times and sizes within 64); ``IntegrityError`` names the entry. A
file's declared size is checked against its chunks per file, from the index
(``Repository.file_problem``: the size must equal the sum of the chunks' lengths): ``check`` names
such a file and restore refuses that file alone (an 8 TiB sparse file out of 6 bytes is never
made), so one forged entry does not cost the rest of its folder.
"""

from __future__ import annotations

import base64
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Final

from snapkeep.engine.data.bounds import MAX_TREE_BLOB, MAX_TREE_ENTRIES
from snapkeep.errors import IntegrityError, RepositoryError, UnsafePathError

TREE_VERSION: Final = 1

FILE: Final = "file"
DIR: Final = "dir"
SYMLINK: Final = "symlink"
FIFO: Final = "fifo"
SOCKET: Final = "socket"
CHARDEV: Final = "chardev"
BLOCKDEV: Final = "blockdev"
NODE_TYPES: Final = frozenset({FILE, DIR, SYMLINK, FIFO, SOCKET, CHARDEV, BLOCKDEV})


@dataclass(slots=True)
class Node:
    """One directory entry. ``mode`` holds the permission bits only (``stat.S_IMODE``).

    ``hardlink`` is a group key (``"device:inode"``) shared by every member of a hard-link group;
    every member carries the content list, the restorer writes the first and links the others.
    ``sparse`` marks a regular file with holes. ``subtree`` is the tree blob ID of a directory.
    """

    name: bytes
    type: str
    mode: int = 0
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    mtime_ns: int = 0
    ctime_ns: int = 0
    size: int = 0
    inode: int = 0
    device: int = 0
    rdev: int = 0
    links: int = 1
    target: bytes = b""
    xattrs: dict[str, bytes] = field(default_factory=dict)
    hardlink: str = ""
    sparse: bool = False
    content: list[bytes] = field(default_factory=list)
    subtree: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        """The node as a JSON-ready dictionary in the fixed field order."""
        out: dict[str, Any] = {}
        _put_bytes(out, "name", self.name)
        out["type"] = self.type
        out["mode"] = self.mode
        out["uid"] = self.uid
        out["gid"] = self.gid
        if self.user:
            out["user"] = self.user
        if self.group:
            out["group"] = self.group
        out["mtime"] = self.mtime_ns
        out["ctime"] = self.ctime_ns
        if self.size:
            out["size"] = self.size
        out["inode"] = self.inode
        out["dev"] = self.device
        if self.rdev:
            out["rdev"] = self.rdev
        if self.links != 1:
            out["links"] = self.links
        if self.target:
            _put_bytes(out, "target", self.target)
        if self.xattrs:
            out["xattrs"] = {
                key: base64.b64encode(value).decode("ascii") for key, value in sorted(self.xattrs.items())
            }
        if self.hardlink:
            out["hardlink"] = self.hardlink
        if self.sparse:
            out["sparse"] = True
        if self.content:
            out["content"] = [blob_id.hex() for blob_id in self.content]
        if self.subtree is not None:
            out["subtree"] = self.subtree.hex()
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Node:
        """Build a node from its dictionary. Raises ``UnsafePathError`` for a bad name and
        ``IntegrityError`` for a malformed entry.

        Called once per entry of every folder a restore or check reads (80,000 times for the
        benchmark's 2 GiB set), so the usual case (a text name, no target, no xattrs) takes the
        shortest path: positional arguments, one ``get`` per optional field."""
        text = raw.get("name")
        name = _utf8(text, "name") if type(text) is str else _get_bytes(raw, "name")
        validate_name(name)
        get = raw.get
        try:
            kind = _TYPES.get(raw["type"]) if type(raw["type"]) is str else None
            if kind is None:
                raise IntegrityError(what=f"tree entry {name!r}", reason=f"unknown type {raw['type']!r}")
            xattrs = get("xattrs")
            subtree = get("subtree")
            content = get("content")
            node = cls(
                name,
                kind,
                int(raw["mode"]),
                int(raw["uid"]),
                int(raw["gid"]),
                _intern(get("user", "")),
                _intern(get("group", "")),
                int(raw["mtime"]),
                int(raw["ctime"]),
                int(get("size", 0)),
                int(raw["inode"]),
                int(raw["dev"]),
                int(get("rdev", 0)),
                int(get("links", 1)),
                _get_bytes(raw, "target") if ("target" in raw or "target_b64" in raw) else b"",
                {key: base64.b64decode(value) for key, value in xattrs.items()} if xattrs else {},
                str(get("hardlink", "")),
                bool(get("sparse", False)),
                list(map(bytes.fromhex, content)) if content else [],
                None if subtree is None else bytes.fromhex(subtree),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise IntegrityError(what=f"tree entry {name!r}", reason=f"malformed: {error!r}") from error
        problem = _number_problem(node)
        if problem is not None:
            raise IntegrityError(what=f"tree entry {name!r}", reason=problem)
        if kind is DIR and node.subtree is None:
            raise IntegrityError(what=f"tree entry {name!r}", reason="directory without subtree")
        return node


#: Each node type's one string object (a node's ``type`` is compared by identity in hot paths too).
_TYPES: Final = {kind: kind for kind in NODE_TYPES}
#: User and group names seen, each kept once (thousands of entries share a few owners).
_NAMES: dict[str, str] = {}


def _intern(value: object) -> str:
    """``value`` as a shared ``str`` (``str()`` of anything else, as the encoding allows)."""
    text = value if type(value) is str else str(value)
    return _NAMES.setdefault(text, text) if len(_NAMES) < 65_536 else text


def _utf8(text: str, key: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise IntegrityError(what="tree entry", reason=f"bad {key}: {error!r}") from error


_U32 = 2**32
_I64 = 2**63
_U64 = 2**64
#: a time in ns from a timespec of 64-bit seconds (ext4 and XFS hold times past 2262, beyond 2^63 ns)
_TIME_NS = 2**63 * 10**9


def _number_problem(node: Node) -> str | None:
    """Why a node's numbers are impossible (``None`` when they are fine)."""
    if not 0 <= node.mode <= 0o7777:
        return f"mode {node.mode:o} holds more than permission bits"
    if not (0 <= node.uid < _U32 and 0 <= node.gid < _U32):
        return f"owner {node.uid}:{node.gid} is outside 32 bits"
    if not (-_TIME_NS <= node.mtime_ns < _TIME_NS and -_TIME_NS <= node.ctime_ns < _TIME_NS):
        return "a time is outside what a 64-bit timespec holds"
    if not (0 <= node.size < _I64 and 0 <= node.links < _U32):
        return f"size {node.size} or link count {node.links} is out of range"
    if not (0 <= node.rdev < _U64 and 0 <= node.inode < _U64 and 0 <= node.device < _U64):
        return "a device or inode number is outside 64 bits"
    # A file's declared size against its chunks is checked per file, from the index
    # (``Repository.file_problem``): one forged file fails alone, not the whole folder.
    return None


def validate_name(name: bytes) -> bytes:
    """Return ``name`` when it is a safe single path component; raise ``UnsafePathError``."""
    if not name:
        raise UnsafePathError(path=name, reason="empty name")
    if name in (b".", b".."):
        raise UnsafePathError(path=name, reason="names '.' and '..' are not allowed")
    if b"/" in name:
        raise UnsafePathError(path=name, reason="name contains '/'")
    if b"\0" in name:
        raise UnsafePathError(path=name, reason="name contains NUL")
    return name


@dataclass(slots=True)
class Tree:
    """The entries of one directory, kept sorted by name."""

    nodes: list[Node] = field(default_factory=list)

    def encode(self) -> bytes:
        """The deterministic blob bytes. Raises ``IntegrityError`` on duplicate names."""
        nodes = sorted(self.nodes, key=_by_name)
        for before, after in itertools.pairwise(nodes):
            if before.name == after.name:
                raise IntegrityError(what="tree", reason=f"duplicate name {before.name!r}")
        return encode_entries([node.to_json() for node in nodes])

    @classmethod
    def decode(cls, data: bytes) -> Tree:
        """Parse a tree blob. Raises ``UnsafePathError`` for an unsafe name, ``IntegrityError`` for a
        malformed or duplicate entry or an unknown version."""
        raw_nodes = decode_entries(data)
        raw_nodes.reverse()
        nodes = []
        while raw_nodes:  # each raw entry is released once its node is built: a lower peak
            raw = raw_nodes.pop()
            if not isinstance(raw, dict):
                raise IntegrityError(what="tree", reason="entry is not an object")
            nodes.append(Node.from_json(raw))
        seen: set[bytes] = set()
        for node in nodes:
            if node.name in seen:
                raise IntegrityError(what="tree", reason=f"duplicate name {node.name!r}")
            seen.add(node.name)
        return cls(nodes)

    def by_name(self) -> dict[bytes, Node]:
        """The nodes keyed by name."""
        return {node.name: node for node in self.nodes}


def _by_name(node: Node) -> bytes:
    return node.name


def _put_bytes(out: dict[str, Any], key: str, value: bytes) -> None:
    try:
        out[key] = value.decode("utf-8")
    except UnicodeDecodeError:
        out[key + "_b64"] = base64.b64encode(value).decode("ascii")


def _get_bytes(raw: dict[str, Any], key: str) -> bytes:
    try:
        if key in raw:
            text = raw[key]
            if not isinstance(text, str):
                raise TypeError(f"{key} is not a string")
            return text.encode("utf-8")
        return base64.b64decode(raw[key + "_b64"], validate=True)
    except (KeyError, TypeError, ValueError, UnicodeEncodeError) as error:
        raise IntegrityError(what="tree entry", reason=f"bad {key}: {error!r}") from error


def encode_entries(entries: list[dict[str, Any]]) -> bytes:
    """The blob bytes of already sorted ``Node.to_json`` dictionaries (what ``Tree.encode`` writes)."""
    if len(entries) > MAX_TREE_ENTRIES:
        raise RepositoryError(
            f"a folder of {len(entries)} entries is above the {MAX_TREE_ENTRIES} one folder listing may hold"
        )
    document = {"v": TREE_VERSION, "nodes": entries}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def decode_entries(data: bytes) -> list[dict[str, Any]]:
    """The raw entry dictionaries of a tree blob, without building nodes or checking names.

    For comparing with a parent snapshot only (never for writing files): the backup reuses a
    parent folder's tree when its fresh entries equal these. Raises ``IntegrityError``, also for a
    blob or entry list beyond ``data.bounds``."""
    if len(data) > MAX_TREE_BLOB:
        raise IntegrityError(
            what="tree", reason=f"{len(data)} bytes, above the {MAX_TREE_BLOB} a tree may hold"
        )
    try:
        document = json.loads(data.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, ValueError) as error:
        raise IntegrityError(what="tree", reason=f"not a tree blob: {error}") from error
    if not isinstance(document, dict) or document.get("v") != TREE_VERSION:
        raise IntegrityError(what="tree", reason="unknown tree version")
    entries = document.get("nodes")
    if not isinstance(entries, list):
        raise IntegrityError(what="tree", reason="no node list")
    if len(entries) > MAX_TREE_ENTRIES:
        raise IntegrityError(
            what="tree",
            reason=f"{len(entries)} entries, above the {MAX_TREE_ENTRIES} a folder listing may hold",
        )
    return entries


def entry_name(raw: dict[str, Any]) -> bytes:
    """The name of a raw entry as bytes. Raises ``IntegrityError``."""
    return _get_bytes(raw, "name")
