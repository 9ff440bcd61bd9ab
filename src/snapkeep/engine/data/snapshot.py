"""Snapshots: one backup run, pointing at its root tree. Stored sealed as ``snapshots/<id>``.

The JSON document holds every field below except ``id``, which is the (unkeyed) BLAKE3 hash in hex
of the stored, sealed bytes: a snapshot file is verified against its name on every load.
``time`` is an aware UTC datetime, written in ISO-8601 with microseconds.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from typing import Any

from snapkeep.clock import UTC
from snapkeep.errors import IntegrityError

SNAPSHOT_VERSION = 1


@dataclass(slots=True)
class Snapshot:
    """One backup run. ``tree`` is the hex ID of the root tree blob; ``id`` is set once saved."""

    id: str
    time: _dt.datetime
    hostname: str
    paths: list[str]
    tree: str
    tags: list[str] = field(default_factory=list)
    parent: str | None = None
    job_id: str | None = None
    account: str | None = None
    components: list[str] = field(default_factory=list)
    schedules: list[str] = field(default_factory=list)
    structure: str = "incremental"
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("Snapshot.time must be timezone-aware")
        self.time = self.time.astimezone(UTC)

    @property
    def short_id(self) -> str:
        """The first 8 hex digits of the ID, for listings."""
        return self.id[:8]

    def to_json(self) -> bytes:
        """The JSON document (without ``id``), deterministic key order."""
        document = {
            "version": SNAPSHOT_VERSION,
            "time": self.time.isoformat(timespec="microseconds"),
            "hostname": self.hostname,
            "paths": list(self.paths),
            "tree": self.tree,
            "tags": list(self.tags),
            "parent": self.parent,
            "job_id": self.job_id,
            "account": self.account,
            "components": list(self.components),
            "schedules": list(self.schedules),
            "structure": self.structure,
            "stats": self.stats,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, snapshot_id: str) -> Snapshot:
        """Parse a snapshot document; raises ``IntegrityError`` naming the snapshot when malformed."""
        what = f"snapshot {snapshot_id}"
        try:
            document = json.loads(data)
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            if document.get("version") != SNAPSHOT_VERSION:
                raise ValueError(f"unsupported snapshot version {document.get('version')!r}")
            return cls(
                id=snapshot_id,
                time=_dt.datetime.fromisoformat(document["time"]),
                hostname=str(document["hostname"]),
                paths=[str(path) for path in document["paths"]],
                tree=str(document["tree"]),
                tags=[str(tag) for tag in document.get("tags", [])],
                parent=document.get("parent"),
                job_id=document.get("job_id"),
                account=document.get("account"),
                components=[str(item) for item in document.get("components", [])],
                schedules=[str(item) for item in document.get("schedules", [])],
                structure=str(document.get("structure", "incremental")),
                stats=dict(document.get("stats") or {}),
            )
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as problem:
            raise IntegrityError(what=what, reason=f"malformed snapshot document: {problem}") from None
