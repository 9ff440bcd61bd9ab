"""Requests for restores and downloads of backups (API.md section 6, ``addQueueItems`` types 2 and 4).

``enqueue(tx, group_type=2|4, backup_ids, files, options, owner)`` checks the request and queues a
group (Pending, ``queue.enqueue_restore``); ``runs.restore`` runs it. A restore puts each chosen
backup, whole or only ``files`` (paths as they were backed up, ``/home/a/x``), under ``target``:
``/home/a/x`` lands in ``<target>/home/a/x``; without ``options[target]`` the target is ``/`` (the
original place). Nothing is written outside the target (the engine refuses crafted names).
``options[merge]`` 1 (default) keeps files in the target that the backup does not have; 0 removes
what is at each restored path inside the target first, so the result is exactly the backup.

What happens to files already in the target (docs/restores.md): ``options[overwrite]`` is
``always``, ``if-changed``, ``if-newer`` or ``never``; without it, ``never`` with merge=1 (API.md:
"existing files are kept") and ``always`` with merge=0 (the paths were cleared). ``options[dry_run]=1``
writes nothing and lists what would change in the run's log. ``options[special_files]=1`` creates
fifos, device nodes and set-user/group-ID bits, which are left out otherwise (an unencrypted
repository cannot prove where they came from); a restore into a hosting account never creates them.

A download (type 4) restores the chosen items into a private folder under ``<home>/downloads``,
packs it as ``<home>/downloads/<group id>.tar.zst`` and names that file in the group's
``data.file``.

On a shared catalog (issue 16, docs/nodes.md) a restore or download runs on a **target node**:
``options[node]`` (ID or name; root only), by default the node of the backup's job (the node
serving the call when the job is gone). An account backed up on node A is so restored onto node B.
A Local destination is a node's own disk: a backup on a Local destination of another node than the
target is refused, naming both (SFTP and S3 destinations are shared).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from snapkeep.engine.fs.restore_policy import ALWAYS, NEVER, POLICIES
from snapkeep.errors import AccessDenied, ConflictError, ValidationError
from snapkeep.jobs import access, backups, nodes, queue
from snapkeep.jobs.access import ROOT_PRINCIPAL, Principal
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.codes import QueueType
from snapkeep.jobs.runs import account_restore


def enqueue(
    tx: Transaction,
    *,
    group_type: int,
    backup_ids: Sequence[str],
    files: Mapping[str, Sequence[str]],
    options: Mapping[str, Any],
    owner: str,
    who: Principal = ROOT_PRINCIPAL,
) -> dict[str, Any]:
    """Queue a restore or download of ``backup_ids`` (``files`` maps a backup or item ID to paths);
    return the new group. Raises NotFoundError for an unknown backup, AccessDenied for an item
    ``who`` may not restore or download (``jobs.access.item_allowed``), ValidationError otherwise."""
    if group_type not in (QueueType.RESTORE, QueueType.DOWNLOAD):
        raise ValidationError(field="type", problem=f"must be 2 (Restore) or 4 (Download) (got {group_type})")
    if not backup_ids:
        raise ValidationError(field="snapshot_id", problem="a backup (snapshot_id or items[]) is required")
    chosen: list[dict[str, Any]] = []
    for ident in backup_ids:
        row = backups.row(tx, ident)
        if row.key_required:
            raise ConflictError(
                f"backup {row.id} is encrypted and this server has no key for Backup Job {row.job_id}: "
                f"run 'snapkeep keys import {row.job_id} FILE', then reindex its destination"
            )
        paths = list(files.get(ident, [])) + (list(files.get(row.id, [])) if row.id != ident else [])
        paths += list(files.get(row.item_id, [])) if row.item_id != ident else []
        if row.account:  # an Accounts backup: paths inside its layout (runs.account_restore)
            paths = account_restore.entry_paths(row, ident, paths)
            check_items(who, group_type, row, paths)
        chosen.append({"backup": row.id, "paths": sorted(set(paths))})
    target = str(options.get("target") or "")
    if target and not target.startswith("/"):
        raise ValidationError(field="options[target]", problem=f"must be an absolute path (got {target!r})")
    merge = 0 if options.get("merge", 1) in (0, False, "0", "false") else 1
    overwrite = str(options.get("overwrite") or "") or (ALWAYS if merge == 0 else NEVER)
    if overwrite not in POLICIES:
        raise ValidationError(
            field="options[overwrite]", problem=f"must be one of {', '.join(POLICIES)} (got {overwrite!r})"
        )
    dry_run = flag(options, "dry_run")
    if dry_run and group_type == QueueType.DOWNLOAD:
        raise ValidationError(field="options[dry_run]", problem="applies to restores (type 2) only")
    first = backups.row(tx, chosen[0]["backup"])
    name = dict(first.document or {}).get("job_name", "")
    document = {
        "data": {"_id": first.id, "name": name, "job_id": first.job_id},
        "backups": chosen,
        "options": {
            "target": target,
            "merge": merge,
            "overwrite": overwrite,
            "dry_run": dry_run,
            "special_files": flag(options, "special_files"),
            **account_restore.check_options([backups.row(tx, item["backup"]) for item in chosen], options),
        },
    }
    node = target_node(tx, who, options, [backups.row(tx, item["backup"]) for item in chosen])
    return queue.enqueue_restore(tx, QueueType(group_type), owner=owner, document=document, node=node)


def target_node(
    tx: Transaction, who: Principal, options: Mapping[str, Any], rows: Sequence[backups.BackupRecord]
) -> str | None:
    """The node a restore or download of ``rows`` runs on (see the module docstring). Raises
    AccessDenied for ``options[node]`` from anyone but root, ValidationError for an unknown node or a
    backup on another node's Local destination."""
    asked = str(options.get("node") or "")
    if asked and not who.admin:
        raise AccessDenied("only root may choose the node of a restore")
    job = tx.get("jobs", rows[0].job_id) if rows and rows[0].job_id else None
    default = str((job or {}).get("node") or "") or nodes.serving_node(tx)
    target = nodes.resolve(tx, asked, field_name="options[node]") if asked else default
    names = nodes.names(tx)
    for row in rows:
        destination = tx.get("destinations", row.destination_id) or {}
        if destination.get("type") != "Local":
            continue
        owner_job = tx.get("jobs", row.job_id) if row.job_id else None
        disk_node = str(destination.get("node") or (owner_job or {}).get("node") or "")
        if disk_node and target and disk_node != target:
            raise ValidationError(
                field="options[node]",
                problem=(
                    f"backup {row.id} is on Local destination {destination.get('name')!r}, the disk of "
                    f"node {names.get(disk_node, disk_node)!r}: it cannot be restored on node "
                    f"{names.get(target, target)!r} (only SFTP and S3 destinations are shared)"
                ),
            )
    return target


def check_items(who: Principal, group_type: int, row: backups.BackupRecord, paths: Sequence[str]) -> None:
    """Every component a request reaches (``paths``; [] = the whole account) must be one ``who`` may
    restore or download. Raises AccessDenied naming the component."""
    if who.admin:
        return
    action = "download" if group_type == QueueType.DOWNLOAD else "restore"
    if paths:
        components = {path.strip("/").split("/")[0] for path in paths}
    else:
        components = {str(item.get("name")) for item in row.document.get("components", [])}
    for component in sorted(components):
        if not access.item_allowed(who, action, component):
            raise AccessDenied(f"{action} of {component} (backup {row.id})")


def flag(options: Mapping[str, Any], key: str) -> int:
    """``options[key]`` as 0 or 1. Raises ValidationError naming ``options[key]`` otherwise."""
    value = options.get(key, 0)
    if value in (0, 1, False, True, "0", "1", "", None):
        return 1 if value in (1, True, "1") else 0
    raise ValidationError(field=f"options[{key}]", problem=f"must be 0 or 1 (got {value!r})")
