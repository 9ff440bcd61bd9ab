"""Verify a stored Archived/Compressed archive end to end without extracting anything.

``verify_archive(destination, archive_id)`` is what a restore checks, minus the writing: the sealed
manifest opens and parses (``load_manifest``); the stored object is streamed through ranged loads
(a few MiB in memory); every segment's seal opens in order with the final flag where it belongs
(encrypted repositories); the zstd frame decompresses with its checksum (Compressed); the tar stream
parses, every member matches its manifest entry (type, mode, owner, time, link target, size, a safe
name), every file's contents match the manifest's BLAKE3; and at the end the member count and the
size and BLAKE3 of the whole stored object match the manifest. Header records are bounded
(``bounded_tar``), so a forged archive cannot make the check hold its stream in memory. Used by the
scheduled integrity check (``jobs.integrity``) and by ``repo check --read-data`` (``archive.check``);
``engine.maintenance.scrub`` is the Incremental structure's counterpart.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator
from typing import IO, cast

import blake3

from snapkeep.engine.archive import load_manifest
from snapkeep.engine.archive.bounded_tar import forget_members, open_stream
from snapkeep.engine.archive.manifest import ArchiveDestination, ArchiveManifest, layout_problem
from snapkeep.engine.archive.reader import _check_member, _content, _stored_chunks
from snapkeep.engine.archive.segments import ChunkReader, HashingTap, decompress_zstd, open_segments
from snapkeep.engine.fs.safe_target import split_path
from snapkeep.engine.progress import Progress
from snapkeep.errors import IntegrityError, ObjectNotFoundError, UnsafePathError


def _counted(chunks: Iterable[bytes], progress: Progress) -> Iterator[bytes]:
    for chunk in chunks:
        progress.on_bytes(len(chunk))
        yield chunk


def verify_archive(
    destination: ArchiveDestination, archive_id: str, *, progress: Progress | None = None
) -> ArchiveManifest:
    """Read archive ``archive_id`` whole and verify it; return its manifest.

    Raises ``IntegrityError`` for any damage (a damaged or missing manifest or data object included),
    ``NotFoundError`` when no manifest names ``archive_id`` at all, ``StorageError`` from the store.
    """
    manifest = load_manifest(destination, archive_id)
    what = f"archive {manifest.id}"
    progress = progress or Progress()
    progress.on_start(1, manifest.size)
    try:
        _verify_stream(destination, manifest, what, progress)
    except ObjectNotFoundError:
        raise IntegrityError(what=what, reason="its data is missing") from None
    except (tarfile.TarError, EOFError) as error:
        raise IntegrityError(what=what, reason=f"tar stream damaged: {error}") from None
    finally:
        progress.on_finish()
    return manifest


def _verify_stream(
    destination: ArchiveDestination, manifest: ArchiveManifest, what: str, progress: Progress
) -> None:
    hashing = HashingTap(_counted(_stored_chunks(destination.store, manifest.archive_name), progress))
    stream: Iterable[bytes] = hashing
    if manifest.segment_size:
        stream = open_segments(stream, destination.cipher, manifest.id.encode(), what=what)
    if manifest.compression == "zstd":
        stream = decompress_zstd(stream, what=what)
    reader = ChunkReader(stream)
    layout = layout_problem(manifest)
    if layout is not None:
        raise IntegrityError(what=what, reason=f"forged or damaged manifest: {layout}")
    entries = {entry.path: entry for entry in manifest.entries}
    seen = 0
    with open_stream(cast(IO[bytes], reader)) as archive:
        for member in archive:
            path = member.name.rstrip("/") if member.isdir() else member.name
            try:
                split_path(path)
            except UnsafePathError as error:
                raise IntegrityError(what=what, reason=f"member name refused: {error}") from None
            entry = entries.get(path)
            if entry is None:
                raise IntegrityError(what=what, reason=f"member {path!r} is not in the manifest")
            _check_member(manifest, member, path, entry)
            if entry.type == "file":
                hasher = blake3.blake3()
                size = 0
                for block in _content(archive, member):
                    hasher.update(block)
                    size += len(block)
                if size != entry.size or hasher.hexdigest() != entry.blake3:
                    raise IntegrityError(what=what, reason=f"contents of {path!r} do not match the manifest")
            seen += 1
            forget_members(archive)
    reader.drain()
    if seen != len(manifest.entries):
        raise IntegrityError(what=what, reason=f"stream holds {seen} of {len(manifest.entries)} members")
    if hashing.size != manifest.size or hashing.hasher.hexdigest() != manifest.blake3:
        raise IntegrityError(what=what, reason="the stored stream does not match its manifest hash")
