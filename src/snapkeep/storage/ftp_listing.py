"""Listing a folder tree on an FTP server, bounded against hostile or broken servers.

FTP has three ways to list a folder and servers differ in which they offer: ``MLSD`` (RFC 3659,
machine-readable, where ``FEAT`` names ``MLST``), ``LIST`` (free-form; nearly every Unix server sends
``ls -l`` lines, parsed here) and ``NLST`` (names only: each name's ``SIZE`` is asked, and a name
``SIZE`` refuses is taken for a folder). ``Walk`` uses the first that works for each folder.

What a server sends is bounded: at most ``MAX_LIST_ENTRIES`` lines in one walk, names that are not
valid object names (dot names, spaces, ``/``, non-ASCII) skipped, each object once, no descent past
the longest valid object name.
"""

from __future__ import annotations

import ftplib
import posixpath
import re

from snapkeep.errors import StorageError
from snapkeep.storage.base import MAX_NAME_LENGTH, ObjectInfo
from snapkeep.storage.ftp_session import FtpSession, reply_code, size_of

#: The most entries one ``list`` call accepts from a server before refusing the listing.
MAX_LIST_ENTRIES = 2_000_000
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
_UNIX_LINE = re.compile(
    r"^([-dlbcps])[-rwxsStT]{9}\S*\s+\d+\s+\S+\s+\S+\s+(\d{1,20})\s+\S+\s+\d{1,2}\s+(?:\d{1,2}:\d{2}|\d{4})\s(.+)$"
)
#: An entry of a folder: name, kind ("file", "dir" or "unknown") and size (-1: not known yet).
Entry = tuple[str, str, int]


class Walk:
    """One bounded walk of the folders below a store's root, collecting objects under ``prefix``."""

    def __init__(self, session: FtpSession, prefix: str, found: dict[str, ObjectInfo]) -> None:
        self.session = session
        self.prefix = prefix
        self.found = found
        self.entries = 0

    def folder(self, path: str, relative: str) -> None:
        for entry_name, kind, size in self._entries(path):
            name = relative + entry_name
            if len(name) > MAX_NAME_LENGTH or name in self.found:
                continue
            child = posixpath.join(path, entry_name)
            wanted = name.startswith(self.prefix)
            if not wanted and not self.prefix.startswith(name + "/"):
                continue
            if kind == "unknown" or (kind == "file" and size < 0 and wanted):
                try:
                    size, kind = size_of(self.session, child), "file"
                except ftplib.error_perm:
                    kind = "dir" if kind == "unknown" else "skip"  # SIZE refuses folders
            if kind == "dir":
                self.folder(child, name + "/")
            elif kind == "file" and wanted:
                self.found[name] = ObjectInfo(name, size)

    def _entries(self, path: str) -> list[Entry]:
        if "MLST" in self.session.features:
            return [entry for line in self._lines(f"MLSD {path}") if (entry := _mlsd_entry(line))]
        lines = self._lines(f"LIST {path}")
        parsed = _unix_entries(lines)
        if parsed is not None:
            return parsed
        names = (posixpath.basename(line.rstrip("/")) for line in self._lines(f"NLST {path}"))
        return [(name, "unknown", -1) for name in names if _SEGMENT.match(name)]

    def _lines(self, command: str) -> list[str]:
        lines: list[str] = []
        try:
            for line in self.session.lines(command):
                self.entries += 1
                if self.entries > MAX_LIST_ENTRIES:
                    raise StorageError(
                        f"the server listed more than {MAX_LIST_ENTRIES} entries; refusing the listing"
                    )
                lines.append(line)
        except ftplib.error_perm as error:
            if reply_code(error) == "550":
                return []  # a missing folder: some servers refuse (550), others list nothing
            raise  # anything else (not logged in after a drop, a refused command) is not "empty"
        return lines


def _unix_entries(lines: list[str]) -> list[Entry] | None:
    """Entries of ``ls -l`` style lines; ``None`` when a line is in another format."""
    entries: list[Entry] = []
    for line in lines:
        if not line.strip() or line.startswith("total "):
            continue
        match = _UNIX_LINE.match(line)
        if match is None:
            return None
        kind = {"-": "file", "d": "dir"}.get(match.group(1))
        name = match.group(3)
        if kind is not None and _SEGMENT.match(name):
            entries.append((name, kind, int(match.group(2)) if kind == "file" else -1))
    return entries


def _mlsd_entry(line: str) -> Entry | None:
    """One ``MLSD`` line (``type=file;size=12; name``) as an entry; ``None`` to skip it."""
    facts_text, _, name = line.partition(" ")
    if not _SEGMENT.match(name):
        return None
    facts = {}
    for fact in facts_text.split(";"):
        key, _, value = fact.partition("=")
        facts[key.strip().lower()] = value.strip()
    kind = facts.get("type", "").lower()
    if kind == "dir":
        return (name, "dir", -1)
    if kind != "file":
        return None
    size = facts.get("size", "")
    return (name, "file", int(size) if size.isdigit() and len(size) <= 20 else -1)
