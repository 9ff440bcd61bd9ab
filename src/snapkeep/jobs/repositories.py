"""From a catalog destination to a store to a repository: the one place that opens (and closes) them.

Repositories: one per (destination, job) at ``<destination root>/<job id>/`` (DESIGN.md section 3).

* ``open_destination(destination, job_id)`` turns the destination into store parameters
  (``jobs.destinations.store_params``), opens them through ``storage.registry`` and wraps the store:
  Local ``RetryingStore(LocalStore)``; SFTP and S3 ``RetryingStore(LimitedStore(backend, threads))``:
  at most ``threads`` calls at once, transient errors (dropped connections, 5xx, throttling) retried
  with backoff (``RetryPolicy``) and counted in ``Opened.retries``; permanent ones (credentials,
  unknown host, changed host key, missing bucket, full disk) raised at once.
* **Every store opened is closed.** ``Opened`` is a context manager; a run that keeps it open across
  several steps ends with ``finish``, which closes it, records a first-seen SFTP host key and returns
  what the run's log should say (``Closed.report``). ``Repository.close`` does not close its store:
  close the repository first, then the store (``job_repository`` does both).
* ``job_password`` is the job's repository password from the key store (encrypted jobs only);
  ``open_repository`` opens (or creates) the repository in a store.
* ``remove_stored``, ``delete_backup`` and ``prune_repository`` remove backups from a repository.
* ``disk_usage(destination)`` is ``{usage, free, total}`` in bytes for every type (Local: the file
  system; SFTP: bytes stored under the root and ``statvfs@openssh.com``; S3: bytes stored under the
  prefix, free and total unknown = 0). It never raises: a destination that cannot be reached gives zeros.

Messages never contain a secret: the stores mask them in ``repr`` and errors.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from snapkeep.clock import SYSTEM, Clock
from snapkeep.engine.archive import delete_archive
from snapkeep.engine.maintenance.prune import prune
from snapkeep.engine.repository import Repository
from snapkeep.errors import ConfigError, NotFoundError, RepositoryNotFoundError, StorageError
from snapkeep.jobs import backups, destinations
from snapkeep.jobs.backups import BackupRecord
from snapkeep.jobs.catalog import Catalog, Transaction
from snapkeep.jobs.codes import Structure
from snapkeep.jobs.keystore import KeyStore
from snapkeep.storage.base import Store
from snapkeep.storage.registry import open_store
from snapkeep.storage.wrappers import LimitedStore, RetryingStore

log = logging.getLogger(__name__)

#: Seconds a ``disk_usage`` query may wait for a remote destination.
USAGE_TIMEOUT = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a destination's transient errors are retried."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0


#: The policy of runs, restores and deletions (tests shorten it); ``validateDestination`` uses ``NO_RETRY``.
DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)


@dataclass
class RetryCount:
    """Transient failures retried on one opened destination (thread-safe)."""

    count: int = 0
    last: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, operation: str, attempt: int, error: StorageError, delay: float) -> None:
        with self._lock:
            self.count += 1
            self.last = f"{operation}: {error}"
        log.info("retrying %s (attempt %d) in %.2f s: %s", operation, attempt + 1, delay, error)


@dataclass
class Opened:
    """An opened destination: ``store`` (wrapped) for the engine, ``backend`` (the SFTP/S3/Local store).

    A context manager: leaving it closes the store (closing twice is harmless)."""

    store: Store
    backend: Store
    retries: RetryCount
    #: whether the destination already had a host key fingerprint recorded
    pinned: bool = False
    closed: bool = False

    @property
    def fingerprint(self) -> str | None:
        """The SFTP host key seen or pinned (None for other types or before the first connection)."""
        value = getattr(self.backend, "fingerprint", None)
        return str(value) if value else None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.store.close()

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LineLog(Protocol):
    """Where ``Closed.report`` writes (a run's log)."""

    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...


@dataclass(frozen=True)
class Closed:
    """What ``finish`` did: transient failures retried, and the host key it recorded (if any)."""

    retries: int = 0
    last_retry: str = ""
    recorded_fingerprint: str | None = None

    def report(self, run_log: LineLog, where: str) -> None:
        """Write "N retries (last: ...)" as a warning and "host key ... recorded" as a note."""
        if self.retries:
            run_log.warning(f"{where}: {self.retries} retries (last: {self.last_retry})")
        if self.recorded_fingerprint:
            run_log.info(f"{where}: host key {self.recorded_fingerprint} recorded")


def backend_store(destination: Mapping[str, Any], job_id: str, *, timeout: float | None = None) -> Store:
    """The unwrapped store of ``job_id``'s repository on ``destination`` (the root for ``job_id=""``);
    the caller closes it. Raises ConfigError for an unknown type or incomplete options, StorageError
    from the backend (an unreadable private key, a wrong passphrase)."""
    return open_store(destinations.store_params(destination, job_id, timeout=timeout))


def open_destination(
    destination: Mapping[str, Any],
    job_id: str,
    *,
    clock: Clock = SYSTEM,
    retry: RetryPolicy | None = None,
) -> Opened:
    """Open ``job_id``'s repository store on ``destination``, wrapped for retries (``retry``, else
    ``DEFAULT_RETRY``) and ``threads``; the caller closes it (``with``, or ``finish``).

    Raises ConfigError and the backend's StorageError (see ``backend_store``).
    """
    policy = retry or DEFAULT_RETRY
    backend = backend_store(destination, job_id)
    inner = backend
    if destination.get("type") in destinations.REMOTE_TYPES:
        inner = LimitedStore(backend, destinations.threads(destination))
    retries = RetryCount()
    store = RetryingStore(
        inner,
        attempts=policy.attempts,
        base_delay=policy.base_delay,
        max_delay=policy.max_delay,
        clock=clock,
        on_retry=retries,
    )
    return Opened(store=store, backend=backend, retries=retries, pinned=bool(destination.get("fingerprint")))


def finish(catalog: Catalog, opened: Opened | None, ident: str) -> Closed:
    """After a run's work on destination ``ident``: close its store and record a first-seen SFTP host
    key; return what happened for the run's log (``Closed.report``). Raises catalog errors only."""
    if opened is None:
        return Closed()
    opened.close()
    recorded = None
    if opened.fingerprint is not None and not opened.pinned:
        with catalog.transaction() as tx:
            if destinations.record_fingerprint(tx, ident, opened.fingerprint):
                recorded = opened.fingerprint
    return Closed(retries=opened.retries.count, last_retry=opened.retries.last, recorded_fingerprint=recorded)


def disk_usage(destination: Mapping[str, Any]) -> dict[str, int]:
    """``{usage, free, total}`` bytes of ``destination``; zeros when it cannot be told or reached."""
    usage = {"usage": 0, "free": 0, "total": 0}
    kind = destination.get("type")
    if kind == "Local":
        try:
            total, used, free = shutil.disk_usage(destination["options"]["path"])
        except (OSError, KeyError):
            return usage
        return {"usage": used, "free": free, "total": total}
    if kind not in destinations.REMOTE_TYPES or destination.get("disabled"):
        return usage
    try:
        store = backend_store(destination, "", timeout=USAGE_TIMEOUT)
    except (ConfigError, StorageError):
        return usage
    with store:
        try:
            info = store.info()
        except StorageError as error:
            log.info("disk usage of destination %r not known: %s", destination.get("name"), error)
            return usage
    return {"usage": info.usage or 0, "free": info.free or 0, "total": info.total or 0}


# --- repositories ----------------------------------------------------------------------------------


def job_password(catalog: Catalog, job_id: str, encrypted: bool, *, create: bool) -> str | None:
    """The repository password of a job (None for an unencrypted one), from ``catalog``'s key store.
    Raises NotFoundError when an encrypted job has no password and ``create`` is false."""
    if not encrypted:
        return None
    keys = KeyStore(catalog)
    return keys.get_or_create(job_id) if create else keys.get(job_id)


def open_repository(store: Store, *, password: str | None, create: bool, clock: Clock = SYSTEM) -> Repository:
    """Open the repository in ``store``, creating it when ``create`` and there is none.

    Raises RepositoryNotFoundError (none and not ``create``), WrongPasswordError, StorageError.
    """
    try:
        return Repository.open(store, password=password, clock=clock)
    except RepositoryNotFoundError:
        if not create:
            raise
        return Repository.init(store, password=password, clock=clock)


@contextmanager
def job_repository(
    destination: Mapping[str, Any],
    job_id: str,
    *,
    catalog: Catalog,
    encrypted: bool,
    create: bool = False,
    clock: Clock = SYSTEM,
) -> Iterator[Repository]:
    """``job_id``'s repository on ``destination`` for the ``with`` block; closes the repository, then
    its store. Raises what ``open_destination``, ``job_password`` and ``open_repository`` raise."""
    with open_destination(destination, job_id, clock=clock) as opened:
        password = job_password(catalog, job_id, encrypted, create=create)
        repository = open_repository(opened.store, password=password, create=create, clock=clock)
        try:
            yield repository
        finally:
            repository.close()


# --- removing backups from repositories --------------------------------------------------------------


def remove_stored(repository: Repository, structure: int, engine_id: str) -> None:
    """Delete a backup's snapshot or archive from its repository (a missing one is already gone)."""
    try:
        if structure == Structure.INCREMENTAL:
            repository.delete_snapshot(engine_id)
        else:
            delete_archive(repository, engine_id)
    except NotFoundError:
        pass


def delete_backup(tx: Transaction, backup: BackupRecord, repository: Repository) -> None:
    """Delete a backup from its destination (``repository``), then from the catalog. Raises
    ConflictError while it is locked."""
    backups.refuse_locked(backup, tx.clock.now())
    remove_stored(repository, backup.structure, backup.engine_id)
    backups.forget_row(tx, backup.id)


def prune_repository(repository: Repository) -> int:
    """Prune ``repository`` (Incremental structure); return the bytes freed."""
    return prune(repository).bytes_freed
