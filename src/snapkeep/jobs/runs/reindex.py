"""The run of a reindex group (queue type 8; ``jobs.reindex.enqueue`` queues it).

Pre Reindex hooks (position 5; the ones meant for every job: a reindex belongs to no job), then: the
destination's root is listed for repositories (``jobs.reindex.repository_ids``); each repository is
one queue item: opened with its job's key from the key store and, under an exclusive repository lock
(a repository a backup is writing is skipped with a warning: "in use"), read (``jobs.reindex.scan``)
and made to agree with the catalog (``jobs.reindex.apply``), each in its own transaction, so a reindex stopped
half-way leaves every repository it finished indexed and the others as they were. Rows of jobs whose
repository has left the destination are marked missing (only when the listing itself succeeded).
Post Reindex hooks get the status.

Status: 100 when every repository was read; 101 when some had damaged snapshots or manifests, need a
key or were in use; 102 when the destination could not be listed or no repository could be read; 103 when
stopped.
"""

from __future__ import annotations

from pathlib import Path

from snapkeep.clock import Clock
from snapkeep.engine.repository.locks import RepositoryLock
from snapkeep.errors import LockError, SnapkeepError
from snapkeep.jobs import accounts, reindex, repositories
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.codes import HookPosition, HookStage, LogType, QueueStatus, QueueType
from snapkeep.jobs.keystore import KeyStore
from snapkeep.jobs.logs import RunLog
from snapkeep.jobs.queue import GroupRecord, RunningGroup
from snapkeep.jobs.runs.common import (
    DestinationSpec,
    GroupRun,
    Outcome,
    RunContext,
    failure_reason,
    rollup,
)

#: the reindex's stand-in for a job when it runs hooks (only hooks meant for every job apply)
NO_JOB = {"_id": ""}


class ReindexRun(GroupRun):
    """One reindex group: a destination's repositories into the catalog."""

    def __init__(
        self, catalog: Catalog, home: Path, group: RunningGroup, record: GroupRecord, clock: Clock
    ) -> None:
        super().__init__(catalog, home, group, record, clock)
        #: username -> home of this server's accounts, read once the destination has been listed
        self.homes: dict[str, str] = {}

    def run(self) -> QueueStatus:
        """Execute the group; return its final status."""
        data = self.record.data
        run_log = RunLog.start(
            self.catalog,
            self.home,
            log_type=LogType.of_queue(QueueType.REINDEX),
            owner=self.record.owner,
            name=f"Reindex of destination {data.get('name', '')}",
            job_id=None,
            group_id=self.group.id,
        )
        self.group.update_document(data={"log_id": run_log.id})
        context = RunContext(self.catalog, self.home, self.clock, self.group, run_log, self.clock.now())
        status = self.hooks(context, HookStage.PRE)
        if status is None:
            status = self.reindex(context, str(data.get("_id") or ""))
            self.hooks(context, HookStage.POST, status)
        run_log.info(f"finished: Reindex status {int(status)}")
        run_log.finish(status)
        with self.catalog.transaction() as tx:
            self.group.finish(tx, status)
        return status

    def hooks(self, context: RunContext, stage: HookStage, status: int | None = None) -> QueueStatus | None:
        """Run one stage of Reindex hooks; the status the reindex ends with when a pre hook stops it."""
        outcome = context.hooks(NO_JOB, HookPosition.REINDEX, stage, status)
        if outcome.status is None:
            return None
        context.log.error(f"reindex {outcome.message}")
        return QueueStatus(outcome.status)

    def reindex(self, context: RunContext, destination_id: str) -> QueueStatus:
        """List the destination's repositories and index each one."""
        with self.catalog.transaction(write=False) as tx:
            document = tx.get("destinations", destination_id)
        if document is None:
            context.log.error(f"destination {destination_id} no longer exists")
            return QueueStatus.FAILED
        spec = DestinationSpec.of(document)
        try:
            with repositories.open_destination(document, "", clock=self.clock) as opened:
                job_ids = reindex.repository_ids(opened.store)
        except (SnapkeepError, OSError) as error:
            context.log.error(f"{spec.where}: cannot list its repositories: {failure_reason(error)}")
            return QueueStatus.FAILED
        context.log.info(f"{spec.where}: {len(job_ids)} repositories found")
        self.homes = self.account_homes(context)
        self.group.advance(force=True, total=len(job_ids))
        outcomes: list[Outcome] = []
        for job_id in job_ids:
            if context.stopping():
                context.log.warning("stopped on request")
                return QueueStatus.ABORTED
            outcomes.append(self.repository(context, spec, job_id))
            self.group.advance(force=True, completed=1)
        with self.catalog.transaction() as tx:
            lost = reindex.mark_lost_repositories(tx, document, job_ids)
        if lost:
            context.log.warning(
                f"{spec.where}: {len(lost)} backups of jobs with no repository there any more "
                f"marked missing: {', '.join(lost[:20])}{' ...' if len(lost) > 20 else ''}"
            )
        if not job_ids:
            return QueueStatus.COMPLETED
        return rollup(outcomes)

    def account_homes(self, context: RunContext) -> dict[str, str]:
        """Username -> home of this server's accounts (for found account backups); {} when the
        server has no account provider or it cannot be read (a note in the log)."""
        try:
            return {account.username: account.home for account in accounts.list_accounts(self.home)}
        except (SnapkeepError, OSError) as error:
            context.log.info(
                f"accounts of this server not known ({failure_reason(error)}): paths "
                "under an account's home are not mapped for found account backups"
            )
            return {}

    def repository(self, context: RunContext, spec: DestinationSpec, job_id: str) -> Outcome:
        """Index one repository, recorded as one queue item."""
        item = self.group.add_item(QueueType.REINDEX, job_id, destination=spec.id, job_id=job_id)
        where = f"{spec.where}: repository {job_id}"
        keys = KeyStore(self.catalog)
        opened = None
        try:
            opened = repositories.open_destination(spec.document, job_id, clock=self.clock)
            password = keys.get(job_id) if keys.has(job_id) else None
            # exclusive: a backup records its row while it holds its shared lock, so no backup can
            # store a snapshot that this reindex would list as well (a duplicate row)
            holder = f"snapkeep reindex {self.group.id}"
            with RepositoryLock(opened.store, exclusive=True, holder=holder, clock=self.clock):
                found = reindex.scan(opened.store, job_id, password)
                with self.catalog.transaction() as tx:
                    applied = reindex.apply(
                        tx, spec.document, found, queue_group_id=self.group.id, homes=self.homes
                    )
        except LockError as error:
            context.log.warning(f"{where}: in use, not indexed ({error}); reindex again when it is free")
            self.group.end_item(item, Outcome.WARNINGS.item_status, "in use")
            return Outcome.WARNINGS
        except (SnapkeepError, OSError) as error:
            context.log.error(f"{where}: cannot be read: {failure_reason(error)}")
            self.group.end_item(item, Outcome.FAILURE.item_status, failure_reason(error))
            return Outcome.FAILURE
        finally:
            repositories.finish(self.catalog, opened, spec.id).report(context.log, spec.where)
        context.log.info(f"{spec.where}: {applied.summary()}")
        for ident in applied.missing:
            context.log.warning(f"{where}: backup {ident} is no longer on the destination: marked missing")
        for engine_id, reason in found.damaged[:20]:
            context.log.warning(f"{where}: {engine_id[:12]} skipped: {reason}")
        if len(found.damaged) > 20:
            context.log.warning(f"{where}: ... and {len(found.damaged) - 20} more damaged")
        if found.key_required:
            message = (
                "encrypted and its key is not in the key store: import it with "
                f"'snapkeep keys import {job_id} FILE', then reindex again"
            )
            context.log.warning(f"{where}: {message}")
            self.group.end_item(item, Outcome.WARNINGS.item_status, "key required")
            return Outcome.WARNINGS
        outcome = Outcome.WARNINGS if found.damaged else Outcome.OK
        self.group.end_item(item, outcome.item_status, applied.summary())
        return outcome
