"""A store in a folder on an FTP or FTPS server (``ftplib``, standard library only).

Hosting servers offer FTP where they offer nothing else, so snapkeep writes there too. Object
``a/b/c`` is the remote file ``<path>/a/b/c``; ``path`` is absolute or relative to the login folder.

* **Atomic writes**: the object is uploaded (``STOR``) to a temporary dot-name in its folder, its size
  checked with ``SIZE``, then published with ``RNFR``/``RNTO``, which replaces the old object
  atomically on servers that rename with rename(2) (vsftpd, ProFTPD, Pure-FTPd). Servers refusing to
  rename over a file get delete+rename. A failed or interrupted write leaves at most a dot-name, which
  is never listed. Missing folders are created (``MKD``, parents first) when a ``STOR`` is refused.
* **Reads** of a byte range send ``REST offset`` and stop reading after ``length`` bytes.
* **Listings** use ``MLSD`` where ``FEAT`` offers it, else Unix-style ``LIST`` lines, else ``NLST``
  plus one ``SIZE`` per name (a name ``SIZE`` refuses is taken for a folder). A listing is bounded:
  lines of at most 8 KiB, at most ``MAX_LIST_ENTRIES`` entries, names that are not valid object names
  skipped, each name once.
* **Connections**: up to ``threads`` logged-in connections are opened on demand and pooled. A pooled
  connection the server dropped (idle timeout: ``421``, or a closed socket) is replaced and the call
  tried once more (a write only when its chunks can be replayed); other connection failures are
  ``TransientStorageError`` for ``RetryingStore``.
* **FTPS** is explicit TLS (``AUTH TLS``) on the control and the data connections, the certificate
  checked against the system's CAs or ``ca_file`` (``verify=False`` turns the check off).

Connection set-up and error translation live in ``snapkeep.storage.ftp_session``, listings in
``snapkeep.storage.ftp_listing``.
"""

from __future__ import annotations

import contextlib
import ftplib
import posixpath
import secrets
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from snapkeep.errors import ObjectNotFoundError, StorageError
from snapkeep.storage.base import (
    ObjectInfo,
    Store,
    StoreInfo,
    validate_name,
    validate_prefix,
    validate_range,
)
from snapkeep.storage.ftp_listing import Walk
from snapkeep.storage.ftp_session import (
    FTP_ERRORS,
    FtpSession,
    FtpSettings,
    check_text,
    reply_code,
    size_of,
    translate,
)
from snapkeep.storage.replay import Chunks, SourceFailure

T = TypeVar("T")
TEMPORARY_PREFIX = ".tmp-"
_PIECE = 256 * 1024


class FtpStore(Store):
    """Objects as files below ``path`` on an FTP server. Safe to call from several threads.

    Nothing connects until the first call. Every method raises ``StorageError`` subclasses:
    ``PermissionDeniedError`` (login, refused writes), ``StorageFullError`` (552/452),
    ``ObjectNotFoundError``, ``TransientStorageError`` (refused or dropped connections, timeouts, 4xx
    replies) and ``StorageError`` (unknown host, untrusted certificate, other refusals).
    """

    def __init__(
        self,
        *,
        host: str,
        username: str,
        path: str,
        port: int = 21,
        password: str = "",
        tls: bool = False,
        passive: bool = True,
        verify: bool = True,
        ca_file: str | None = None,
        timeout: float = 30.0,
        threads: int = 2,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._settings = FtpSettings(
            host=host,
            port=port,
            username=username,
            password=password,
            tls=tls,
            passive=passive,
            verify=verify,
            ca_file=ca_file,
            timeout=timeout,
        )
        check_text("path", path)
        self.root = _root(path)
        shown = path.rstrip("/") if path.startswith("/") else "/" + path.strip("/")
        self.location = f"{'ftps' if tls else 'ftp'}://{username}@{host}:{port}{shown or '/'}"
        self.threads = threads
        self._slots = threading.BoundedSemaphore(threads)
        self._idle: list[FtpSession] = []
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"FtpStore({self.location!r}, {self._settings.masked()})"

    # --- the connection pool -----------------------------------------------------------------------

    def _take(self) -> tuple[FtpSession, bool]:
        with self._lock:
            if self._closed:
                raise StorageError(f"{self.location}: the store is closed")
            if self._idle:
                return self._idle.pop(), True
        return FtpSession.connect(self._settings), False

    def _give_back(self, session: FtpSession) -> None:
        with self._lock:
            if not session.broken and not self._closed:
                self._idle.append(session)
                return
        session.close()

    def _drop_idle(self) -> None:
        with self._lock:
            sessions, self._idle = self._idle, []
        for session in sessions:
            session.broken = True  # no QUIT on a connection that is probably gone
            session.close()

    def _run(
        self,
        operation: str,
        name: str,
        action: Callable[[FtpSession], T],
        *,
        replayable: Callable[[], bool] = lambda: True,
        missing_is_not_found: bool = True,
        writing: bool = False,
    ) -> T:
        """Run ``action`` on a pooled connection; reconnect once when a pooled connection was dropped."""
        attempt = 1
        while True:
            with self._slots:
                session, reused = self._take()
                try:
                    result = action(session)
                except SourceFailure as failure:
                    self._give_back(session)
                    raise failure.original from None
                except StorageError:
                    session.broken = True
                    self._give_back(session)
                    raise
                except FTP_ERRORS as error:
                    code = reply_code(error)
                    in_step = isinstance(error, ftplib.error_perm | ftplib.error_temp) and code != "421"
                    session.broken = session.broken or not in_step
                    self._give_back(session)
                    # a pooled connection the server dropped fails its next use in one of these
                    # ways (an FTPS one half-way through TLS, too): one retry on a fresh connection
                    dropped = code == "421" or isinstance(error, EOFError | ConnectionError | ssl.SSLError)
                    if dropped and reused:
                        self._drop_idle()  # dropped together (server restart, idle timeout): reconnect
                    if dropped and reused and attempt == 1 and replayable():
                        attempt += 1
                        continue
                    raise translate(
                        error,
                        f"{operation} {name!r} in {self.location}",
                        name=name,
                        missing_is_not_found=missing_is_not_found,
                        writing=writing,
                    ) from None
                self._give_back(session)
                return result

    def _remote(self, name: str) -> str:
        return posixpath.join(self.root, name)

    # --- writing ------------------------------------------------------------------------------------

    def store(self, name: str, data: bytes) -> None:
        """Write ``data`` atomically under ``name``. Raises ``StorageError`` subclasses."""
        self.store_stream(name, (data,))

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        """Upload the chunks to a temporary name, check its size and rename it over ``name``.

        An exception raised by ``chunks`` itself propagates unchanged and no object appears.
        """
        validate_name(name)
        target = self._remote(name)
        folder = posixpath.dirname(target)
        temporary = posixpath.join(folder, TEMPORARY_PREFIX + secrets.token_hex(8))
        source = Chunks(chunks)

        def write(session: FtpSession) -> int:
            try:
                size = _upload(session, temporary, folder, source)
                _publish(session, temporary, target)
            except BaseException:
                _remove_quietly(session, temporary)
                raise
            return size

        return self._run(
            "write", name, write, replayable=source.can_replay, missing_is_not_found=False, writing=True
        )

    # --- reading ------------------------------------------------------------------------------------

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read a byte range. Raises ``ObjectNotFoundError`` and ``StorageError`` subclasses."""
        validate_name(name)
        validate_range(offset, length)
        path = self._remote(name)

        def read(session: FtpSession) -> bytes:
            if length == 0:
                size_of(session, path)  # a missing object is still an error
                return b""
            try:
                conn = session.transfer(f"RETR {path}", rest=offset or None)
            except ftplib.error_perm:
                # Some servers refuse a REST past the end; a range there is empty.
                if offset and size_of(session, path) <= offset:
                    return b""
                raise
            return _receive(session, conn, length)

        return self._run("read", name, read)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object below ``prefix``, collected before the first one is yielded."""
        validate_prefix(prefix)
        head, _, _ = prefix.rpartition("/")
        start = self._remote(head) if head else self.root

        def walk(session: FtpSession) -> list[ObjectInfo]:
            found: dict[str, ObjectInfo] = {}
            Walk(session, prefix, found).folder(start, f"{head}/" if head else "")
            return list(found.values())

        return iter(self._run("list", prefix or "/", walk))

    def stat(self, name: str) -> ObjectInfo:
        """Name and size; a folder is not an object. Raises ``ObjectNotFoundError``."""
        validate_name(name)
        return ObjectInfo(name, self._run("stat", name, lambda session: size_of(session, self._remote(name))))

    # --- removing and space -------------------------------------------------------------------------

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        """Remove ``name``. Raises ``ObjectNotFoundError`` unless ``missing_ok``."""
        validate_name(name)
        try:
            self._run("delete", name, lambda session: session.ftp.voidcmd(f"DELE {self._remote(name)}"))
        except ObjectNotFoundError:
            if not missing_ok:
                raise

    def info(self) -> StoreInfo:
        """Usage (sum of object sizes); FTP has no standard way to tell free or total space."""
        return StoreInfo(usage=sum(item.size for item in self.list()), free=None, total=None)

    def close(self) -> None:
        """Close every pooled connection; the store must not be used afterwards."""
        with self._lock:
            self._closed = True
            sessions, self._idle = self._idle, []
        for session in sessions:
            session.close()


def _root(path: str) -> str:
    """The remote folder of the objects. A relative path gets ``./`` so that no argument of a
    command starts with ``-`` (servers would read it as ``ls`` options)."""
    if path.startswith("/"):
        return path.rstrip("/") or "/"
    relative = path.strip("/")
    return "." if relative in ("", ".") else "./" + relative.removeprefix("./")


def _upload(session: FtpSession, temporary: str, folder: str, source: Chunks) -> int:
    try:
        conn = session.transfer(f"STOR {temporary}")
    except ftplib.error_perm:
        _make_folders(session, folder)
        conn = session.transfer(f"STOR {temporary}")
    size = 0
    complete = False
    try:
        for chunk in source:
            conn.sendall(chunk)
            size += len(chunk)
        complete = True
    finally:
        session.finish(conn, complete=complete)
    stored = size_of(session, temporary)
    if stored != size:
        raise StorageError(f"the server stored {stored} of {size} bytes of {temporary}")
    return size


def _publish(session: FtpSession, temporary: str, target: str) -> None:
    session.ftp.sendcmd(f"RNFR {temporary}")
    try:
        session.ftp.voidcmd(f"RNTO {target}")
        return
    except ftplib.error_perm:
        pass
    # A server that will not rename over a file: remove the old object first (not atomic, but a
    # reader may only find the name missing for a moment, never half an object).
    with contextlib.suppress(ftplib.error_perm):
        session.ftp.voidcmd(f"DELE {target}")
    session.ftp.sendcmd(f"RNFR {temporary}")
    session.ftp.voidcmd(f"RNTO {target}")


def _receive(session: FtpSession, conn: socket.socket, length: int | None) -> bytes:
    data = bytearray()
    complete = False
    try:
        while length is None or len(data) < length:
            piece = conn.recv(_PIECE if length is None else min(_PIECE, length - len(data)))
            if not piece:
                complete = True
                break
            data += piece
    finally:
        session.finish(conn, complete=complete)
    return bytes(data)


def _remove_quietly(session: FtpSession, path: str) -> None:
    # Already gone, or the connection is lost: a dot-name is never listed anyway.
    if session.broken:
        return
    with contextlib.suppress(*FTP_ERRORS):
        session.ftp.voidcmd(f"DELE {path}")


def _make_folders(session: FtpSession, folder: str) -> None:
    """Create ``folder`` and its missing parents; an ``MKD`` refused because the folder exists (or
    for another reason) is left to the retried ``STOR`` to report."""
    missing: list[str] = []
    current = folder
    while current not in ("", "/", "."):
        try:
            session.ftp.voidcmd(f"MKD {current}")
            break
        except ftplib.error_perm:
            missing.append(current)
            current = posixpath.dirname(current)
    for path in reversed(missing):
        with contextlib.suppress(ftplib.error_perm):
            session.ftp.voidcmd(f"MKD {path}")
