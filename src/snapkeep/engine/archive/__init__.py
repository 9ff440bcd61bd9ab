"""The Archived (tar) and Compressed (tar + zstd) structures: one stream per run, plus a manifest.

Layout, beside the incremental repository in the same folder (sharing ``config`` and ``keys/``, so
one password opens both)::

    archives/<id>.tar        Archived: a pax tar stream
    archives/<id>.tar.zst    Compressed: the same, zstd level 3, one frame with a checksum
    archives/<id>.manifest   sealed JSON written after the archive: what it holds and its hashes

For an encrypted repository the stored object is the stream sealed in segments
(``archive.segments``); for an unencrypted one it is a standard ``.tar``/``.tar.zst`` that ``tar``
and ``zstd`` read. Nothing is staged locally: ``write_archive`` streams through ``store_stream``
and ``restore_archive`` through ranged ``load`` calls, so memory stays bounded by a few MiB.

Restores verify everything against the manifest (which is sealed, and carries its own BLAKE3
checksum for unencrypted repositories): each member's type, mode, owner, time and link target, each
file's BLAKE3 hash before the file is renamed into place, and at the end the count of members and
the hash of the whole stored stream. Damage raises ``IntegrityError``; it never yields wrong files.
An archive without a manifest (an interrupted run) is not listed.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from snapkeep.clock import SYSTEM, Clock
from snapkeep.engine.archive.layout import PART_SIZE, LayoutTarWriter
from snapkeep.engine.archive.manifest import (
    ArchiveDestination,
    ArchiveKeys,
    ArchiveManifest,
    decode_manifest,
    encode_manifest,
)
from snapkeep.engine.archive.reader import ArchiveRestore, ArchiveRestoreResult
from snapkeep.engine.archive.segments import SEGMENT_SIZE, HashingTap, compress_zstd, seal_segments
from snapkeep.engine.archive.writer import READ_SIZE, TarWriter
from snapkeep.engine.format import ARCHIVES_PREFIX, CIPHER_NAMES, DEFAULT_COMPRESSION_LEVEL, CipherId
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository.crypto import Cipher
from snapkeep.errors import NotFoundError, ValidationError

STRUCTURE_ARCHIVED = "archived"
STRUCTURE_COMPRESSED = "compressed"

__all__ = [
    "ArchiveDestination",
    "ArchiveKeys",
    "ArchiveManifest",
    "ArchiveRestoreResult",
    "delete_archive",
    "list_archives",
    "load_manifest",
    "restore_archive",
    "write_archive",
    "write_layout_archive",
]


def archive_name(archive_id: str, compressed: bool) -> str:
    """Store name of an archive's data."""
    return f"{ARCHIVES_PREFIX}{archive_id}.tar{'.zst' if compressed else ''}"


def manifest_name(archive_id: str) -> str:
    """Store name of an archive's manifest."""
    return f"{ARCHIVES_PREFIX}{archive_id}.manifest"


def _encrypted(cipher: Cipher) -> bool:
    return cipher.cipher_id is not CipherId.NONE


def _coalesce(chunks: Iterable[bytes], size: int = READ_SIZE) -> Iterator[bytes]:
    """Join small pieces (tar headers) into writes of about ``size`` bytes."""
    buffer = bytearray()
    for chunk in chunks:
        if not buffer and len(chunk) >= size:
            yield chunk
            continue
        buffer += chunk
        if len(buffer) >= size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def write_archive(
    destination: ArchiveDestination,
    sources: Sequence[str],
    *,
    compressed: bool,
    excludes: Sequence[str] = (),
    tags: Sequence[str] = (),
    progress: Progress | None = None,
    archive_id: str | None = None,
    job_id: str = "",
    account: str = "",
    components: Sequence[str] = (),
    hostname: str | None = None,
    compression_level: int = DEFAULT_COMPRESSION_LEVEL,
    segment_size: int = SEGMENT_SIZE,
    clock: Clock = SYSTEM,
) -> ArchiveManifest:
    """Stream ``sources`` into one archive, then write its manifest; return the manifest.

    Per-file problems are warnings (``progress.on_warning`` and ``stats["warnings"]``). Raises
    ``ValidationError`` for no sources or a bad ``archive_id``, and the store's ``StorageError``
    (the archive is then absent or unlisted: the manifest is written last).
    """
    if not sources:
        raise ValidationError(field="sources", problem="at least one source path is required")
    archive_id = _archive_id(archive_id)
    progress = progress or Progress()
    writer = TarWriter(sources, excludes=excludes, progress=progress)
    return _store_archive(
        destination,
        writer,
        writer.stream(),
        archive_id=archive_id,
        compressed=compressed,
        sources=[os.path.abspath(source) for source in sources],
        excludes=excludes,
        tags=tags,
        job_id=job_id,
        account=account,
        components=components,
        hostname=hostname,
        compression_level=compression_level,
        segment_size=segment_size,
        clock=clock,
    )


def write_layout_archive(
    destination: ArchiveDestination,
    produce: Callable[[LayoutTarWriter], Iterable[bytes]],
    *,
    compressed: bool,
    sources: Sequence[str] = (),
    tags: Sequence[str] = (),
    progress: Progress | None = None,
    archive_id: str | None = None,
    job_id: str = "",
    account: str = "",
    components: Sequence[str] = (),
    stats: Mapping[str, Any] | None = None,
    hostname: str | None = None,
    part_size: int = PART_SIZE,
    compression_level: int = DEFAULT_COMPRESSION_LEVEL,
    segment_size: int = SEGMENT_SIZE,
    clock: Clock = SYSTEM,
) -> ArchiveManifest:
    """Stream the members ``produce(writer)`` yields (``archive.layout``: folders, host paths, data,
    streams of unknown size) into one archive, then write its manifest; return the manifest.

    ``stats`` is merged into the manifest's stats after the stream has been written (the caller may
    fill it while producing, e.g. with failed items); the writer's ``streams`` (the parts of every
    stream stored in several) go to ``stats["streams"]``. Errors as ``write_archive``; an exception
    from ``produce`` propagates and no manifest is written (the archive is not listed).
    """
    archive_id = _archive_id(archive_id)
    writer = LayoutTarWriter(progress=progress or Progress(), part_size=part_size, clock=clock)

    def stream() -> Iterator[bytes]:
        yield from produce(writer)
        yield writer.end()

    def extra() -> dict[str, Any]:
        return {**(stats or {}), "streams": dict(writer.streams), "part_size": part_size}

    return _store_archive(
        destination,
        writer,
        stream(),
        archive_id=archive_id,
        compressed=compressed,
        sources=list(sources),
        excludes=(),
        tags=tags,
        job_id=job_id,
        account=account,
        components=components,
        hostname=hostname,
        compression_level=compression_level,
        segment_size=segment_size,
        clock=clock,
        extra=extra,
    )


def _archive_id(archive_id: str | None) -> str:
    archive_id = archive_id or secrets.token_hex(32)
    if not archive_id.isalnum() or not archive_id.isascii():
        raise ValidationError(field="archive_id", problem=f"must be letters and digits, got {archive_id!r}")
    return archive_id


def _store_archive(
    destination: ArchiveDestination,
    writer: TarWriter,
    tar: Iterable[bytes],
    *,
    archive_id: str | None,
    compressed: bool,
    sources: list[str],
    excludes: Sequence[str],
    tags: Sequence[str],
    job_id: str,
    account: str,
    components: Sequence[str],
    hostname: str | None,
    compression_level: int,
    segment_size: int,
    clock: Clock,
    extra: Callable[[], dict[str, Any]] | None = None,
) -> ArchiveManifest:
    """Compress, seal and store the tar stream ``tar`` of ``writer``, then its manifest (last)."""
    archive_id = _archive_id(archive_id)
    progress = writer.progress
    started = clock.now()
    cipher = destination.cipher
    progress.on_start(None, None)
    stream: Iterable[bytes] = tar
    if compressed:
        stream = compress_zstd(stream, compression_level)
    if _encrypted(cipher):
        stream = seal_segments(stream, cipher, archive_id.encode(), segment_size)
    tap = HashingTap(stream)
    name = archive_name(archive_id, compressed)
    try:
        destination.store.store_stream(name, _coalesce(tap))
        manifest = ArchiveManifest(
            id=archive_id,
            time=started,
            structure=STRUCTURE_COMPRESSED if compressed else STRUCTURE_ARCHIVED,
            compression="zstd" if compressed else "none",
            encryption=CIPHER_NAMES[cipher.cipher_id],
            segment_size=segment_size if _encrypted(cipher) else 0,
            sources=sources,
            excludes=list(excludes),
            tags=list(tags),
            hostname=socket.gethostname() if hostname is None else hostname,
            job_id=job_id,
            account=account,
            components=list(components),
            entries=writer.entries,
            stats={
                "files": writer.files,
                "directories": writer.directories,
                "entries": len(writer.entries),
                "bytes": writer.content_bytes,
                "tar_size": writer.offset,
                "stored_size": tap.size,
                "seconds": round(max((clock.now() - started).total_seconds(), 0.0), 3),
                "sockets_skipped": writer.sockets_skipped,
                "warnings": [{"path": path, "message": message} for path, message in writer.warnings],
                **(extra() if extra is not None else {}),
            },
            size=tap.size,
            blake3=tap.hasher.hexdigest(),
        )
        destination.store.store(manifest_name(archive_id), encode_manifest(manifest, cipher))
    finally:
        progress.on_finish()
    return manifest


def list_archives(destination: ArchiveDestination) -> list[ArchiveManifest]:
    """Every complete archive (one with a manifest), oldest first. Raises ``IntegrityError``."""
    manifests = [
        load_manifest(destination, item.name[len(ARCHIVES_PREFIX) : -len(".manifest")])
        for item in destination.store.list(ARCHIVES_PREFIX)
        if item.name.endswith(".manifest")
    ]
    return sorted(manifests, key=lambda manifest: (manifest.time, manifest.id))


def load_manifest(destination: ArchiveDestination, reference: str) -> ArchiveManifest:
    """The manifest of an archive by full ID, unique ID prefix or ``latest``.

    Raises ``NotFoundError`` (none or several match), ``IntegrityError`` (damaged manifest).
    """
    store = destination.store
    if not reference.isascii() or not reference.isalnum():
        raise NotFoundError(f"no archive matches {reference!r}", kind="archive", ident=reference)
    exact = manifest_name(reference)
    if reference != "latest" and store.exists(exact):
        return decode_manifest(store.load(exact), destination.cipher, reference)
    if reference == "latest":
        archives = list_archives(destination)
        if not archives:
            raise NotFoundError(kind="archive", ident="latest")
        return archives[-1]
    matches = [
        item.name
        for item in store.list(f"{ARCHIVES_PREFIX}{reference}")
        if item.name.endswith(".manifest") and reference
    ]
    if len(matches) != 1:
        problem = "no archive" if not matches else f"{len(matches)} archives"
        raise NotFoundError(f"{problem} matches {reference!r}", kind="archive", ident=reference)
    archive_id = matches[0][len(ARCHIVES_PREFIX) : -len(".manifest")]
    return decode_manifest(store.load(matches[0]), destination.cipher, archive_id)


def delete_archive(destination: ArchiveDestination, archive_id: str) -> None:
    """Remove an archive: its manifest first (so it is never listed half-deleted), then its data."""
    manifest = load_manifest(destination, archive_id)
    destination.store.delete(manifest_name(manifest.id))
    destination.store.delete(manifest.archive_name, missing_ok=True)


def restore_archive(
    destination: ArchiveDestination,
    reference: str | ArchiveManifest,
    target: str | bytes,
    *,
    includes: Sequence[str] = (),
    progress: Progress | None = None,
    owners: bool | None = None,
) -> ArchiveRestoreResult:
    """Restore the whole archive, or the ``includes`` paths (source form, e.g. ``/home/a/x``), below
    ``target`` (``/home/a/x`` lands in ``<target>/home/a/x``); ``reference`` is an ID, a unique ID
    prefix, ``latest`` or a loaded manifest. ``owners`` restores uid/gid (default: when root).

    Raises ``NotFoundError`` (archive or include missing), ``IntegrityError`` (damage; a damaged
    file is never published), ``UnsafePathError`` (a member would leave the target) and
    ``StorageError``; ``OSError`` from the target file system propagates to the caller.
    """
    manifest = reference if isinstance(reference, ArchiveManifest) else load_manifest(destination, reference)
    return ArchiveRestore(
        destination, manifest, target, includes=includes, progress=progress, owners=owners
    ).run()
