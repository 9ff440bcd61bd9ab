"""What a restore does with entries already in its target: the overwrite policy and the dry run.

Used by both restores, so it lives here, below them (docs/engine.md layers).

Both restores (incremental ``restore`` and the tar ``archive.reader``) ask ``decide`` before
replacing a non-folder entry that is already in the target:

* ``always``: replace it;
* ``if-changed``: keep a file whose content already matches the backup's (same size, and same
  content: the incremental restore hashes it blob by blob with the repository's keyed ID, the tar
  restore with the manifest's BLAKE3); the size is only a hint (a different size is a change, the
  same size is checked by content); a symlink with the same target is kept;
* ``if-newer``: keep it when its modification time is newer than the backed-up one;
* ``never``: keep it.

A folder of the backup merges into an existing folder (with ``if-newer``/``never`` the existing
folder keeps its own owner, mode and times). A symlink or file where the backup has a folder is an
existing entry like any other: kept with its subtree skipped, or replaced by the folder.

``RestoreOptions.dry_run`` writes nothing: the restore walks the backup and the target and records
what it would do in ``Changes`` (a bounded list of ``(action, path)``, the rest counted).
``special_files`` allows fifos, device nodes and set-user/group-ID bits (off: they are skipped,
or the file is restored without those bits, with a warning).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from snapkeep.errors import ValidationError

__all__ = [
    "ALWAYS",
    "IF_CHANGED",
    "IF_NEWER",
    "NEVER",
    "OVERWRITE",
    "POLICIES",
    "REMOVE",
    "SKIP",
    "WRITE",
    "Changes",
    "RestoreOptions",
    "decide",
    "special_refused",
]

ALWAYS, IF_CHANGED, IF_NEWER, NEVER = "always", "if-changed", "if-newer", "never"
POLICIES = (ALWAYS, IF_CHANGED, IF_NEWER, NEVER)

#: Actions recorded in ``Changes``: a new entry, an existing one replaced, one kept, one removed.
WRITE, OVERWRITE, SKIP, REMOVE = "write", "overwrite", "skip", "remove"

#: Entries of a ``Changes`` list kept in memory; beyond it they are only counted.
CHANGES_LIMIT = 1000


@dataclass(frozen=True)
class RestoreOptions:
    """How a restore treats its target. Raises ``ValidationError`` naming ``overwrite`` for an
    unknown policy."""

    overwrite: str = ALWAYS
    dry_run: bool = False
    special_files: bool = False

    def __post_init__(self) -> None:
        if self.overwrite not in POLICIES:
            raise ValidationError(
                field="overwrite", problem=f"must be one of {', '.join(POLICIES)} (got {self.overwrite!r})"
            )

    @property
    def keeps_folders(self) -> bool:
        """Whether an existing folder keeps its own metadata (``if-newer``, ``never``)."""
        return self.overwrite in (IF_NEWER, NEVER)


@dataclass
class Changes:
    """What a restore wrote, replaced, kept or removed: counts of each action and the first
    ``limit`` entries ``(action, path)``; ``omitted`` counts the entries beyond it. A real restore
    records only what touched existing entries (overwrite, skip, remove); a dry run records new
    entries too."""

    limit: int = CHANGES_LIMIT
    entries: list[tuple[str, str]] = field(default_factory=list)
    omitted: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((WRITE, OVERWRITE, SKIP, REMOVE), 0))

    def add(self, action: str, path: str, *, listed: bool = True) -> None:
        self.counts[action] = self.counts.get(action, 0) + 1
        if not listed:
            return
        if len(self.entries) < self.limit:
            self.entries.append((action, path))
        else:
            self.omitted += 1

    def summary(self) -> str:
        """``3 written, 1 overwritten, 2 skipped, 0 removed``."""
        counts = self.counts
        return (
            f"{counts.get(WRITE, 0)} written, {counts.get(OVERWRITE, 0)} overwritten, "
            f"{counts.get(SKIP, 0)} skipped, {counts.get(REMOVE, 0)} removed"
        )


@dataclass
class PolicyOutcome:
    """What a restore's overwrite policy did: the part of a result both restores (incremental and
    tar) share. ``changes`` holds the counts and the listed entries; ``dry_run`` says nothing was
    written."""

    changes: Changes = field(default_factory=Changes)
    dry_run: bool = False

    @property
    def written(self) -> int:
        return self.changes.counts[WRITE]

    @property
    def overwritten(self) -> int:
        return self.changes.counts[OVERWRITE]

    @property
    def skipped(self) -> int:
        return self.changes.counts[SKIP]

    @property
    def removed(self) -> int:
        return self.changes.counts[REMOVE]


def decide(
    policy: str, info: os.stat_result | None, mtime_ns: int, same: Callable[[os.stat_result], bool]
) -> str:
    """``WRITE`` when nothing is there (``info`` is ``None``), else ``OVERWRITE`` or ``SKIP`` by
    ``policy``. ``same(info)`` says whether the existing entry already holds the backup's content
    (asked for ``if-changed`` only)."""
    if info is None:
        return WRITE
    if policy == NEVER:
        return SKIP
    if policy == IF_NEWER:
        return SKIP if info.st_mtime_ns > mtime_ns else OVERWRITE
    if policy == IF_CHANGED:
        return SKIP if same(info) else OVERWRITE
    return OVERWRITE


def special_refused(kind: str) -> str:
    """The warning for a fifo, socket or device node left out of a restore."""
    return f"{kind} not restored (special files need --special-files or options[special_files]=1)"


def is_folder(info: os.stat_result | None) -> bool:
    return info is not None and stat.S_ISDIR(info.st_mode)
