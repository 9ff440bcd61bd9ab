"""A backup run of a job, around what its type does: the job's times, the log, the end, alerts.

``BackupRun.run()`` loads the job, starts the log, hands the body to ``runs.directories`` or
``runs.accounts`` (by the job's type), then ends the run: the log's and the group's final status,
the job's ``last_run``/``next_run``/``running``, an alert for a failed, partial or aborted run (not
for a run a hook skipped), the monitor's incidents, and notifications. It never raises for the run's
own failures: a bug or a catalog failure ends the run as 102 with the error in its log.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from snapkeep.clock import Clock
from snapkeep.errors import SnapkeepError
from snapkeep.jobs import alerts, hooks, monitor, notify, schedule, settings
from snapkeep.jobs.alerts import Alert
from snapkeep.jobs.catalog import Catalog, Transaction
from snapkeep.jobs.codes import JobType, LogLevel, LogType, QueueStatus
from snapkeep.jobs.logs import RunLog
from snapkeep.jobs.queue import GroupRecord, RunningGroup
from snapkeep.jobs.runs.accounts import AccountsBody
from snapkeep.jobs.runs.common import GroupRun, JobSpec, RunContext, RunResult, run_tags
from snapkeep.jobs.runs.directories import DirectoriesBody

log = logging.getLogger(__name__)


class BackupRun(GroupRun):
    """One run of a backup job (queue type 1)."""

    def __init__(
        self, catalog: Catalog, home: Path, group: RunningGroup, record: GroupRecord, clock: Clock
    ) -> None:
        super().__init__(catalog, home, group, record, clock)
        self.job_id: str = record.job_id or str(record.data.get("_id", ""))
        self.started: _dt.datetime = record.started or clock.now()
        self.log: RunLog | None = None
        self.job_document: dict[str, Any] = {"_id": self.job_id, "name": record.data.get("name", "")}

    def run(self) -> QueueStatus:
        result = RunResult(QueueStatus.FAILED)
        try:
            with self.catalog.transaction() as tx:
                job = tx.get("jobs", self.job_id)
                if job is not None:
                    self.job_document = job
                    tx.set_job_times(self.job_id, last_run=self.started, next_run=job.get("next_run"))
            self.log = RunLog.start(
                self.catalog,
                self.home,
                log_type=LogType.BACKUP,
                owner=self.record.owner,
                name=str(self.job_document.get("name", "")),
                job_id=self.job_id,
                group_id=self.group.id,
            )
            self.group.update_document(data={"log_id": self.log.id})
            context = RunContext(self.catalog, self.home, self.clock, self.group, self.log, self.started)
            result = self.body(context, job)
        except Exception as error:  # a bug or a catalog failure: the run fails, the service goes on
            if isinstance(error, SnapkeepError):  # e.g. the catalog's disk is full: no traceback
                log.error("backup run of queue group %s failed: %s", self.group.id, error)
            else:
                log.exception("backup run of queue group %s failed", self.group.id)
            detail = f"internal error: {type(error).__name__}: {error}"
            if self.log is not None:
                self.log.error(detail)
            result = RunResult(QueueStatus.FAILED, detail)
        self.end(result)
        return result.status

    def body(self, context: RunContext, document: Mapping[str, Any] | None) -> RunResult:
        """The run between its log's start and its end."""
        if document is None:
            context.log.error(f"Backup Job {self.job_id} no longer exists")
            return RunResult(QueueStatus.FAILED, "the job no longer exists")
        job = JobSpec.of(document)
        tags = run_tags(self.record.document)
        context.log.info(
            f"Backup Job {job.name!r} ({job.id}) started: {job.structure.label}"
            f"{', encrypted' if job.encrypted else ''}, tags {', '.join(tags)}"
        )
        chosen = [str(ident) for ident in self.record.document.get("destinations") or job.destinations]
        if job.type == JobType.ACCOUNTS:
            return AccountsBody(context, job, tags, chosen).run()
        return DirectoriesBody(context, job, tags, chosen).run()

    # --- the end ------------------------------------------------------------------------------

    def cause(self, detail: str) -> str:
        """An alert's detail with why (issue 14 item 1): the log's first error lines, and its ID."""
        if self.log is None or not self.log.first_errors:
            return detail
        why = "; ".join(self.log.first_errors)
        more = self.log.counts.get(LogLevel.ERROR, 0) - len(self.log.first_errors)
        tail = f" (and {more} more errors)" if more > 0 else ""
        return f"{detail + ': ' if detail else ''}{why}{tail}; log {self.log.id}"

    def end(self, result: RunResult) -> None:
        status, detail = result.status, result.detail
        raised: list[Alert] = []
        if self.log is not None:
            self.log.info(f"finished: status {int(status)}{f' ({detail})' if detail else ''}")
            self.log.finish(status)
        with self.catalog.transaction() as tx:
            self.group.finish(tx, status)
            job = tx.get("jobs", self.job_id)
            if job is not None:
                tx.set_job_running(self.job_id, False)
                tx.set_job_times(self.job_id, last_run=self.started, next_run=self.next_run(tx, job))
                if result.alert and detail != hooks.SKIPPED_MESSAGE:
                    why = self.cause(detail)
                    made = alerts.run_alert(tx, job, status, group_id=self.group.id, detail=why)
                    if made is not None:
                        raised.append(made)
            monitor.run_finished(tx, self.job_id, self.group.id, status)
        if raised:
            try:
                notify.notify(self.catalog, raised)
            except Exception:  # a notification never fails a run
                log.exception("sending the alert of queue group %s failed", self.group.id)
        self.group.advance(force=True)

    def next_run(self, tx: Transaction, job: dict[str, Any]) -> _dt.datetime | None:
        try:
            tz = schedule.zone(settings.timezone(tx))
            return schedule.job_next_run(job, tx.all("schedules"), self.clock.now(), tz)
        except SnapkeepError as error:
            if self.log is not None:
                self.log.warning(f"next run not computed: {error}")
            upcoming: _dt.datetime | None = job.get("next_run")
            return upcoming
