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
from snapkeep.errors import NotFoundError, ValidationError
from snapkeep.jobs import access, backups, browse, repositories
from snapkeep.jobs.codes import JobType, Structure
from snapkeep.jobs.models.base import Flag, NonNegative, Strict, choice, validate


class BackupListParams(ListParams):
    type: Annotated[int | None, choice(JobType.labels())] = Field(
        None, description="1 Accounts, 2 Directories"
    )
    contains: NonNegative | None = Field(None, description="only backups holding any of these contains bits")
    account_id: str | None = Field(
        None, description="the account's _id or username (Accounts), or the job ID (Directories)"
    )


class FilesParams(IdParams):
    path: str = Field("/", description="the folder to list, inside the item (default /)")
    search: str = Field(
        "", max_length=255, description="list the entries below path whose name contains this"
    )
    limit: NonNegative = Field(
        1000, le=10_000, description="at most this many entries (0 = all, up to 10,000)"
    )
    skip: NonNegative = Field(0, description="skip this many first")


class LockParams(IdParams):
    locked: Flag = Field(description="1 locks the backup, 0 unlocks it")
    lock_ttl: NonNegative = Field(0, description="seconds the lock lasts (0 = no end)")


def _visible_backups(context: CallContext, options: BackupListParams) -> list[dict[str, Any]]:
    """The backups the caller may see that ``type``, ``contains`` and ``account_id`` select, newest first."""
    with context.catalog.transaction(write=False) as tx:
        items = [backups.present(row) for row in backups.rows(tx) if access.sees_backup(context.caller, row)]
    items.reverse()  # newest first unless sorted
    items = [
        item
        for item in items
        if (options.type is None or item["backup_type"] == options.type)
        and (options.contains is None or item["backup_contains"] & options.contains or options.contains == 0)
        and (options.account_id is None or options.account_id in (item["account"], item["account_id"]))
    ]
    return items


def list_backups(context: CallContext, params: dict[str, Any]) -> Result:
    options = list_params(params, BackupListParams)
    assert isinstance(options, BackupListParams)
    items = _visible_backups(context, options)
    page, total = apply_list(items, options, text_of=lambda item: f"{item['job_name']} {item['account']}")
    return "Backups Listed Successfully", {"backups": page, "total": total}


class TypeNameParams(BackupListParams):
    name: str = Field("", description="the account's username (JetBackup sends it beside account_id)")


def list_for_type_name(context: CallContext, params: dict[str, Any]) -> Result:
    """``listBackupForTypeName``: one account's backups of a type and contains (JetBackup's call)."""
    options = list_params(params, TypeNameParams)
    assert isinstance(options, TypeNameParams)
    if not options.account_id and options.name:
        options = options.model_copy(update={"account_id": options.name})
    if not options.account_id:
        raise ValidationError(field="account_id", problem="is required (the account's _id or username)")
    items = _visible_backups(context, options)
    if options.name and any(item["account"] != options.name for item in items):
        raise ValidationError(field="name", problem=f"is not the username of account {options.account_id}")
    page, total = apply_list(items, options, text_of=lambda item: f"{item['job_name']} {item['account']}")
    return "Backups Listed Successfully", {"backups": page, "total": total}


def list_for_type(context: CallContext, params: dict[str, Any]) -> Result:
    """``listBackupForType``: what has backups of a type: accounts (type 1) or Directories jobs (type 2),
    each with its count, newest backup and destinations."""
    options = list_params(params, BackupListParams)
    assert isinstance(options, BackupListParams)
    found: dict[str, dict[str, Any]] = {}
    for item in reversed(_visible_backups(context, options)):  # oldest first: the last seen is the newest
        key = item["account_id"] or item["job_id"]
        entry = found.setdefault(
            key,
            {
                "_id": key,
                "name": item["account"] if item["account_id"] else item["job_name"],
                "backup_type": item["backup_type"],
                "backups": 0,
                "contains": 0,
                "destinations": [],
            },
        )
        entry["backups"] += 1
        entry["contains"] |= int(item["backup_contains"])
        entry.update(last_backup=item["created"], last_backup_id=item["_id"])
        if item["destination"] not in entry["destinations"]:
            entry["destinations"].append(item["destination"])
    page, total = apply_list(sorted(found.values(), key=lambda entry: str(entry["name"])), options)
    return "Backups Listed Successfully", {"items": page, "total": total}


def get_items(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction(write=False) as tx:
        row = backups.row(tx, ident)
    items = backups.present_items(row)
    return "Backup Items Retrieved Successfully", {"items": items, "total": len(items)}


def get_item(context: CallContext, params: dict[str, Any]) -> Result:
    """``getBackupItem``: one item of a backup (a component of an account backup, the folders of a
    Directories backup) by its ID; the backup's own ID answers the backup."""
    ident = only_id(params)
    with context.catalog.transaction(write=False) as tx:
        row = backups.row(tx, ident)
    if ident == row.id:
        return "Backup Item Retrieved Successfully", backups.present(row)
    for item in backups.present_items(row):
        if item["_id"] == ident:
            return "Backup Item Retrieved Successfully", item
    raise NotFoundError(kind="Backup", ident=ident)


def list_files(context: CallContext, params: dict[str, Any]) -> Result:
    """``listBackupFiles``: one folder of a backup item (or the backup), read from its destination
    one tree at a time; or the entries below it whose name contains ``search`` (jobs/browse.py).
    An account owner cannot open the ``config`` component (its account's package and owner)."""
    options = validate(FilesParams, params)
    hide = frozenset({"config"}) if context.caller.role == "account" else frozenset()
    answer = browse.list_folder(
        context.catalog,
        options.id,
        options.path,
        search=options.search,
        limit=options.limit or 10_000,
        skip=options.skip,
        hide=hide,
    )
    return "Backup Files Listed Successfully", answer


def manage_lock(context: CallContext, params: dict[str, Any]) -> Result:
    options = validate(LockParams, params)
    with context.catalog.transaction() as tx:
        row = backups.set_lock(tx, options.id, locked=options.locked, lock_ttl=options.lock_ttl)
    verb = "Locked" if options.locked else "Unlocked"
    return f"Backup {verb} Successfully", backups.present(row)


def delete_snapshot(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    return "Backup Deleted Successfully", {"_id": _delete(context, ident)}


class AccountSnapshotsParams(Strict):
    account_id: str = Field(min_length=1, description="the account's _id or username")


def delete_account_snapshots(context: CallContext, params: dict[str, Any]) -> Result:
    """``deleteAccountSnapshots``: every backup of one account the caller may see, from its
    destination and the catalog; locked ones stay and are named."""
    options = validate(AccountSnapshotsParams, params)
    chosen = _visible_backups(
        context, BackupListParams.model_validate({"type": JobType.ACCOUNTS, "account_id": options.account_id})
    )
    deleted, kept = [], []
    for item in chosen:
        if item["locked"]:
            kept.append(item["_id"])
            continue
        deleted.append(_delete(context, item["_id"]))
    message = f"{len(deleted)} Backup(s) Deleted" + (f"; {len(kept)} locked one(s) kept" if kept else "")
    return message, {"deleted": deleted, "locked": kept, "total": len(deleted)}


def _delete(context: CallContext, ident: str) -> str:
    """Remove backup ``ident`` from its destination (pruning an Incremental repository), then from
    the catalog; return its ID. Raises NotFoundError and ConflictError (locked)."""
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
    return row.id


FUNCTIONS = [
    FunctionSpec("listBackups", "List backups, newest first", param_specs(BackupListParams), list_backups),
    FunctionSpec("getBackupItems", "The items of one backup", param_specs(IdParams), get_items),
    FunctionSpec("getBackupItem", "One item of a backup (or the backup)", param_specs(IdParams), get_item),
    FunctionSpec(
        "listBackupFiles",
        "One folder of a backup item, or a search below it, read lazily",
        param_specs(FilesParams),
        list_files,
    ),
    FunctionSpec("manageBackupLock", "Lock or unlock a backup", param_specs(LockParams), manage_lock),
    FunctionSpec(
        "deleteSnapshot", "Delete a backup from its destination", param_specs(IdParams), delete_snapshot
    ),
    FunctionSpec(
        "listBackupForType",
        "What has backups of a type: accounts (1) or Directories jobs (2)",
        param_specs(BackupListParams),
        list_for_type,
    ),
    FunctionSpec(
        "listBackupForTypeName",
        "One account's backups of a type and contains",
        param_specs(TypeNameParams),
        list_for_type_name,
    ),
    FunctionSpec(
        "deleteAccountSnapshots",
        "Delete every (unlocked) backup of one account",
        param_specs(AccountSnapshotsParams),
        delete_account_snapshots,
    ),
]
