"""Archives with a layout of their own: members placed at chosen names, data and streams of unknown size.

An Accounts backup in the Archived or Compressed structure holds one account in the same layout as
its Incremental snapshot (``homedir/``, ``databases/<engine>/<name>.sql``, ``email/`` ...), where
the directory tree is not the host's. ``LayoutTarWriter`` writes such a tar stream:

* ``path(target, source, excludes)``: a file or folder of the host under the member name
  ``target`` (the walk, hard links, extended attributes and warnings of ``TarWriter``);
* ``data(target, bytes)``: a small generated file (a JSON record, SQL of database users);
* ``piped(target, read, finish)``: a stream whose size is known only at its end (a database dump
  read from the pipe). A tar header needs the size first, so the stream is cut into **parts** of at
  most ``part_size`` bytes (4 MiB), each buffered once: memory stays bounded by one part whatever
  the dump's size, and nothing is written to local disk. A stream that fits in one part is one
  member named ``target``; a longer one is the members ``target.part-00001``, ``.part-00002`` ...
  (``cat target.part-* > target`` rebuilds it from a plain ``tar -x``). ``finish()`` is called
  before the last part is written: when it raises (a dump that failed) the stream is incomplete,
  it is left out of the manifest's ``stats["streams"]`` (parts already written stay in the tar as
  unlisted leftovers) and the error propagates to the caller, which records the failure. The tar
  stream stays valid: a member is only emitted whole.

Synthetic members (folders of the layout, data, parts) belong to the user running the backup, mode
0600 (folders 0700), with the time they were written. ``read_member`` reads one layout file back
(its parts joined, each verified against the manifest's BLAKE3 before it is handed out) in one
pass over the stored stream that stops at the file's last part.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, cast

import blake3

from snapkeep.clock import SYSTEM, Clock
from snapkeep.engine.archive.bounded_tar import forget_members, open_stream
from snapkeep.engine.archive.manifest import ArchiveDestination, ArchiveManifest
from snapkeep.engine.archive.reader import _check_member, _content, _stored_chunks
from snapkeep.engine.archive.segments import ChunkReader, decompress_zstd, open_segments
from snapkeep.engine.archive.writer import ArchiveEntry, TarWriter, format_pax_time
from snapkeep.engine.fs.walker import Excludes
from snapkeep.engine.progress import Progress
from snapkeep.errors import IntegrityError, NotFoundError, ValidationError

PART_SIZE = 4 * 1024 * 1024
PART_SUFFIX = ".part-"


def part_name(target: str, number: int) -> str:
    """The member name of part ``number`` (from 1) of a stream stored in several parts."""
    return f"{target}{PART_SUFFIX}{number:05d}"


def stream_parts(manifest: ArchiveManifest, path: str) -> list[str]:
    """The member names holding layout file ``path`` (``databases/mariadb/a.sql``), in order: the
    parts of a stream recorded in ``stats["streams"]``, else the member itself; [] when neither."""
    path = path.strip("/")
    streams = manifest.stats.get("streams") or {}
    if isinstance(streams, dict) and isinstance(streams.get(path), list):
        return [str(name) for name in streams[path]]
    return [path] if any(entry.path == path and entry.type == "file" for entry in manifest.entries) else []


def layout_files(manifest: ArchiveManifest, folder: str) -> list[str]:
    """The names of the complete files directly in layout ``folder`` (streams joined, leftover
    parts of a failed stream left out), sorted."""
    folder = folder.strip("/") + "/"
    names = {
        entry.path[len(folder) :]
        for entry in manifest.entries
        if entry.type == "file" and entry.path.startswith(folder) and "/" not in entry.path[len(folder) :]
    }
    streams = manifest.stats.get("streams") or {}
    parts = (
        {str(name) for listed in streams.values() for name in listed} if isinstance(streams, dict) else set()
    )
    names = {name for name in names if folder + name not in parts and PART_SUFFIX not in name}
    names |= {
        path[len(folder) :]
        for path in (streams if isinstance(streams, dict) else {})
        if path.startswith(folder) and "/" not in path[len(folder) :]
    }
    return sorted(names)


class LayoutTarWriter(TarWriter):
    """A tar stream whose member names are the layout's, not the sources' (see the module)."""

    def __init__(
        self, *, progress: Progress | None = None, part_size: int = PART_SIZE, clock: Clock = SYSTEM
    ) -> None:
        super().__init__([], progress=progress)
        self.clock = clock
        if part_size < 1:
            raise ValidationError(field="part_size", problem=f"must be at least 1 (got {part_size})")
        self.part_size = part_size
        #: stream target -> its part member names (written to the manifest's ``stats["streams"]``)
        self.streams: dict[str, list[str]] = {}
        #: the largest part buffered so far (the memory a stream costs)
        self.largest_buffer = 0
        self._source = b""
        self._target = ""
        self._folders: set[str] = set()
        self._files: set[str] = set()
        self._uid, self._gid = os.geteuid(), os.getegid()

    def member_name(self, path: bytes) -> str:
        rest = path[len(self._source) :]
        return self._target + os.fsdecode(rest)

    def end(self) -> bytes:
        """The two zero blocks that close the tar stream."""
        return self._emit(bytes(2 * tarfile.BLOCKSIZE))

    # --- members ------------------------------------------------------------------------------

    def folder(self, target: str) -> Iterator[bytes]:
        """A layout folder (and the ones above it) not written yet."""
        target = target.strip("/")
        parts = target.split("/")
        for depth in range(1, len(parts) + 1):
            name = "/".join(parts[:depth])
            if name and name not in self._folders:
                self._folders.add(name)
                self.directories += 1
                yield self._header(self._synthetic(name + "/", tarfile.DIRTYPE, 0o700, 0))

    def path(self, target: str, source: str, excludes: Sequence[str] = ()) -> Iterator[bytes]:
        """The host's file or folder ``source`` as ``target`` (excluded paths matched on the
        host's absolute paths)."""
        target = target.strip("/")
        if target in self._folders or target in self._files:
            raise ValidationError(field="target", problem=f"{target!r} is already in the archive")
        yield from self.folder(target.rpartition("/")[0])
        path = os.fsencode(os.path.abspath(source))
        self._source, self._target = path, target
        self.excludes = Excludes(excludes)
        try:
            info = os.lstat(path)
        except OSError as error:
            self.warn(path, f"cannot read source: {error.strerror or error}")
            return
        (self._folders if stat.S_ISDIR(info.st_mode) else self._files).add(target)
        yield from self._entry(path, info)

    def written(self, target: str) -> bool:
        """Whether a folder or a host path was written as ``target``."""
        return target.strip("/") in self._folders or target.strip("/") in self._files

    def data(self, target: str, content: bytes) -> Iterator[bytes]:
        """A generated file ``target`` holding ``content``."""
        target = target.strip("/")
        yield from self.folder(target.rpartition("/")[0])
        yield from self._file_member(target, content)

    def piped(
        self, target: str, read: Callable[[int], bytes], finish: Callable[[], object]
    ) -> Iterator[bytes]:
        """A stream of unknown size read with ``read(n)`` until ``b""``, then checked by
        ``finish()`` (whose exception propagates, the stream then being left unlisted)."""
        target = target.strip("/")
        yield from self.folder(target.rpartition("/")[0])
        names: list[str] = []
        buffer = self._fill(read, b"")
        while True:
            more = read(1) if len(buffer) == self.part_size else b""  # one byte says "not the last"
            if not more:
                finish()  # before the last part: a failed stream never looks complete
                name = target if not names else part_name(target, len(names) + 1)
                names.append(name)
                yield from self._file_member(name, buffer)
                break
            names.append(part_name(target, len(names) + 1))
            yield from self._file_member(names[-1], buffer)
            buffer = self._fill(read, more)
        if len(names) > 1:
            self.streams[target] = names

    def _fill(self, read: Callable[[int], bytes], start: bytes) -> bytearray:
        buffer = bytearray(start)
        while len(buffer) < self.part_size:
            block = read(min(self.part_size - len(buffer), 1024 * 1024))
            if not block:
                break
            buffer += block
        self.largest_buffer = max(self.largest_buffer, len(buffer))
        return buffer

    def _file_member(self, name: str, content: bytes | bytearray) -> Iterator[bytes]:
        member = self._synthetic(name, tarfile.REGTYPE, 0o600, len(content))
        entry = self.entries[-1]
        entry.blake3 = blake3.blake3(content).hexdigest()
        yield self._header(member)
        if content:
            self.progress.on_bytes(len(content))
            yield self._emit(cast(bytes, content))  # the part's own buffer: no copy
        padding = -len(content) % tarfile.BLOCKSIZE
        if padding:
            yield self._emit(bytes(padding))
        self.files += 1
        self.content_bytes += len(content)

    def _synthetic(self, name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
        now = int(self.clock.time() * 1_000_000_000)
        member = tarfile.TarInfo(name)
        member.type = kind
        member.mode = mode
        member.size = size
        member.uid, member.gid = self._uid, self._gid
        member.uname = self._describer.user(self._uid)
        member.gname = self._describer.group(self._gid)
        member.mtime = now // 1_000_000_000
        member.pax_headers = {"mtime": format_pax_time(now)}
        self.entries.append(
            ArchiveEntry(
                path=name.rstrip("/"),
                type="dir" if kind == tarfile.DIRTYPE else "file",
                mode=mode,
                uid=self._uid,
                gid=self._gid,
                mtime_ns=now,
                size=size,
                offset=self.offset,
            )
        )
        return member


# --- reading one layout file back -------------------------------------------------------------------


def read_member(destination: ArchiveDestination, manifest: ArchiveManifest, path: str) -> Iterator[bytes]:
    """The contents of layout file ``path`` (a stream's parts joined), one verified member at a time.

    Reads the stored stream from its start and stops after the file's last member. Each member is
    checked against the manifest (metadata, size, BLAKE3) before any of its bytes are yielded, so
    a damaged part raises ``IntegrityError`` before it is handed out (earlier parts were good).
    Raises ``NotFoundError`` when the archive has no such file."""
    names = stream_parts(manifest, path)
    if not names:
        raise NotFoundError(f"{path!r} is not in archive {manifest.id}", kind="path", ident=path)
    wanted = {name: index for index, name in enumerate(names)}
    entries = {entry.path: entry for entry in manifest.entries}
    what = f"archive {manifest.id}"
    stream: Iterable[bytes] = _stored_chunks(destination.store, manifest.archive_name)
    if manifest.segment_size:
        stream = open_segments(stream, destination.cipher, manifest.id.encode(), what=what)
    if manifest.compression == "zstd":
        stream = decompress_zstd(stream, what=what)
    reader = ChunkReader(stream)
    expected = 0
    try:
        with open_stream(cast(IO[bytes], reader)) as archive:
            for member in archive:
                name = member.name.rstrip("/") if member.isdir() else member.name
                entry = entries.get(name)
                if entry is None:
                    raise IntegrityError(what=what, reason=f"member {name!r} is not in the manifest")
                _check_member(manifest, member, name, entry)
                if name in wanted:
                    if wanted[name] != expected:
                        raise IntegrityError(what=what, reason=f"part {name!r} is out of order")
                    content = b"".join(_content(archive, member))
                    if len(content) != entry.size or blake3.blake3(content).hexdigest() != entry.blake3:
                        raise IntegrityError(
                            what=what, reason=f"contents of {name!r} do not match the manifest"
                        )
                    yield content
                    expected += 1
                    if expected == len(names):
                        return
                forget_members(archive)
    except (tarfile.TarError, EOFError) as error:
        raise IntegrityError(what=what, reason=f"tar stream damaged: {error}") from None
    raise IntegrityError(what=what, reason=f"{path!r}: the stream ends before its last part")


__all__ = [
    "PART_SIZE",
    "LayoutTarWriter",
    "layout_files",
    "part_name",
    "read_member",
    "stream_parts",
]
