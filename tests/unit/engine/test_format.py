"""The permanent table of on-disk identifiers: released values never change."""

from __future__ import annotations

import struct

import pytest

from snapkeep.engine import format as fmt


def test_released_identifiers_keep_their_values() -> None:
    assert fmt.FORMAT_VERSION == 1
    assert {int(v) for v in fmt.SUPPORTED_VERSIONS} == {1}
    assert (fmt.BlobType.DATA, fmt.BlobType.TREE) == (0, 1)
    assert (fmt.Compression.NONE, fmt.Compression.ZSTD) == (0, 1)
    assert (fmt.CipherId.NONE, fmt.CipherId.AES_256_GCM, fmt.CipherId.CHACHA20_POLY1305) == (0, 1, 2)
    assert (fmt.KdfId.NONE, fmt.KdfId.ARGON2ID, fmt.KdfId.SCRYPT) == (0, 1, 2)
    assert fmt.CIPHER_NAMES[fmt.CipherId.AES_256_GCM] == "aes-256-gcm"
    assert fmt.KDF_NAMES[fmt.KdfId.ARGON2ID] == "argon2id"
    assert fmt.PACK_MAGIC == b"SKPACK01"
    assert fmt.PACK_TRAILER_MAGIC == b"SKTR"
    assert fmt.INDEX_MAGIC == b"SKIX"


def test_sizes_match_the_design() -> None:
    assert fmt.CHUNK_MIN_SIZE == 512 * 1024
    assert fmt.CHUNK_AVG_SIZE == 1024 * 1024
    assert fmt.CHUNK_MAX_SIZE == 8 * 1024 * 1024
    assert fmt.PACK_TARGET_SIZE == 16 * 1024 * 1024
    assert fmt.NONCE_SIZE == 12
    assert struct.calcsize(fmt.PACK_TRAILER_ENTRY_FORMAT) == 46
    assert struct.calcsize(fmt.INDEX_ENTRY_FORMAT) == 50


def test_pack_name_fans_out_by_the_first_two_hex_digits() -> None:
    assert fmt.pack_name("ab" + "0" * 62) == "data/ab/ab" + "0" * 62


def test_names_map_to_ids_and_unknown_names_are_refused() -> None:
    assert fmt.cipher_by_name("chacha20-poly1305") is fmt.CipherId.CHACHA20_POLY1305
    assert fmt.kdf_by_name("scrypt") is fmt.KdfId.SCRYPT
    with pytest.raises(ValueError, match="unknown cipher 'rot13'"):
        fmt.cipher_by_name("rot13")
    with pytest.raises(ValueError, match="unknown key derivation 'md5'"):
        fmt.kdf_by_name("md5")
