"""Turning a blob's plaintext into its stored bytes and back: keyed ID, zstd, sealing, verification.

``encode`` compresses with zstd at the repository's level (a compressor per thread: zstandard
compressors are not thread-safe; the work itself runs without the GIL), keeps the plaintext when
zstd does not make it smaller, and seals the result with the blob ID as associated data, so a blob
moved to another ID fails to open. ``decode`` reverses it and checks the length and the ID.

``decode`` trusts no declared size: the location's lengths must be within ``data.bounds`` (a DATA
blob holds at most one chunk, a TREE blob at most ``MAX_TREE_BLOB``), and a zstd frame whose header
announces more than the declared plaintext is refused before it is expanded (python-zstandard
allocates the header's content size whatever ``max_output_size`` says), so a 6-byte frame that
expands to 10 GiB costs nothing.
"""

from __future__ import annotations

import threading

import blake3
import zstandard

from snapkeep.engine.data.bounds import location_problem
from snapkeep.engine.format import Compression
from snapkeep.engine.repository.crypto import Cipher
from snapkeep.engine.repository.index import BlobLocation
from snapkeep.errors import IntegrityError


class BlobCodec:
    """Encodes and decodes blobs for one repository. Thread-safe."""

    def __init__(self, cipher: Cipher, id_key: bytes, compression_level: int) -> None:
        self.cipher = cipher
        self._id_key = id_key
        self.compression_level = compression_level
        self._local = threading.local()

    def blob_id(self, data: bytes | memoryview) -> bytes:
        """The 32-byte keyed BLAKE3 ID of ``data``."""
        return blake3.blake3(data, key=self._id_key).digest()

    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor: zstandard.ZstdCompressor | None = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = zstandard.ZstdCompressor(level=self.compression_level)
            self._local.compressor = compressor
        return compressor

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        decompressor: zstandard.ZstdDecompressor | None = getattr(self._local, "decompressor", None)
        if decompressor is None:
            decompressor = zstandard.ZstdDecompressor()
            self._local.decompressor = decompressor
        return decompressor

    def encode_split(self, blob_id: bytes, data: bytes | memoryview) -> tuple[Compression, bytes, bytes]:
        """The compression used and the sealed bytes to store for ``data``, in two halves to store
        one after the other (the nonce and the rest, ``Cipher.seal_split``): no copy per blob."""
        compression, payload = Compression.NONE, data
        if self.compression_level:
            compressed = self._compressor().compress(data)
            if len(compressed) < len(data):
                compression, payload = Compression.ZSTD, compressed
            # Not kept through the sealing when unused: an incompressible 8 MiB chunk held three
            # copies (this, the ciphertext and the sealed message) in each worker at once.
            del compressed
        head, rest = self.cipher.seal_split(payload, blob_id)
        return compression, head, rest

    def decode(self, location: BlobLocation, stored: bytes | memoryview, *, checked: bool = False) -> bytes:
        """Open, decompress and verify a stored blob; raises ``IntegrityError`` naming blob and pack.

        ``checked``: the caller has passed ``location`` through ``check_location`` already (a
        restore checks every location of a read before it starts; once per blob is enough)."""
        if not checked:
            check_location(location)
        if len(stored) != location.length:
            raise IntegrityError(
                what=_blob_in_pack(location), reason=f"read {len(stored)} bytes, expected {location.length}"
            )
        try:
            plaintext = self.cipher.open(stored, location.blob_id)
        except IntegrityError as error:
            raise IntegrityError(what=_blob_in_pack(location), reason=error.fields["reason"]) from None
        if location.compression is Compression.ZSTD:
            try:
                announced = zstandard.frame_content_size(plaintext)
                if announced > location.raw_length:
                    raise IntegrityError(
                        what=_blob_in_pack(location),
                        reason=f"its zstd frame expands to {announced} bytes, not {location.raw_length}",
                    )
                plaintext = self._decompressor().decompress(plaintext, max_output_size=location.raw_length)
            except zstandard.ZstdError as problem:
                raise IntegrityError(
                    what=_blob_in_pack(location), reason=f"cannot decompress: {problem}"
                ) from None
        if len(plaintext) != location.raw_length or self.blob_id(plaintext) != location.blob_id:
            raise IntegrityError(what=_blob_in_pack(location), reason="contents do not match the blob ID")
        return plaintext


def _blob_in_pack(location: BlobLocation) -> str:
    """How messages name a blob: by ID and pack (built only when there is something to say)."""
    return f"blob {location.blob_id.hex()} in pack {location.pack_id}"


def check_location(location: BlobLocation) -> None:
    """Raise ``IntegrityError`` naming the blob and its pack when its declared lengths are out of
    bounds (``data.bounds.location_problem``): checked before anything is read or expanded."""
    problem = location_problem(location.blob_type, location.length, location.raw_length)
    if problem is not None:
        raise IntegrityError(what=_blob_in_pack(location), reason=problem)
