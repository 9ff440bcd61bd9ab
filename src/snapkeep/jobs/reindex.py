"""Reindex: rebuild the catalog's backups of one destination from what the destination alone holds.

A destination holds one repository per job at ``<root>/<job id>/`` (DESIGN.md section 3). A reindex
(``reindexDestination``, ``snapkeep reindex``; queue type 8, run by ``jobs.runs.reindex``) lists them
(``repository_ids``: every ``<24 hex>/config`` under the root), reads each one's snapshots and archive
manifests (``scan``) with the job's key from the key store, and makes the catalog agree (``apply``):

* a backup the destination holds and the catalog does not gets a row, linked to its job when the
  catalog knows the job, else an **orphan** (``orphan`` 1, owned by root, restorable like any backup);
* a backup that already has a row keeps it (its ID, lock and schedule tags): a reindex never makes a
  duplicate, so running it twice changes nothing. Only its ``orphan`` mark follows the catalog (a
  row whose job was deleted becomes an orphan);
* an encrypted repository whose key the key store does not hold gets one placeholder row with
  ``key_required`` 1 (and no engine ID): its backups cannot even be listed without the key. The row
  is locked, so retention and ``deleteSnapshot`` leave it alone. Once ``snapkeep keys import`` or
  ``dr import`` has supplied the key, the next reindex replaces the placeholder by the backups;
* a row whose backup the destination no longer holds is **marked** ``missing`` (with the time it was
  first missed), not removed: an unreachable or wrongly configured destination must not be able to
  erase the catalog. A later reindex that finds the backup clears the mark; ``deleteSnapshot`` removes
  the row for good. Rows of a repository that could not be read (a wrong key, a storage error) are
  left as they are.

Hostile input: a damaged snapshot or manifest is skipped with a warning (``damaged``) and a row for
it is neither added nor marked missing; reads go through the destination's own timeouts.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapkeep.engine.archive import load_manifest
from snapkeep.engine.format import ARCHIVES_PREFIX, CONFIG_NAME
from snapkeep.engine.maintenance import retention
from snapkeep.engine.repository import Repository
from snapkeep.engine.repository.config import RepositoryConfig
from snapkeep.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    ObjectNotFoundError,
    RepositoryNotFoundError,
    SnapkeepError,
    WrongPasswordError,
)
from snapkeep.jobs import backups, queue, repositories
from snapkeep.jobs.catalog import Catalog, Transaction
from snapkeep.jobs.codes import JobType, Structure
from snapkeep.jobs.keystore import KeyStore, check_id
from snapkeep.jobs.users import ROOT_ID
from snapkeep.sources.components import COMPONENT_BITS
from snapkeep.storage.base import Store

log = logging.getLogger(__name__)

#: ``<job id>/config``: the one object every repository has
REPOSITORY_CONFIG = re.compile(r"^([0-9a-f]{24})/" + re.escape(CONFIG_NAME) + "$")
#: what the engine writes as a snapshot's or manifest's structure -> the job structure
STRUCTURES = {
    "incremental": Structure.INCREMENTAL,
    "archived": Structure.ARCHIVED,
    "compressed": Structure.COMPRESSED,
}


# --- queueing -------------------------------------------------------------------------------------


def find_destination(tx: Transaction, reference: str) -> dict[str, Any]:
    """The destination with ID ``reference``, or the one named so. Raises NotFoundError."""
    found = tx.get("destinations", reference)
    if found is not None:
        return found
    named = [item for item in tx.all("destinations") if item.get("name") == reference]
    if len(named) == 1:
        return named[0]
    raise NotFoundError(kind="Destination", ident=reference)


def enqueue(tx: Transaction, reference: str, *, owner: str) -> queue.Group:
    """Queue a reindex of destination ``reference`` (ID or name); return the Pending group. Raises
    NotFoundError, ConflictError (one is already queued or running for it).

    A reindex whose process was killed leaves its group Processing: when that is what blocks, the
    dead process's groups end as 104 Never Finished (``queue.mark_never_finished``, as the service
    does when it starts) and the new reindex is queued."""
    destination = find_destination(tx, reference)
    try:
        return queue.enqueue_reindex(tx, destination, owner=owner)
    except ConflictError:
        if not queue.mark_never_finished(tx):
            raise
    return queue.enqueue_reindex(tx, destination, owner=owner)


# --- reading a destination ------------------------------------------------------------------------


def repository_ids(root: Store) -> list[str]:
    """The job IDs of the repositories under a destination's root store (sorted). Walks every object
    name once (the stores have no folder listing): time grows with the number of stored objects."""
    found = set()
    for info in root.list(""):
        match = REPOSITORY_CONFIG.match(info.name)
        if match:
            found.add(match.group(1))
    return sorted(found)


@dataclass(frozen=True)
class FoundBackup:
    """One backup a repository holds: a snapshot or an archive, as its own metadata tells."""

    engine_id: str
    structure: Structure
    created: _dt.datetime
    size: int
    account: str = ""
    paths: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    components: list[str] = field(default_factory=list)
    #: an account backup's failed items (layout paths), from its own stats
    failures: list[str] = field(default_factory=list)


def _failures(stats: Mapping[str, Any]) -> list[str]:
    """The failed items an account snapshot's or archive's stats name (``[]`` when none or malformed)."""
    found = stats.get("failures")
    if not isinstance(found, list):
        return []
    return [str(item["target"]) for item in found if isinstance(item, dict) and "target" in item]


@dataclass
class RepositoryScan:
    """What one repository holds (``found``), or that its key is required (``key_required``)."""

    job_id: str
    encrypted: bool
    key_required: bool = False
    found: list[FoundBackup] = field(default_factory=list)
    #: (engine ID, reason) of snapshots and manifests that exist but cannot be read
    damaged: list[tuple[str, str]] = field(default_factory=list)


def is_encrypted(store: Store) -> bool:
    """Whether the repository in ``store`` is encrypted (its config is not). Raises
    RepositoryNotFoundError, RepositoryError (an unreadable config), StorageError."""
    try:
        data = store.load(CONFIG_NAME)
    except ObjectNotFoundError:
        raise RepositoryNotFoundError(location=store.location) from None
    return RepositoryConfig.from_json(data, location=store.location).encrypted


def scan(store: Store, job_id: str, password: str | None) -> RepositoryScan:
    """Read the backups of the repository in ``store`` (job ``job_id``). An encrypted one without
    ``password`` is only ``key_required``. Raises RepositoryNotFoundError, WrongPasswordError (the
    key does not open it), RepositoryError, StorageError; damaged snapshots and manifests are
    recorded in ``damaged``, never raised."""
    encrypted = is_encrypted(store)
    if encrypted and password is None:
        return RepositoryScan(job_id, encrypted=True, key_required=True)
    repository = Repository.open(store, password=password if encrypted else None, load_index=False)
    result = RepositoryScan(job_id, encrypted=encrypted)
    try:
        for snapshot_id in repository.snapshots.ids():
            try:
                snapshot = repository.snapshots.load(snapshot_id)
            except (IntegrityError, NotFoundError) as error:
                result.damaged.append((snapshot_id, str(error)))
                continue
            result.found.append(
                FoundBackup(
                    engine_id=snapshot.id,
                    structure=STRUCTURES.get(snapshot.structure, Structure.INCREMENTAL),
                    created=snapshot.time,
                    size=int(snapshot.stats.get("bytes", 0) or 0),
                    account=snapshot.account or "",
                    paths=list(snapshot.paths),
                    tags=list(snapshot.tags),
                    components=list(snapshot.components),
                    failures=_failures(snapshot.stats),
                )
            )
        for archive_id in _archive_ids(store):
            try:
                manifest = load_manifest(repository, archive_id)
            except (IntegrityError, NotFoundError) as error:
                result.damaged.append((archive_id, str(error)))
                continue
            result.found.append(
                FoundBackup(
                    engine_id=manifest.id,
                    structure=STRUCTURES.get(manifest.structure, Structure.ARCHIVED),
                    created=manifest.time,
                    size=int(manifest.size),
                    account=manifest.account,
                    paths=list(manifest.sources),
                    tags=list(manifest.tags),
                    components=list(manifest.components),
                    failures=_failures(manifest.stats),
                )
            )
    finally:
        repository.close()
    result.found.sort(key=lambda backup: (backup.created, backup.engine_id))
    return result


def _archive_ids(store: Store) -> list[str]:
    suffix = ".manifest"
    return sorted(
        info.name[len(ARCHIVES_PREFIX) : -len(suffix)]
        for info in store.list(ARCHIVES_PREFIX)
        if info.name.endswith(suffix) and "/" not in info.name[len(ARCHIVES_PREFIX) :]
    )


# --- writing the catalog --------------------------------------------------------------------------


@dataclass
class Applied:
    """What ``apply`` changed for one repository (for the run's log and queue item)."""

    job_id: str
    orphan: bool
    added: list[str] = field(default_factory=list)
    kept: int = 0
    found_again: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    key_required: bool = False

    def summary(self) -> str:
        """One line: what the reindex did to this repository's rows."""
        owner = "orphan (job unknown here, owned by root)" if self.orphan else "known job"
        if self.key_required:
            return f"job {self.job_id}: {owner}; encrypted, key required"
        return (
            f"job {self.job_id}: {owner}; {len(self.added)} added, {self.kept} already listed, "
            f"{len(self.found_again)} found again, {len(self.missing)} marked missing"
        )


def _job_view(tx: Transaction, job_id: str, scan_result: RepositoryScan) -> tuple[dict[str, Any], bool]:
    """The job a repository's rows are linked to (its document), and whether it is an orphan's
    stand-in built from the repository's own metadata."""
    job = tx.get("jobs", job_id)
    if job is not None:
        return job, False
    first = scan_result.found[0] if scan_result.found else None
    structure = first.structure if first is not None else Structure.INCREMENTAL
    job_type = JobType.ACCOUNTS if first is not None and first.account else JobType.DIRECTORIES
    return {
        "_id": job_id,
        "name": "",
        "owner": ROOT_ID,
        "type": int(job_type),
        "structure": int(structure),
        "encrypted": scan_result.encrypted,
        "contains": 0,
    }, True


def apply(
    tx: Transaction,
    destination: Mapping[str, Any],
    scan_result: RepositoryScan,
    *,
    queue_group_id: str,
    homes: Mapping[str, str] | None = None,
) -> Applied:
    """Make the catalog's rows of one repository agree with ``scan_result`` (see the module
    docstring); return what changed. ``homes`` (username -> home folder, from this server's
    account provider) lets a found account backup take paths under the account's home in restores."""
    job, orphan = _job_view(tx, scan_result.job_id, scan_result)
    destination_id = str(destination["_id"])
    rows = backups.rows(tx, job_id=scan_result.job_id, destination_id=destination_id)
    applied = Applied(scan_result.job_id, orphan=orphan, key_required=scan_result.key_required)
    placeholders = [row for row in rows if row.key_required]
    if scan_result.key_required:
        if not placeholders:
            ident = backups.record(
                tx,
                job={**job, "encrypted": True},
                destination=destination,
                engine_id="",
                created=tx.clock.now(),
                size=0,
                tags=[],
                details={"queue_group_id": queue_group_id},
                orphan=orphan,
                key_required=True,
            )
            backups.set_lock(tx, ident, locked=True, lock_ttl=0)
        return applied
    for placeholder in placeholders:
        backups.forget_row(tx, placeholder.id)
    by_engine = {row.engine_id: row for row in rows if not row.key_required}
    damaged = {engine_id for engine_id, _ in scan_result.damaged}
    held = {backup.engine_id for backup in scan_result.found}
    for backup in scan_result.found:
        existing = by_engine.get(backup.engine_id)
        if existing is not None:
            applied.kept += 1
            if bool(existing.orphan) != orphan:  # the job was deleted, or is known again
                backups.set_orphan(tx, existing.id, None if orphan else job)
            if existing.document.get("missing"):
                backups.set_missing(tx, existing.id, False)
                applied.found_again.append(existing.id)
            continue
        applied.added.append(
            _record(tx, job, destination, backup, orphan, scan_result.encrypted, queue_group_id, homes or {})
        )
    for engine_id, existing in by_engine.items():
        if engine_id not in held and engine_id not in damaged and not existing.document.get("missing"):
            backups.set_missing(tx, existing.id, True)
            applied.missing.append(existing.id)
    return applied


def _record(
    tx: Transaction,
    job: Mapping[str, Any],
    destination: Mapping[str, Any],
    backup: FoundBackup,
    orphan: bool,
    encrypted: bool,
    queue_group_id: str,
    homes: Mapping[str, str],
) -> str:
    details: dict[str, Any] = {"paths": backup.paths, "queue_group_id": queue_group_id, "reindexed": True}
    # what the repository says wins over the job's current settings (it may have changed since)
    linked = {**job, "structure": int(backup.structure), "encrypted": encrypted}
    if backup.account:
        details["account"] = backup.account
        details["contains"] = sum(COMPONENT_BITS.get(name, 0) for name in backup.components)
        details["components"] = backups.component_items(backup.components, tx.clock)
        details["failures"] = backup.failures
        details["partial"] = bool(backup.failures)
        if backup.account in homes:
            details["home"] = homes[backup.account]
        linked["type"] = int(JobType.ACCOUNTS)
    elif orphan:
        linked["type"] = int(JobType.DIRECTORIES)
    return backups.record(
        tx,
        job=linked,
        destination=destination,
        engine_id=backup.engine_id,
        created=backup.created,
        size=backup.size,
        tags=backup.tags or [retention.MANUAL],
        details=details,
        orphan=orphan,
    )


def mark_lost_repositories(
    tx: Transaction, destination: Mapping[str, Any], present: Iterable[str]
) -> list[str]:
    """Mark ``missing`` the rows on ``destination`` of jobs whose repository is not there any more
    (``present``: the job IDs listed); return the IDs marked. Placeholders of a key-required
    repository that is gone are removed (they hold no backup)."""
    destination_id = str(destination["_id"])
    listed = set(present)
    marked = []
    for row in backups.rows(tx, destination_id=destination_id):
        if row.job_id in listed:
            continue
        if row.key_required:
            backups.forget_row(tx, row.id)
        elif not row.document.get("missing"):
            backups.set_missing(tx, row.id, True)
            marked.append(row.id)
    return marked


# --- supplying a missing key ----------------------------------------------------------------------


def import_key(catalog: Catalog, home: Path, job_id: str, password: str) -> str:
    """Store ``password`` as job ``job_id``'s key after checking that it opens the job's repository
    on a destination of this catalog (the job's own, those its backup rows name, then the others);
    return the name of the destination it opened. Raises ValidationError (a malformed ID or
    password), NotFoundError (no destination holds the repository; nothing stored),
    WrongPasswordError (it does not open it; nothing stored), ConflictError (a different key that
    opens one of the job's repositories is stored already; a stored key that opens none of them,
    made by a run before the import, is replaced)."""
    keys = KeyStore(catalog)
    check_id(job_id)  # the ID's shape, before any destination is contacted
    text = password.strip()
    with catalog.transaction(write=False) as tx:
        job = tx.get("jobs", job_id) or {}
        named = [str(ident) for ident in job.get("destination") or []]
        named += [row.destination_id for row in backups.rows(tx, job_id=job_id)]
        every = tx.all("destinations")
    order = {ident: position for position, ident in enumerate(dict.fromkeys(named))}
    candidates = sorted(every, key=lambda item: order.get(str(item["_id"]), len(order)))
    opened_on, wrong = _opening_destination(candidates, job_id, text)
    if opened_on is not None:
        try:
            keys.put(job_id, text)
        except ConflictError:
            # A run on this server before the import made a random key that opens none of the
            # job's repositories: it protects nothing, so the working key replaces it.
            if _opening_destination(candidates, job_id, keys.get(job_id))[0] is not None:
                raise
            log.warning(
                "key import: replacing Backup Job %s's key, which opens none of its repositories", job_id
            )
            keys.remove(job_id)
            keys.put(job_id, text)
        return opened_on
    if wrong is not None:
        raise WrongPasswordError(f"the key does not open Backup Job {job_id}'s repository: {wrong}")
    raise NotFoundError(
        f"no destination of this catalog holds a repository of Backup Job {job_id} "
        "(add the destination first); nothing was stored"
    )


def _opening_destination(
    candidates: list[dict[str, Any]], job_id: str, password: str
) -> tuple[str | None, WrongPasswordError | None]:
    """The name of the first destination whose repository of ``job_id`` ``password`` opens (None if
    none), and the last wrong-password error met."""
    wrong: WrongPasswordError | None = None
    for destination in candidates:
        try:
            with repositories.open_destination(destination, job_id, retry=repositories.NO_RETRY) as opened:
                if not opened.store.exists(CONFIG_NAME):
                    continue
                Repository.open(opened.store, password=password, load_index=False).close()
        except WrongPasswordError as error:
            wrong = error
            continue
        except (SnapkeepError, OSError) as error:
            log.info("key import: destination %r not usable: %s", destination.get("name"), error)
            continue
        return str(destination.get("name", destination["_id"])), wrong
    return None, wrong
