"""One authenticated SFTP connection through paramiko.

``SftpSession.connect`` opens a TCP connection, runs the SSH handshake, checks the server's host key
against the pinned fingerprint (``SHA256:<base64>``, as ``ssh-keygen -l`` prints it), authenticates
with a private key or a password and opens the SFTP subsystem. Every failure on the way is raised as
a snapkeep ``StorageError`` whose message says what to fix (``sftp_settings.translate`` does the same
for failures of calls on an open session). Only imported when a store needs paramiko: a password
login, a passphrase-protected key, no OpenSSH client, or to name why the OpenSSH client cannot
connect (``sftp.SftpStore``).
"""

from __future__ import annotations

import io
import socket

import paramiko

from snapkeep.errors import PermissionDeniedError, StorageError, TransientStorageError
from snapkeep.storage.sftp_settings import BASE_CONNECTION_ERRORS, HostKey, SftpSettings

#: Exceptions that a paramiko SFTP call may raise and that ``translate`` turns into ``StorageError``.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (*BASE_CONNECTION_ERRORS, paramiko.SSHException)
_KEY_TYPES: tuple[type[paramiko.PKey], ...] = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)
_WINDOW_SIZE = 16 * 1024 * 1024


def fingerprint_of(key: paramiko.PKey) -> str:
    """The OpenSSH SHA256 fingerprint of a public key: ``SHA256:`` and unpadded base64."""
    return host_key_of(key).fingerprint


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


def host_key_of(key: paramiko.PKey) -> HostKey:
    """paramiko's public key as the neutral ``HostKey``."""
    return HostKey(key.get_name(), key.asbytes())


def authenticate(settings: SftpSettings, transport: paramiko.Transport) -> None:
    """Log in with the key, else the password. Raises ``PermissionDeniedError``."""
    who = f"user {settings.username!r} at {settings.where}"
    if settings.private_key is not None and settings.paramiko_key is None:
        settings.paramiko_key = load_private_key(settings.private_key, settings.passphrase)
    key = settings.paramiko_key
    try:
        if key is not None:
            transport.auth_publickey(settings.username, key)
        else:
            transport.auth_password(settings.username, settings.password or "")
    except paramiko.BadAuthenticationType as error:
        method = "private key" if key is not None else "password"
        allowed = ", ".join(error.allowed_types) or "none"
        raise PermissionDeniedError(
            f"authentication failed for {who}: the server does not accept {method} logins "
            f"(it allows: {allowed})"
        ) from None
    except paramiko.AuthenticationException:
        what = (
            "the server refused the private key (is its public key in authorized_keys?)"
            if key is not None
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
            settings.check_host_key(host_key_of(transport.get_remote_server_key()))
            authenticate(settings, transport)
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
