"""Restore and download (API.md section 6): ``addQueueItems``.

``type=2`` restores, ``type=4`` downloads; the backup is ``snapshot_id`` (a backup ID) or ``items[]``
(backup or item IDs). ``files[ITEM][PATH]=File|Directory`` restores only those paths (as they were
backed up, ``/home/site/x``) of that item or backup; ``options[target]`` restores below another
folder instead of the original place; ``options[merge]=0`` replaces what is at each restored path
instead of keeping files the backup does not have; ``options[overwrite]`` (always, if-changed,
if-newer, never; default never with merge=1: existing files are kept), ``options[dry_run]=1`` and
``options[special_files]=1`` are docs/restores.md's. The answer is the new queue group (Pending): poll
``getQueueGroup`` until it finishes; a download names its ``.tar.zst`` in ``data.file``.

``downloadBackupFile`` (``_id`` = the download's queue group) decides whether a finished download
may be fetched and where it is: the user who queued it or root (an admin) may; a download that is
not finished, failed, expired (``downloads_ttl`` days, a General setting, after it ended: the file
is then removed) or whose file is gone is "not found". ``GET /download/GROUP_ID`` (``api.http``)
streams the file it names.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator

from snapkeep.api.functions.base import CallContext, FunctionSpec, ParamSpec, Result, only_id, param_specs
from snapkeep.engine.fs.restore_policy import POLICIES
from snapkeep.errors import NotFoundError, ValidationError
from snapkeep.jobs import access, backups, nodes, queue, restores, settings
from snapkeep.jobs.codes import RESTORE_TYPES, QueueStatus, QueueType
from snapkeep.jobs.models.base import Flag, ObjectId, Strict, choice, listish, objectish, validate
from snapkeep.jobs.runs.restore import DOWNLOADS
from snapkeep.sources.accounts.base import account_id

QUEUE_ITEM_TYPES = {int(kind): kind.label for kind in RESTORE_TYPES}
FILE_KINDS = ("File", "Directory")


class RestoreOptions(Strict):
    target: str = Field("", description="absolute folder to restore below (default: the original place)")
    merge: Flag = Field(True, description="0 replaces what is at each restored path; 1 keeps other files")
    database_name: str = Field("", description="Accounts backups: restore the one database under this name")
    target_account: str = Field("", description="Accounts backups: restore into this account (username)")
    overwrite: str = Field(
        "",
        description="files already in the target: always, if-changed, if-newer or never "
        "(default never; always with merge=0)",
    )
    dry_run: Flag = Field(False, description="1 writes nothing and lists what would change in the log")
    node: str = Field(
        "",
        description="the node to restore onto or download on (ID or name; root only; default: the node "
        "of the backup's job; docs/nodes.md)",
    )
    special_files: Flag = Field(
        False,
        description="1 restores fifos, device nodes and set-user/group-ID bits (left out by default)",
    )

    @field_validator("overwrite")
    @classmethod
    def _policy(cls, value: str) -> str:
        if value and value not in POLICIES:
            raise ValueError(f"must be one of {', '.join(POLICIES)} (got {value!r})")
        return value

    @field_validator("target")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError(f"must be an absolute path (got {value!r})")
        return value


class AddQueueItemsParams(Strict):
    type: Annotated[int, choice(QUEUE_ITEM_TYPES)] = Field(description="2 Restore, 4 Download")
    snapshot_id: ObjectId | None = Field(None, description="the backup to restore")
    items: Annotated[list[ObjectId], BeforeValidator(listish)] = Field(
        default_factory=list, description="backup or item IDs to restore"
    )
    files: Annotated[
        dict[str, Annotated[dict[str, str], BeforeValidator(objectish)]], BeforeValidator(objectish)
    ] = Field(default_factory=dict, description="files[ITEM][PATH]=File|Directory: restore only these paths")
    options: Annotated[RestoreOptions, BeforeValidator(objectish)] = Field(
        default_factory=lambda: RestoreOptions.model_validate({}),
        description="options[target], options[merge], options[overwrite], options[dry_run], "
        "options[special_files]",
    )

    @field_validator("files")
    @classmethod
    def _kinds(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for paths in value.values():
            for path, kind in paths.items():
                if kind not in FILE_KINDS:
                    raise ValueError(f"{path}: must be File or Directory (got {kind!r})")
                if not path.startswith("/"):
                    raise ValueError(f"{path}: must be an absolute path as backed up")
        return value


def add_queue_items(context: CallContext, params: dict[str, Any]) -> Result:
    options = validate(AddQueueItemsParams, params)
    chosen = ([options.snapshot_id] if options.snapshot_id else []) + list(options.items)
    with context.catalog.transaction() as tx:
        group = restores.enqueue(
            tx,
            group_type=options.type,
            backup_ids=list(dict.fromkeys(chosen)),
            files={item: sorted(paths) for item, paths in options.files.items()},
            options={
                **options.options.model_dump(),
                "dry_run": int(options.options.dry_run),
                "special_files": int(options.options.special_files),
            },
            owner=context.caller.id,
            who=context.caller,
        )
    return f"{QUEUE_ITEM_TYPES[options.type]} queued ({group['_id']})", group


class MultiAccountParams(Strict):
    type: Annotated[int, choice(QUEUE_ITEM_TYPES)] = Field(description="2 Restore, 4 Download")
    accounts: Annotated[list[str], BeforeValidator(listish)] = Field(
        min_length=1, description="the accounts (their _id or username): the newest backup of each"
    )
    destination: ObjectId | None = Field(None, description="only backups on this destination")
    account_node: str = Field(
        "",
        description="only backups made on this node (ID or name): an account is identified by its node "
        "and username, so a name backed up on several nodes needs it (docs/nodes.md)",
    )
    options: Annotated[RestoreOptions, BeforeValidator(objectish)] = Field(
        default_factory=lambda: RestoreOptions.model_validate({}),
        description="as addQueueItems (options[target] does not apply: each goes to its account)",
    )


def add_multi_account(context: CallContext, params: dict[str, Any]) -> Result:
    """``addMultiAccountQueueItems``: restore (or download) the newest backup of each named account,
    one queue group per account, all queued or none."""
    options = validate(MultiAccountParams, params)
    if options.options.target:
        raise ValidationError(
            field="options[target]", problem="does not apply: each account is restored into itself"
        )
    groups = []
    with context.catalog.transaction() as tx:
        made_on = (
            nodes.resolve(tx, options.account_node, field_name="account_node") if options.account_node else ""
        )
        rows = [row for row in backups.rows(tx) if row.account and not row.key_required]
        for index, name in enumerate(options.accounts):
            mine = [
                row
                for row in rows
                if name in (row.account, account_id(row.account))
                and (options.destination is None or row.destination_id == options.destination)
                and (not made_on or backups.node_of(row) == made_on)
                and access.sees_backup(context.caller, row)
            ]
            if not mine:
                raise ValidationError(field=f"accounts[{index}]", problem=f"no backup of account {name!r}")
            on = sorted({backups.node_of(row) for row in mine})
            if len(on) > 1:
                known = nodes.names(tx)
                raise ValidationError(
                    field=f"accounts[{index}]",
                    problem=f"account {name!r} has backups from nodes "
                    f"{', '.join(sorted(known.get(node, node or 'unknown') for node in on))}: "
                    "choose one with account_node",
                )
            newest = max(mine, key=lambda row: (row.created, row.id))
            groups.append(
                restores.enqueue(
                    tx,
                    group_type=options.type,
                    backup_ids=[newest.id],
                    files={},
                    options={
                        **options.options.model_dump(),
                        "dry_run": int(options.options.dry_run),
                        "special_files": int(options.options.special_files),
                    },
                    owner=context.caller.id,
                    who=context.caller,
                )
            )
    return f"{len(groups)} {QUEUE_ITEM_TYPES[options.type]}(s) queued", {
        "groups": groups,
        "total": len(groups),
    }


#: Days a finished download stays fetchable by default (the ``downloads_ttl`` General setting); then
#: its file is removed and it is "not found".
DOWNLOAD_DAYS = settings.DEFAULT_DOWNLOADS_TTL


class DownloadElsewhere(NotFoundError):
    """The download's file is on the disk of another node (``node``: its ID); ``GET /download``
    forwards the request there (``api/forward.py``)."""

    def __init__(self, message: str, *, node: str, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.node = node


def download_file(context: CallContext, params: dict[str, Any]) -> Result:
    """The file of a finished download the caller may fetch: ``{"file", "size", "name"}``.
    Raises NotFoundError when there is none (any other user's download included), and
    ValidationError for a group that is not a download."""
    ident = only_id(params)
    with context.catalog.transaction(write=False) as tx:
        group = queue.get_group(tx, ident)
        days = settings.general(tx).downloads_ttl
    if group["type"] != QueueType.DOWNLOAD:
        raise ValidationError(field="_id", problem=f"queue group {ident} is not a download")
    if not context.caller.admin and group["owner"] != context.caller.id:
        raise NotFoundError(kind="Download", ident=ident)  # another user's: not even its existence
    if group["status"] not in (QueueStatus.COMPLETED, QueueStatus.PARTIAL):
        raise NotFoundError(
            f"download {ident} is not ready (status {group['status_name']})", kind="Download", ident=ident
        )
    path = context.home / DOWNLOADS / f"{ident}.tar.zst"
    ended = dt.datetime.fromisoformat(group["ended"]) if group.get("ended") else None
    if ended is not None and context.clock.now() - ended > dt.timedelta(days=days):
        path.unlink(missing_ok=True)
        raise NotFoundError(
            f"download {ident} expired ({days} days after it ended)", kind="Download", ident=ident
        )
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        made_on = str(group.get("node") or "")
        if made_on and made_on != nodes.local_id(context.home):
            with context.catalog.transaction(write=False) as tx:
                where = nodes.get_node(tx, made_on) if made_on in nodes.names(tx) else None
            label = f"{where['name']!r} (host {where['host']})" if where else made_on
            raise DownloadElsewhere(
                f"download {ident} was made on node {label}: GET /download/{ident} through any "
                "node fetches it from there",
                node=made_on,
                kind="Download",
                ident=ident,
            ) from None
        raise NotFoundError(f"download {ident}: its file was removed", kind="Download", ident=ident) from None
    if not stat.S_ISREG(info.st_mode):
        raise NotFoundError(f"download {ident}: its file was removed", kind="Download", ident=ident)
    return "Download Ready", {"file": str(path), "size": info.st_size, "name": path.name}


FUNCTIONS = [
    FunctionSpec(
        "addQueueItems",
        "Queue a restore (type 2) or download (type 4) of backups",
        param_specs(AddQueueItemsParams),
        add_queue_items,
    ),
    FunctionSpec(
        "addMultiAccountQueueItems",
        "Queue a restore (2) or download (4) of the newest backup of each named account",
        param_specs(MultiAccountParams),
        add_multi_account,
    ),
    FunctionSpec(
        "downloadBackupFile",
        "Where a finished download is (GET /download/GROUP_ID streams it)",
        [ParamSpec("_id", "string", True, "the download's queue group")],
        download_file,
    ),
]
