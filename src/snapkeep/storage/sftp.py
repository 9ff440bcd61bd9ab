"""A store in a folder on an SSH server, over SFTP (the OpenSSH client, or paramiko).

Object ``a/b/c`` is the remote file ``<path>/a/b/c``. A write goes to a temporary dot-name in the
target folder (``.tmp-<random>``), is fsynced where the server offers ``fsync@openssh.com``, and is
published with ``posix-rename@openssh.com`` (atomic replace), or with delete+rename on servers that
lack it. Missing folders are created on the way. Reads of a byte range are pipelined, in requests
as large as the server allows (255 KiB at most).

Two clients: with a private key (no passphrase) and OpenSSH's ``ssh``, every call goes through the
OpenSSH client (``snapkeep.storage.sftp_openssh``: its C code does the encryption, and paramiko is
never imported: 23 MiB less). A password login, a passphrase-protected key, a machine without
``ssh``, or a client that cannot start (paramiko then names why) go through paramiko, imported then.

Connections: up to ``threads`` SSH connections are opened on demand and pooled, so that several
threads transfer in parallel. A connection found dropped during a call is replaced and the call is
tried once more (a write only when its chunks can be replayed); a second failure raises
``TransientStorageError``, which ``RetryingStore`` retries with backoff.

Host keys: with ``fingerprint`` (``SHA256:...`` as ``ssh-keygen -l`` prints it) a server offering
another key is refused with ``HostKeyChangedError``. Without it, the first key seen is recorded in
``store.fingerprint`` (for the caller to save) and pinned for the life of the store.

Settings, the host key pin and error translation live in ``snapkeep.storage.sftp_settings``;
paramiko's connection in ``snapkeep.storage.sftp_session``.
"""

from __future__ import annotations

import contextlib
import errno
import posixpath
import secrets
import stat as stat_module
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from snapkeep.errors import ObjectNotFoundError, StorageError
from snapkeep.storage.base import ObjectInfo, Store, StoreInfo, validate_name, validate_prefix, validate_range
from snapkeep.storage.replay import Chunks, SourceFailure
from snapkeep.storage.sftp_openssh import ClientFailed, OpenSshPool, OpenSshReader, ReaderUnavailable
from snapkeep.storage.sftp_settings import BASE_CONNECTION_ERRORS, SftpSettings, translate, unsupported

if TYPE_CHECKING:
    import paramiko

    from snapkeep.storage.sftp_session import SftpSession

#: Either client: paramiko's ``SFTPClient`` or an ``OpenSshReader`` (the same calls, raising alike).
Client = Any

T = TypeVar("T")
TEMPORARY_PREFIX = ".tmp-"
#: Read requests in flight per range read (at most 16 MiB with the largest requests: the
#: session's window).
_PREFETCH_REQUESTS = 64
#: paramiko's own read request size, kept for servers that do not say what they accept.
_SMALL_READ = 32 * 1024
#: The read request size used when the server's ``limits@openssh.com`` allows it (OpenSSH: 255 KiB).
#: 512 MiB restore profile: reading 4 MiB ranges went from 22 to 96 MiB/s on one connection
#: (``docs/engine.md``, "Remote restore profile").
_LARGE_READ = 255 * 1024


class SftpStore(Store):
    """Objects as files below ``path`` on an SSH server. Safe to call from several threads.

    Give ``password`` or ``private_key`` (OpenSSH/PEM text of an RSA, Ed25519 or ECDSA key, with
    ``passphrase`` when encrypted). Nothing connects until the first call. Every method raises
    ``StorageError`` subclasses: ``PermissionDeniedError`` (authentication, permissions),
    ``HostKeyChangedError``, ``StorageFullError``, ``ObjectNotFoundError``, ``TransientStorageError``
    (refused or dropped connections, timeouts) and ``StorageError`` (unknown host, other failures).
    """

    spools_packs = True

    def __init__(
        self,
        *,
        host: str,
        username: str,
        path: str,
        port: int = 22,
        password: str | None = None,
        private_key: str | None = None,
        passphrase: str | None = None,
        fingerprint: str | None = None,
        timeout: float = 30.0,
        threads: int = 2,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._settings = SftpSettings(
            host=host,
            port=port,
            username=username,
            password=password,
            private_key=private_key,
            passphrase=passphrase,
            fingerprint=fingerprint,
            timeout=timeout,
        )
        self.root = path.rstrip("/") or ("/" if path.startswith("/") else ".")
        shown = self.root if self.root.startswith("/") else f"/{self.root}"
        self.location = f"sftp://{username}@{host}:{port}{shown}"
        self.threads = threads
        self._slots = threading.BoundedSemaphore(threads)
        self._idle: list[SftpSession] = []
        self._lock = threading.Lock()
        self._closed = False
        self._fsync_supported = True
        self._posix_rename_supported = True
        self._read_request: int | None = None  # learnt from the server on the first large read
        #: reads go through the OpenSSH client (``sftp_openssh``) when it can log in like us
        self._openssh = OpenSshPool(self._settings, threads, self._check_host_key)

    def __repr__(self) -> str:
        return f"SftpStore({self.location!r}, {self._settings.masked()})"

    @property
    def fingerprint(self) -> str | None:
        """The host key fingerprint expected or, before one was given, the first one seen."""
        return self._settings.pinned

    # --- the connection pool -----------------------------------------------------------------------

    def _take(self) -> SftpSession:
        from snapkeep.storage.sftp_session import SftpSession

        with self._lock:
            if self._closed:
                raise StorageError(f"{self.location}: the store is closed")
            while self._idle:
                session = self._idle.pop()
                if session.alive():
                    return session
                session.close()
        return SftpSession.connect(self._settings)

    def _give_back(self, session: SftpSession) -> None:
        with self._lock:
            if session.alive() and not self._closed:
                self._idle.append(session)
                return
        session.close()

    def _run(
        self,
        operation: str,
        name: str,
        action: Callable[[paramiko.SFTPClient], T],
        *,
        replayable: Callable[[], bool] = lambda: True,
        missing_is_not_found: bool = True,
        free_bytes: Callable[[], int | None] = lambda: None,
    ) -> T:
        """Run ``action`` on a pooled paramiko connection; reconnect once when the connection
        dropped."""
        from snapkeep.storage.sftp_session import CONNECTION_ERRORS

        attempt = 1
        while True:
            with self._slots:
                session = self._take()
                try:
                    result = action(session.client)
                except SourceFailure as failure:
                    self._give_back(session)
                    raise failure.original from None
                except CONNECTION_ERRORS as error:
                    lost = not session.alive()
                    self._give_back(session)
                    if lost and attempt == 1 and replayable():
                        attempt += 1
                        continue
                    raise translate(
                        error,
                        f"{operation} {name!r} in {self.location}",
                        connection_lost=lost,
                        missing_is_not_found=missing_is_not_found,
                        name=name,
                        free_bytes=free_bytes(),
                    ) from error
                self._give_back(session)
                return result

    def _call(
        self, operation: str, name: str, action: Callable[[Client], T], *, missing_is_not_found: bool = True
    ) -> T:
        """Run ``action`` (which may take either client) through the OpenSSH client when it can
        log in, else on a paramiko connection; one fresh connection is tried when it dropped."""
        if self._openssh.enabled:
            try:
                return self._openssh.run(action)
            except ReaderUnavailable:
                pass  # ssh cannot log in as we do (now): paramiko runs it and names any problem
            except ClientFailed as failed:
                error = self._client_error(failed, operation, name, missing_is_not_found=missing_is_not_found)
                raise error from failed.error
        return self._run(operation, name, action, missing_is_not_found=missing_is_not_found)

    def _remote(self, name: str) -> str:
        return posixpath.join(self.root, name)

    # --- writing ------------------------------------------------------------------------------------

    def store(self, name: str, data: bytes) -> None:
        """Write ``data`` atomically under ``name``. Raises ``StorageError`` subclasses."""
        self.store_stream(name, (data,))

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        """Write the chunks to a temporary file, fsync it and rename it over ``name``; return the size.

        An exception raised by ``chunks`` itself propagates unchanged and no object appears.
        """
        validate_name(name)
        target = self._remote(name)
        temporary = posixpath.join(posixpath.dirname(target), TEMPORARY_PREFIX + secrets.token_hex(8))
        source = Chunks(chunks)
        if self._openssh.enabled:
            try:
                return self._store_openssh(name, temporary, target, source)
            except ReaderUnavailable:
                pass  # ssh cannot log in as we do (now): paramiko writes and names any problem
        free: list[int | None] = [None]

        def write(client: paramiko.SFTPClient) -> int:
            try:
                size = self._write_temporary(client, temporary, source)
                self._publish(client, temporary, target)
            except BaseException as error:
                if isinstance(error, OSError) and error.errno is None:
                    free[0] = self._free_bytes(client)  # before the cleanup frees the space again
                _remove_quietly(client, temporary)
                raise
            return size

        return self._run(
            "write",
            name,
            write,
            replayable=source.can_replay,
            missing_is_not_found=False,
            free_bytes=lambda: free[0],
        )

    def _store_openssh(self, name: str, temporary: str, target: str, source: Chunks) -> int:
        """``store_stream`` through the OpenSSH client (``sftp_openssh``): the same temporary
        file, fsync, size check and rename as paramiko's, the encryption in ssh's C code. Missing
        folders are made on the same connection. Raises ``ReaderUnavailable`` before anything is
        written, ``StorageError`` subclasses, or what ``source`` raised."""
        free: list[int | None] = [None]

        def write(session: OpenSshReader) -> int:
            try:
                try:
                    size, self._fsync_supported = session.write_file(
                        temporary, source, fsync=self._fsync_supported
                    )
                except FileNotFoundError:  # at the open, before any chunk was taken
                    _make_folders(session, posixpath.dirname(temporary))
                    size, self._fsync_supported = session.write_file(
                        temporary, source, fsync=self._fsync_supported
                    )
                self._posix_rename_supported = session.rename(
                    temporary, target, posix=self._posix_rename_supported
                )
            except BaseException as error:
                if session.alive():
                    if isinstance(error, OSError) and error.errno is None:  # before the cleanup frees it
                        free[0] = self._free_bytes(session)
                    with contextlib.suppress(*BASE_CONNECTION_ERRORS):
                        session.remove(temporary)
                raise
            return size

        try:
            return self._openssh.run(write, source.can_replay)
        except SourceFailure as failure:
            raise failure.original from None
        except ClientFailed as failed:
            raise self._client_error(failed, "write", name, free_bytes=free[0]) from failed.error

    def _write_temporary(self, client: paramiko.SFTPClient, temporary: str, source: Chunks) -> int:
        from paramiko.sftp import CMD_EXTENDED

        try:
            handle = client.open(temporary, "wb")
        except FileNotFoundError:
            _make_folders(client, posixpath.dirname(temporary))
            handle = client.open(temporary, "wb")
        size = 0
        with handle:
            handle.set_pipelined(True)
            for chunk in source:
                handle.write(chunk)
                size += len(chunk)
            handle.flush()
            if self._fsync_supported:
                try:
                    client._request(CMD_EXTENDED, "fsync@openssh.com", handle.handle)
                except OSError as error:
                    if not unsupported(error):
                        raise
                    self._fsync_supported = False
        written = client.stat(temporary).st_size
        if written != size:
            raise OSError(f"the server stored {written} of {size} bytes")
        return size

    def _publish(self, client: paramiko.SFTPClient, temporary: str, target: str) -> None:
        if self._posix_rename_supported:
            try:
                client.posix_rename(temporary, target)
                return
            except OSError as error:
                if not unsupported(error):
                    raise
                self._posix_rename_supported = False
        # Plain SFTP rename refuses to overwrite: remove the old object first (not atomic, but the
        # only way on such servers; readers may briefly see the name missing, never half an object).
        with contextlib.suppress(FileNotFoundError):
            client.remove(target)
        client.rename(temporary, target)

    # --- reading ------------------------------------------------------------------------------------

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read a byte range. Raises ``ObjectNotFoundError`` and ``StorageError`` subclasses."""
        validate_name(name)
        validate_range(offset, length)
        path = self._remote(name)
        if self._openssh.enabled:
            try:
                return self._openssh.read(path, offset, length)
            except ReaderUnavailable:
                pass  # ssh cannot log in as we do (now): paramiko reads and names any problem
            except ClientFailed as failed:
                raise self._client_error(failed, "read", name) from failed.error

        def read(client: paramiko.SFTPClient) -> bytes:
            piece = self._read_size(client)
            with client.open(path, "rb") as handle:
                handle.MAX_REQUEST_SIZE = piece  # this handle's requests (paramiko splits by it)
                if length is not None and length <= piece:
                    # One request and no stat round trip: the server answers short at the end.
                    handle.seek(offset)
                    return bytes(handle.read(length))
                size = handle.stat().st_size
                end = size if length is None else min(size, offset + length)
                if end <= offset:
                    return b""
                # Many small ranges: paramiko joins one range's pieces quadratically. A server that
                # answers a request short is asked again for the rest (paramiko's read loop).
                ranges = [(start, min(piece, end - start)) for start in range(offset, end, piece)]
                return b"".join(handle.readv(ranges, _PREFETCH_REQUESTS))

        return self._run("read", name, read)

    def _client_error(
        self,
        failed: ClientFailed,
        operation: str,
        name: str,
        *,
        free_bytes: int | None = None,
        missing_is_not_found: bool | None = None,
    ) -> StorageError:
        """The ``StorageError`` for a call that failed through the OpenSSH client (a missing
        file is ``ObjectNotFoundError`` for a read unless said otherwise)."""
        return translate(
            failed.error,
            f"{operation} {name!r} in {self.location}",
            connection_lost=failed.lost,
            missing_is_not_found=operation == "read"
            if missing_is_not_found is None
            else missing_is_not_found,
            name=name,
            free_bytes=free_bytes,
        )

    def _check_host_key(self) -> None:
        """Connect once through paramiko, which checks (and pins) the host key."""
        self._run("connect", self.root, lambda client: None)

    def _read_size(self, client: paramiko.SFTPClient) -> int:
        """Bytes per read request: what ``limits@openssh.com`` allows, at most ``_LARGE_READ``;
        paramiko's 32 KiB when the server does not say. Asked once per store."""
        from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY

        if self._read_request is None:
            allowed = 0
            try:
                kind, message = client._request(CMD_EXTENDED, "limits@openssh.com")
                if kind == CMD_EXTENDED_REPLY:
                    _packet, allowed, _write, _handles = (message.get_int64() for _ in range(4))
            except OSError as error:
                if not unsupported(error):
                    raise
            self._read_request = min(allowed, _LARGE_READ) if allowed >= _SMALL_READ else _SMALL_READ
        return self._read_request

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object below ``prefix``, collected before the first one is yielded."""
        validate_prefix(prefix)
        head, _, _ = prefix.rpartition("/")
        start = self._remote(head) if head else self.root
        found: list[ObjectInfo] = []

        def walk(client: Client) -> list[ObjectInfo]:
            found.clear()
            _walk(client, start, f"{head}/" if head else "", prefix, found)
            return found

        return iter(self._call("list", prefix or "/", walk))

    def stat(self, name: str) -> ObjectInfo:
        """Name and size; a folder is not an object. Raises ``ObjectNotFoundError``."""
        validate_name(name)
        attributes = self._call("stat", name, lambda client: client.stat(self._remote(name)))
        if attributes.st_mode is not None and not stat_module.S_ISREG(attributes.st_mode):
            raise ObjectNotFoundError(name=name)
        return ObjectInfo(name, int(attributes.st_size or 0))

    # --- removing and space -------------------------------------------------------------------------

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        """Remove ``name``. Raises ``ObjectNotFoundError`` unless ``missing_ok``."""
        validate_name(name)
        try:
            self._call("delete", name, lambda client: client.remove(self._remote(name)))
        except ObjectNotFoundError:
            if not missing_ok:
                raise

    def info(self) -> StoreInfo:
        """Usage (sum of object sizes) and, via ``statvfs@openssh.com``, free and total bytes."""
        usage = sum(item.size for item in self.list())
        space = self._call("statvfs", self.root, self._statvfs, missing_is_not_found=False)
        if space is None:
            return StoreInfo(usage=usage, free=None, total=None)
        return StoreInfo(usage=usage, free=space[0], total=space[1])

    def _statvfs(self, client: Client) -> tuple[int, int] | None:
        """(free, total) bytes of the file system holding the root, or ``None`` if not offered."""
        if isinstance(client, OpenSshReader):
            return client.statvfs(self.root)
        from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY

        try:
            kind, message = client._request(CMD_EXTENDED, "statvfs@openssh.com", self.root)
        except OSError as error:
            if unsupported(error) or isinstance(error, FileNotFoundError):
                return None
            raise
        if kind != CMD_EXTENDED_REPLY:
            return None
        _block_size, fragment_size, blocks, _free, available = (message.get_int64() for _ in range(5))
        return int(available * fragment_size), int(blocks * fragment_size)

    def _free_bytes(self, client: Client) -> int | None:
        """Free bytes, or ``None`` when that cannot be learnt (explains a failed write)."""
        try:
            space = self._statvfs(client)
        except Exception:  # noqa: BLE001 - any failure (of either client) only means "not known"
            return None
        return None if space is None else space[0]

    def close(self) -> None:
        """Close every pooled connection; the store must not be used afterwards."""
        with self._lock:
            self._closed = True
            sessions, self._idle = self._idle, []
        for session in sessions:
            session.close()
        self._openssh.close()


def _remove_quietly(client: paramiko.SFTPClient, path: str) -> None:
    from snapkeep.storage.sftp_session import CONNECTION_ERRORS

    # Already gone, or the connection is lost: a dot-name is never listed anyway.
    with contextlib.suppress(*CONNECTION_ERRORS):
        client.remove(path)


def _make_folders(client: Client, folder: str) -> None:
    """Create ``folder`` and its missing parents; tolerate another writer creating them first."""
    missing: list[str] = []
    current = folder
    while current not in ("", "/", "."):
        try:
            client.stat(current)
            break
        except FileNotFoundError:
            missing.append(current)
            current = posixpath.dirname(current)
    for path in reversed(missing):
        try:
            client.mkdir(path, 0o700)
        except OSError as refused:
            try:  # another writer may have created it first
                attributes: Any = client.stat(path)
            except OSError:
                raise refused from None
            if not stat_module.S_ISDIR(attributes.st_mode or 0):
                raise


def _walk(client: Client, folder: str, relative: str, prefix: str, found: list[ObjectInfo]) -> None:
    try:
        entries = client.listdir_attr(folder)
    except FileNotFoundError:
        return
    except OSError as error:
        if error.errno == errno.ENOTDIR:
            return
        raise
    for entry in entries:
        if entry.filename.startswith("."):
            continue
        name = relative + entry.filename
        mode = entry.st_mode or 0
        if stat_module.S_ISDIR(mode):
            if name.startswith(prefix) or prefix.startswith(name + "/"):
                _walk(client, posixpath.join(folder, entry.filename), name + "/", prefix, found)
        elif stat_module.S_ISREG(mode) and name.startswith(prefix):
            found.append(ObjectInfo(name, int(entry.st_size or 0)))
