"""One FTP or FTPS control connection, bounded listings, and FTP error translation.

``FtpSession.connect`` opens the control connection, upgrades it with ``AUTH TLS`` when ``tls`` is
set (explicit FTPS, RFC 4217) and checks the server's certificate, logs in, protects the data
connections (``PBSZ 0``/``PROT P``), reads ``FEAT`` and switches to binary (``TYPE I``) once for the
life of the connection. Every failure on the way is a snapkeep ``StorageError`` saying what to fix.

Data connections of an FTPS session resume the control connection's TLS session: vsftpd (the most
common server on hosting machines) refuses others by default (``require_ssl_reuse``), and the
standard library's ``FTP_TLS`` does not resume by itself.

What a server sends is bounded: control lines by ``ftplib`` (8 KiB), listing lines by ``MAX_LINE``
here, and a passive-mode reply's address is ignored in favour of the control connection's (``ftplib``
default), so a hostile server cannot point data connections elsewhere.
"""

from __future__ import annotations

import contextlib
import ftplib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field

from snapkeep.errors import (
    ConfigError,
    ObjectNotFoundError,
    PermissionDeniedError,
    StorageError,
    StorageFullError,
    TransientStorageError,
)

#: Exceptions an FTP call may raise; ``translate`` turns them into ``StorageError``.
FTP_ERRORS: tuple[type[BaseException], ...] = (ftplib.Error, OSError, EOFError)
#: The longest listing line accepted from a server, in bytes.
MAX_LINE = 8192
_MASK = "***"


def check_text(label: str, value: str) -> str:
    """``value`` when it holds no control character (CR/LF would inject FTP commands)."""
    if any(ord(character) < 32 or ord(character) == 127 for character in value):
        raise ConfigError(f"ftp destination: {label} must not contain control characters")
    return value


def reply_code(error: BaseException) -> str:
    """The three-digit code of an FTP reply error (``""`` for other errors)."""
    text = str(error)
    return text[:3] if text[:3].isdigit() else ""


@dataclass
class FtpSettings:
    """Where and how to connect. The password is kept out of ``repr``; see ``masked``."""

    host: str
    port: int
    username: str
    password: str = field(default="", repr=False)
    tls: bool = False
    passive: bool = True
    verify: bool = True
    ca_file: str | None = None
    timeout: float = 30.0
    context: ssl.SSLContext | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        for label, value in (("host", self.host), ("username", self.username), ("password", self.password)):
            check_text(label, value)
        if not self.host:
            raise ConfigError("ftp destination: host is empty")
        if self.tls:
            self.context = self._tls_context()

    def _tls_context(self) -> ssl.SSLContext:
        if not self.verify:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        try:
            return ssl.create_default_context(cafile=self.ca_file or None)
        except (OSError, ssl.SSLError) as error:
            reason = getattr(error, "strerror", None) or error
            raise StorageError(f"ca_file {self.ca_file}: cannot read a PEM certificate ({reason})") from None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def masked(self) -> str:
        """The settings as text with the password replaced by ``***``."""
        password = f", password={_MASK!r}" if self.password else ""
        return f"username={self.username!r}{password}, tls={self.tls}, passive={self.passive}"


class _ResumingFtpTls(ftplib.FTP_TLS):
    """``FTP_TLS`` whose data connections resume the control connection's TLS session."""

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)  # noqa: S321 - wrapped in TLS below
        if self._prot_p:  # type: ignore[attr-defined]
            session = self.sock.session if isinstance(self.sock, ssl.SSLSocket) else None
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


class FtpSession:
    """A logged-in FTP control connection in binary mode. ``broken`` once it may be out of step."""

    def __init__(self, ftp: ftplib.FTP, features: frozenset[str]) -> None:
        self.ftp = ftp
        self.features = features
        self.broken = False

    @classmethod
    def connect(cls, settings: FtpSettings) -> FtpSession:
        """Connect, secure, log in. Raises ``StorageError`` subclasses."""
        where = settings.where
        ftp: ftplib.FTP
        if settings.context is not None:
            ftp = _ResumingFtpTls(context=settings.context, timeout=settings.timeout)
        else:
            ftp = ftplib.FTP(timeout=settings.timeout)  # noqa: S321 - plain FTP is what tls=0 asks for
        try:
            _open(ftp, settings)
            if isinstance(ftp, ftplib.FTP_TLS):
                _secure(ftp, settings)
            _login(ftp, settings)
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            ftp.set_pasv(settings.passive)
            ftp.voidcmd("TYPE I")
            features = _features(ftp)
        except StorageError:
            ftp.close()
            raise
        except FTP_ERRORS as error:
            ftp.close()
            raise translate(error, f"setting up the session with {where}", name="") from None
        return cls(ftp, features)

    def transfer(self, command: str, rest: int | None = None) -> socket.socket:
        """Open a data connection for ``command`` (after ``REST rest`` when given)."""
        conn, _ = self.ftp.ntransfercmd(command, rest)
        return conn

    def finish(self, conn: socket.socket, *, complete: bool) -> None:
        """Close a data connection and read the transfer's final reply.

        ``complete`` is false when the client stopped reading early: the server may then answer 426
        or 451 (aborted) as well as 226; both leave the control connection in step.
        """
        if complete and isinstance(conn, ssl.SSLSocket):
            with contextlib.suppress(OSError, ValueError):
                conn.unwrap()
        conn.close()
        if complete:
            self.ftp.voidresp()
            return
        try:
            self.ftp.voidresp()
        except (ftplib.error_temp, ftplib.error_perm):
            pass
        except FTP_ERRORS:
            self.broken = True

    def lines(self, command: str) -> Iterator[str]:
        """The lines of a listing command (``LIST``, ``NLST``, ``MLSD``), each at most ``MAX_LINE``."""
        conn = self.transfer(command)
        complete = False
        try:
            with conn.makefile("rb") as reader:
                while True:
                    line = reader.readline(MAX_LINE + 1)
                    if not line:
                        break
                    if len(line) > MAX_LINE:
                        raise StorageError(f"the server sent a listing line longer than {MAX_LINE} bytes")
                    yield line.decode("utf-8", "replace").rstrip("\r\n")
            complete = True
        finally:
            if not complete:
                self.broken = True
            self.finish(conn, complete=complete)

    def close(self) -> None:
        """Say goodbye (briefly) and close the connection."""
        try:
            if not self.broken and self.ftp.sock is not None:
                self.ftp.sock.settimeout(2)
                self.ftp.quit()
        except FTP_ERRORS:
            pass
        finally:
            self.ftp.close()


def size_of(session: FtpSession, path: str) -> int:
    """The size of file ``path`` (``SIZE``); a refusal (550 for a missing file or a folder) is raised."""
    reply = session.ftp.sendcmd(f"SIZE {path}")
    value = reply[3:].strip()
    if not reply.startswith("213") or not value.isdigit() or len(value) > 20:
        raise StorageError(f"the server answered SIZE of {path} with {reply[:80]!r}")
    return int(value)


def _open(ftp: ftplib.FTP, settings: FtpSettings) -> None:
    where = settings.where
    try:
        ftp.connect(settings.host, settings.port, timeout=settings.timeout)
    except socket.gaierror as error:
        raise StorageError(
            f"unknown host {settings.host!r}: the name does not resolve ({error.strerror}); "
            "check the destination's host"
        ) from None
    except ConnectionRefusedError:
        raise TransientStorageError(
            f"connection refused by {where}: no FTP server listens there; "
            "check the host and port and that the server is running"
        ) from None
    except TimeoutError:
        raise TransientStorageError(
            f"timed out connecting to {where} after {settings.timeout:g}s; "
            "check the host, the port and any firewall"
        ) from None
    except (ftplib.error_proto, ftplib.error_reply, ftplib.error_perm) as error:
        raise StorageError(
            f"{where} does not answer as an FTP server ({str(error)[:80]!r}); is it one?"
        ) from None


def _secure(ftp: ftplib.FTP_TLS, settings: FtpSettings) -> None:
    where = settings.where
    try:
        ftp.auth()
    except ftplib.error_perm as error:
        raise StorageError(
            f"{where} does not offer FTPS (AUTH TLS refused: {error}); enable TLS on the server or set tls=0"
        ) from None
    except ssl.SSLCertVerificationError as error:
        raise StorageError(
            f"the TLS certificate of {where} is not trusted ({error.verify_message}); give the server's CA "
            "certificate (or its self-signed certificate) as ca_file, or set verify=0"
        ) from None
    except ssl.SSLError as error:
        raise StorageError(f"TLS handshake with {where} failed: {error.reason or error}") from None


def _login(ftp: ftplib.FTP, settings: FtpSettings) -> None:
    try:
        ftp.login(settings.username, settings.password)  # FTP_TLS: AUTH TLS is already done
    except ftplib.error_perm as error:
        raise PermissionDeniedError(
            f"authentication failed for user {settings.username!r} at {settings.where}: the server "
            f"answered {str(error)[:120]!r}; check the username and password"
            + ("" if settings.tls else " (or whether the server requires FTPS: tls=1)")
        ) from None


def _features(ftp: ftplib.FTP) -> frozenset[str]:
    """The ``FEAT`` keywords in upper case (empty when the server has no ``FEAT``)."""
    try:
        reply = ftp.sendcmd("FEAT")
    except ftplib.error_perm:
        return frozenset()
    lines = reply.splitlines()[1:-1]
    return frozenset(line.strip().split(" ")[0].upper() for line in lines if line.strip())


def translate(
    error: BaseException, detail: str, *, name: str, missing_is_not_found: bool = False, writing: bool = False
) -> StorageError:
    """Turn an exception of an FTP call into the matching ``StorageError``.

    ``detail`` says what was being done. FTP's 550 means "not found" and "not allowed" alike: it is
    ``ObjectNotFoundError`` where the caller says so (reads, stat, delete), else a refusal.
    """
    if isinstance(error, StorageError):
        return error
    text = str(error)[:200] or type(error).__name__
    code = reply_code(error)
    if isinstance(error, ftplib.error_perm):
        if code == "550" and missing_is_not_found:
            return ObjectNotFoundError(name=name)
        if code == "552":
            return StorageFullError(f"the server refused {detail}: {text} (over quota or full)")
        if code == "530":
            return PermissionDeniedError(f"the server refused {detail}: {text} (not logged in)")
        if code in ("550", "553") and writing:
            return PermissionDeniedError(
                f"the server refused {detail}: {text}; check the FTP user's rights on that folder"
            )
        return StorageError(f"the server refused {detail}: {text}")
    if isinstance(error, ftplib.error_temp):
        if code == "452":
            return StorageFullError(f"no space left on the destination: {detail}: {text}")
        if code == "421":
            return TransientStorageError(f"the server closed the connection during {detail}: {text}")
        return TransientStorageError(f"the server failed {detail} for now: {text}")
    if isinstance(error, ssl.SSLCertVerificationError):
        return StorageError(f"TLS certificate not trusted during {detail}: {error.verify_message}")
    if isinstance(error, TimeoutError):
        return TransientStorageError(f"timed out during {detail}")
    if isinstance(error, OSError | EOFError):
        return TransientStorageError(
            f"connection lost during {detail}: {text}; the server may have been stopped or restarted"
        )
    return StorageError(f"unexpected FTP reply during {detail}: {text}")
