"""Restore and download (API.md section 6): ``addQueueItems``.

``type=2`` restores, ``type=4`` downloads; the backup is ``snapshot_id`` (a backup ID) or ``items[]``
(backup or item IDs). ``files[ITEM][PATH]=File|Directory`` restores only those paths (as they were
backed up, ``/home/site/x``) of that item or backup; ``options[target]`` restores below another
folder instead of the original place; ``options[merge]=0`` replaces what is at each restored path
instead of keeping files the backup does not have. The answer is the new queue group (Pending): poll
``getQueueGroup`` until it finishes; a download names its ``.tar.zst`` in ``data.file``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator

from snapkeep.api.functions.base import CallContext, FunctionSpec, Result, param_specs
from snapkeep.jobs import restores
from snapkeep.jobs.codes import RESTORE_TYPES
from snapkeep.jobs.models.base import Flag, ObjectId, Strict, choice, listish, objectish, validate

QUEUE_ITEM_TYPES = {int(kind): kind.label for kind in RESTORE_TYPES}
FILE_KINDS = ("File", "Directory")


class RestoreOptions(Strict):
    target: str = Field("", description="absolute folder to restore below (default: the original place)")
    merge: Flag = Field(True, description="0 replaces what is at each restored path; 1 keeps other files")
    database_name: str = Field("", description="Accounts backups: restore the one database under this name")
    target_account: str = Field("", description="Accounts backups: restore into this account (username)")

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
        description="options[target], options[merge]",
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
            options=options.options.model_dump(),
            owner=context.caller.user,
        )
    return f"{QUEUE_ITEM_TYPES[options.type]} queued ({group['_id']})", group


FUNCTIONS = [
    FunctionSpec(
        "addQueueItems",
        "Queue a restore (type 2) or download (type 4) of backups",
        param_specs(AddQueueItemsParams),
        add_queue_items,
    ),
]
