"""One authenticated SFTP connection, the host key check, and SFTP error translation.

``SftpSession.connect`` opens a TCP connection, runs the SSH handshake, checks the server's host key
against the pinned fingerprint (``SHA256:<base64>``, as ``ssh-keygen -l`` prints it), authenticates
with a private key or a password and opens the SFTP subsystem. Every failure on the way is raised as
a snapkeep ``StorageError`` whose message says what to fix. ``translate`` does the same for failures
of SFTP calls on an open session.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import socket
import threading
from dataclasses import dataclass, field

import paramiko

from snapkeep.errors import (
    HostKeyChangedError,
    ObjectNotFoundError,
    PermissionDeniedError,
    StorageError,
    StorageFullError,
    TransientStorageError,
)

#: Exceptions that an SFTP call may raise and that ``translate`` turns into ``StorageError``.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, paramiko.SSHException)
_KEY_TYPES: tuple[type[paramiko.PKey], ...] = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)
_MASK = "***"
_WINDOW_SIZE = 16 * 1024 * 1024


def fingerprint_of(key: paramiko.PKey) -> str:
    """The OpenSSH SHA256 fingerprint of a public key: ``SHA256:`` and unpadded base64."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def normalize_fingerprint(text: str) -> str:
    """Accept ``SHA256:abc``, ``abc`` or ``abc=``; return ``SHA256:abc``."""
    value = text.strip()
    if value.upper().startswith("SHA256:"):
        value = value[len("SHA256:") :]
    return "SHA256:" + value.rstrip("=")


def load_private_key(text: str, passphrase: str | None) -> paramiko.PKey:
    """Parse OpenSSH or PEM private key text (Ed25519, ECDSA or RSA).

    Raises ``StorageError`` naming the ``privatekey`` field when the text is not such a key, is
    encrypted and no passphrase was given, or the passphrase is wrong.
    """
    for kind in _KEY_TYPES:
        try:
            key: paramiko.PKey = kind.from_private_key(io.StringIO(text), password=passphrase)
            return key
        except paramiko.PasswordRequiredException:
            raise StorageError("privatekey: the key is encrypted; give its passphrase") from None
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    reason = "wrong passphrase or " if passphrase else ""
    raise StorageError(
        f"privatekey: not a readable RSA, Ed25519 or ECDSA private key ({reason}unsupported format)"
    )


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
    #: the host key last checked against ``pinned`` (the OpenSSH reads trust only this key)
    host_key: paramiko.PKey | None = field(default=None, init=False, repr=False)
    _key: paramiko.PKey | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.password is None and self.private_key is None:
            raise StorageError(f"sftp destination {self.where}: give a password or a privatekey")
        if self.fingerprint:
            self.pinned = normalize_fingerprint(self.fingerprint)
        if self.private_key is not None:
            self._key = load_private_key(self.private_key, self.passphrase)

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

    def check_host_key(self, key: paramiko.PKey) -> None:
        """Pin the first key seen; raise ``HostKeyChangedError`` for any other key later."""
        offered = fingerprint_of(key)
        with self._lock:
            if self.pinned is None:
                self.pinned = offered
            expected = self.pinned
        if offered != expected:
            raise HostKeyChangedError(
                host=self.where, expected=expected, offered=f"{offered} ({key.get_name()})"
            )
        self.host_key = key

    def authenticate(self, transport: paramiko.Transport) -> None:
        """Log in with the key, else the password. Raises ``PermissionDeniedError``."""
        who = f"user {self.username!r} at {self.where}"
        try:
            if self._key is not None:
                transport.auth_publickey(self.username, self._key)
            else:
                transport.auth_password(self.username, self.password or "")
        except paramiko.BadAuthenticationType as error:
            method = "private key" if self._key is not None else "password"
            allowed = ", ".join(error.allowed_types) or "none"
            raise PermissionDeniedError(
                f"authentication failed for {who}: the server does not accept {method} logins "
                f"(it allows: {allowed})"
            ) from None
        except paramiko.AuthenticationException:
            what = (
                "the server refused the private key (is its public key in authorized_keys?)"
                if self._key is not None
                else "wrong username or password"
            )
            raise PermissionDeniedError(f"authentication failed for {who}: {what}") from None


class SftpSession:
    """An open SSH transport with its SFTP client."""

    def __init__(self, transport: paramiko.Transport, client: paramiko.SFTPClient) -> None:
        self.transport = transport
        self.client = client

    @classmethod
    def connect(cls, settings: SftpSettings) -> SftpSession:
        """Connect, check the host key, log in and start SFTP. Raises ``StorageError`` subclasses."""
        where = settings.where
        try:
            sock = socket.create_connection((settings.host, settings.port), timeout=settings.timeout)
        except socket.gaierror as error:
            raise StorageError(
                f"unknown host {settings.host!r}: the name does not resolve ({error.strerror}); "
                "check the destination's host"
            ) from None
        except ConnectionRefusedError:
            raise TransientStorageError(
                f"connection refused by {where}: no SSH server listens there; "
                "check the host and port and that the server is running"
            ) from None
        except TimeoutError:
            raise TransientStorageError(
                f"timed out connecting to {where} after {settings.timeout:g}s; "
                "check the host, the port and any firewall"
            ) from None
        except OSError as error:
            raise TransientStorageError(f"cannot connect to {where}: {error.strerror or error}") from None
        transport = paramiko.Transport(sock, default_window_size=_WINDOW_SIZE)
        transport.banner_timeout = settings.timeout
        transport.auth_timeout = settings.timeout
        try:
            try:
                transport.start_client(timeout=settings.timeout)
            except (paramiko.SSHException, EOFError, OSError) as error:
                raise TransientStorageError(
                    f"SSH handshake with {where} failed: {error or type(error).__name__}; "
                    "is it an SSH server?"
                ) from None
            settings.check_host_key(transport.get_remote_server_key())
            settings.authenticate(transport)
            try:
                client = paramiko.SFTPClient.from_transport(transport)
            except (paramiko.SSHException, EOFError, OSError) as error:
                raise StorageError(
                    f"{where} accepted the login but did not start SFTP ({error or type(error).__name__}); "
                    "enable the sftp subsystem on the server"
                ) from None
            if client is None:
                raise StorageError(f"{where} refused to open an SFTP channel")
            client.get_channel().settimeout(settings.timeout)
        except BaseException:
            transport.close()
            raise
        return cls(transport, client)

    def alive(self) -> bool:
        return bool(self.transport.is_active())

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            self.transport.close()


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
    if isinstance(error, EOFError | paramiko.SSHException):
        return TransientStorageError(f"SSH error during {detail}: {text}")
    return StorageError(f"SFTP {detail} failed: {text}")
