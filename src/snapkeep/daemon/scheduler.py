"""The scheduler: queues jobs when their schedules come due (DESIGN.md section 6).

Each job's ``next_run`` column is its cursor: every schedule slot before it has been handled. A pass
(``tick``) queues, for each enabled job, one run tagged with every linked schedule that has a slot in
``[next_run, now]`` (the same ``queue.enqueue_backup`` path as ``runBackupJobManually``), then moves
``next_run`` to the job's next slot after now (``schedule.job_next_run``). A job that is still queued or
running when a slot comes is not queued twice: that slot is skipped. A job that never had a cursor
counts from its creation.

"After Backup Job Done" schedules (type 5) fire ``delay`` after the followed job's latest successful
run (queue status 100, ``queue.last_success``) ended, once per such run: a run of the following job
tagged with the schedule and created after that end means it has fired. Runs that ended before the
following job and the schedule existed do not count. When the following job is busy at that moment,
it fires on a later pass, when the job is free.

On start (``catch_up``) the rule for timed schedules changes: a schedule that missed slots while the
service was down runs once, unless its next slot is under ``schedule.CATCH_UP_WINDOW`` away
(``schedule.catch_up_due``).

The scheduled integrity check (``jobs.integrity``) is not a job: ``IntegrityScheduler.tick`` runs it
once a day, at the first pass at or after the ``hour`` of the ``integrity`` setting (in the General
time zone) when no scheduled check has started since that hour; ``IntegrityThread`` gives it a thread
of its own, so a long check never delays the job schedules.

All times come from the injected clock; ``tick`` and ``catch_up`` are synchronous, so tests drive them
on a ``FrozenClock``. ``SchedulerThread`` runs them in the service: it sleeps until the earliest due
time, at most ``poll_interval`` seconds, and wakes early on ``wake()``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from snapkeep.clock import SYSTEM, Clock
from snapkeep.errors import ConflictError, NotFoundError, SnapkeepError
from snapkeep.jobs import integrity, nodes, queue, schedule
from snapkeep.jobs.catalog import Catalog, JobState, Transaction
from snapkeep.jobs.codes import ScheduleType
from snapkeep.jobs.users import ROOT_ID

log = logging.getLogger(__name__)

_EPSILON = _dt.timedelta(microseconds=1)


def _link_ids(job: Mapping[str, Any]) -> list[str]:
    return [str(link.get("_id")) for link in job.get("schedules", []) if isinstance(link, Mapping)]


class Scheduler:
    """Queues due runs. ``tz`` is a zone or a callable returning one (re-read on every pass).
    With ``node`` only that node's jobs are scheduled (issue 16; None: every job)."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        clock: Clock = SYSTEM,
        tz: ZoneInfo | Callable[[], ZoneInfo],
        node: str | None = None,
    ) -> None:
        self.catalog = catalog
        self.node = node
        self.clock = clock
        self._tz = tz
        self.next_due: _dt.datetime | None = None

    def zone(self) -> ZoneInfo:
        """The time zone slots are computed in."""
        return self._tz if isinstance(self._tz, ZoneInfo) else self._tz()

    def catch_up(self) -> list[dict[str, Any]]:
        """The pass on start: each schedule missed while the service was down runs once."""
        return self._pass(catching_up=True)

    def tick(self) -> list[dict[str, Any]]:
        """One pass at the clock's now; returns the queue groups it created. Raises CatalogError."""
        return self._pass(catching_up=False)

    # --- one pass -------------------------------------------------------------------------------

    def _pass(self, *, catching_up: bool) -> list[dict[str, Any]]:
        now = self.clock.now()
        tz = self.zone()
        with self.catalog.transaction(write=False) as tx:
            job_ids = nodes.job_ids(tx, self.node)
        queued: list[dict[str, Any]] = []
        wake_times: list[_dt.datetime] = []
        for job_id in job_ids:
            try:
                with self.catalog.transaction() as tx:
                    group, wake = self._job(tx, job_id, now, tz, catching_up=catching_up)
            except (ConflictError, NotFoundError):
                continue
            except SnapkeepError as error:  # one broken job must not stop the others
                log.error("scheduling Backup Job %s failed: %s", job_id, error)
                continue
            if group is not None:
                queued.append(group)
            if wake is not None:
                wake_times.append(wake)
        self.next_due = min(wake_times, default=None)
        return queued

    def _job(
        self, tx: Transaction, job_id: str, now: _dt.datetime, tz: ZoneInfo, *, catching_up: bool
    ) -> tuple[dict[str, Any] | None, _dt.datetime | None]:
        """Handle one job inside ``tx``: (the group queued or None, when it next needs a pass)."""
        row = tx.job_state(job_id, lock=True)
        if row is None or (self.node is not None and row.document.get("node") != self.node):
            return None, None  # gone, or moved to another node since the pass listed it
        job = dict(row.document)
        linked = _link_ids(job)
        schedules = [tx.get("schedules", ident) for ident in linked]
        present = [item for item in schedules if item is not None]
        timed = [item for item in present if int(item.get("type", 0)) != ScheduleType.AFTER_JOB]
        chained = [item for item in present if int(item.get("type", 0)) == ScheduleType.AFTER_JOB]
        job_time = int(job.get("time", 0))

        due: list[str] = []
        cursor: _dt.datetime | None = row.next_run
        if cursor is None or cursor <= now:
            since = cursor - _EPSILON if cursor is not None else row.created
            rule = schedule.catch_up_due if catching_up else schedule.missed_runs
            due = [str(item["_id"]) for item in timed if rule(item, job_time, since, now, tz)]
        chain_due, chain_wake = self._chains(tx, row, chained, now)
        due += chain_due

        group = None
        if due and not job.get("disabled"):
            try:
                group = queue.enqueue_backup(tx, job, owner=str(job.get("owner") or ROOT_ID), schedules=due)
                log.info("queued Backup Job %r (%s) for schedules %s", job.get("name"), job_id, due)
            except ConflictError:
                log.info(
                    "Backup Job %r (%s) is still queued or running: slot skipped", job.get("name"), job_id
                )
        # the cursor moves past now even for a disabled job, so enabling it does not replay old slots
        upcoming = schedule.job_next_run({**job, "disabled": False}, timed, now, tz)
        if upcoming != cursor:
            tx.set_job_times(job_id, last_run=row.last_run, next_run=upcoming)
        candidates = [moment for moment in (upcoming, chain_wake) if moment is not None]
        return group, min(candidates, default=None)

    def _chains(
        self, tx: Transaction, job_row: JobState, chained: list[dict[str, Any]], now: _dt.datetime
    ) -> tuple[list[str], _dt.datetime | None]:
        """The type-5 schedules of a job due now, and the earliest one due later."""
        due: list[str] = []
        later: list[_dt.datetime] = []
        for item in chained:
            ended = queue.last_success(tx, str(item.get("type_data")))
            schedule_created = tx.created("schedules", str(item["_id"]))
            if ended is None or ended <= max(job_row.created, schedule_created or job_row.created):
                continue
            if queue.fired_since(tx, job_row.id, str(item["_id"]), ended):
                continue
            moment = schedule.after_job_due(item, ended)
            if moment <= now:
                due.append(str(item["_id"]))
            else:
                later.append(moment)
        return due, min(later, default=None)


def delay_until(due: _dt.datetime | None, clock: Clock, poll_interval: float, *, floor: float) -> float:
    """Seconds a scheduling thread sleeps: until ``due`` (at least ``floor``), never longer than
    ``poll_interval`` (so a changed setting or a moved clock is seen)."""
    if due is None:
        return poll_interval
    return min(poll_interval, max(floor, (due - clock.now()).total_seconds()))


class SchedulerThread:
    """Runs a ``Scheduler`` in a thread: ``catch_up`` once, then a ``tick`` whenever something is due."""

    def __init__(
        self, scheduler: Scheduler, *, poll_interval: float = 30.0, on_queued: Callable[[], None]
    ) -> None:
        self.scheduler = scheduler
        self.poll_interval = poll_interval
        self.on_queued = on_queued
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (the catch-up pass runs first, inside it)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="snapkeep-scheduler", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run a pass now (jobs changed, a run finished, the clock was moved)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop and wait for the thread (at most ``timeout`` seconds)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _delay(self) -> float:
        return delay_until(self.scheduler.next_due, self.scheduler.clock, self.poll_interval, floor=0.05)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                queued = self.scheduler.catch_up() if first else self.scheduler.tick()
                first = False
                if queued:
                    self.on_queued()
            except SnapkeepError as error:
                log.error("scheduler pass failed: %s", error)
            except Exception:  # a bug: keep scheduling
                log.exception("scheduler pass failed")
            self._wake.wait(self._delay())
            self._wake.clear()


# --- the daily integrity check ----------------------------------------------------------------------


class IntegrityScheduler:
    """Runs the integrity check when its daily slot is due (``jobs.integrity.is_due``).

    ``run`` is ``jobs.integrity.run_check`` unless a test gives another (same signature).
    """

    def __init__(
        self,
        catalog: Catalog,
        home: Any,
        *,
        clock: Clock = SYSTEM,
        tz: ZoneInfo | Callable[[], ZoneInfo],
        run: Callable[..., Any] = integrity.run_check,
        leading: Callable[[], bool] | None = None,
        node: str | None = None,
    ) -> None:
        self.catalog = catalog
        self.home = home
        #: on a shared catalog every node checks its own Local destinations and the leading node
        #: (``jobs.nodes.leader``) the shared ones (SFTP, S3, FTP)
        self._leading = leading
        self.node = node
        self.clock = clock
        self._tz = tz
        self._run = run
        self.next_due: _dt.datetime | None = None
        #: set to end a running check after its current repository (``IntegrityThread.stop``)
        self.stopping = threading.Event()

    def zone(self) -> ZoneInfo:
        return self._tz if isinstance(self._tz, ZoneInfo) else self._tz()

    def tick(self) -> Any:
        """Run the check when it is due; returns its report, or None when it was not due."""
        now = self.clock.now()
        tz = self.zone()
        with self.catalog.transaction(write=False) as tx:
            due = integrity.is_due(tx, now, tz, node=self.node)
        report = None
        if due:
            log.info("starting the scheduled integrity check")
            where: dict[str, Any] = {}
            if self.node is not None:
                leads = self._leading is None or self._leading()
                where = {"node": self.node, "shared": leads}
            report = self._run(
                self.catalog, self.home, clock=self.clock, scheduled=True, stop=self.stopping.is_set, **where
            )
        with self.catalog.transaction(write=False) as tx:
            self.next_due = integrity.next_due(tx, self.clock.now(), tz, node=self.node)
        return report


class IntegrityThread:
    """Runs an ``IntegrityScheduler`` in its own thread: a pass, then sleep until the next slot
    (at most ``poll_interval`` seconds, so a changed setting is seen)."""

    def __init__(self, scheduler: IntegrityScheduler, *, poll_interval: float = 600.0) -> None:
        self.scheduler = scheduler
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self.scheduler.stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="snapkeep-integrity", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current pass (a check in progress finishes its repository first)."""
        self._stop.set()
        self.scheduler.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _delay(self) -> float:
        return delay_until(self.scheduler.next_due, self.scheduler.clock, self.poll_interval, floor=1.0)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.scheduler.tick()
            except SnapkeepError as error:
                log.error("integrity check pass failed: %s", error)
            except Exception:  # a bug: keep the service running
                log.exception("integrity check pass failed")
            self._stop.wait(self._delay())
