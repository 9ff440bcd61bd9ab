"""A ``tarfile.TarInfo`` that refuses oversized header records, so reading a tar stays in bounded memory.

``tarfile`` reads a pax extended header or a GNU long name/link record into memory whole, whatever
size its header declares, and a chain of them (each followed by the next) is all held until the
member they describe is reached. A forged archive can therefore make a reader hold as much memory
as the stream is long: a zstd frame of a few KiB can carry a "pax header" of gigabytes.
``BoundedTarInfo`` (``tarfile.open(..., tarinfo=BoundedTarInfo)``) counts the bytes of such records
before each member and raises ``tarfile.HeaderError`` past ``MAX_HEADER_BYTES``; the callers turn
``TarError`` into ``IntegrityError``. Legitimate headers (long names, extended attributes, ACLs)
are kilobytes.
"""

from __future__ import annotations

import tarfile
from typing import IO, Any

from snapkeep.engine.archive.writer import ENCODING, ERRORS, READ_SIZE

#: Bytes of pax and GNU long-name records accepted before one member.
MAX_HEADER_BYTES = 16 * 1024 * 1024
_RECORD_TYPES = frozenset(
    {
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    }
)
_COUNTER = "_snapkeep_header_bytes"


class BoundedTarInfo(tarfile.TarInfo):
    """A member header whose extended records may total at most ``MAX_HEADER_BYTES``."""

    def _proc_member(self, tarfile_: Any) -> Any:
        if self.type in _RECORD_TYPES:
            total = int(getattr(tarfile_, _COUNTER, 0)) + max(self.size, 0)
            if total > MAX_HEADER_BYTES:
                raise tarfile.HeaderError(
                    f"extended header records of {total} bytes before one member (at most {MAX_HEADER_BYTES})"
                )
            setattr(tarfile_, _COUNTER, total)
        else:
            setattr(tarfile_, _COUNTER, 0)
        return super()._proc_member(tarfile_)  # type: ignore[misc]


def forget_members(archive: tarfile.TarFile) -> None:
    """Drop the member list a streamed ``TarFile`` keeps of everything read so far: a stream is read
    once, in order, so the list only grows (a forged archive of millions of members would hold them
    all). ``TarFile.__iter__`` reads the next header when its index passes the list's end."""
    archive.members = []  # type: ignore[attr-defined]


def open_stream(source: IO[bytes]) -> tarfile.TarFile:
    """A tar stream read once, in order (``r|``), with the archives' name encoding and bounded
    header records: what the restore and the full read both open."""
    return tarfile.open(
        fileobj=source, mode="r|", encoding=ENCODING, errors=ERRORS, bufsize=READ_SIZE, tarinfo=BoundedTarInfo
    )
