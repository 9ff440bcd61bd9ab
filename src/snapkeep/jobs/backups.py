"""Backups in the catalog: their rows, how the API shows them, locks and retention (API.md section 6).

Each backup a run stores (an Incremental snapshot, or an Archived/Compressed archive) gets a row in
``backups``: a catalog ID (the API's backup ID), a catalog ID for its one item (Directories jobs), the
job, the destination, the engine's own snapshot/archive ID (never shown), when, how big, the schedule
tags that made it (or ``manual``), and its lock. Backups outlive their job: deleting a job keeps its
backups listed and restorable (the row keeps the job's name, structure and encryption).

A backup the scheduled integrity check (``jobs.integrity``) found damaged has a row in
``backup_damage`` naming the damaged objects (packs, archives) it depends on; ``present`` shows it as
``damaged: 1`` (``null`` when intact, as API.md writes a backup's flags), and the check removes the row
when those objects read clean again (``mark_damaged``, ``clear_damaged``, ``damage_marks``).
``authenticated`` is 1 for a backup in an encrypted repository: only there do the seals prove that the
contents were written by a holder of the key; an unencrypted repository's hashes catch damage but not
a forgery (issue 10, section 4).

``retention_plan`` says which of a job's backups on one destination ``engine.retention`` keeps; the
runner removes the others from the destination (``jobs.repositories.remove_stored``) and then from the
catalog (``forget_row``). Opening the repositories they live in is ``jobs.repositories``' business.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update

from snapkeep.clock import SYSTEM, Clock, isoformat
from snapkeep.engine.maintenance import retention
from snapkeep.errors import ConflictError, NotFoundError
from snapkeep.ids import new_id
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.codes import JobType
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.migrations.m0006_users import ROOT_ID
from snapkeep.sources.accounts.base import account_id
from snapkeep.sources.components import COMPONENT_BITS

LABEL = "Backup"


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
    orphan: bool = False,
    key_required: bool = False,
    item_id: str | None = None,
) -> str:
    """Store a new backup row; return its catalog ID. A reindex sets ``orphan`` (the job is unknown
    here: the row is owned by root) and ``key_required`` (a placeholder for an encrypted repository
    whose password is missing)."""
    ident = new_id(tx.clock)
    tx.connection.execute(
        schema.backups.insert().values(
            id=ident,
            item_id=item_id or new_id(tx.clock),
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
            orphan=1 if orphan else 0,
            key_required=1 if key_required else 0,
            document={
                "job_name": job.get("name", ""),
                "owner": ROOT_ID if orphan else str(job.get("owner") or ROOT_ID),
                "job_type": int(job.get("type", JobType.DIRECTORIES)),
                "contains": int(job.get("contains", 0)),
                "destination_name": destination.get("name", ""),
                "schedules": tags,
                # the server whose files these are: an account is its node's (docs/nodes.md)
                **({"node": str(job["node"])} if job.get("node") else {}),
                **details,
            },
        )
    )
    return ident


@dataclass(frozen=True)
class BackupRecord:
    """A stored backup as the catalog knows it (one row of ``backups``)."""

    id: str
    item_id: str
    job_id: str
    destination_id: str
    engine_id: str
    structure: int
    account: str
    created: _dt.datetime
    size: int
    encrypted: int
    locked: int
    lock_ttl: int
    locked_until: _dt.datetime | None
    document: dict[str, Any]
    #: the integrity check's damage mark (``{"objects": [...], "reason": ...}``); None when intact
    damage: dict[str, Any] | None = None
    orphan: int = 0
    key_required: int = 0

    @classmethod
    def of(cls, found: Any) -> BackupRecord:
        """The record of a ``backups`` row (joined with its damage mark by ``_select``)."""
        mapping = dict(found._mapping)
        damage = mapping.pop("damage", None)
        return cls(**{**mapping, "document": dict(found.document or {}), "damage": damage})


def _select() -> Any:
    """``backups`` with each row's damage mark (``damage``: its document, or NULL)."""
    table, marks = schema.backups, schema.backup_damage
    return select(table, marks.c.document.label("damage")).select_from(
        table.outerjoin(marks, marks.c.backup_id == table.c.id)
    )


def rows(tx: Transaction, **equal: Any) -> list[BackupRecord]:
    """Backup rows (oldest first), optionally where columns equal values."""
    table = schema.backups
    query = _select().order_by(table.c.created, table.c.id)
    for column, value in equal.items():
        query = query.where(table.c[column] == value)
    return [BackupRecord.of(found) for found in tx.connection.execute(query)]


def row(tx: Transaction, ident: str) -> BackupRecord:
    """The backup with catalog ID ``ident`` (or whose item has that ID). Raises NotFoundError."""
    table = schema.backups
    found = tx.connection.execute(_select().where((table.c.id == ident) | (table.c.item_id == ident))).first()
    if found is not None:
        return BackupRecord.of(found)
    owner = _component_owner(tx, ident)
    if owner is None:
        raise NotFoundError(kind=LABEL, ident=ident)
    return owner


# --- the components of an Accounts backup (one item per ``contains`` bit) ----------------------


def component_items(names: list[str], clock: Clock = SYSTEM) -> list[dict[str, Any]]:
    """New item IDs for an account backup's components (stored in its row's document)."""
    return [{"_id": new_id(clock), "name": name, "bit": COMPONENT_BITS.get(name, 0)} for name in names]


def _component_owner(tx: Transaction, ident: str) -> BackupRecord | None:
    """The account backup one of whose component items has ID ``ident`` (None when none)."""
    table = schema.backups
    for candidate in tx.connection.execute(_select().where(table.c.account != "")):
        if any(item.get("_id") == ident for item in dict(candidate.document or {}).get("components", [])):
            return BackupRecord.of(candidate)
    return None


def component_of(backup: BackupRecord, ident: str) -> str | None:
    """The component name of item ``ident`` of an account backup (None: the backup itself)."""
    for item in backup.document.get("components", []):
        if item.get("_id") == ident:
            return str(item["name"])
    return None


def node_of(backup: BackupRecord) -> str:
    """The node whose job made ``backup`` ("" for a backup from before nodes, or a reindexed one)."""
    return str(backup.document.get("node") or "")


def present_items(backup: BackupRecord) -> list[dict[str, Any]]:
    """The items of a backup: one per component for an Accounts backup, else its one item."""
    components = backup.document.get("components")
    if not components:
        return [present_item(backup)]
    answer = []
    failed = set(backup.document.get("failures", []))
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


def present(backup: BackupRecord) -> dict[str, Any]:
    """A backup in API shape (the fields of a backup item, API.md section 6)."""
    document = backup.document
    account = backup.account or (backup.job_id if document.get("job_type") == JobType.DIRECTORIES else "")
    return {
        "_id": backup.id,
        "parent_id": None,
        "job_id": backup.job_id,
        "job_name": document.get("job_name", ""),
        "destination": backup.destination_id,
        "destination_name": document.get("destination_name", ""),
        "account": account,
        "account_id": account_id(backup.account) if backup.account else None,
        "node": node_of(backup),
        "backup_type": int(document.get("job_type", JobType.DIRECTORIES)),
        "backup_contains": document.get("contains", 0),
        "backup_structure": backup.structure,
        "created": isoformat(backup.created),
        "size": int(backup.size),
        "encrypted": 1 if backup.encrypted else 0,
        "authenticated": 1 if backup.encrypted else 0,
        "damaged": 1 if backup.damage is not None else None,
        "damage": str(backup.damage.get("reason", "")) if backup.damage is not None else None,
        "locked": 1 if backup.locked else 0,
        "lock_ttl": int(backup.lock_ttl),
        "lock_until": isoformat(backup.locked_until) if backup.locked else None,
        "schedules": list(document.get("schedules", [])),
        "paths": list(document.get("paths", [])),
        "owner": ROOT_ID if backup.orphan else str(document.get("owner") or ROOT_ID),
        "orphan": 1 if backup.orphan else 0,
        "key_required": 1 if backup.key_required else 0,
        "missing": 1 if document.get("missing") else 0,
    }


def present_item(backup: BackupRecord) -> dict[str, Any]:
    """The one item of a Directories backup: the job's folders."""
    answer = present(backup)
    answer.update({"_id": backup.item_id, "parent_id": backup.id, "name": ", ".join(answer["paths"])})
    return answer


def set_lock(tx: Transaction, ident: str, *, locked: bool, lock_ttl: int) -> BackupRecord:
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


def is_locked(backup: BackupRecord, now: _dt.datetime) -> bool:
    """Whether a backup's lock still holds at ``now``."""
    return bool(backup.locked) and (backup.locked_until is None or backup.locked_until > now)


def set_missing(tx: Transaction, ident: str, missing: bool) -> None:
    """Mark (or clear the mark of) a backup that a reindex did not find on its destination; the
    document keeps when it was first missed."""
    backup = row(tx, ident)
    document = dict(backup.document)
    if missing:
        document.setdefault("missing", isoformat(tx.clock.now()))
    else:
        document.pop("missing", None)
    tx.connection.execute(
        update(schema.backups).where(schema.backups.c.id == backup.id).values(document=document)
    )


def set_orphan(tx: Transaction, ident: str, job: Mapping[str, Any] | None) -> None:
    """Link a backup row to its job as the catalog knows it now (``job``), or make it an orphan
    (None: the job is unknown here, so the row is owned by root)."""
    backup = row(tx, ident)
    document = dict(backup.document)
    if job is not None:
        document.update(job_name=str(job.get("name", "")), owner=str(job.get("owner") or ROOT_ID))
    else:
        document["owner"] = ROOT_ID
    tx.connection.execute(
        update(schema.backups)
        .where(schema.backups.c.id == backup.id)
        .values(orphan=0 if job is not None else 1, document=document)
    )


def forget_row(tx: Transaction, ident: str) -> None:
    """Remove a backup row (after its data left the destination), and its damage mark."""
    tx.connection.execute(delete(schema.backup_damage).where(schema.backup_damage.c.backup_id == ident))
    tx.connection.execute(delete(schema.backups).where(schema.backups.c.id == ident))


# --- damage found by the integrity check ------------------------------------------------------------


def damage_marks(tx: Transaction) -> dict[str, dict[str, Any]]:
    """Every damage mark: backup ID -> ``{"objects": [...], "reason": ...}``."""
    marks = schema.backup_damage
    return {found.backup_id: dict(found.document or {}) for found in tx.connection.execute(select(marks))}


def mark_damaged(tx: Transaction, ident: str, *, objects: list[str], reason: str) -> bool:
    """Mark backup ``ident`` damaged by ``objects`` (``"pack:<id>"``, ``"archive:<id>"``), merged with
    those already recorded; True when it was not marked before."""
    marks = schema.backup_damage
    current = damage_marks(tx).get(ident)
    if current is None:
        tx.connection.execute(
            marks.insert().values(
                backup_id=ident,
                detected=tx.clock.now(),
                document={"objects": sorted(set(objects)), "reason": reason},
            )
        )
        return True
    merged = sorted({*current.get("objects", []), *objects})
    tx.connection.execute(
        update(marks).where(marks.c.backup_id == ident).values(document={"objects": merged, "reason": reason})
    )
    return False


def clear_damaged(tx: Transaction, ident: str) -> bool:
    """Remove backup ``ident``'s damage mark; False when it had none."""
    marks = schema.backup_damage
    return bool(tx.connection.execute(delete(marks).where(marks.c.backup_id == ident)).rowcount)


# --- deleting and retention ------------------------------------------------------------------


def refuse_locked(backup: BackupRecord, now: _dt.datetime) -> None:
    """Raise ConflictError when ``backup`` is locked at ``now``."""
    if is_locked(backup, now):
        raise ConflictError(f"Backup {backup.id} is locked; unlock it with manageBackupLock first")


def retention_plan(
    job: Mapping[str, Any], backups: list[BackupRecord], schedule_names: Mapping[str, str], now: _dt.datetime
) -> list[retention.Decision]:
    """What retention decides for one job's backups on one destination."""
    retain = {str(link["_id"]): int(link["retain"]) for link in job.get("schedules", [])}
    retain[retention.MANUAL] = int(job.get("manually_retain", 14))
    records = [
        retention.Backup(
            id=backup.id,
            created=backup.created,
            source=f"account {backup.account}" if backup.account else f"job {backup.job_id}",
            tags=frozenset(backup.document.get("schedules", [])),
            locked_until=(backup.locked_until or retention.FOREVER) if backup.locked else None,
            ok=not backup.document.get("partial"),
        )
        for backup in backups
    ]
    labels = {ident: f"schedule {name!r}" for ident, name in schedule_names.items()}
    return retention.decide(records, retain, now, labels=labels)
