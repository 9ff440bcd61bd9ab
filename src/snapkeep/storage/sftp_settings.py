"""Where and how an SFTP store connects, its host key pin, and SFTP error translation, without paramiko.

A store that logs in with a private key (no passphrase) on a machine with OpenSSH's ``ssh`` and
``ssh-keyscan`` does everything through the OpenSSH client (``sftp_openssh``) and never imports
paramiko, which costs 23 MiB of memory at import (it loads ``invoke``, ``nacl`` and ``bcrypt``; a
backup to SFTP held more than restic's because of it: ``docs/engine.md``, "Issue 12, sixth round").
This module is what both routes share: the settings, the private key's check (``cryptography``,
already loaded for the repository's encryption), the host key pin and ``translate``, which names a
failed SFTP call's cause as a ``StorageError``. paramiko's connection is ``sftp_session``.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from snapkeep.errors import (
    HostKeyChangedError,
    ObjectNotFoundError,
    PermissionDeniedError,
    StorageError,
    StorageFullError,
    TransientStorageError,
)

__all__ = [
    "BASE_CONNECTION_ERRORS",
    "HostKey",
    "SftpSettings",
    "check_private_key",
    "normalize_fingerprint",
    "translate",
    "unsupported",
]

#: What a call through either client raises when the connection or the server failed.
BASE_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError)
_MASK = "***"


@dataclass(frozen=True)
class HostKey:
    """A server's public host key: its type (``ssh-ed25519``) and its SSH wire encoding."""

    name: str
    blob: bytes

    @property
    def fingerprint(self) -> str:
        """The OpenSSH SHA256 fingerprint: ``SHA256:`` and unpadded base64 (as ``ssh-keygen -l``)."""
        digest = hashlib.sha256(self.blob).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    @property
    def base64(self) -> str:
        """The key as a ``known_hosts`` line writes it."""
        return base64.b64encode(self.blob).decode("ascii")


def normalize_fingerprint(text: str) -> str:
    """Accept ``SHA256:abc``, ``abc`` or ``abc=``; return ``SHA256:abc``."""
    value = text.strip()
    if value.upper().startswith("SHA256:"):
        value = value[len("SHA256:") :]
    return "SHA256:" + value.rstrip("=")


def check_private_key(text: str, passphrase: str | None) -> None:
    """Check that ``text`` is an OpenSSH or PEM private key (Ed25519, ECDSA or RSA) that opens with
    ``passphrase``. Raises ``StorageError`` naming the ``privatekey`` field otherwise."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_ssh_private_key

    data = text.encode("utf-8", "replace")
    password = passphrase.encode() if passphrase else None
    loader = load_ssh_private_key if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data else load_pem_private_key
    try:
        key: Any = loader(data, password)
    except TypeError as error:  # cryptography: encrypted but no password, or a password not needed
        if password is None:
            raise StorageError("privatekey: the key is encrypted; give its passphrase") from None
        key = _unencrypted(loader, data, error)
    except Exception:  # noqa: BLE001 - malformed input raises ValueError, UnsupportedAlgorithm and more
        key = None
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        reason = "wrong passphrase or " if passphrase else ""
        raise StorageError(
            f"privatekey: not a readable RSA, Ed25519 or ECDSA private key ({reason}unsupported format)"
        )


def _unencrypted(loader: Any, data: bytes, error: TypeError) -> Any:
    """A passphrase given for a key that has none: accepted (paramiko ignores it too)."""
    try:
        return loader(data, None)
    except Exception:  # noqa: BLE001 - see check_private_key
        raise StorageError(f"privatekey: {error}") from None


@dataclass
class SftpSettings:
    """Where and how to connect. Secrets are kept out of ``repr``; see ``masked``."""

    host: str
    port: int
    username: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    fingerprint: str | None = None
    timeout: float = 30.0
    pinned: str | None = field(default=None, init=False)
    #: the host key last checked against ``pinned`` (the OpenSSH client trusts only this key)
    host_key: HostKey | None = field(default=None, init=False, repr=False)
    #: paramiko's parsed private key, made by ``sftp_session`` when paramiko first logs in
    paramiko_key: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.password is None and self.private_key is None:
            raise StorageError(f"sftp destination {self.where}: give a password or a privatekey")
        if self.fingerprint:
            self.pinned = normalize_fingerprint(self.fingerprint)
        if self.private_key is not None:
            check_private_key(self.private_key, self.passphrase)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def masked(self) -> str:
        """The settings as text with every secret replaced by ``***``."""
        parts = [f"username={self.username!r}"]
        for label, value in (
            ("password", self.password),
            ("private_key", self.private_key),
            ("passphrase", self.passphrase),
        ):
            if value is not None:
                parts.append(f"{label}={_MASK!r}")
        parts.append(f"fingerprint={self.pinned!r}")
        return ", ".join(parts)

    def check_host_key(self, key: HostKey) -> None:
        """Pin the first key seen; raise ``HostKeyChangedError`` for any other key later."""
        self.choose_host_key([key])

    def choose_host_key(self, offered: list[HostKey]) -> HostKey:
        """The key among ``offered`` (the server's keys, preferred first) that matches the pin, or
        the first one pinned when nothing was pinned yet. Raises ``HostKeyChangedError`` naming
        the first key offered when none matches."""
        if not offered:
            raise StorageError(f"{self.where} offered no host key")
        with self._lock:
            if self.pinned is None:
                self.pinned = offered[0].fingerprint
            expected = self.pinned
        for key in offered:
            if key.fingerprint == expected:
                self.host_key = key
                return key
        first = offered[0]
        raise HostKeyChangedError(
            host=self.where, expected=expected, offered=f"{first.fingerprint} ({first.name})"
        )


def unsupported(error: OSError) -> bool:
    """Whether the server answered SSH_FX_OP_UNSUPPORTED (an extension it does not offer)."""
    return error.errno is None and "unsupported" in str(error).lower()


def _ssh_exception(error: BaseException) -> bool:
    """Whether ``error`` is paramiko's ``SSHException`` (looked up only when paramiko is loaded)."""
    paramiko = sys.modules.get("paramiko")
    return paramiko is not None and isinstance(error, paramiko.SSHException)


def translate(
    error: BaseException,
    detail: str,
    *,
    connection_lost: bool,
    missing_is_not_found: bool,
    name: str,
    free_bytes: int | None = None,
) -> StorageError:
    """Turn an exception of an SFTP call into the matching ``StorageError``.

    ``detail`` says what was being done; ``free_bytes`` (when known) explains a generic failure of a
    write: SFTP v3 reports a full disk or an exceeded quota only as "Failure".
    """
    text = str(error) or type(error).__name__
    if connection_lost or isinstance(error, EOFError):  # an EOF is the peer closing the connection,
        # whether or not the transport has noticed yet (a race under load)
        return TransientStorageError(
            f"connection lost during {detail}: {text}; the server may have been stopped or restarted"
        )
    if isinstance(error, TimeoutError | socket.timeout):
        return TransientStorageError(f"timed out during {detail}")
    if isinstance(error, OSError):
        code = error.errno
        if code == errno.ENOENT and missing_is_not_found:
            return ObjectNotFoundError(name=name)
        if code == errno.ENOENT:
            return StorageError(f"{detail}: a folder on the way does not exist")
        if code == errno.EACCES:
            return PermissionDeniedError(f"permission denied: {detail}; check the SSH user's rights there")
        if code is None and free_bytes == 0:
            return StorageFullError(f"no space left on the destination: {detail}")
        if code is None and text.lower() == "failure":
            return StorageError(
                f"the server refused {detail} without a reason (SFTP 'Failure'): the destination may be "
                "over its quota, or the path may not be writable"
            )
    if isinstance(error, EOFError) or _ssh_exception(error):
        return TransientStorageError(f"SSH error during {detail}: {text}")
    return StorageError(f"SFTP {detail} failed: {text}")
