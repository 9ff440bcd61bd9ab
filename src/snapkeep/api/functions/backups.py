"""Backup functions (API.md section 6): listBackups, getBackupItems, manageBackupLock, deleteSnapshot.

Backup IDs are catalog IDs (24 hex); the engine's snapshot and archive hashes never appear. A
Directories backup has one item (the job's folders), with its own ID and ``parent_id`` = the backup.
``account_id`` is the job ID for Directories backups and the username for Accounts backups.
``lock_ttl`` is in seconds from now, 0 = locked with no end; a locked backup survives retention and
``deleteSnapshot`` refuses it. ``deleteSnapshot`` removes the backup from its destination (and
prunes an Incremental repository), then from the catalog.

Each backup also shows ``damaged`` (``1`` when the scheduled integrity check found data it needs
damaged, ``null`` otherwise, as API.md writes a backup's flags; ``damage`` says what) and
``authenticated`` (``1`` in an encrypted repository, whose seals prove who wrote it; ``0`` in an
unencrypted one, which can detect damage but not a forgery).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from snapkeep.api.functions.base import (
    CallContext,
    FunctionSpec,
    IdParams,
    ListParams,
    Result,
    apply_list,
    list_params,
    only_id,
    param_specs,
)
from snapkeep.jobs import backups, repositories
from snapkeep.jobs.codes import JobType, Structure
from snapkeep.jobs.models.base import Flag, NonNegative, choice, validate


class BackupListParams(ListParams):
    type: Annotated[int | None, choice(JobType.labels())] = Field(
        None, description="1 Accounts, 2 Directories"
    )
    contains: NonNegative | None = Field(None, description="only backups holding any of these contains bits")
    account_id: str | None = Field(None, description="username (Accounts) or job ID (Directories)")


class LockParams(IdParams):
    locked: Flag = Field(description="1 locks the backup, 0 unlocks it")
    lock_ttl: NonNegative = Field(0, description="seconds the lock lasts (0 = no end)")


def list_backups(context: CallContext, params: dict[str, Any]) -> Result:
    options = list_params(params, BackupListParams)
    assert isinstance(options, BackupListParams)
    with context.catalog.transaction(write=False) as tx:
        items = [backups.present(row) for row in backups.rows(tx)]
    items.reverse()  # newest first unless sorted
    items = [
        item
        for item in items
        if (options.type is None or item["backup_type"] == options.type)
        and (options.contains is None or item["backup_contains"] & options.contains or options.contains == 0)
        and (options.account_id is None or item["account"] == options.account_id)
    ]
    page, total = apply_list(items, options, text_of=lambda item: f"{item['job_name']} {item['account']}")
    return "Backups Listed Successfully", {"backups": page, "total": total}


def get_items(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction(write=False) as tx:
        row = backups.row(tx, ident)
    items = backups.present_items(row)
    return "Backup Items Retrieved Successfully", {"items": items, "total": len(items)}


def manage_lock(context: CallContext, params: dict[str, Any]) -> Result:
    options = validate(LockParams, params)
    with context.catalog.transaction() as tx:
        row = backups.set_lock(tx, options.id, locked=options.locked, lock_ttl=options.lock_ttl)
    verb = "Locked" if options.locked else "Unlocked"
    return f"Backup {verb} Successfully", backups.present(row)


def delete_snapshot(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction() as tx:
        row = backups.row(tx, ident)
        backups.refuse_locked(row, tx.clock.now())
        destination = tx.require("destinations", row.destination_id, "Destination")
    with repositories.job_repository(
        destination, row.job_id, catalog=context.catalog, encrypted=bool(row.encrypted)
    ) as repository:
        with context.catalog.transaction() as tx:
            repositories.delete_backup(tx, backups.row(tx, row.id), repository)
        if row.structure == Structure.INCREMENTAL:
            repositories.prune_repository(repository)
    return "Backup Deleted Successfully", {"_id": row.id}


FUNCTIONS = [
    FunctionSpec("listBackups", "List backups, newest first", param_specs(BackupListParams), list_backups),
    FunctionSpec("getBackupItems", "The items of one backup", param_specs(IdParams), get_items),
    FunctionSpec("manageBackupLock", "Lock or unlock a backup", param_specs(LockParams), manage_lock),
    FunctionSpec(
        "deleteSnapshot", "Delete a backup from its destination", param_specs(IdParams), delete_snapshot
    ),
]
