"""The one route to a store: typed parameters per backend, and a table from backend kind to opener.

Every store snapkeep opens is opened here. A caller describes the place with the parameters of its
backend (``LocalParams``, ``MemoryParams``, ``SftpParams``, ``S3Params``, ``FtpParams``, each a frozen
dataclass whose ``kind`` names its backend) and calls ``open_store(params)``; ``BACKENDS`` maps the kind to
the opener that builds the store. Credentials are fields of the parameters: nothing is read from
the environment. The parameters' ``repr`` leaves secrets out.

Who builds the parameters: ``jobs.destinations`` from a catalog destination, and
``storage.locations`` from a location string (``/path``, ``sftp://``, ``s3://``, ``ftp://``, ``ftps://``,
``memory://``)
plus the credentials the CLI was given.

``memory`` gives the process-wide ``MemoryStore`` of that name (the same object on every call, so
tests and tools can share it). The SFTP, S3 and FTP backends are imported on first use, so that opening
a local store never pays for importing paramiko and boto3. Whoever opens a store closes it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from snapkeep.errors import ConfigError
from snapkeep.storage.base import Store
from snapkeep.storage.local import LocalStore
from snapkeep.storage.memory import MemoryStore


@dataclass(frozen=True, kw_only=True)
class StoreParams:
    """Where a store is; each backend's subclass adds its fields and names its ``kind``."""

    kind: ClassVar[str] = ""


@dataclass(frozen=True, kw_only=True)
class LocalParams(StoreParams):
    """A folder on this machine; ``create`` makes it when missing (else a missing one is an error)."""

    kind: ClassVar[str] = "local"
    path: str
    create: bool = True


@dataclass(frozen=True, kw_only=True)
class MemoryParams(StoreParams):
    """The process-wide memory store called ``name``."""

    kind: ClassVar[str] = "memory"
    name: str


@dataclass(frozen=True, kw_only=True)
class SftpParams(StoreParams):
    """A folder on an SSH server (see ``storage.sftp.SftpStore`` for each field)."""

    kind: ClassVar[str] = "sftp"
    host: str
    username: str
    path: str
    port: int = 22
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    fingerprint: str | None = None
    timeout: float = 30.0
    threads: int = 2


@dataclass(frozen=True, kw_only=True)
class S3Params(StoreParams):
    """A key prefix in an S3 bucket (see ``storage.s3.S3Store`` for each field)."""

    kind: ClassVar[str] = "s3"
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"
    endpoint: str | None = None
    path: str = ""
    threads: int = 4
    timeout: float = 60.0


@dataclass(frozen=True, kw_only=True)
class FtpParams(StoreParams):
    """A folder on an FTP server, FTPS with ``tls`` (see ``storage.ftp.FtpStore`` for each field)."""

    kind: ClassVar[str] = "ftp"
    host: str
    username: str
    path: str
    port: int = 21
    password: str = field(default="", repr=False)
    tls: bool = False
    passive: bool = True
    verify: bool = True
    ca_file: str | None = None
    timeout: float = 30.0
    threads: int = 2


#: An opener builds the store its parameters describe.
Opener = Callable[[Any], Store]

_memory_stores: dict[str, MemoryStore] = {}
_memory_lock = threading.Lock()


def _open_local(params: LocalParams) -> Store:
    if not params.path:
        raise ConfigError("local store: empty path")
    return LocalStore(params.path, create=params.create)


def _open_memory(params: MemoryParams) -> Store:
    if not params.name:
        raise ConfigError("memory store: empty name")
    with _memory_lock:
        store = _memory_stores.get(params.name)
        if store is None:
            store = _memory_stores[params.name] = MemoryStore(params.name)
        return store


def _open_sftp(params: SftpParams) -> Store:
    sftp = importlib.import_module("snapkeep.storage.sftp")
    store: Store = sftp.SftpStore(
        host=params.host,
        port=params.port,
        username=params.username,
        path=params.path,
        password=params.password,
        private_key=params.private_key,
        passphrase=params.passphrase,
        fingerprint=params.fingerprint,
        timeout=params.timeout,
        threads=params.threads,
    )
    return store


def _open_s3(params: S3Params) -> Store:
    s3 = importlib.import_module("snapkeep.storage.s3")
    store: Store = s3.S3Store(
        bucket=params.bucket,
        access_key=params.access_key,
        secret_key=params.secret_key,
        region=params.region,
        endpoint=params.endpoint,
        path=params.path,
        threads=params.threads,
        timeout=params.timeout,
    )
    return store


def _open_ftp(params: FtpParams) -> Store:
    ftp = importlib.import_module("snapkeep.storage.ftp")
    store: Store = ftp.FtpStore(
        host=params.host,
        port=params.port,
        username=params.username,
        password=params.password,
        path=params.path,
        tls=params.tls,
        passive=params.passive,
        verify=params.verify,
        ca_file=params.ca_file,
        timeout=params.timeout,
        threads=params.threads,
    )
    return store


#: backend kind -> opener. Tests may replace an entry to wrap a backend (fault injection).
BACKENDS: dict[str, Opener] = {
    LocalParams.kind: _open_local,
    MemoryParams.kind: _open_memory,
    SftpParams.kind: _open_sftp,
    S3Params.kind: _open_s3,
    FtpParams.kind: _open_ftp,
}


def open_store(params: StoreParams) -> Store:
    """Open the store ``params`` describe; the caller closes it.

    Raises ``ConfigError`` for a kind without a backend or incomplete parameters, and the backend's
    ``StorageError`` when it cannot open the place (a missing folder, an unreadable private key).
    """
    opener = BACKENDS.get(params.kind)
    if opener is None:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(f"no storage backend for {params.kind or type(params).__name__!r} (known: {known})")
    store = opener(params)
    if store.params is None:
        store.params = params
    return store


def forget_memory_store(name: str) -> None:
    """Drop the named process-wide memory store (tests use it to start clean)."""
    with _memory_lock:
        _memory_stores.pop(name, None)
