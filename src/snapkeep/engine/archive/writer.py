"""Writing a pax tar stream of source trees, one bounded piece at a time.

``TarWriter.stream()`` walks the sources (exclude globs as in the incremental backup) and yields
the tar bytes; it never holds more than one read block of a file. Member names are the source paths
without the leading ``/`` (``/home/alice/x`` -> ``home/alice/x``), as GNU tar writes them, so a
plain archive also restores with ``tar -x``. Names that are not valid UTF-8 travel as pax
``hdrcharset=BINARY`` headers (``surrogateescape``); the mtime goes into a pax header with
nanoseconds. Hard links become ``LNKTYPE`` members pointing at the first path of their inode.
Sockets cannot be stored in tar: they are skipped and counted.

While writing, an ``ArchiveEntry`` per member records what the manifest needs: type, size, mode,
owner, mtime, the offset of the member in the tar stream, the BLAKE3 hash of file contents and a
digest of the extended attributes (stored as ``SCHILY.xattr.*`` pax records, POSIX ACLs included).
Per-file problems (vanished, unreadable, changed while read) become warnings; the archive still
completes.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import blake3

from snapkeep.engine.fs.walker import Describer, Excludes, read_xattrs
from snapkeep.engine.progress import Progress

BLOCK = tarfile.BLOCKSIZE
READ_SIZE = 1024 * 1024
ENCODING = "utf-8"
ERRORS = "surrogateescape"
#: pax keyword prefix for extended attributes (and so POSIX ACLs), as GNU tar and star write them.
XATTR_PREFIX = "SCHILY.xattr."
_ZEROS = bytes(READ_SIZE)
_TYPES = {
    stat.S_IFREG: tarfile.REGTYPE,
    stat.S_IFDIR: tarfile.DIRTYPE,
    stat.S_IFLNK: tarfile.SYMTYPE,
    stat.S_IFIFO: tarfile.FIFOTYPE,
    stat.S_IFCHR: tarfile.CHRTYPE,
    stat.S_IFBLK: tarfile.BLKTYPE,
}
#: Entry type names used in manifests (permanent).
TYPE_NAMES = {
    tarfile.REGTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.FIFOTYPE: "fifo",
    tarfile.CHRTYPE: "chardev",
    tarfile.BLKTYPE: "blockdev",
}


@dataclass(slots=True)
class ArchiveEntry:
    """One member of an archive as the manifest records it (``path`` uses surrogateescape)."""

    path: str
    type: str
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    size: int = 0
    offset: int = 0
    link: str = ""
    blake3: str = ""
    xattrs: str = ""


def format_pax_time(nanoseconds: int) -> str:
    """A pax time value with nanosecond precision: ``seconds.nnnnnnnnn``."""
    sign = "-" if nanoseconds < 0 else ""
    seconds, fraction = divmod(abs(nanoseconds), 1_000_000_000)
    return f"{sign}{seconds}.{fraction:09d}"


def parse_pax_time(value: str) -> int:
    """Nanoseconds from a pax time value; ``ValueError`` when malformed."""
    negative = value.startswith("-")
    whole, _, fraction = value.lstrip("-").partition(".")
    if not whole.isdigit() or (fraction and not fraction.isdigit()):
        raise ValueError(f"bad pax time {value!r}")
    nanoseconds = int(whole) * 1_000_000_000 + int((fraction + "000000000")[:9])
    return -nanoseconds if negative else nanoseconds


def xattrs_digest(attributes: dict[str, bytes]) -> str:
    """A short digest of extended attributes for the manifest (``""`` when there are none)."""
    if not attributes:
        return ""
    hasher = blake3.blake3()
    for attribute in sorted(attributes):
        name = attribute.encode(ENCODING, ERRORS)
        hasher.update(len(name).to_bytes(4, "little") + name)
        hasher.update(len(attributes[attribute]).to_bytes(4, "little") + attributes[attribute])
    return hasher.hexdigest(length=16)


def member_name(path: bytes) -> str:
    """The tar member name of an absolute path."""
    return os.fsdecode(path.lstrip(b"/"))


class TarWriter:
    """Produces the tar stream of ``sources`` (absolute paths) and collects entries and stats."""

    def __init__(
        self, sources: Sequence[str], *, excludes: Sequence[str] = (), progress: Progress | None = None
    ):
        self.sources = [os.fsencode(os.path.abspath(source)) for source in sources]
        self.excludes = Excludes(excludes)
        self.progress = progress or Progress()
        self.entries: list[ArchiveEntry] = []
        self.warnings: list[tuple[str, str]] = []
        self.files = 0
        self.directories = 0
        self.content_bytes = 0
        self.sockets_skipped = 0
        self.offset = 0
        self._describer = Describer()
        self._inodes: dict[tuple[int, int], str] = {}

    def member_name(self, path: bytes) -> str:
        """The member name of source ``path`` (a subclass may place sources elsewhere)."""
        return member_name(path)

    def warn(self, path: bytes, message: str) -> None:
        """Record a per-file problem; the archive goes on."""
        shown = os.fsdecode(path)
        self.warnings.append((shown, message))
        self.progress.on_warning(shown, message)

    def stream(self) -> Iterator[bytes]:
        """Yield the whole tar stream, ending with the two zero blocks."""
        for source in self.sources:
            try:
                info = os.lstat(source)
            except OSError as error:
                self.warn(source, f"cannot read source: {error.strerror or error}")
                continue
            yield from self._entry(source, info)
        yield self._emit(bytes(2 * BLOCK))

    def _emit(self, data: bytes) -> bytes:
        self.offset += len(data)
        return data

    def _entry(self, path: bytes, info: os.stat_result) -> Iterator[bytes]:
        if self.excludes.match(path):
            return
        kind = _TYPES.get(stat.S_IFMT(info.st_mode))
        if kind is None:
            self.sockets_skipped += 1  # tar has no socket type; a socket is a live endpoint anyway
            return
        name = self.member_name(path)
        if kind == tarfile.DIRTYPE:
            if name:
                yield self._header(self._tarinfo(path, name + "/", kind, info))
            self.directories += 1
            yield from self._directory(path)
            return
        if kind == tarfile.REGTYPE and info.st_nlink > 1:
            first = self._inodes.setdefault((info.st_dev, info.st_ino), name)
            if first != name:
                yield self._header(self._tarinfo(path, name, tarfile.LNKTYPE, info, link=first))
                return
        if kind == tarfile.REGTYPE:
            yield from self._file(path, name, info)
            return
        link = ""
        if kind == tarfile.SYMTYPE:
            try:
                link = os.fsdecode(os.readlink(path))
            except OSError as error:
                self.warn(path, f"cannot read symlink: {error.strerror or error}")
                return
        yield self._header(self._tarinfo(path, name, kind, info, link=link))

    def _directory(self, path: bytes) -> Iterator[bytes]:
        try:
            with os.scandir(path) as iterator:
                names = sorted(entry.name for entry in iterator)
        except OSError as error:
            self.warn(path, f"cannot list directory: {error.strerror or error}")
            return
        for child_name in names:
            child = os.path.join(path, child_name)
            try:
                info = os.lstat(child)
            except FileNotFoundError:
                continue  # vanished since the listing
            except OSError as error:
                self.warn(child, f"cannot stat: {error.strerror or error}")
                continue
            yield from self._entry(child, info)

    def _tarinfo(
        self, path: bytes, name: str, kind: bytes, info: os.stat_result, *, link: str = ""
    ) -> tarfile.TarInfo:
        member = tarfile.TarInfo(name)
        member.type = kind
        member.mode = stat.S_IMODE(info.st_mode)
        member.uid, member.gid = info.st_uid, info.st_gid
        member.uname = self._describer.user(info.st_uid)
        member.gname = self._describer.group(info.st_gid)
        member.mtime = max(info.st_mtime_ns // 1_000_000_000, 0)
        member.pax_headers = {"mtime": format_pax_time(info.st_mtime_ns)}
        attributes: dict[str, bytes] = {}
        if kind != tarfile.LNKTYPE:
            try:
                attributes = read_xattrs(path)
            except OSError as error:
                self.warn(path, f"cannot read extended attributes: {error.strerror or error}")
        for attribute, value in attributes.items():
            member.pax_headers[XATTR_PREFIX + attribute] = value.decode(ENCODING, ERRORS)
        member.linkname = link
        if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            member.devmajor, member.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
        self.entries.append(
            ArchiveEntry(
                path=name.rstrip("/"),
                type=TYPE_NAMES[kind],
                mode=member.mode,
                uid=member.uid,
                gid=member.gid,
                mtime_ns=info.st_mtime_ns,
                offset=self.offset,
                link=link,
                xattrs=xattrs_digest(attributes),
            )
        )
        return member

    def _header(self, member: tarfile.TarInfo) -> bytes:
        self.progress.on_file(member.name, member.size)
        return self._emit(member.tobuf(tarfile.PAX_FORMAT, ENCODING, ERRORS))

    def _file(self, path: bytes, name: str, info: os.stat_result) -> Iterator[bytes]:
        """A regular file: header, exactly ``size`` content bytes (zero-padded if it shrank), padding."""
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as error:
            if self._inodes.get((info.st_dev, info.st_ino)) == name:
                del self._inodes[(info.st_dev, info.st_ino)]  # later links must not point at it
            if not isinstance(error, FileNotFoundError):
                self.warn(path, f"cannot open: {error.strerror or error}")
            return
        try:
            opened = os.fstat(descriptor)
            member = self._tarinfo(path, name, tarfile.REGTYPE, opened)
            member.size = size = opened.st_size
            entry = self.entries[-1]
            entry.size = size
            hasher = blake3.blake3()
            yield self._header(member)
            remaining = size
            while remaining > 0:
                try:
                    block = os.read(descriptor, min(READ_SIZE, remaining))
                except OSError as error:
                    self.warn(path, f"read failed, rest filled with zeros: {error.strerror or error}")
                    block = b""
                if not block:
                    self.warn(path, f"file shrank while read: {remaining} bytes filled with zeros")
                    while remaining > 0:
                        zeros = _ZEROS[: min(READ_SIZE, remaining)]
                        hasher.update(zeros)
                        remaining -= len(zeros)
                        yield self._emit(zeros)
                    break
                hasher.update(block)
                remaining -= len(block)
                self.progress.on_bytes(len(block))
                yield self._emit(block)
            if os.read(descriptor, 1):
                self.warn(path, f"file grew while read: stored its first {size} bytes")
            entry.blake3 = hasher.hexdigest()
            padding = -size % BLOCK
            if padding:
                yield self._emit(bytes(padding))
            self.files += 1
            self.content_bytes += size
        finally:
            os.close(descriptor)
