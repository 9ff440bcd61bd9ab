"""The repository's ``config`` object: plain JSON naming the format version and its parameters.

Example::

    {"version": 1, "id": "<32 hex>", "cipher": "aes-256-gcm",
     "compression": {"algorithm": "zstd", "level": 3},
     "chunker": {"algorithm": "fastcdc", "min_size": 524288, "avg_size": 1048576,
                 "max_size": 8388608, "normalization": 0, "seed": 0},
     "pack_size": 16777216}

``config`` is written last by ``init`` (its presence marks a repository) and never changes after.
A version this code does not know is refused with a clear error.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from snapkeep.engine.format import (
    CHUNK_AVG_SIZE,
    CHUNK_MAX_SIZE,
    CHUNK_MIN_SIZE,
    CHUNK_NORMALIZATION,
    CHUNK_SEED,
    CIPHER_NAMES,
    DEFAULT_COMPRESSION_LEVEL,
    FORMAT_VERSION,
    PACK_TARGET_SIZE,
    SUPPORTED_VERSIONS,
    CipherId,
    cipher_by_name,
)
from snapkeep.errors import RepositoryError


def _default_chunker() -> dict[str, Any]:
    return {
        "algorithm": "fastcdc",
        "min_size": CHUNK_MIN_SIZE,
        "avg_size": CHUNK_AVG_SIZE,
        "max_size": CHUNK_MAX_SIZE,
        "normalization": CHUNK_NORMALIZATION,
        "seed": CHUNK_SEED,
    }


@dataclass(frozen=True)
class RepositoryConfig:
    """The parsed ``config``."""

    repository_id: str
    cipher: CipherId
    compression_level: int = DEFAULT_COMPRESSION_LEVEL
    version: int = FORMAT_VERSION
    pack_size: int = PACK_TARGET_SIZE
    chunker: dict[str, Any] = field(default_factory=_default_chunker)

    @property
    def encrypted(self) -> bool:
        """Whether blobs and metadata are sealed with an AEAD."""
        return self.cipher is not CipherId.NONE

    @classmethod
    def new(
        cls, *, cipher: CipherId, compression_level: int, pack_size: int = PACK_TARGET_SIZE
    ) -> RepositoryConfig:
        """A config for a new repository with a random ID; ``RepositoryError`` for a bad option."""
        if not 0 <= compression_level <= 22:
            raise RepositoryError(f"compression_level: must be 0 (off) to 22, got {compression_level}")
        if not 1024 <= pack_size <= 1024 * 1024 * 1024:
            raise RepositoryError(f"pack_size: must be 1 KiB to 1 GiB, got {pack_size}")
        return cls(
            repository_id=os.urandom(16).hex(),
            cipher=cipher,
            compression_level=compression_level,
            pack_size=pack_size,
        )

    def to_json(self) -> bytes:
        """The stored document."""
        document = {
            "version": self.version,
            "id": self.repository_id,
            "cipher": CIPHER_NAMES[self.cipher],
            "compression": {
                "algorithm": "zstd" if self.compression_level else "none",
                "level": self.compression_level,
            },
            "chunker": self.chunker,
            "pack_size": self.pack_size,
        }
        return json.dumps(document, sort_keys=True, indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, *, location: str) -> RepositoryConfig:
        """Parse ``config``; raises ``RepositoryError`` naming the location and the bad field."""
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise RepositoryError(f"{location}: config is not valid JSON") from None
        if not isinstance(document, dict):
            raise RepositoryError(f"{location}: config must be a JSON object")
        version = document.get("version")
        if version not in SUPPORTED_VERSIONS:
            known = ", ".join(str(v) for v in sorted(SUPPORTED_VERSIONS))
            raise RepositoryError(
                f"{location}: repository format version {version!r} is not supported "
                f"(this snapkeep reads version {known}); upgrade snapkeep"
            )
        try:
            compression = document["compression"]
            return cls(
                repository_id=str(document["id"]),
                cipher=cipher_by_name(str(document["cipher"])),
                compression_level=int(compression["level"]),
                version=int(version),
                pack_size=int(document["pack_size"]),
                chunker=dict(document["chunker"]),
            )
        except KeyError as missing:
            raise RepositoryError(f"{location}: config is missing {missing}") from None
        except (ValueError, TypeError) as problem:
            raise RepositoryError(f"{location}: config: {problem}") from None
