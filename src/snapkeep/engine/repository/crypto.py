"""Sealing (authenticated encryption) of blobs and metadata.

A sealed message is ``nonce (12 random bytes) || ciphertext || tag (16 bytes)``. ``associated``
data is authenticated but not stored: callers bind a message to its role or its blob ID with it,
so a message moved to another place fails to open.

``NullCipher`` serves unencrypted repositories: ``seal`` returns the data unchanged and ``open``
too; blob-ID and object-name hashes then catch damage instead of the tag.

The AEAD work happens in OpenSSL (through ``cryptography``); ciphers are safe to share between
threads. Nonces are random 12-byte strings from ``os.urandom``, drawn a block at a time per thread
(``random_nonce``): one ``getrandom`` call, which releases the GIL, per 4,096 nonces instead of one
per blob.
"""

from __future__ import annotations

import os
import threading
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from snapkeep.engine.format import KEY_SIZE, NONCE_SIZE, TAG_SIZE, CipherId
from snapkeep.errors import IntegrityError

#: Bytes a sealed message is longer than its plaintext (for an AEAD cipher).
SEAL_OVERHEAD = NONCE_SIZE + TAG_SIZE

#: Nonces drawn from ``os.urandom`` at a time, per thread (48 KiB).
NONCE_BLOCK = 4096


class _NonceBlock(threading.local):
    """One thread's unused random bytes, and the fork generation they were drawn in."""

    def __init__(self) -> None:
        self.block = b""
        self.offset = 0
        self.generation = -1


_nonces = _NonceBlock()
#: Bumped in a forked child: a block drawn before the fork is never used again (the parent uses
#: it), so no nonce can repeat across processes.
_fork_generation = [0]
os.register_at_fork(after_in_child=lambda: _fork_generation.__setitem__(0, _fork_generation[0] + 1))


def random_nonce() -> bytes:
    """A fresh uniformly random 12-byte nonce, each handed out once: slices of a block of
    ``os.urandom`` output drawn for this thread (and this process)."""
    state = _nonces
    offset = state.offset
    if offset >= len(state.block) or state.generation != _fork_generation[0]:
        state.block = os.urandom(NONCE_SIZE * NONCE_BLOCK)
        state.generation = _fork_generation[0]
        offset = 0
    state.offset = offset + NONCE_SIZE
    return state.block[offset : offset + NONCE_SIZE]


class Cipher(Protocol):
    """Seals and opens messages. Implementations are thread-safe."""

    cipher_id: CipherId

    def seal(self, plaintext: bytes | memoryview, associated: bytes = b"") -> bytes:
        """Encrypt and authenticate ``plaintext``; a fresh random nonce is prefixed."""
        ...

    def seal_split(self, plaintext: bytes | memoryview, associated: bytes = b"") -> tuple[bytes, bytes]:
        """``seal`` as its two halves, the nonce and the rest: the sealed message is their
        concatenation, which the caller writes one after the other (no copy of the message)."""
        ...

    def open(self, sealed: bytes | memoryview, associated: bytes = b"", *, what: str = "message") -> bytes:
        """Return the plaintext of ``sealed``; raises ``IntegrityError`` naming ``what``."""
        ...


class _AeadCipher:
    """Common code of the two AEADs: both take a 96-bit nonce and append a 128-bit tag."""

    cipher_id: CipherId

    def __init__(self, key: bytes, aead: type[AESGCM] | type[ChaCha20Poly1305]) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"cipher key must be {KEY_SIZE} bytes, got {len(key)}")
        self._aead = aead(key)

    def seal(self, plaintext: bytes | memoryview, associated: bytes = b"") -> bytes:
        """Encrypt and authenticate ``plaintext`` under a random nonce; returns nonce||ct||tag."""
        nonce = random_nonce()
        return nonce + self._aead.encrypt(nonce, plaintext, associated)

    def seal_split(self, plaintext: bytes | memoryview, associated: bytes = b"") -> tuple[bytes, bytes]:
        """The nonce and ct||tag. Joining them was a copy of every blob holding the GIL, into fresh
        pages (466 µs per MiB in a backup: docs/engine.md, "Issue 12, third round")."""
        nonce = random_nonce()
        return nonce, self._aead.encrypt(nonce, plaintext, associated)

    def open(self, sealed: bytes | memoryview, associated: bytes = b"", *, what: str = "message") -> bytes:
        """Decrypt ``sealed``; raises ``IntegrityError`` when it is short, altered or misplaced."""
        if len(sealed) < SEAL_OVERHEAD:
            raise IntegrityError(what=what, reason=f"sealed data too short ({len(sealed)} bytes)")
        view = memoryview(sealed)
        try:
            return self._aead.decrypt(view[:NONCE_SIZE], view[NONCE_SIZE:], associated)
        except InvalidTag:
            raise IntegrityError(
                what=what, reason="authentication failed (data damaged or wrong key)"
            ) from None


class AesGcmCipher(_AeadCipher):
    """AES-256-GCM."""

    cipher_id = CipherId.AES_256_GCM

    def __init__(self, key: bytes) -> None:
        super().__init__(key, AESGCM)


class ChaChaCipher(_AeadCipher):
    """ChaCha20-Poly1305 (for CPUs without AES instructions)."""

    cipher_id = CipherId.CHACHA20_POLY1305

    def __init__(self, key: bytes) -> None:
        super().__init__(key, ChaCha20Poly1305)


class NullCipher:
    """No encryption: messages are stored as they are."""

    cipher_id = CipherId.NONE

    def seal(self, plaintext: bytes | memoryview, associated: bytes = b"") -> bytes:
        """Return ``plaintext`` as bytes (no copy when it already is bytes)."""
        return plaintext if isinstance(plaintext, bytes) else bytes(plaintext)

    def seal_split(self, plaintext: bytes | memoryview, associated: bytes = b"") -> tuple[bytes, bytes]:
        """No nonce, and ``plaintext`` as bytes."""
        return b"", self.seal(plaintext, associated)

    def open(self, sealed: bytes | memoryview, associated: bytes = b"", *, what: str = "message") -> bytes:
        """Return ``sealed`` as bytes; never raises (hashes catch damage)."""
        return sealed if isinstance(sealed, bytes) else bytes(sealed)


def make_cipher(cipher_id: CipherId, key: bytes) -> Cipher:
    """The cipher for a permanent ID. Raises ``ValueError`` for a bad key size."""
    if cipher_id is CipherId.NONE:
        return NullCipher()
    if cipher_id is CipherId.AES_256_GCM:
        return AesGcmCipher(key)
    if cipher_id is CipherId.CHACHA20_POLY1305:
        return ChaChaCipher(key)
    raise ValueError(f"unknown cipher id {cipher_id!r}")
