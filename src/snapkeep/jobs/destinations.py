"""Destinations as stores: what the runner, restores and the API open for a catalog destination.

``open_destination(destination, job_id)`` builds the backend store of the repository of ``job_id``
(``<destination root>/<job id>``; ``job_id=""`` is the root itself) straight from the destination's
catalog options, so SFTP logs in with a password or with a private key's *text* (+ passphrase), and
wraps it:

* Local: ``RetryingStore(LocalStore)``;
* SFTP and S3: ``RetryingStore(LimitedStore(backend, threads))``: at most ``threads`` calls at once,
  transient errors (dropped connections, 5xx, throttling) retried with backoff and counted in
  ``Opened.retries`` for the run's log; permanent ones (credentials, unknown host, changed host key,
  missing bucket, full disk) raised at once.

SFTP host keys: the destination document's ``fingerprint`` (shown read-only as
``options.fingerprint``) pins the key. When none is recorded, the first key seen is recorded by
``record_fingerprint`` (``validateDestination`` and the first successful run do it); a later
connection to a server offering another key fails with ``HostKeyChangedError``.

``disk_usage(destination)`` is ``{usage, free, total}`` in bytes for every type (Local: the file
system; SFTP: bytes stored under the root and ``statvfs@openssh.com``; S3: bytes stored under the
prefix, free and total unknown = 0). It never raises: a destination that cannot be reached gives zeros.

Messages never contain a secret: the stores mask them in ``repr`` and errors.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from snapkeep.clock import SYSTEM, Clock
from snapkeep.errors import ConfigError, StorageError
from snapkeep.jobs.catalog import Catalog, Transaction
from snapkeep.jobs.logs import RunLog
from snapkeep.storage.base import Store
from snapkeep.storage.local import LocalStore
from snapkeep.storage.wrappers import LimitedStore, RetryingStore

log = logging.getLogger(__name__)

#: Retry policy of every destination store (tests shorten the delays).
RETRY_ATTEMPTS = 5
RETRY_BASE_DELAY = 0.5
RETRY_MAX_DELAY = 30.0
#: Seconds a ``disk_usage`` query may wait for a remote destination.
USAGE_TIMEOUT = 10.0
#: Optional hook ``(backend store, destination) -> store`` applied before the wrappers (fault tests).
STORE_HOOK: Callable[[Store, Mapping[str, Any]], Store] | None = None


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
    """An opened destination: ``store`` (wrapped) for the engine, ``backend`` (the SFTP/S3/Local store)."""

    store: Store
    backend: Store
    retries: RetryCount
    #: whether the destination already had a host key fingerprint recorded
    pinned: bool = False

    @property
    def fingerprint(self) -> str | None:
        """The SFTP host key seen or pinned (None for other types or before the first connection)."""
        value = getattr(self.backend, "fingerprint", None)
        return str(value) if value else None

    def close(self) -> None:
        self.store.close()


def _joined(*parts: str) -> str:
    return "/".join(part.strip("/") for part in parts if part.strip("/"))


def backend_store(destination: Mapping[str, Any], job_id: str, *, timeout: float | None = None) -> Store:
    """The unwrapped store of ``job_id``'s repository on ``destination`` (the root for ``job_id=""``).

    Raises ConfigError for an unknown type or incomplete options, StorageError from the backend
    (an unreadable private key, a wrong passphrase).
    """
    kind = str(destination.get("type", ""))
    options = dict(destination.get("options") or {})
    name = destination.get("name", "")
    threads = max(int(destination.get("threads") or 1), 1)
    try:
        if kind == "Local":
            return LocalStore("/" + _joined(str(options["path"]), job_id))
        if kind == "SFTP":
            sftp = importlib.import_module("snapkeep.storage.sftp")
            store: Store = sftp.SftpStore(
                host=str(options["host"]),
                port=int(options.get("port") or 22),
                username=str(options["username"]),
                path="/" + _joined(str(options.get("path") or ""), job_id),
                password=options.get("password") or None,
                private_key=options.get("privatekey") or None,
                passphrase=options.get("passphrase") or None,
                fingerprint=destination.get("fingerprint") or None,
                timeout=float(timeout or options.get("timeout") or 30),
                threads=threads,
            )
            return store
        if kind == "S3":
            s3 = importlib.import_module("snapkeep.storage.s3")
            store = s3.S3Store(
                bucket=str(options["bucket"]),
                access_key=str(options["access_key"]),
                secret_key=str(options["secret_key"]),
                region=str(options.get("region") or "us-east-1"),
                endpoint=str(options.get("endpoint") or "") or None,
                path=_joined(str(options.get("path") or ""), job_id),
                threads=max(threads, 2),
                timeout=float(timeout or 60),
            )
            return store
    except KeyError as missing:
        raise ConfigError(f"Destination {name!r}: option {missing.args[0]} is missing") from None
    raise ConfigError(f"Destination {name!r}: unknown type {kind!r}")


def open_destination(
    destination: Mapping[str, Any],
    job_id: str,
    *,
    clock: Clock = SYSTEM,
    attempts: int | None = None,
) -> Opened:
    """Open ``job_id``'s repository store on ``destination``, wrapped for retries and ``threads``.

    Raises ConfigError and the backend's StorageError (see ``backend_store``).
    """
    backend = backend_store(destination, job_id)
    inner = STORE_HOOK(backend, destination) if STORE_HOOK is not None else backend
    if destination.get("type") in ("SFTP", "S3"):
        inner = LimitedStore(inner, max(int(destination.get("threads") or 1), 1))
    retries = RetryCount()
    store = RetryingStore(
        inner,
        attempts=attempts or RETRY_ATTEMPTS,
        base_delay=RETRY_BASE_DELAY,
        max_delay=RETRY_MAX_DELAY,
        clock=clock,
        on_retry=retries,
    )
    return Opened(store=store, backend=backend, retries=retries, pinned=bool(destination.get("fingerprint")))


def record_fingerprint(tx: Transaction, ident: str, fingerprint: str | None) -> bool:
    """Save the SFTP host key ``fingerprint`` on destination ``ident`` when none is recorded yet;
    return whether it was saved. Raises nothing for a destination that is gone."""
    if not fingerprint:
        return False
    stored = tx.get("destinations", ident, lock=True)
    if stored is None or stored.get("type") != "SFTP" or stored.get("fingerprint"):
        return False
    document = {key: value for key, value in stored.items() if key != "_id"}
    document["fingerprint"] = fingerprint
    tx.replace("destinations", ident, document)
    return True


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
    if kind not in ("SFTP", "S3") or destination.get("disabled"):
        return usage
    try:
        store = backend_store(destination, "", timeout=USAGE_TIMEOUT)
    except (ConfigError, StorageError):
        return usage
    try:
        info = store.info()
    except StorageError as error:
        log.info("disk usage of destination %r not known: %s", destination.get("name"), error)
        return usage
    finally:
        store.close()
    return {"usage": info.usage or 0, "free": info.free or 0, "total": info.total or 0}


def finish(catalog: Catalog, run_log: RunLog, opened: Opened | None, ident: str, where: str) -> None:
    """After a run's work on destination ``ident``: close its store, write its retry count into the
    run's log ("N retries"), and record a first-seen SFTP host key. Raises catalog errors only."""
    if opened is None:
        return
    opened.close()
    if opened.retries.count:
        run_log.warning(f"{where}: {opened.retries.count} retries (last: {opened.retries.last})")
    if opened.fingerprint is None or opened.pinned:
        return
    with catalog.transaction() as tx:
        recorded = record_fingerprint(tx, ident, opened.fingerprint)
    if recorded:
        run_log.info(f"{where}: host key {opened.fingerprint} recorded")
