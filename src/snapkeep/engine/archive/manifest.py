"""The manifest beside an Archived/Compressed archive (what it holds, sealed JSON), and the
destination protocol the tar structures use.

Stored as ``cipher.seal(blake3(json) || json, AD_MANIFEST || id)``. The associated data binds a
manifest to its archive ID (a manifest copied under another name fails to open); the BLAKE3
checksum catches damage where the cipher is ``NullCipher``. Paths use ``surrogateescape`` strings;
JSON escapes their lone surrogates (``\\udcff``), so names that are not UTF-8 survive.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import blake3

from snapkeep.engine.archive.writer import ArchiveEntry
from snapkeep.engine.format import ARCHIVES_PREFIX
from snapkeep.engine.repository.crypto import Cipher
from snapkeep.errors import IntegrityError
from snapkeep.storage.base import Store

MANIFEST_VERSION = 1
AD_MANIFEST = b"snapkeep/archive-manifest/v1/"
_CHECKSUM_SIZE = 32
_ENTRY_DEFAULTS: dict[str, Any] = {"size": 0, "offset": 0, "link": "", "blake3": "", "xattrs": ""}


class ArchiveDestination(Protocol):
    """What the tar structures need from a repository: its store and its cipher.

    An opened ``Repository`` satisfies it; ``ArchiveKeys`` is the plain holder.
    """

    @property
    def store(self) -> Store: ...

    @property
    def cipher(self) -> Cipher: ...


@dataclass(frozen=True)
class ArchiveKeys:
    """A store and a cipher, for callers that hold them without an opened ``Repository``."""

    store: Store
    cipher: Cipher


@dataclass
class ArchiveManifest:
    """One archive run: when, what, how it is stored, and every member."""

    id: str
    time: _dt.datetime
    structure: str
    compression: str
    encryption: str
    segment_size: int
    sources: list[str]
    size: int
    blake3: str
    entries: list[ArchiveEntry] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    hostname: str = ""
    job_id: str = ""
    account: str = ""
    components: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    version: int = MANIFEST_VERSION

    @property
    def archive_name(self) -> str:
        """Store name of the archive data."""
        suffix = ".tar.zst" if self.compression == "zstd" else ".tar"
        return f"{ARCHIVES_PREFIX}{self.id}{suffix}"

    def to_json(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dictionary."""
        return {
            "version": self.version,
            "id": self.id,
            "time": self.time.isoformat(),
            "structure": self.structure,
            "compression": self.compression,
            "encryption": self.encryption,
            "segment_size": self.segment_size,
            "sources": self.sources,
            "excludes": self.excludes,
            "tags": self.tags,
            "hostname": self.hostname,
            "job_id": self.job_id,
            "account": self.account,
            "components": self.components,
            "size": self.size,
            "blake3": self.blake3,
            "stats": self.stats,
            "entries": [_entry_to_json(entry) for entry in self.entries],
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ArchiveManifest:
        """Inverse of ``to_json``; ``KeyError``/``TypeError``/``ValueError`` when malformed."""
        if document["version"] != MANIFEST_VERSION:
            raise ValueError(f"unsupported manifest version {document['version']!r}")
        time = _dt.datetime.fromisoformat(document["time"])
        if time.tzinfo is None:
            raise ValueError("manifest time has no timezone")
        return cls(
            id=str(document["id"]),
            time=time,
            structure=str(document["structure"]),
            compression=str(document["compression"]),
            encryption=str(document["encryption"]),
            segment_size=int(document["segment_size"]),
            sources=[str(source) for source in document["sources"]],
            excludes=[str(item) for item in document.get("excludes", [])],
            tags=[str(tag) for tag in document.get("tags", [])],
            hostname=str(document.get("hostname", "")),
            job_id=str(document.get("job_id", "")),
            account=str(document.get("account", "")),
            components=[str(item) for item in document.get("components", [])],
            size=int(document["size"]),
            blake3=str(document["blake3"]),
            stats=dict(document.get("stats", {})),
            entries=[_entry_from_json(item) for item in document["entries"]],
        )


def _entry_to_json(entry: ArchiveEntry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": entry.path,
        "type": entry.type,
        "mode": entry.mode,
        "uid": entry.uid,
        "gid": entry.gid,
        "mtime_ns": entry.mtime_ns,
    }
    for key, default in _ENTRY_DEFAULTS.items():
        value = getattr(entry, key)
        if value != default:
            out[key] = value
    return out


def _entry_from_json(item: dict[str, Any]) -> ArchiveEntry:
    return ArchiveEntry(
        path=str(item["path"]),
        type=str(item["type"]),
        mode=int(item["mode"]),
        uid=int(item["uid"]),
        gid=int(item["gid"]),
        mtime_ns=int(item["mtime_ns"]),
        size=int(item.get("size", 0)),
        offset=int(item.get("offset", 0)),
        link=str(item.get("link", "")),
        blake3=str(item.get("blake3", "")),
        xattrs=str(item.get("xattrs", "")),
    )


def encode_manifest(manifest: ArchiveManifest, cipher: Cipher) -> bytes:
    """The stored form of ``manifest``."""
    payload = json.dumps(manifest.to_json(), separators=(",", ":"), sort_keys=True).encode("ascii")
    return cipher.seal(blake3.blake3(payload).digest() + payload, AD_MANIFEST + manifest.id.encode())


def decode_manifest(data: bytes, cipher: Cipher, archive_id: str) -> ArchiveManifest:
    """Open, verify and parse a stored manifest; ``IntegrityError`` when damaged or misplaced."""
    what = f"manifest of archive {archive_id}"
    plain = cipher.open(data, AD_MANIFEST + archive_id.encode(), what=what)
    checksum, payload = plain[:_CHECKSUM_SIZE], plain[_CHECKSUM_SIZE:]
    if len(checksum) < _CHECKSUM_SIZE or blake3.blake3(payload).digest() != checksum:
        raise IntegrityError(what=what, reason="checksum mismatch (damaged)")
    try:
        manifest = ArchiveManifest.from_json(json.loads(payload))
    except (KeyError, TypeError, ValueError, AttributeError) as problem:
        raise IntegrityError(what=what, reason=f"malformed: {problem}") from None
    if manifest.id != archive_id:
        raise IntegrityError(what=what, reason=f"it names archive {manifest.id!r}")
    return manifest


def layout_problem(manifest: ArchiveManifest) -> str | None:
    """Why the members a manifest lists cannot come from a real tree (``None`` when they can): a
    member below a symlink or a file (restoring it would write through the link), or a hard link
    to a member that is not an earlier regular file of the archive. ``tar`` never writes either;
    a forger does. Cost: one set of the paths, which the manifest already holds."""
    kinds: dict[str, str] = {}
    for entry in manifest.entries:
        parent = entry.path.rpartition("/")[0]
        while parent:
            kind = kinds.get(parent)
            if kind is not None and kind != "dir":
                return f"member {entry.path!r} lies below {parent!r}, a {kind}"
            parent = parent.rpartition("/")[0]
        if entry.type == "hardlink" and kinds.get(entry.link) != "file":
            return f"hard link {entry.path!r} to {entry.link!r}, which is not an earlier file of the archive"
        kinds[entry.path] = entry.type
    return None
