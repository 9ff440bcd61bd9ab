"""The body of a Directories job's run (job type 2): the job's folders into each destination.

Pre Backup hooks; then per destination (``runs.common.open_target``: disabled ones and those over
their ``disk_limit`` are skipped) one queue item, the backup in the job's structure (an Incremental
snapshot, or an Archived/Compressed archive), the catalog row, retention and prune; the failed
destinations once more at the end when ``retry_failed``; post Backup hooks.
"""

from __future__ import annotations

from snapkeep.engine.archive import write_archive
from snapkeep.engine.backup import backup
from snapkeep.errors import BackupAbortedError, SnapkeepError
from snapkeep.jobs import access, backups
from snapkeep.jobs.codes import HookStage, QueueStatus, QueueType, Structure
from snapkeep.jobs.runs.common import (
    BackupBody,
    BackupProgress,
    Outcome,
    RunResult,
    Target,
    apply_retention,
    failure_reason,
    open_target,
    rollup,
    scheduled_only,
)


class DirectoriesBody(BackupBody):
    """The destinations loop of one Directories run."""

    def run(self) -> RunResult:
        context = self.context
        owner = self.owner()
        outside = [path for path in self.job.include_list if not access.inside_homes(owner, path)]
        if outside:
            context.log.error(
                f"the job's owner {owner.name!r} may back up only its accounts' home folders; "
                f"outside them: {', '.join(outside[:10])}"
            )
            return RunResult(QueueStatus.FAILED, "folders outside the owner's accounts")
        stopped = self.hooks(HookStage.PRE)
        if stopped is not None:
            return stopped
        context.group.advance(force=True, total=len(self.destinations))
        results = {ident: self.destination(ident) for ident in self.destinations}
        failed = [ident for ident, result in results.items() if result == Outcome.FAILURE]
        if failed and self.job.retry_failed and not context.stopping():
            context.log.info(f"retrying {len(failed)} failed destination(s) once")
            for ident in failed:
                results[ident] = self.destination(ident, retry=True)
        return self.result(rollup(results.values(), stopped=context.group.stop.is_set()))

    def destination(self, ident: str, *, retry: bool = False) -> Outcome:
        """Back up to one destination, recorded as one queue item."""
        context = self.context
        with context.catalog.transaction(write=False) as tx:
            found = tx.get("destinations", ident)
        name = str(found["name"]) if found else ident
        item = context.group.add_item(QueueType.BACKUP, name, destination=ident, retry=retry)
        result, message = self._destination(ident)
        context.group.end_item(item, result.item_status, message)
        context.group.advance(force=True, completed=1)
        return result

    def _destination(self, ident: str) -> tuple[Outcome, str]:
        context = self.context
        if context.stopping():
            return Outcome.STOPPED, "stopped"
        progress = BackupProgress(context.group)
        with open_target(
            context, ident, job_id=self.job.id, encrypted=self.job.encrypted, create=True
        ) as target:
            if target.problem is not None:
                return target.problem
            try:
                backup_id = self.store(target, progress)
                target.locks.close()
                context.log.info(f"{target.where}: backup {backup_id} stored")
                apply_retention(context, self.job, target)
            except BackupAbortedError:
                context.log.warning(f"{target.where}: stopped on request; nothing was committed")
                return Outcome.STOPPED, "stopped"
            except (SnapkeepError, OSError) as error:
                context.log.error(f"{target.where}: backup failed: {failure_reason(error)}")
                return Outcome.FAILURE, failure_reason(error)
        context.log_warnings(target.where, progress.warnings)
        return (Outcome.WARNINGS, "completed with warnings") if progress.warnings else (Outcome.OK, "")

    def store(self, target: Target, progress: BackupProgress) -> str:
        """Write the snapshot or archive and record it in the catalog; return the backup's catalog ID."""
        assert target.repository is not None
        assert target.destination is not None
        context, job, tags = self.context, self.job, self.tags
        extra = {"schedules": scheduled_only(tags), "structure": "incremental"}
        if job.structure == Structure.INCREMENTAL:
            snapshot = backup(
                target.repository,
                job.include_list,
                excludes=job.exclude_list,
                tags=tags,
                job_id=job.id,
                extra=extra,
                progress=progress,
                clock=context.clock,
            )
            engine_id, created, size = snapshot.id, snapshot.time, int(snapshot.stats.get("bytes", 0))
            paths = list(snapshot.paths)
        else:
            manifest = write_archive(
                target.repository,
                job.include_list,
                compressed=job.structure == Structure.COMPRESSED,
                excludes=job.exclude_list,
                tags=tags,
                progress=progress,
                job_id=job.id,
                clock=context.clock,
            )
            engine_id, created, size = manifest.id, manifest.time, manifest.size
            paths = list(manifest.sources)
        with context.catalog.transaction() as tx:
            return backups.record(
                tx,
                job=dict(job.document),
                destination=dict(target.destination.document),
                engine_id=engine_id,
                created=created,
                size=size,
                tags=tags,
                details={"paths": paths, "queue_group_id": context.group.id, "log_id": context.log.id},
            )
