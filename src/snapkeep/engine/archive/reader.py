"""Reading an Archived/Compressed archive back: verify every member, extract it safely.

``ArchiveRestore`` streams the stored object through ranged loads, opens the sealed segments (when
encrypted), decompresses (when zstd) and parses the tar with ``tarfile`` in stream mode; it never
uses ``tarfile``'s extraction. Each member is checked against the manifest (type, mode, owner,
mtime, link target, size) and handed to ``SafeExtractor``, which verifies contents before
publishing them. The whole stream's size and BLAKE3 hash and the member count are checked at the
end, so a cut or altered archive raises ``IntegrityError``.

A selected hard link whose first path is not selected "carries" the contents itself: the first
path's data is written under the link's name.

``RestoreOptions`` (``fs.restore_policy``) decide what happens to entries already in the target: a
member is written, overwrites, or is skipped (its data is still read: the stream's hash covers
it). A symlink or file where the archive has a folder is kept with the folder's members when the
policy keeps it, else the restore is refused (``UnsafePathError``), never followed. A dry run reads
only the manifest and the target. Fifos and device nodes are created, and set-user/group-ID bits
kept, only with ``special_files``.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, cast

from snapkeep.engine.archive.bounded_tar import forget_members, open_stream
from snapkeep.engine.archive.extract import SafeExtractor
from snapkeep.engine.archive.manifest import ArchiveDestination, ArchiveManifest, layout_problem
from snapkeep.engine.archive.segments import ChunkReader, HashingTap, decompress_zstd, open_segments
from snapkeep.engine.archive.writer import (
    ENCODING,
    ERRORS,
    READ_SIZE,
    TYPE_NAMES,
    XATTR_PREFIX,
    ArchiveEntry,
    parse_pax_time,
    xattrs_digest,
)
from snapkeep.engine.fs.restore_policy import (
    OVERWRITE,
    SKIP,
    WRITE,
    PolicyOutcome,
    RestoreOptions,
    decide,
    special_refused,
)
from snapkeep.engine.fs.safe_target import SPECIAL_BITS, Metadata, plain_mode, split_path
from snapkeep.engine.progress import Progress
from snapkeep.errors import IntegrityError, NotFoundError
from snapkeep.storage.base import Store

LOAD_BLOCK = 4 * 1024 * 1024
_SPECIAL = {"fifo": 0o010000, "chardev": 0o020000, "blockdev": 0o060000}


@dataclass
class ArchiveRestoreResult(PolicyOutcome):
    """What a restore wrote, and the entries it could not create. ``changes`` counts and lists the
    existing entries overwritten or skipped; in a dry run (``dry_run``) every entry that would be
    written too, and nothing was."""

    files: int = 0
    directories: int = 0
    links: int = 0
    bytes: int = 0
    warnings: list[tuple[str, str]] = field(default_factory=list)


def _stored_chunks(store: Store, name: str) -> Iterator[bytes]:
    offset = 0
    while True:
        block = store.load(name, offset, LOAD_BLOCK)
        if block:
            yield block
        if len(block) < LOAD_BLOCK:
            return
        offset += len(block)


def _member_type(member: tarfile.TarInfo) -> str:
    kind = tarfile.REGTYPE if member.type in (tarfile.AREGTYPE, tarfile.CONTTYPE) else member.type
    return TYPE_NAMES.get(kind, f"unsupported type {member.type!r}")


def _check_member(manifest: ArchiveManifest, member: tarfile.TarInfo, path: str, entry: ArchiveEntry) -> None:
    """``IntegrityError`` unless the member matches its manifest entry field by field."""
    from_stream = {
        "type": _member_type(member),
        "mode": member.mode,
        "uid": member.uid,
        "gid": member.gid,
        "mtime_ns": _member_mtime(member),
        "link": member.linkname if member.type in (tarfile.SYMTYPE, tarfile.LNKTYPE) else "",
        "xattrs": xattrs_digest(member_xattrs(member)),
    }
    if from_stream["type"] == "file":
        from_stream["size"] = member.size
    for key, value in from_stream.items():
        expected = getattr(entry, key)
        if value != expected:
            raise IntegrityError(
                what=f"archive {manifest.id}",
                reason=f"member {path!r}: {key} is {value!r} in the stream but {expected!r} in the manifest",
            )


def member_xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    """Extended attributes carried by a member's ``SCHILY.xattr.*`` pax records."""
    return {
        keyword[len(XATTR_PREFIX) :]: value.encode(ENCODING, ERRORS)
        for keyword, value in member.pax_headers.items()
        if keyword.startswith(XATTR_PREFIX)
    }


def _member_mtime(member: tarfile.TarInfo) -> int:
    exact = member.pax_headers.get("mtime")
    try:
        return parse_pax_time(exact) if exact is not None else int(member.mtime) * 1_000_000_000
    except ValueError:
        return -1


def _content(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    handle = tar.extractfile(member)
    if handle is None:
        return
    remaining = member.size
    while remaining > 0:
        block = handle.read(min(READ_SIZE, remaining))
        if not block:
            return
        remaining -= len(block)
        yield block


def _selector(includes: Sequence[str], manifest: ArchiveManifest) -> tuple[str, ...]:
    """Normalised include paths; ``NotFoundError`` for one that matches nothing."""
    wanted = tuple(include.strip("/") for include in includes)
    for include in wanted:
        if not any(
            entry.path == include or entry.path.startswith(include + "/") for entry in manifest.entries
        ):
            raise NotFoundError(f"{include!r} is not in archive {manifest.id}", kind="path", ident=include)
    return wanted


class ArchiveRestore:
    """One restore of ``manifest``'s archive into ``target``; ``run`` does the work once."""

    def __init__(
        self,
        destination: ArchiveDestination,
        manifest: ArchiveManifest,
        target: str | bytes,
        *,
        includes: Sequence[str] = (),
        progress: Progress | None = None,
        owners: bool | None = None,
        options: RestoreOptions | None = None,
    ) -> None:
        self.options = options or RestoreOptions()
        self.destination = destination
        self.manifest = manifest
        self.target = target
        self.owners = owners
        self.progress = progress or Progress()
        self.wanted = _selector(includes, manifest)
        self.entries = {entry.path: entry for entry in manifest.entries}
        self.what = f"archive {manifest.id}"
        self.result = ArchiveRestoreResult(dry_run=self.options.dry_run)
        #: Folders kept as the non-folder entry the target holds there: their members are skipped.
        self.kept: set[str] = set()
        #: Members not restored because a folder above them was kept as something else.
        self.left_out: set[str] = set()
        self.carriers: dict[str, str] = {}
        for entry in manifest.entries:
            if entry.type == "hardlink" and self.selected(entry.path) and not self.selected(entry.link):
                self.carriers.setdefault(entry.link, entry.path)
        self._restored: dict[str, tuple[bytes, ...]] = {}

    def selected(self, path: str) -> bool:
        """Whether ``path`` is inside one of the includes (every path when there are none)."""
        return not self.wanted or any(path == item or path.startswith(item + "/") for item in self.wanted)

    def note(self, action: str, path: str) -> None:
        self.result.changes.add(action, path, listed=action != WRITE or self.options.dry_run)

    def under_kept(self, path: str) -> bool:
        if not self.kept:
            return False
        parent = path.rpartition("/")[0]
        while parent:
            if parent in self.kept:
                return True
            parent = parent.rpartition("/")[0]
        return False

    def decision(self, extractor: SafeExtractor, parts: tuple[bytes, ...], entry: ArchiveEntry) -> str:
        """``WRITE``/``OVERWRITE``/``SKIP`` for ``entry`` against what the target holds at
        ``parts`` (``fs.restore_policy.decide``). An existing folder is merged into by a folder and
        is a ``ConflictError`` for anything else (unless kept)."""
        info = extractor.existing(parts)
        if info is not None and stat.S_ISDIR(info.st_mode) and entry.type == "dir":
            return WRITE

        def same(found: os.stat_result) -> bool:
            content = self.entries.get(entry.link) if entry.type == "hardlink" else entry
            if entry.type == "symlink":
                folder = extractor.parent(parts)
                return (
                    folder is not None
                    and stat.S_ISLNK(found.st_mode)
                    and os.readlink(parts[-1], dir_fd=folder) == os.fsencode(entry.link)
                )
            if content is None or content.type != "file":
                return False
            return extractor.same_file(parts, content.size, content.blake3)

        return decide(self.options.overwrite, info, entry.mtime_ns, same)

    def dry_run(self) -> ArchiveRestoreResult:
        """What ``run`` would do, from the manifest and the target alone; writes nothing."""
        extractor = SafeExtractor(self.target, owners=self.owners, dry_run=True)
        try:
            for entry in self.manifest.entries:
                if not self.selected(entry.path) or self.under_kept(entry.path):
                    continue
                if entry.type in _SPECIAL and not self.options.special_files:
                    self.result.warnings.append((entry.path, special_refused(entry.type)))
                    continue
                action = self.decision(extractor, split_path(entry.path), entry)
                if entry.type == "dir":
                    self.result.directories += 1
                    if action == WRITE:
                        continue
                    if action == SKIP:
                        self.kept.add(entry.path)
                self.note(action, entry.path)
        finally:
            extractor.close()
        return self.result

    def run(self) -> ArchiveRestoreResult:
        """Restore; see ``archive.restore_archive`` for what raises."""
        layout = layout_problem(self.manifest)
        if layout is not None:  # refused before anything is written
            raise IntegrityError(what=self.what, reason=f"forged or damaged manifest: {layout}")
        if self.options.dry_run:
            return self.dry_run()
        chosen = [entry for entry in self.manifest.entries if self.selected(entry.path)]
        self.progress.on_start(len(chosen), sum(entry.size for entry in chosen))
        hashing = HashingTap(_stored_chunks(self.destination.store, self.manifest.archive_name))
        stream: Iterable[bytes] = hashing
        if self.manifest.segment_size:
            stream = open_segments(stream, self.destination.cipher, self.manifest.id.encode(), what=self.what)
        if self.manifest.compression == "zstd":
            stream = decompress_zstd(stream, what=self.what)
        reader = ChunkReader(stream)
        extractor = SafeExtractor(self.target, owners=self.owners)
        seen = 0
        try:
            with open_stream(cast(IO[bytes], reader)) as archive:
                for member in archive:
                    self._member(archive, member, extractor)
                    seen += 1
                    forget_members(archive)
            reader.drain()
            if seen != len(self.manifest.entries):
                reason = f"stream holds {seen} of {len(self.manifest.entries)} members (truncated)"
                raise IntegrityError(what=self.what, reason=reason)
            if hashing.size != self.manifest.size or hashing.hasher.hexdigest() != self.manifest.blake3:
                raise IntegrityError(
                    what=self.what, reason="the stored stream does not match its manifest hash"
                )
            extractor.finish()
            for path, message in extractor.warnings:
                self.result.warnings.append((path, message))
                self.progress.on_warning(path, message)
        except (tarfile.TarError, EOFError) as error:
            extractor.close()
            raise IntegrityError(what=self.what, reason=f"tar stream damaged: {error}") from None
        except BaseException:
            extractor.close()
            raise
        finally:
            self.progress.on_finish()
        return self.result

    def _member(self, archive: tarfile.TarFile, member: tarfile.TarInfo, extractor: SafeExtractor) -> None:
        path = member.name.rstrip("/") if member.isdir() else member.name
        parts = split_path(path)
        entry = self.entries.get(path)
        if entry is None:
            raise IntegrityError(what=self.what, reason=f"member {path!r} is not in the manifest")
        _check_member(self.manifest, member, path, entry)
        carrier = self.carriers.get(path)
        if not self.selected(path) and carrier is None:
            return
        if self.under_kept(path):
            self.left_out.add(path)
            return
        if entry.type in _SPECIAL and not self.options.special_files:
            self.result.warnings.append((path, special_refused(entry.type)))
            self.progress.on_warning(path, special_refused(entry.type))
            return
        place = split_path(carrier) if carrier is not None and entry.type == "file" else parts
        action = self.decision(extractor, place, entry)
        if action == SKIP:
            self.note(SKIP, carrier or path)
            if entry.type == "file":
                self._restored[path] = place
            elif entry.type == "dir":
                self.kept.add(path)
            return
        if action == OVERWRITE and entry.type != "dir":
            self.note(OVERWRITE, carrier or path)
        elif action == WRITE and entry.type != "dir":
            self.note(WRITE, carrier or path)
        mode = entry.mode
        if entry.type == "file" and mode & SPECIAL_BITS and not self.options.special_files:
            mode = plain_mode(mode)
            message = "restored without its set-user/group-ID bits (special files not asked for)"
            self.result.warnings.append((path, message))
            self.progress.on_warning(path, message)
        metadata = Metadata(
            mode,
            entry.uid,
            entry.gid,
            entry.mtime_ns,
            member_xattrs(member),
            member.uname,
            member.gname,
        )
        result = self.result
        if entry.type == "file":
            shown = carrier or path
            written = extractor.file(
                place, _content(archive, member), entry.size, entry.blake3, metadata, shown
            )
            self._restored[path] = place
            result.files += 1
            result.bytes += written
            self.progress.on_bytes(written)
        elif entry.type == "hardlink":
            if self.carriers.get(entry.link) != path:
                existing = self._restored.get(entry.link)
                if existing is None and entry.link in self.left_out:
                    message = f"hard link to {entry.link!r}, which was kept out of the restore"
                    result.warnings.append((path, message))
                    self.progress.on_warning(path, message)
                    return
                if existing is None:
                    raise IntegrityError(
                        what=self.what, reason=f"hard link {path!r} to unknown {entry.link!r}"
                    )
                extractor.hardlink(parts, existing, path)
            result.links += 1
        elif entry.type == "dir":
            extractor.directory(parts, metadata, path, keep_existing=self.options.keeps_folders)
            result.directories += 1
        elif entry.type == "symlink":
            extractor.symlink(parts, entry.link, metadata, path)
            result.links += 1
        else:
            device = os.makedev(member.devmajor, member.devminor)
            try:
                extractor.special(parts, _SPECIAL[entry.type], device, metadata, path)
            except PermissionError as error:
                message = f"cannot create {entry.type}: {error.strerror}"
                result.warnings.append((path, message))
                self.progress.on_warning(path, message)
        self.progress.on_file(path, entry.size)
