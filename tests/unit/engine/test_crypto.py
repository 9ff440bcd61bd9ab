"""Sealing and opening with the AEAD ciphers and the null cipher."""

from __future__ import annotations

import os
import threading

import pytest

from snapkeep.engine.format import CipherId
from snapkeep.engine.repository.crypto import (
    SEAL_OVERHEAD,
    AesGcmCipher,
    ChaChaCipher,
    NullCipher,
    make_cipher,
)
from snapkeep.errors import IntegrityError

KEY = bytes(range(32))


@pytest.mark.parametrize("cipher_class", [AesGcmCipher, ChaChaCipher])
def test_seal_open_round_trip_with_fresh_nonces(cipher_class: type[AesGcmCipher]) -> None:
    cipher = cipher_class(KEY)
    sealed = cipher.seal(b"hello", b"context")
    again = cipher.seal(b"hello", b"context")
    assert len(sealed) == 5 + SEAL_OVERHEAD
    assert sealed[:12] != again[:12]
    assert cipher.open(sealed, b"context") == b"hello"
    assert cipher.open(memoryview(sealed), b"context") == b"hello"


@pytest.mark.parametrize("cipher_class", [AesGcmCipher, ChaChaCipher])
def test_any_flipped_byte_fails_to_open(cipher_class: type[AesGcmCipher]) -> None:
    cipher = cipher_class(KEY)
    sealed = bytearray(cipher.seal(b"some plaintext", b"ad"))
    for position in (0, 12, len(sealed) - 1):
        damaged = bytearray(sealed)
        damaged[position] ^= 0x01
        with pytest.raises(IntegrityError, match="integrity check failed for blob x"):
            cipher.open(bytes(damaged), b"ad", what="blob x")


def test_wrong_associated_data_wrong_key_or_short_input_fail() -> None:
    cipher = AesGcmCipher(KEY)
    sealed = cipher.seal(b"data", b"blob-1")
    with pytest.raises(IntegrityError):
        cipher.open(sealed, b"blob-2")
    with pytest.raises(IntegrityError):
        AesGcmCipher(os.urandom(32)).open(sealed, b"blob-1")
    with pytest.raises(IntegrityError, match="too short"):
        cipher.open(b"short", b"")


def test_null_cipher_passes_data_through() -> None:
    cipher = NullCipher()
    assert cipher.seal(b"abc") == b"abc"
    assert cipher.seal(memoryview(b"abc")) == b"abc"
    assert cipher.open(b"abc") == b"abc"


def test_make_cipher_by_id_and_key_size_checked() -> None:
    assert isinstance(make_cipher(CipherId.NONE, b""), NullCipher)
    assert isinstance(make_cipher(CipherId.AES_256_GCM, KEY), AesGcmCipher)
    assert isinstance(make_cipher(CipherId.CHACHA20_POLY1305, KEY), ChaChaCipher)
    with pytest.raises(ValueError, match="32 bytes"):
        make_cipher(CipherId.AES_256_GCM, b"short")


@pytest.mark.parametrize("cipher_class", [AesGcmCipher, ChaChaCipher, None])
def test_seal_split_is_a_sealed_message_in_two_halves(cipher_class: type[AesGcmCipher] | None) -> None:
    cipher = cipher_class(os.urandom(32)) if cipher_class else NullCipher()
    plaintext = os.urandom(5000)
    head, rest = cipher.seal_split(memoryview(bytearray(plaintext)), b"blob id")
    assert len(head) == (12 if cipher_class else 0)
    assert cipher.open(head + rest, b"blob id") == plaintext
    assert len(head + rest) == len(cipher.seal(plaintext, b"blob id"))
    if cipher_class:
        assert cipher.seal_split(plaintext, b"blob id")[0] != head  # a fresh nonce each time


def test_nonces_are_drawn_in_blocks_never_repeat_and_are_redrawn_in_a_forked_child() -> None:
    from snapkeep.engine.repository import crypto

    seen = {crypto.random_nonce() for _ in range(2 * crypto.NONCE_BLOCK + 5)}  # crosses two refills
    assert len(seen) == 2 * crypto.NONCE_BLOCK + 5
    assert all(len(nonce) == 12 for nonce in seen)
    other: list[bytes] = []
    thread = threading.Thread(target=lambda: other.append(crypto.random_nonce()))
    thread.start()
    thread.join()
    assert other[0] not in seen  # another thread has its own block
    crypto.random_nonce()  # the parent's block is in use
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only reports its next nonce
        os.write(writer, crypto.random_nonce())
        os._exit(0)
    os.close(writer)
    from_child = os.read(reader, 12)
    os.close(reader)
    os.waitpid(child, 0)
    assert len(from_child) == 12
    assert from_child != crypto.random_nonce()  # the child did not reuse the parent's block
