"""Restores and downloads of backups (API.md section 6, ``addQueueItems`` types 2 and 4).

``enqueue(tx, group_type=2|4, backup_ids, files, options, owner)`` queues a group (Pending); the
runner (``jobs.runner.execute_group``) calls ``run_restore`` for it. A restore puts each chosen
backup, whole or only ``files`` (paths as they were backed up, ``/home/a/x``), under ``target``:
``/home/a/x`` lands in ``<target>/home/a/x``; without ``options[target]`` the target is ``/`` (the
original place). Nothing is written outside the target (the engine refuses crafted names).
``options[merge]`` 1 (default) keeps files in the target that the backup does not have; 0 removes
what is at each restored path inside the target first, so the result is exactly the backup.

A download (type 4) restores the chosen items into a private folder under ``<home>/downloads``,
packs it as ``<home>/downloads/<group id>.tar.zst`` and names that file in the group's
``data.file``.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import zstandard

from snapkeep.clock import Clock
from snapkeep.engine.archive import restore_archive
from snapkeep.engine.fs.safe_target import remove_below
from snapkeep.engine.progress import Progress
from snapkeep.engine.restore import restore
from snapkeep.errors import BackupAbortedError, SnapkeepError, ValidationError
from snapkeep.ids import new_id
from snapkeep.jobs import account_restores, backups, destinations, hooks
from snapkeep.jobs.catalog import Catalog, Transaction
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.queue import PENDING, QUEUE_TYPES, empty_progress, get_group
from snapkeep.jobs.runlog import GroupState, RunLog

RESTORE, DOWNLOAD = 2, 4
COMPLETED, PARTIAL, FAILED, ABORTED = 100, 101, 102, 103
DOWNLOADS = "downloads"


def enqueue(
    tx: Transaction,
    *,
    group_type: int,
    backup_ids: Sequence[str],
    files: Mapping[str, Sequence[str]],
    options: Mapping[str, Any],
    owner: str,
) -> dict[str, Any]:
    """Queue a restore or download of ``backup_ids`` (``files`` maps a backup or item ID to paths);
    return the new group. Raises NotFoundError for an unknown backup, ValidationError otherwise."""
    if group_type not in (RESTORE, DOWNLOAD):
        raise ValidationError(field="type", problem=f"must be 2 (Restore) or 4 (Download) (got {group_type})")
    if not backup_ids:
        raise ValidationError(field="snapshot_id", problem="a backup (snapshot_id or items[]) is required")
    chosen: list[dict[str, Any]] = []
    for ident in backup_ids:
        row = backups.row(tx, ident)
        paths = list(files.get(ident, [])) + (list(files.get(row.id, [])) if row.id != ident else [])
        paths += list(files.get(row.item_id, [])) if row.item_id != ident else []
        if row.account:  # an Accounts backup: paths inside its layout (jobs.account_restores)
            paths = account_restores.entry_paths(row, ident, paths)
        chosen.append({"backup": row.id, "paths": sorted(set(paths))})
    target = str(options.get("target") or "")
    if target and not target.startswith("/"):
        raise ValidationError(field="options[target]", problem=f"must be an absolute path (got {target!r})")
    first = backups.row(tx, chosen[0]["backup"])
    group_id = new_id(tx.clock)
    name = dict(first.document or {}).get("job_name", "")
    document = {
        "data": {"_id": first.id, "name": name, "job_id": first.job_id},
        "backups": chosen,
        "options": {
            "target": target,
            "merge": 0 if options.get("merge", 1) in (0, False, "0", "false") else 1,
            **account_restores.check_options([backups.row(tx, item["backup"]) for item in chosen], options),
        },
        "progress": empty_progress(),
    }
    tx.connection.execute(
        schema.queue_groups.insert().values(
            id=group_id,
            type=group_type,
            status=PENDING,
            job_id=None,
            owner=owner,
            created=tx.clock.now(),
            document=document,
        )
    )
    return get_group(tx, group_id)


class _Progress(Progress):
    def __init__(self, state: GroupState) -> None:
        self.state = state
        self.warnings: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def on_start(self, total_files: int | None, total_bytes: int | None) -> None:
        self.state.advance(force=True, total_files=total_files or 0, total_bytes=total_bytes or 0)

    def on_file(self, path: str, size: int) -> None:
        if self.state.stopping():
            raise BackupAbortedError("stopped on request")
        self.state.advance(completed_files=1)

    def on_bytes(self, count: int) -> None:
        self.state.advance(completed_bytes=count)

    def on_warning(self, path: str, message: str) -> None:
        with self._lock:
            self.warnings.append((path, message))


def _clear(target: Path, paths: Sequence[str]) -> None:
    """Remove what is at each path inside ``target`` (merge=0), never following a symlink out
    (``engine.fs.safe_target.remove_below``)."""
    for path in paths:
        remove_below(target, path)


def _pack(folder: Path, output: Path) -> int:
    """Write ``folder``'s contents as a .tar.zst at ``output`` (via a temporary name); its size."""
    temporary = output.with_name(output.name + ".part")
    with (
        temporary.open("wb") as raw,
        zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False) as compressed,
        tarfile.open(fileobj=compressed, mode="w|", format=tarfile.PAX_FORMAT) as archive,
    ):
        for entry in sorted(folder.iterdir()):
            archive.add(entry, arcname=entry.name)
    os.replace(temporary, output)
    return output.stat().st_size


def run_restore(catalog: Catalog, home: Path, state: GroupState, group: Any, clock: Clock) -> int:
    """Execute a restore or download group; return its final status."""
    document = dict(group.document or {})
    data = document.get("data", {})
    kind = "Restore" if group.type == RESTORE else "Download"
    run_log = RunLog.start(
        catalog,
        home,
        log_type=group.type,
        owner=group.owner,
        name=f"{kind} of {data.get('name', '')}",
        job_id=data.get("job_id"),
        group_id=state.id,
    )
    state.update_document(data={"log_id": run_log.id})
    restore_hooks = _RestoreHooks(catalog, run_log, data, clock) if group.type == RESTORE else None
    if restore_hooks is not None:
        stopped = restore_hooks.run(hooks.PRE)
        if stopped is not None:
            run_log.info(f"finished: Restore status {stopped}")
            run_log.finish(stopped)
            with catalog.transaction() as tx:
                state.finish(tx, stopped)
            return stopped
    chosen = list(document.get("backups", []))
    options = dict(document.get("options", {}))
    if group.type == DOWNLOAD:
        work = home / DOWNLOADS / f".{state.id}"
        shutil.rmtree(work, ignore_errors=True)
        target = work
    else:
        target = Path(options.get("target") or "/")
    state.advance(force=True, total=len(chosen))
    results: list[int] = []
    for entry in chosen:
        accounts = group.type == RESTORE and not options.get("target")
        results.append(
            _restore_one(catalog, home, state, run_log, entry, target, options, clock, accounts=accounts)
        )
        state.advance(force=True, completed=1)
    if ABORTED in results:
        status = ABORTED
    elif results and all(result == COMPLETED for result in results):
        status = COMPLETED
    elif COMPLETED in results or PARTIAL in results:
        status = PARTIAL
    else:
        status = FAILED
    if group.type == DOWNLOAD:
        if status in (COMPLETED, PARTIAL):
            output = home / DOWNLOADS / f"{state.id}.tar.zst"
            try:
                size = _pack(target, output)
                state.update_document(data={"file": str(output), "size": size})
                run_log.info(f"download ready: {output} ({size} bytes)")
            except OSError as error:
                run_log.error(f"cannot write the download {output}: {error.strerror or error}")
                status = FAILED
        shutil.rmtree(target, ignore_errors=True)
    if restore_hooks is not None:
        restore_hooks.run(hooks.POST, status)
    run_log.info(f"finished: {QUEUE_TYPES.get(group.type, kind)} status {status}")
    run_log.finish(status)
    with catalog.transaction() as tx:
        state.finish(tx, status)
    return status


class _RestoreHooks:
    """Pre and post Restore hooks (position 2) of the job whose backup is restored."""

    def __init__(self, catalog: Catalog, run_log: RunLog, data: Mapping[str, Any], clock: Clock) -> None:
        self.run_log = run_log
        self.clock = clock
        self.started = int(clock.time())
        job_id = str(data.get("job_id") or "")
        with catalog.transaction(write=False) as tx:
            self.every_hook = tx.all("hooks")
            self.job = (tx.get("jobs", job_id) if job_id else None) or {"_id": job_id}

    def run(self, stage: int, status: int | None = None) -> int | None:
        """Run one stage; returns the status the restore ends with (103) when a pre hook stops it."""
        outcome = hooks.run_job_stage(
            self.every_hook,
            self.job,
            position=hooks.RESTORE,
            stage=stage,
            log_id=self.run_log.id,
            start_time=self.started,
            status=status,
            clock=self.clock,
        )
        for level, line in outcome.log_lines:
            self.run_log.write(level, line)
        if outcome.status is not None:
            self.run_log.error(f"restore {outcome.message}")
        return outcome.status


def _restore_one(
    catalog: Catalog,
    home: Path,
    state: GroupState,
    run_log: RunLog,
    entry: Mapping[str, Any],
    target: Path,
    options: Mapping[str, Any],
    clock: Clock,
    *,
    accounts: bool = False,
) -> int:
    """Restore one backup of the group. ``accounts``: an Accounts backup goes back into its account
    and database servers (``jobs.account_restores``) instead of below ``target``."""
    with catalog.transaction(write=False) as tx:
        try:
            row = backups.row(tx, entry["backup"])
        except SnapkeepError as error:
            run_log.error(str(error))
            return FAILED
        destination = tx.get("destinations", row.destination_id)
    item = state.add_item(RESTORE, row.id, backup=row.id)
    paths = list(entry.get("paths") or [])
    where = f"backup {row.id}"
    progress = _Progress(state)
    opened: destinations.Opened | None = None
    account_status: int | None = None
    try:
        if destination is None:
            raise SnapkeepError(f"its destination {row.destination_id} no longer exists")
        opened = destinations.open_destination(destination, row.job_id, clock=clock)
        store = opened.store
        password = backups.job_password(home, row.job_id, bool(row.encrypted), create=False)
        repository = backups.open_repository(store, password=password, create=False, clock=clock)
        try:
            if accounts and row.account:
                run_log.info(
                    f"restoring {where} of account {row.account} ({', '.join(paths) or 'everything'})"
                )
                restorer = account_restores.AccountRestore(home, state.id, run_log, row, options, clock)
                account_status = restorer.run(repository, paths, progress)
                problems, counts = [], ", ".join(restorer.done) or "nothing"
            else:
                target.mkdir(parents=True, exist_ok=True)
                if not int(options.get("merge", 1)):
                    _clear(target, paths or list(dict(row.document or {}).get("paths", [])))
                run_log.info(f"restoring {where} ({', '.join(paths) or 'everything'}) into {target}")
                if row.structure == backups.INCREMENTAL:
                    snapshot = repository.load_snapshot(row.engine_id)
                    result = restore(repository, snapshot, str(target), includes=paths, progress=progress)
                    problems = list(result.failures) + list(result.warnings)
                    counts = f"{result.files} files, {result.bytes} bytes"
                else:
                    done = restore_archive(
                        repository, row.engine_id, str(target), includes=paths, progress=progress
                    )
                    problems = list(done.warnings)
                    counts = f"{done.files} files, {done.bytes} bytes"
        finally:
            repository.close()
    except BackupAbortedError:
        run_log.warning(f"{where}: stopped on request")
        state.end_item(item, ABORTED, "stopped")
        return ABORTED
    except (SnapkeepError, OSError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        run_log.error(f"{where}: restore failed: {reason}")
        state.end_item(item, FAILED, reason)
        return FAILED
    finally:
        if destination is not None:
            destinations.finish(catalog, run_log, opened, row.destination_id, where)
    for path, message in [*problems, *progress.warnings][:50]:
        run_log.warning(f"{where}: {path}: {message}")
    run_log.info(f"{where}: restored {counts}")
    status = PARTIAL if problems else COMPLETED
    if account_status is not None:
        status = account_status
    state.end_item(item, status, "")
    return status
