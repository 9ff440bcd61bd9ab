"""Backups in the catalog, and the repositories they live in (API.md section 6, Backups).

Each backup a run stores (an Incremental snapshot, or an Archived/Compressed archive) gets a row in
``backups``: a catalog ID (the API's backup ID), a catalog ID for its one item (Directories jobs), the
job, the destination, the engine's own snapshot/archive ID (never shown), when, how big, the schedule
tags that made it (or ``manual``), and its lock. Backups outlive their job: deleting a job keeps its
backups listed and restorable (the row keeps the job's name, structure and encryption).

Repositories: one per (destination, job) at ``<destination root>/<job id>/`` (DESIGN.md section 3),
opened with ``open_store`` from the destination's options; encrypted jobs use the job's password
from the key store. ``apply_retention`` removes what ``engine.maintenance.retention`` decides, from the
destination first and then from the catalog, and prunes.
"""

from __future__ import annotations

import datetime as _dt
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update

from snapkeep.clock import SYSTEM, Clock, isoformat
from snapkeep.engine import archive as tarball
from snapkeep.engine.maintenance import retention
from snapkeep.engine.maintenance.prune import prune
from snapkeep.engine.repository import Repository
from snapkeep.errors import ConfigError, ConflictError, NotFoundError, RepositoryNotFoundError
from snapkeep.ids import new_id
from snapkeep.jobs import destinations
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.keystore import KeyStore
from snapkeep.jobs.migrations import schema
from snapkeep.sources.components import COMPONENT_BITS
from snapkeep.storage.base import Store

INCREMENTAL, ARCHIVED, COMPRESSED = 1, 2, 4
STRUCTURES = {INCREMENTAL: "Incremental", ARCHIVED: "Archived", COMPRESSED: "Compressed"}
ACCOUNTS, DIRECTORIES = 1, 2
LABEL = "Backup"


# --- destinations and repositories -----------------------------------------------------------


def location(destination: Mapping[str, Any], job_id: str) -> tuple[str, dict[str, Any]]:
    """The store location of the repository of ``job_id`` on ``destination``, and its open options.

    Raises ConfigError for a destination the runner cannot open (an SFTP destination that
    authenticates with a private key's text: give it a password until key files are supported).
    """
    kind = str(destination.get("type", ""))
    options = dict(destination.get("options") or {})
    if kind == "Local":
        return f"{str(options['path']).rstrip('/') or ''}/{job_id}", {}
    if kind == "SFTP":
        if options.get("privatekey") and not options.get("password"):
            raise ConfigError(
                f"Destination {destination.get('name')!r}: SFTP with a private key text is not supported "
                "by the runner yet; use a password"
            )
        user = urllib.parse.quote(str(options["username"]), safe="")
        path = "/".join(part for part in (str(options.get("path", "")).strip("/"), job_id) if part)
        url = f"sftp://{user}@{options['host']}:{int(options.get('port') or 22)}//{path}"
        extra = {"password": options.get("password") or None}
        if destination.get("fingerprint"):
            extra["fingerprint"] = destination["fingerprint"]
        return url, {key: value for key, value in extra.items() if value}
    if kind == "S3":
        endpoint = str(options.get("endpoint") or "")
        scheme, netloc = "s3", ""
        if endpoint:
            parsed = urllib.parse.urlsplit(endpoint)
            scheme = "s3+http" if parsed.scheme == "http" else "s3"
            netloc = parsed.netloc
        prefix = "/".join(part for part in (str(options.get("path", "")).strip("/"), job_id) if part)
        url = f"{scheme}://{netloc}/{options['bucket']}/{prefix}"
        extra = {
            "access_key": options.get("access_key"),
            "secret_key": options.get("secret_key"),
            "region": options.get("region") or "us-east-1",
        }
        return url, extra
    raise ConfigError(f"Destination {destination.get('name')!r}: unknown type {kind!r}")


def open_destination_store(destination: Mapping[str, Any], job_id: str) -> Store:
    """Open the store holding the repository of ``job_id`` on ``destination``.

    Raises ConfigError and the backend's StorageError. Built by ``jobs.destinations`` (SFTP with a
    password or a private key's text, S3, Local; retried and limited to the destination's threads).
    """
    return destinations.open_destination(destination, job_id).store


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


def job_password(home: Path, job_id: str, encrypted: bool, *, create: bool) -> str | None:
    """The repository password of a job (None for an unencrypted one). Raises NotFoundError when an
    encrypted job has no password and ``create`` is false."""
    if not encrypted:
        return None
    keys = KeyStore(home)
    return keys.get_or_create(job_id) if create else keys.get(job_id)


# --- catalog rows ------------------------------------------------------------------------------


def record(
    tx: Transaction,
    *,
    job: Mapping[str, Any],
    destination: Mapping[str, Any],
    engine_id: str,
    created: _dt.datetime,
    size: int,
    tags: list[str],
    details: dict[str, Any],
) -> str:
    """Store a new backup row; return its catalog ID."""
    ident = new_id(tx.clock)
    tx.connection.execute(
        schema.backups.insert().values(
            id=ident,
            item_id=new_id(tx.clock),
            job_id=job["_id"],
            destination_id=destination["_id"],
            engine_id=engine_id,
            structure=int(job["structure"]),
            account=str(details.get("account") or ""),
            created=created,
            size=size,
            encrypted=1 if job.get("encrypted") else 0,
            locked=0,
            lock_ttl=0,
            locked_until=None,
            document={
                "job_name": job.get("name", ""),
                "job_type": int(job.get("type", DIRECTORIES)),
                "contains": int(job.get("contains", 0)),
                "destination_name": destination.get("name", ""),
                "schedules": tags,
                **details,
            },
        )
    )
    return ident


def rows(tx: Transaction, **equal: Any) -> list[Any]:
    """Backup rows (oldest first), optionally where columns equal values."""
    table = schema.backups
    query = select(table).order_by(table.c.created, table.c.id)
    for column, value in equal.items():
        query = query.where(table.c[column] == value)
    return list(tx.connection.execute(query))


def row(tx: Transaction, ident: str) -> Any:
    """The backup with catalog ID ``ident`` (or whose item has that ID). Raises NotFoundError."""
    table = schema.backups
    found = tx.connection.execute(
        select(table).where((table.c.id == ident) | (table.c.item_id == ident))
    ).first()
    if found is None:
        found = _component_owner(tx, ident)
    if found is None:
        raise NotFoundError(kind=LABEL, ident=ident)
    return found


# --- the components of an Accounts backup (one item per ``contains`` bit) ----------------------


def component_items(names: list[str], clock: Clock = SYSTEM) -> list[dict[str, Any]]:
    """New item IDs for an account backup's components (stored in its row's document)."""
    return [{"_id": new_id(clock), "name": name, "bit": COMPONENT_BITS.get(name, 0)} for name in names]


def _component_owner(tx: Transaction, ident: str) -> Any:
    """The account backup one of whose component items has ID ``ident`` (None when none)."""
    table = schema.backups
    for candidate in tx.connection.execute(select(table).where(table.c.account != "")):
        if any(item.get("_id") == ident for item in dict(candidate.document or {}).get("components", [])):
            return candidate
    return None


def component_of(backup: Any, ident: str) -> str | None:
    """The component name of item ``ident`` of an account backup (None: the backup itself)."""
    for item in dict(backup.document or {}).get("components", []):
        if item.get("_id") == ident:
            return str(item["name"])
    return None


def present_items(backup: Any) -> list[dict[str, Any]]:
    """The items of a backup: one per component for an Accounts backup, else its one item."""
    components = dict(backup.document or {}).get("components")
    if not components:
        return [present_item(backup)]
    answer = []
    failed = set(dict(backup.document or {}).get("failures", []))
    for component in components:
        item = present(backup)
        item.update(
            {
                "_id": component["_id"],
                "parent_id": backup.id,
                "name": component["name"],
                "backup_contains": int(component.get("bit", 0)),
                "failed": [path for path in sorted(failed) if path.split("/")[0] == component["name"]],
            }
        )
        answer.append(item)
    return answer


def present(backup: Any) -> dict[str, Any]:
    """A backup in API shape (the fields of a backup item, API.md section 6)."""
    document = dict(backup.document or {})
    account = backup.account or (backup.job_id if document.get("job_type") == DIRECTORIES else "")
    return {
        "_id": backup.id,
        "parent_id": None,
        "job_id": backup.job_id,
        "job_name": document.get("job_name", ""),
        "destination": backup.destination_id,
        "destination_name": document.get("destination_name", ""),
        "account": account,
        "backup_type": document.get("job_type", DIRECTORIES),
        "backup_contains": document.get("contains", 0),
        "backup_structure": backup.structure,
        "created": isoformat(backup.created),
        "size": int(backup.size),
        "encrypted": 1 if backup.encrypted else 0,
        "locked": 1 if backup.locked else 0,
        "lock_ttl": int(backup.lock_ttl),
        "lock_until": isoformat(backup.locked_until) if backup.locked else None,
        "schedules": list(document.get("schedules", [])),
        "paths": list(document.get("paths", [])),
    }


def present_item(backup: Any) -> dict[str, Any]:
    """The one item of a Directories backup: the job's folders."""
    answer = present(backup)
    answer.update({"_id": backup.item_id, "parent_id": backup.id, "name": ", ".join(answer["paths"])})
    return answer


def set_lock(tx: Transaction, ident: str, *, locked: bool, lock_ttl: int) -> Any:
    """Lock (``lock_ttl`` seconds from now, 0 = with no end) or unlock a backup; return its row."""
    backup = row(tx, ident)
    until = None
    if locked:
        until = retention.FOREVER if lock_ttl == 0 else tx.clock.now() + _dt.timedelta(seconds=lock_ttl)
    tx.connection.execute(
        update(schema.backups)
        .where(schema.backups.c.id == backup.id)
        .values(locked=1 if locked else 0, lock_ttl=lock_ttl if locked else 0, locked_until=until)
    )
    return row(tx, backup.id)


def is_locked(backup: Any, now: _dt.datetime) -> bool:
    """Whether a backup's lock still holds at ``now``."""
    return bool(backup.locked) and (backup.locked_until is None or backup.locked_until > now)


def forget_row(tx: Transaction, ident: str) -> None:
    """Remove a backup row (after its data left the destination)."""
    tx.connection.execute(delete(schema.backups).where(schema.backups.c.id == ident))


# --- removing backups from destinations --------------------------------------------------------


def remove_stored(repository: Repository, structure: int, engine_id: str) -> None:
    """Delete a backup's snapshot or archive from its repository (a missing one is already gone)."""
    try:
        if structure == INCREMENTAL:
            repository.delete_snapshot(engine_id)
        else:
            tarball.delete_archive(repository, engine_id)
    except NotFoundError:
        pass


def refuse_locked(backup: Any, now: _dt.datetime) -> None:
    """Raise ConflictError when ``backup`` is locked at ``now``."""
    if is_locked(backup, now):
        raise ConflictError(f"Backup {backup.id} is locked; unlock it with manageBackupLock first")


def delete_backup(tx: Transaction, backup: Any, repository: Repository) -> None:
    """Delete a backup from its destination (``repository``), then from the catalog. Raises
    ConflictError while it is locked."""
    refuse_locked(backup, tx.clock.now())
    remove_stored(repository, backup.structure, backup.engine_id)
    forget_row(tx, backup.id)


def retention_plan(
    job: Mapping[str, Any], backups: list[Any], schedule_names: Mapping[str, str], now: _dt.datetime
) -> list[retention.Decision]:
    """What retention decides for one job's backups on one destination."""
    retain = {str(link["_id"]): int(link["retain"]) for link in job.get("schedules", [])}
    retain[retention.MANUAL] = int(job.get("manually_retain", 14))
    records = [
        retention.Backup(
            id=backup.id,
            created=backup.created,
            source=f"account {backup.account}" if backup.account else f"job {backup.job_id}",
            tags=frozenset(dict(backup.document or {}).get("schedules", [])),
            locked_until=(backup.locked_until or retention.FOREVER) if backup.locked else None,
            ok=not dict(backup.document or {}).get("partial"),
        )
        for backup in backups
    ]
    labels = {ident: f"schedule {name!r}" for ident, name in schedule_names.items()}
    return retention.decide(records, retain, now, labels=labels)


def prune_repository(repository: Repository) -> int:
    """Prune ``repository`` (Incremental structure); return the bytes freed."""
    return prune(repository).bytes_freed
