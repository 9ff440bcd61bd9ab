"""``check_archives``: verify the Archived and Compressed archives beside a repository.

The incremental structure's ``check`` (``maintenance.check``) never looks under ``archives/``; this
module does, with the same readers the restore uses (``archive.segments``, ``archive.reader``). It
lives in the ``archive`` package because the engine's layers keep ``maintenance`` and ``archive``
independent of each other (docs/engine.md); ``snapkeep repo check`` runs both.

Always (the cheap check), for every archive:

* its manifest opens (seal, checksum, the ID it names) and parses;
* its data object exists under the name the manifest gives (``.tar`` or ``.tar.zst``) and its stored
  size is the manifest's (a truncated or extended archive is named);
* encrypted: every sealed segment opens (authenticated, in order, final segment present) and the
  stored stream's BLAKE3 hash is the manifest's; this reads the archive's bytes once, but never
  decompresses nor parses the tar;
* unencrypted: only the size and the first bytes are looked at (the zstd magic, or a valid first
  tar header): a flipped byte in the middle of a plain archive is found only by ``read_data``.

Archive data with no manifest (the manifest was deleted, or the run was killed in the moment between
writing the data and the manifest) is damage: nothing can list or restore it. The manifest is looked
for again at the end of the check, so an archive that a backup running beside the check has just
published (data first, then at once its manifest) is not called damaged.

``read_data`` also reads each archive whole with ``verify.verify_archive`` (what the scheduled
integrity check runs): through the segments, the zstd decoder and ``tarfile`` in stream mode,
against its manifest: every member's type, mode, owner, time, link target, size and safe name,
every file's BLAKE3 hash, the member count, and the stored stream's size and hash. Memory stays
bounded: one segment of plaintext, one bounded piece of decompressed data
(``segments.decompress_zstd`` feeds the decoder small slices, so a frame that expands to gigabytes
never lands in memory at once) and at most ``bounded_tar.MAX_HEADER_BYTES`` of header records
before a member.

Each problem names the archive, the stored object and what is wrong. A failing store (a
``StorageError`` other than a missing object) is raised, never taken for damage.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from typing import Any

from snapkeep.engine.archive.manifest import (
    ArchiveDestination,
    ArchiveManifest,
    decode_manifest,
    layout_problem,
)
from snapkeep.engine.archive.reader import _stored_chunks
from snapkeep.engine.archive.segments import HashingTap, open_segments
from snapkeep.engine.archive.verify import verify_archive
from snapkeep.engine.archive.writer import ENCODING, ERRORS
from snapkeep.engine.format import ARCHIVES_PREFIX
from snapkeep.engine.progress import Progress
from snapkeep.errors import IntegrityError, NotFoundError, ObjectNotFoundError

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_SUFFIXES = (".manifest", ".tar.zst", ".tar")


@dataclass(frozen=True)
class ArchiveProblem:
    """One damaged or missing archive object; ``kind`` is ``manifest`` or ``archive``, ``name`` the
    stored object, ``archive`` the archive's ID (the same shape as ``check.Problem``, plus ``archive``)."""

    kind: str
    name: str
    message: str
    archive: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.message}"


@dataclass
class ArchiveCheckReport:
    """What ``check_archives`` found. ``ok`` when there are no problems."""

    problems: list[ArchiveProblem] = field(default_factory=list)
    #: Archives whose manifest opened, by structure (``archived``, ``compressed``).
    archives: dict[str, int] = field(default_factory=dict)
    manifests: int = 0
    #: Stored bytes of the archive data objects (as listed).
    bytes: int = 0
    #: Encrypted archives whose every sealed segment was opened (cheap check or ``read_data``).
    sealed_checked: int = 0
    archives_read: int = 0
    #: Bytes of tar stream read and verified (``read_data``).
    tar_bytes_read: int = 0
    members_verified: int = 0
    #: IDs of the archives that have a problem.
    damaged: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def count(self) -> int:
        """Archives whose manifest opened."""
        return sum(self.archives.values())

    def problem(self, kind: str, name: str, message: str, archive: str) -> None:
        self.problems.append(ArchiveProblem(kind, name, message, archive))
        if archive not in self.damaged:
            self.damaged.append(archive)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {"ok": self.ok, "count": self.count, **asdict(self)}


def check_archives(
    destination: ArchiveDestination,
    *,
    read_data: bool = False,
    choose: Callable[[list[str]], Collection[str]] | None = None,
    progress: Progress | None = None,
) -> ArchiveCheckReport:
    """Check every archive under ``archives/`` of ``destination`` (see the module); returns the report.

    ``read_data`` reads every archive whole; ``choose`` (given the IDs of the archives whose
    manifest and size are right) returns the ones to read whole instead, e.g. a share of them; the
    others get the cheap check. Raises ``StorageError`` when the store fails (a missing object is
    reported, not raised).
    """
    progress = progress or Progress()
    report = ArchiveCheckReport()
    objects: dict[str, dict[str, int]] = {}
    for item in destination.store.list(ARCHIVES_PREFIX):
        name = item.name[len(ARCHIVES_PREFIX) :]
        suffix = next((suffix for suffix in _SUFFIXES if name.endswith(suffix)), None)
        if suffix is None or "/" in name:
            continue  # not an archive object (nothing of ours is named otherwise)
        objects.setdefault(name[: -len(suffix)], {})[suffix] = item.size
    manifests: list[ArchiveManifest] = []
    orphans: list[tuple[str, str]] = []
    for archive_id in sorted(objects):
        stored = objects[archive_id]
        if ".manifest" not in stored:
            orphans.extend((archive_id, suffix) for suffix in (".tar", ".tar.zst") if suffix in stored)
            continue
        report.manifests += 1
        manifest = _load_manifest(destination, archive_id, report)
        if manifest is None:
            continue
        report.archives[manifest.structure] = report.archives.get(manifest.structure, 0) + 1
        layout = layout_problem(manifest)
        if layout is not None:
            name = f"{ARCHIVES_PREFIX}{archive_id}.manifest"
            report.problem("manifest", name, f"forged or damaged: {layout}", archive_id)
        data_name = manifest.archive_name
        suffix = data_name[len(ARCHIVES_PREFIX) + len(archive_id) :]
        size = stored.get(suffix)
        if size is None:
            report.problem("archive", data_name, "the archive data is missing", archive_id)
            continue
        report.bytes += size
        if size != manifest.size:
            shape = "truncated" if size < manifest.size else "longer than written"
            report.problem(
                "archive",
                data_name,
                f"{size} bytes stored but the manifest says {manifest.size} ({shape})",
                archive_id,
            )
            continue
        manifests.append(manifest)
    reading = {manifest.id for manifest in manifests} if read_data else set()
    if choose is not None and not read_data:
        reading = set(choose([manifest.id for manifest in manifests]))
    total = sum(manifest.size for manifest in manifests if manifest.id in reading)
    progress.on_start(len(manifests), total or None)
    try:
        for manifest in manifests:
            what = f"archive {manifest.id}"
            try:
                if manifest.id in reading:
                    _read_archive(destination, manifest, report, progress)
                elif manifest.segment_size:
                    _check_seals(destination, manifest, report)
                else:
                    _check_head(destination, manifest)
            except IntegrityError as error:
                report.problem("archive", manifest.archive_name, _reason(error, what), manifest.id)
            except ObjectNotFoundError:
                report.problem("archive", manifest.archive_name, "the archive data vanished", manifest.id)
            progress.on_file(manifest.archive_name, manifest.size)
    finally:
        progress.on_finish()
    for archive_id, suffix in orphans:
        # Asked again at the end: a backup running beside the check publishes its data, then at
        # once its manifest; that archive is new, not damaged.
        if not destination.store.exists(f"{ARCHIVES_PREFIX}{archive_id}.manifest"):
            report.problem(
                "archive",
                f"{ARCHIVES_PREFIX}{archive_id}{suffix}",
                "the archive has no manifest (deleted, or its run was killed before writing it): "
                "it cannot be listed or restored",
                archive_id,
            )
    return report


def _reason(error: IntegrityError, what: str) -> str:
    """The problem in ``error`` without the object's name (the report names it): ``reason``, with
    what follows ``what`` in the error's own name (``segment 3``) in front."""
    named, reason = error.fields.get("what"), error.fields.get("reason")
    if not isinstance(named, str) or not isinstance(reason, str) or not named.startswith(what):
        return str(error)
    detail = named[len(what) :].strip()
    return f"{detail}: {reason}" if detail else reason


def _load_manifest(
    destination: ArchiveDestination, archive_id: str, report: ArchiveCheckReport
) -> ArchiveManifest | None:
    name = f"{ARCHIVES_PREFIX}{archive_id}.manifest"
    try:
        return decode_manifest(destination.store.load(name), destination.cipher, archive_id)
    except IntegrityError as error:
        report.problem("manifest", name, _reason(error, f"manifest of archive {archive_id}"), archive_id)
    except ObjectNotFoundError:
        report.problem("manifest", name, "the manifest vanished while checking", archive_id)
    return None


def _check_seals(
    destination: ArchiveDestination, manifest: ArchiveManifest, report: ArchiveCheckReport
) -> None:
    """Open every sealed segment and compare the stored stream's hash with the manifest."""
    tap = HashingTap(_stored_chunks(destination.store, manifest.archive_name))
    what = f"archive {manifest.id}"
    for _ in open_segments(tap, destination.cipher, manifest.id.encode(), what=what):
        pass
    _compare_stream(manifest, tap)
    report.sealed_checked += 1


def _check_head(destination: ArchiveDestination, manifest: ArchiveManifest) -> None:
    """The first bytes of an unencrypted archive: the zstd magic, or a valid first tar header."""
    what = f"archive {manifest.id}"
    head = destination.store.load(manifest.archive_name, 0, tarfile.BLOCKSIZE)
    if manifest.compression == "zstd":
        if not head.startswith(_ZSTD_MAGIC):
            raise IntegrityError(what=what, reason="not a zstd stream (bad magic number)")
        return
    if not manifest.entries:
        return
    try:
        tarfile.TarInfo.frombuf(head, ENCODING, ERRORS)
    except tarfile.HeaderError as error:
        raise IntegrityError(what=what, reason=f"the first tar header is damaged: {error}") from None


def _compare_stream(manifest: ArchiveManifest, tap: HashingTap) -> None:
    if tap.size != manifest.size or tap.hasher.hexdigest() != manifest.blake3:
        raise IntegrityError(
            what=f"archive {manifest.id}", reason="the stored stream does not match its manifest hash"
        )


class _BytesOnly(Progress):
    """Forwards only the byte counts of one archive's verification to the whole check's progress."""

    def __init__(self, outer: Progress) -> None:
        self.outer = outer

    def on_bytes(self, count: int) -> None:
        self.outer.on_bytes(count)


def _read_archive(
    destination: ArchiveDestination, manifest: ArchiveManifest, report: ArchiveCheckReport, progress: Progress
) -> None:
    """Read the archive whole through ``verify.verify_archive`` (the one end-to-end reader the
    scheduled integrity check uses too) and count what it verified."""
    try:
        verify_archive(destination, manifest.id, progress=_BytesOnly(progress))
    except NotFoundError:
        raise IntegrityError(what=f"archive {manifest.id}", reason="its manifest vanished") from None
    report.archives_read += 1
    report.members_verified += len(manifest.entries)
    report.tar_bytes_read += int(manifest.stats.get("tar_size", 0))
    if manifest.segment_size:
        report.sealed_checked += 1
