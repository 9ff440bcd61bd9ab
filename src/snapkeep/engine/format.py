"""The permanent on-disk identifiers and constants of the repository format, in one table.

Everything written to a destination is described by a value in this module. A value that has
been released is never changed or reused: a new algorithm gets a new ID, a new layout a new
``FORMAT_VERSION``. A checked-in repository of each released version (``tests/fixtures/golden-v1``)
keeps the readers honest.
The engine's glossary is in ``snapkeep.engine``'s docstring.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

#: Version of the repository format written by this code; ``config`` records it.
FORMAT_VERSION: Final = 1
#: Versions this code can read.
SUPPORTED_VERSIONS: Final = frozenset({1})

KIB: Final = 1024
MIB: Final = 1024 * KIB

# --- chunker -------------------------------------------------------------------------------------
CHUNK_MIN_SIZE: Final = 512 * KIB
CHUNK_AVG_SIZE: Final = 1 * MIB
CHUNK_MAX_SIZE: Final = 8 * MIB
#: FastCDC's mean output is about ``avg_size + min_size`` (pyfastcdc docs, cut-point skipping), so
#: the parameter handed to it is the desired mean minus the minimum.
CHUNK_FASTCDC_AVG_PARAMETER: Final = CHUNK_AVG_SIZE - CHUNK_MIN_SIZE
#: FastCDC normalized-chunking level (0 gives the measured mean of 1.0 MiB with the parameters
#: above; level 1 gives 0.75 MiB) and gear-table seed (0: the reference table).
CHUNK_NORMALIZATION: Final = 0
CHUNK_SEED: Final = 0

# --- packs ---------------------------------------------------------------------------------------
PACK_TARGET_SIZE: Final = 16 * MIB
#: Last 8 bytes of every pack.
PACK_MAGIC: Final = b"SKPACK01"
#: Trailer plaintext starts with this, then the entry count (u32 LE), entries, a BLAKE3 checksum.
PACK_TRAILER_MAGIC: Final = b"SKTR"
#: One trailer entry: blob id (32), blob type (u8), compression (u8), offset, length, raw length (u32 LE).
PACK_TRAILER_ENTRY_FORMAT: Final = "<32sBBIII"
#: Size of the little-endian u32 that gives the sealed trailer length, before the magic.
PACK_TRAILER_LENGTH_SIZE: Final = 4

# --- index ---------------------------------------------------------------------------------------
INDEX_MAGIC: Final = b"SKIX"
INDEX_FILE_VERSION: Final = 1
#: One index entry: blob id (32), pack number in the file's pack table (u32), offset, length,
#: raw length (u32), blob type (u8), compression (u8).
INDEX_ENTRY_FORMAT: Final = "<32sIIIIBB"

# --- identifiers ---------------------------------------------------------------------------------
BLOB_ID_SIZE: Final = 32
#: Nonce prefixed to every sealed message (96 bits, random).
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
KEY_SIZE: Final = 32


class BlobType(IntEnum):
    """What a blob holds."""

    DATA = 0
    TREE = 1


class Compression(IntEnum):
    """How a blob's plaintext was compressed before sealing."""

    NONE = 0
    ZSTD = 1


class CipherId(IntEnum):
    """The AEAD sealing blobs and metadata; ``NONE`` for unencrypted repositories."""

    NONE = 0
    AES_256_GCM = 1
    CHACHA20_POLY1305 = 2


class KdfId(IntEnum):
    """How a key file's key-encryption key is derived from the password."""

    NONE = 0
    ARGON2ID = 1
    SCRYPT = 2


#: Names used in JSON (config, key files) for the IDs above; the table is permanent too.
CIPHER_NAMES: Final = {
    CipherId.NONE: "none",
    CipherId.AES_256_GCM: "aes-256-gcm",
    CipherId.CHACHA20_POLY1305: "chacha20-poly1305",
}
KDF_NAMES: Final = {KdfId.NONE: "none", KdfId.ARGON2ID: "argon2id", KdfId.SCRYPT: "scrypt"}

DEFAULT_COMPRESSION_LEVEL: Final = 3
DEFAULT_CIPHER: Final = CipherId.AES_256_GCM

#: Argon2id defaults (memory in KiB). Stored in each key file, so they may change for new keys.
#: OWASP's second recommended setting (19 MiB, t=2, p=1; as strong as its 46 MiB, t=1): about
#: 0.05 s and 19 MiB per command instead of 0.3 s and 64 MiB with the former t=3, 64 MiB, p=2,
#: whose memory set the floor of every command's peak RSS. Older key files keep their parameters.
ARGON2_DEFAULTS: Final = {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}
#: scrypt defaults (n = 2**15, r = 8, p = 1: 32 MiB).
SCRYPT_DEFAULTS: Final = {"n": 2**15, "r": 8, "p": 1}

# --- associated data binding sealed metadata to its role ----------------------------------------
AD_PACK_TRAILER: Final = b"snapkeep/pack-trailer/v1"
AD_INDEX: Final = b"snapkeep/index/v1"
AD_SNAPSHOT: Final = b"snapkeep/snapshot/v1"
AD_MASTER_KEY: Final = b"snapkeep/master-key/v1"

# --- object names --------------------------------------------------------------------------------
CONFIG_NAME: Final = "config"
KEYS_PREFIX: Final = "keys/"
DATA_PREFIX: Final = "data/"
INDEX_PREFIX: Final = "index/"
SNAPSHOTS_PREFIX: Final = "snapshots/"
LOCKS_PREFIX: Final = "locks/"
ARCHIVES_PREFIX: Final = "archives/"


def pack_name(pack_id: str) -> str:
    """Object name of a pack: ``data/<first 2 hex>/<id>``."""
    return f"{DATA_PREFIX}{pack_id[:2]}/{pack_id}"


def cipher_by_name(name: str) -> CipherId:
    """The cipher ID for a JSON name; ``ValueError`` for an unknown one."""
    for ident, known in CIPHER_NAMES.items():
        if known == name:
            return ident
    raise ValueError(f"unknown cipher {name!r} (known: {', '.join(CIPHER_NAMES.values())})")


def kdf_by_name(name: str) -> KdfId:
    """The KDF ID for a JSON name; ``ValueError`` for an unknown one."""
    for ident, known in KDF_NAMES.items():
        if known == name:
            return ident
    raise ValueError(f"unknown key derivation {name!r} (known: {', '.join(KDF_NAMES.values())})")
