"""The run of a restore or download group (queue types 2 and 4; ``jobs.restores`` queues them).

A restore puts each chosen backup, whole or only the group's ``paths`` (as they were backed up,
``/home/a/x``), under ``target``: ``/home/a/x`` lands in ``<target>/home/a/x``; without
``options[target]`` the target is ``/`` (the original place), and an Accounts backup goes back into its
account and database servers (``runs.account_restore``). Nothing is written outside the target (the
engine refuses crafted names). ``options[merge]`` 1 (default) keeps files in the target that the
backup does not have; 0 removes what is at each restored path inside the target first, so the
result is exactly the backup. Pre and post Restore hooks (position 2) of the backup's job run around
a restore; a failing pre hook stops it before anything is written.

A download restores the chosen items into a private folder under ``<home>/downloads``, packs it as
``<home>/downloads/<group id>.tar.zst`` and names that file in the group's ``data.file``.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import zstandard

from snapkeep.clock import Clock
from snapkeep.engine.archive import restore_archive
from snapkeep.engine.fs.safe_target import remove_below
from snapkeep.engine.restore import restore
from snapkeep.errors import BackupAbortedError, SnapkeepError
from snapkeep.jobs import backups
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.codes import HookPosition, HookStage, LogType, QueueStatus, QueueType, Structure
from snapkeep.jobs.logs import RunLog
from snapkeep.jobs.queue import GroupRecord, RunningGroup
from snapkeep.jobs.runs import account_restore
from snapkeep.jobs.runs.common import (
    GroupRun,
    Outcome,
    RestoreProgress,
    RunContext,
    failure_reason,
    open_target,
    rollup,
)

DOWNLOADS = "downloads"


def clear_paths(target: Path, paths: Sequence[str]) -> None:
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


class RestoreRun(GroupRun):
    """One restore or download group."""

    def __init__(
        self, catalog: Catalog, home: Path, group: RunningGroup, record: GroupRecord, clock: Clock
    ) -> None:
        super().__init__(catalog, home, group, record, clock)
        self.download = record.type == QueueType.DOWNLOAD
        self.options: dict[str, Any] = dict(record.document.get("options", {}))
        self.job: dict[str, Any] = {}

    def run(self) -> QueueStatus:
        """Execute the group; return its final status."""
        data = self.record.data
        kind = "Download" if self.download else "Restore"
        run_log = RunLog.start(
            self.catalog,
            self.home,
            log_type=LogType.of_queue(self.record.type),
            owner=self.record.owner,
            name=f"{kind} of {data.get('name', '')}",
            job_id=data.get("job_id"),
            group_id=self.group.id,
        )
        self.group.update_document(data={"log_id": run_log.id})
        context = RunContext(self.catalog, self.home, self.clock, self.group, run_log, self.clock.now())
        job_id = str(data.get("job_id") or "")
        with self.catalog.transaction(write=False) as tx:
            self.job = (tx.get("jobs", job_id) if job_id else None) or {"_id": job_id}
        stopped = None if self.download else self.hooks(context, HookStage.PRE)
        status = stopped if stopped is not None else self.restore_all(context)
        if not self.download and stopped is None:
            self.hooks(context, HookStage.POST, status)
        run_log.info(f"finished: {kind} status {int(status)}")
        run_log.finish(status)
        with self.catalog.transaction() as tx:
            self.group.finish(tx, status)
        return status

    def hooks(self, context: RunContext, stage: HookStage, status: int | None = None) -> QueueStatus | None:
        """Run one stage of Restore hooks; the status the restore ends with when a pre hook stops it."""
        outcome = context.hooks(self.job, HookPosition.RESTORE, stage, status)
        if outcome.status is None:
            return None
        context.log.error(f"restore {outcome.message}")
        return QueueStatus(outcome.status)

    def restore_all(self, context: RunContext) -> QueueStatus:
        chosen = list(self.record.document.get("backups", []))
        if self.download:
            target = self.home / DOWNLOADS / f".{self.group.id}"
            shutil.rmtree(target, ignore_errors=True)
        else:
            target = Path(self.options.get("target") or "/")
        self.group.advance(force=True, total=len(chosen))
        results: list[Outcome] = []
        for entry in chosen:
            results.append(Outcome.of_status(self.restore_one(context, entry, target)))
            self.group.advance(force=True, completed=1)
        status = rollup(results)
        if self.download:
            status = self.pack(context, target, status)
        return status

    def pack(self, context: RunContext, folder: Path, status: QueueStatus) -> QueueStatus:
        """Pack a download's folder (when something was restored), then remove it."""
        if status in (QueueStatus.COMPLETED, QueueStatus.PARTIAL):
            output = self.home / DOWNLOADS / f"{self.group.id}.tar.zst"
            try:
                size = _pack(folder, output)
                self.group.update_document(data={"file": str(output), "size": size})
                context.log.info(f"download ready: {output} ({size} bytes)")
            except OSError as error:
                context.log.error(f"cannot write the download {output}: {error.strerror or error}")
                status = QueueStatus.FAILED
        shutil.rmtree(folder, ignore_errors=True)
        return status

    def restore_one(self, context: RunContext, entry: Mapping[str, Any], target: Path) -> QueueStatus:
        """Restore one backup of the group, recorded as one queue item."""
        with self.catalog.transaction(write=False) as tx:
            try:
                row = backups.row(tx, entry["backup"])
            except SnapkeepError as error:
                context.log.error(str(error))
                return QueueStatus.FAILED
        item = self.group.add_item(QueueType.RESTORE, row.id, backup=row.id)
        paths = [str(path) for path in entry.get("paths") or []]
        where = f"backup {row.id}"
        progress = RestoreProgress(self.group)
        status: QueueStatus
        try:
            with open_target(
                context,
                row.destination_id,
                job_id=row.job_id,
                encrypted=bool(row.encrypted),
                create=False,
                lock=False,
                action="restore",
            ) as opened:
                if opened.problem is not None:
                    raise SnapkeepError(opened.problem[1])
                assert opened.repository is not None
                if not self.download and not self.options.get("target") and row.account:
                    context.log.info(
                        f"restoring {where} of account {row.account} ({', '.join(paths) or 'everything'})"
                    )
                    restorer = account_restore.AccountRestore(
                        self.home, self.group.id, context.log, row, self.options, self.clock
                    )
                    status = restorer.run(opened.repository, paths, progress)
                    problems, counts = [], ", ".join(restorer.done) or "nothing"
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    if not int(self.options.get("merge", 1)):
                        clear_paths(target, paths or list(row.document.get("paths", [])))
                    context.log.info(f"restoring {where} ({', '.join(paths) or 'everything'}) into {target}")
                    if row.structure == Structure.INCREMENTAL:
                        snapshot = opened.repository.load_snapshot(row.engine_id)
                        result = restore(
                            opened.repository, snapshot, str(target), includes=paths, progress=progress
                        )
                        problems = list(result.failures) + list(result.warnings)
                        counts = f"{result.files} files, {result.bytes} bytes"
                    else:
                        done = restore_archive(
                            opened.repository, row.engine_id, str(target), includes=paths, progress=progress
                        )
                        problems = list(done.warnings)
                        counts = f"{done.files} files, {done.bytes} bytes"
                    status = QueueStatus.PARTIAL if problems else QueueStatus.COMPLETED
        except BackupAbortedError:
            context.log.warning(f"{where}: stopped on request")
            self.group.end_item(item, Outcome.STOPPED.item_status, "stopped")
            return QueueStatus.ABORTED
        except (SnapkeepError, OSError) as error:
            context.log.error(f"{where}: restore failed: {failure_reason(error)}")
            self.group.end_item(item, Outcome.FAILURE.item_status, failure_reason(error))
            return QueueStatus.FAILED
        context.log_warnings(where, [*problems, *progress.warnings])
        context.log.info(f"{where}: restored {counts}")
        self.group.end_item(item, Outcome.of_status(status).item_status, "")
        return status
