"""The runner: executes one queue group, a backup run of a job or a restore/download (API.md section 6).

Interface (for the daemon's workers and ``snapkeep run``)
--------------------------------------------------------
``execute_group(catalog, home, group_id, *, stop, clock=SYSTEM, on_progress=None) -> int``
    runs the group to its end and returns the final queue status (100 Completed, 101 Partially
    Completed, 102 Failed, 103 Aborted). A Pending group is claimed here; a Processing one is taken
    as claimed by the caller. Setting ``stop`` (or ``stopQueueGroup``) stops the run cleanly: no
    snapshot is committed for it, the repository stays valid, the status is 103. Never raises for
    the run's own failures (they are the status and the log); raises NotFoundError for an unknown
    group and ConflictError for one that has already finished.

A backup run (type 1) goes through the job's destinations in turn, each in its own repository
``<destination root>/<job id>/`` (``jobs.backups``): pre Backup hooks, then per destination the
backup in the job's structure, the catalog row, retention and prune; failed destinations once more
at the end when ``retry_failed``; post Backup hooks; the log, the group's status, the job's
``last_run``/``next_run``/``running``, and an alert for a failed, partial or aborted run.
A destination that is disabled, or fuller than its ``disk_limit``, is skipped with a warning.
Restores and downloads (types 2 and 4) are ``jobs.restores``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from snapkeep.clock import SYSTEM, Clock
from snapkeep.engine.archive import write_archive
from snapkeep.engine.backup import backup
from snapkeep.engine.maintenance import retention
from snapkeep.engine.progress import Progress
from snapkeep.errors import BackupAbortedError, SnapkeepError
from snapkeep.jobs import (
    account_runs,
    alerts,
    backups,
    destinations,
    hooks,
    monitor,
    notify,
    restores,
    schedule,
)
from snapkeep.jobs.alerts import Alert
from snapkeep.jobs.catalog import Catalog, Transaction
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.runlog import GroupState, RunLog

log = logging.getLogger(__name__)

BACKUP, RESTORE, DOWNLOAD = 1, 2, 4
COMPLETED, PARTIAL, FAILED, ABORTED = 100, 101, 102, 103
OK, WARNINGS, FAILURE, SKIPPED, STOPPED = "ok", "warnings", "failed", "skipped", "stopped"
ITEM_STATUS = {OK: COMPLETED, WARNINGS: PARTIAL, FAILURE: FAILED, SKIPPED: ABORTED, STOPPED: ABORTED}
LOGGED_WARNINGS = 50

ProgressCallback = Callable[[dict[str, int]], None]


class RunProgress(Progress):
    """Engine progress into the queue group; raises BackupAbortedError once a stop is asked for."""

    def __init__(self, state: GroupState) -> None:
        self.state = state
        self.warnings: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def check(self) -> None:
        if self.state.stopping():
            raise BackupAbortedError("stopped on request; nothing was committed")

    def on_file(self, path: str, size: int) -> None:
        self.check()
        self.state.advance(completed_files=1, total_files=1)

    def on_bytes(self, count: int) -> None:
        self.check()
        self.state.advance(completed_bytes=count, total_bytes=count)

    def on_warning(self, path: str, message: str) -> None:
        with self._lock:
            self.warnings.append((path, message))


def execute_group(
    catalog: Catalog,
    home: Path,
    group_id: str,
    *,
    stop: threading.Event,
    clock: Clock = SYSTEM,
    on_progress: ProgressCallback | None = None,
) -> int:
    """Run queue group ``group_id`` to its end; return its final status (see the module docstring)."""
    state = GroupState(catalog, group_id, stop, on_progress)
    group = state.begin()
    if group.type == BACKUP:
        return BackupRun(catalog, Path(home), state, group, clock).run()
    if group.type in (RESTORE, DOWNLOAD):
        return restores.run_restore(catalog, Path(home), state, group, clock)
    with catalog.transaction() as tx:
        state.finish(tx, FAILED)
    return FAILED


def timezone_setting(tx: Transaction) -> str:
    """The ``timezone`` setting ("" = the server's zone)."""
    value = tx.connection.execute(
        schema.settings.select().where(schema.settings.c.key == schedule.TIMEZONE_SETTING)
    ).first()
    return str(value.value) if value is not None and value.value else ""


PERFORMANCE_SETTING = "performance"
PERFORMANCE_DEFAULTS = {"backup_forks": 2, "queueable_forks": 2}


def performance(tx: Transaction) -> dict[str, int]:
    """The ``performance`` setting: ``backup_forks`` (backups at once) and ``queueable_forks``
    (restores and downloads at once), 1-10 each, default 2."""
    found = tx.connection.execute(
        schema.settings.select().where(schema.settings.c.key == PERFORMANCE_SETTING)
    ).first()
    stored = dict(found.value) if found is not None and isinstance(found.value, dict) else {}
    return {key: int(stored.get(key, default)) for key, default in PERFORMANCE_DEFAULTS.items()}


def save_performance(tx: Transaction, values: Mapping[str, int]) -> dict[str, int]:
    """Store the ``performance`` setting (merged over the current one); return it."""
    merged = {**performance(tx), **{key: int(value) for key, value in values.items()}}
    table = schema.settings
    if tx.connection.execute(table.select().where(table.c.key == PERFORMANCE_SETTING)).first() is None:
        tx.connection.execute(table.insert().values(key=PERFORMANCE_SETTING, value=merged))
    else:
        tx.connection.execute(table.update().where(table.c.key == PERFORMANCE_SETTING).values(value=merged))
    return merged


class BackupRun:
    """One run of a backup job."""

    def __init__(self, catalog: Catalog, home: Path, state: GroupState, group: Any, clock: Clock) -> None:
        self.catalog = catalog
        self.home = home
        self.state = state
        self.group = group
        self.clock = clock
        self.document: dict[str, Any] = dict(group.document or {})
        self.job_id: str = group.job_id or self.document.get("data", {}).get("_id", "")
        self.started = group.started or clock.now()
        self.log: RunLog | None = None
        self.job: dict[str, Any] = {}

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> int:
        status, detail, alert = FAILED, "", True
        try:
            with self.catalog.transaction() as tx:
                job = tx.get("jobs", self.job_id)
                self.job = job or {"_id": self.job_id, "name": self.document.get("data", {}).get("name", "")}
                if job is not None:
                    tx.set_job_times(self.job_id, last_run=self.started, next_run=job.get("next_run"))
            self.log = RunLog.start(
                self.catalog,
                self.home,
                log_type=BACKUP,
                owner=self.group.owner,
                name=self.job.get("name", ""),
                job_id=self.job_id,
                group_id=self.state.id,
            )
            self.state.update_document(data={"log_id": self.log.id})
            status, detail, alert = self.body(job)
        except Exception as error:  # a bug or a catalog failure: the run fails, the service goes on
            log.exception("backup run of queue group %s failed", self.state.id)
            detail = f"internal error: {type(error).__name__}: {error}"
            if self.log is not None:
                self.log.error(detail)
            status = FAILED
        self.end(status, detail, alert)
        return status

    def body(self, job: dict[str, Any] | None) -> tuple[int, str, bool]:
        """The run between its log's start and its end: (status, detail, raise an alert)."""
        assert self.log is not None
        if job is None:
            self.log.error(f"Backup Job {self.job_id} no longer exists")
            return FAILED, "the job no longer exists", True
        structure = backups.STRUCTURES.get(int(job["structure"]), str(job["structure"]))
        self.log.info(
            f"Backup Job {job['name']!r} ({self.job_id}) started: {structure}"
            f"{', encrypted' if job.get('encrypted') else ''}, tags {', '.join(self.tags())}"
        )
        if int(job["type"]) == backups.ACCOUNTS:
            return account_runs.run_accounts(self, job)
        outcome = self.hooks(hooks.PRE, None)
        if outcome.status is not None:
            return outcome.status, outcome.message, outcome.alert
        destinations = list(self.document.get("destinations") or job["destination"])
        self.state.advance(force=True, total=len(destinations))
        results = {ident: self.destination(ident) for ident in destinations}
        failed = [ident for ident, result in results.items() if result == FAILURE]
        if failed and job.get("retry_failed") and not self.state.stopping():
            self.log.info(f"retrying {len(failed)} failed destination(s) once")
            for ident in failed:
                results[ident] = self.destination(ident, retry=True)
        status = self.status(results)
        self.hooks(hooks.POST, status)
        detail = {FAILED: "no backup was stored", PARTIAL: "some destinations failed or had warnings"}
        return status, detail.get(status, "stopped on request" if status == ABORTED else ""), True

    def tags(self) -> list[str]:
        scheduled = [str(ident) for ident in self.document.get("schedules") or []]
        return scheduled or [retention.MANUAL]

    def status(self, results: Mapping[str, str]) -> int:
        values = set(results.values())
        if STOPPED in values or self.state.stop.is_set():
            return ABORTED
        if values and values <= {OK}:
            return COMPLETED
        if values & {OK, WARNINGS}:
            return PARTIAL
        return FAILED

    def hooks(self, stage: int, status: int | None) -> hooks.StageOutcome:
        assert self.log is not None
        with self.catalog.transaction(write=False) as tx:
            every_hook = tx.all("hooks")
        outcome = hooks.run_job_stage(
            every_hook,
            self.job,
            position=hooks.BACKUP,
            stage=stage,
            log_id=self.log.id,
            start_time=int(self.started.timestamp()),
            status=status,
            clock=self.clock,
        )
        for level, line in outcome.log_lines:
            self.log.write(level, line)
        return outcome

    # --- one destination ----------------------------------------------------------------------

    def destination(self, ident: str, *, retry: bool = False) -> str:
        """Back up to one destination; returns OK, WARNINGS, FAILURE, SKIPPED or STOPPED."""
        assert self.log is not None
        with self.catalog.transaction(write=False) as tx:
            destination = tx.get("destinations", ident)
        name = destination["name"] if destination else ident
        item = self.state.add_item(BACKUP, name, destination=ident, retry=retry)
        result, message = self._destination(destination, ident)
        self.state.end_item(item, ITEM_STATUS[result], message)
        self.state.advance(force=True, completed=1)
        return result

    def _destination(self, destination: dict[str, Any] | None, ident: str) -> tuple[str, str]:
        assert self.log is not None
        if destination is None:
            self.log.error(f"destination {ident} no longer exists")
            return FAILURE, "no such destination"
        where = f"destination {destination['name']!r} ({ident})"
        if destination.get("disabled"):
            self.log.warning(f"{where} is disabled: skipped")
            return SKIPPED, "disabled"
        if self.state.stopping():
            return STOPPED, "stopped"
        progress = RunProgress(self.state)
        opened: destinations.Opened | None = None
        try:
            opened = destinations.open_destination(destination, self.job_id, clock=self.clock)
            store = opened.store
            limit = int(destination.get("disk_limit") or 0)
            if limit:
                info = store.info()
                if info.total and info.usage is not None and info.usage * 100 >= limit * info.total:
                    used = info.usage * 100 // info.total
                    self.log.warning(f"{where} is {used}% full, over its disk limit of {limit}%: skipped")
                    return SKIPPED, f"over disk limit {limit}%"
            password = backups.job_password(
                self.home, self.job_id, bool(self.job.get("encrypted")), create=True
            )
            repository = backups.open_repository(store, password=password, create=True, clock=self.clock)
            try:
                with repository.lock(exclusive=False, holder=f"snapkeep run {self.state.id}"):
                    backup_id = self.store_backup(repository, destination, progress)
                self.log.info(f"{where}: backup {backup_id} stored")
                self.retention(repository, destination)
            finally:
                repository.close()
        except BackupAbortedError:
            self.log.warning(f"{where}: stopped on request; nothing was committed")
            return STOPPED, "stopped"
        except (SnapkeepError, OSError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            self.log.error(f"{where}: backup failed: {reason}")
            return FAILURE, reason
        finally:
            destinations.finish(self.catalog, self.log, opened, ident, where)
        for path, message in progress.warnings[:LOGGED_WARNINGS]:
            self.log.warning(f"{where}: {path}: {message}")
        if len(progress.warnings) > LOGGED_WARNINGS:
            self.log.warning(f"{where}: ... and {len(progress.warnings) - LOGGED_WARNINGS} more warnings")
        return (WARNINGS, "completed with warnings") if progress.warnings else (OK, "")

    def store_backup(self, repository: Any, destination: dict[str, Any], progress: RunProgress) -> str:
        """Write the snapshot or archive and record it in the catalog; return the backup's catalog ID."""
        job, tags = self.job, self.tags()
        sources = list(job.get("include_list", []))
        excludes = list(job.get("exclude_list", []))
        structure = int(job["structure"])
        scheduled = [tag for tag in tags if tag != retention.MANUAL]
        if structure == backups.INCREMENTAL:
            snapshot = backup(
                repository,
                sources,
                excludes=excludes,
                tags=tags,
                job_id=self.job_id,
                extra={"schedules": scheduled, "structure": "incremental"},
                progress=progress,
                clock=self.clock,
            )
            engine_id, created, size = snapshot.id, snapshot.time, int(snapshot.stats.get("bytes", 0))
            paths = list(snapshot.paths)
        else:
            manifest = write_archive(
                repository,
                sources,
                compressed=structure == backups.COMPRESSED,
                excludes=excludes,
                tags=tags,
                progress=progress,
                job_id=self.job_id,
                clock=self.clock,
            )
            engine_id, created, size, paths = (
                manifest.id,
                manifest.time,
                manifest.size,
                list(manifest.sources),
            )
        with self.catalog.transaction() as tx:
            return backups.record(
                tx,
                job=job,
                destination=destination,
                engine_id=engine_id,
                created=created,
                size=size,
                tags=tags,
                details={
                    "paths": paths,
                    "queue_group_id": self.state.id,
                    "log_id": self.log.id if self.log else "",
                },
            )

    def retention(self, repository: Any, destination: dict[str, Any]) -> None:
        """Remove the backups of this job and destination that retention does not keep; prune."""
        assert self.log is not None
        with self.catalog.transaction(write=False) as tx:
            stored = backups.rows(tx, job_id=self.job_id, destination_id=destination["_id"])
            names = {item["_id"]: item["name"] for item in tx.all("schedules")}
        by_id = {row.id: row for row in stored}
        removed = 0
        for decision in backups.retention_plan(self.job, stored, names, self.clock.now()):
            if decision.keep:
                continue
            row = by_id[decision.id]
            backups.remove_stored(repository, row.structure, row.engine_id)
            with self.catalog.transaction() as tx:
                backups.forget_row(tx, row.id)
            removed += 1
            why = "; ".join(decision.reasons)
            self.log.info(f"retention removed backup {row.id} of {row.created:%Y-%m-%d %H:%M:%S}: {why}")
        if removed and any(row.structure == backups.INCREMENTAL for row in stored):
            freed = backups.prune_repository(repository)
            self.log.info(f"prune freed {freed} bytes")

    # --- the end ------------------------------------------------------------------------------

    def end(self, status: int, detail: str, alert: bool) -> None:
        raised: list[Alert] = []
        if self.log is not None:
            self.log.info(f"finished: status {status}{f' ({detail})' if detail else ''}")
            self.log.finish(status)
        with self.catalog.transaction() as tx:
            self.state.finish(tx, status)
            job = tx.get("jobs", self.job_id)
            if job is not None:
                tx.set_job_running(self.job_id, False)
                tx.set_job_times(self.job_id, last_run=self.started, next_run=self.next_run(tx, job))
                if alert and detail != hooks.SKIPPED_MESSAGE:
                    made = alerts.run_alert(tx, job, status, group_id=self.state.id, detail=detail)
                    if made is not None:
                        raised.append(made)
            monitor.run_finished(tx, self.job_id, self.state.id, status)
        if raised:
            try:
                notify.notify(self.catalog, raised)
            except Exception:  # a notification never fails a run
                log.exception("sending the alert of queue group %s failed", self.state.id)
        self.state.advance(force=True)

    def next_run(self, tx: Transaction, job: dict[str, Any]) -> Any:
        try:
            tz = schedule.zone(timezone_setting(tx))
            return schedule.job_next_run(job, tx.all("schedules"), self.clock.now(), tz)
        except SnapkeepError as error:
            if self.log is not None:
                self.log.warning(f"next run not computed: {error}")
            return job.get("next_run")
