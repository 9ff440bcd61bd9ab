"""The service: scheduler, worker pools and job monitor in one process (DESIGN.md section 6).

``Service(catalog, home, ...).start()``:

1. recovers from a crash: groups a dead process of this host left Processing become 104 Never
   Finished, their jobs' ``running`` flags are cleared and the repository locks they held (locks of
   this host whose process is gone) are removed from each destination of their job;
2. starts the scheduler thread, whose first pass runs each schedule missed while the service was
   down once;
3. starts two worker pools: Backups (``backup_forks`` at once, default 2) and Restores and Downloads
   (``queueable_forks``, default 2), both re-read from the ``performance`` setting on every round
   unless given;
4. runs the daily integrity check in a thread of its own (``scheduler.IntegrityThread``; off with
   ``integrity=False``) and sends the critical alerts of runs recovery marked Never Finished;
5. runs the job monitor (``jobs.monitor.check_jobs``) every ``monitor_interval`` seconds and sends the
   alerts it raises (``jobs.notify``).

With ``node`` (``snapkeep serve`` always gives one; issue 16, docs/nodes.md) the service first
registers the node (``jobs.nodes.register``: refused for a second live node on SQLite, a name taken,
or the same home served twice), recovers only that node's groups, schedules and claims only that
node's jobs and groups, and runs a node thread: a heartbeat every ``nodes.heartbeat_interval``
seconds, and a sweep that declares down the nodes whose heartbeat is older than their timeout (their
Processing groups 104, an alert, the repository locks their process held removed). A node found
declared down while alive (a long pause) stops its runs and registers again. ``stop`` marks the
node down (it left cleanly).

``stop(timeout)`` stops the scheduler, sets every running group's stop event and waits for the runs
(bounded); a run still going when the time is up is left to the next start's recovery.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from snapkeep.clock import SYSTEM, Clock
from snapkeep.daemon.scheduler import IntegrityScheduler, IntegrityThread, Scheduler, SchedulerThread
from snapkeep.daemon.workers import Executor, WorkerPool
from snapkeep.errors import SnapkeepError
from snapkeep.jobs import alerts, logs, monitor, nodes, notify, queue, repositories, schedule, settings
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.codes import RESTORE_TYPES, QueueType
from snapkeep.jobs.runs import execute_group

log = logging.getLogger(__name__)

DEFAULT_FORKS = 2
MAX_FORKS = 10
MONITOR_INTERVAL = 300.0
LOG_PRUNE_INTERVAL = 3600.0


def fork_setting(catalog: Catalog, key: str) -> int:
    """``backup_forks`` / ``queueable_forks`` of the ``performance`` setting (``jobs.settings``),
    clamped to 1-10; the default 2 when the catalog cannot be read or the value is bad."""
    try:
        with catalog.transaction(write=False) as tx:
            value = getattr(settings.performance(tx), key)
        return min(MAX_FORKS, max(1, int(value)))
    except (SnapkeepError, TypeError, ValueError):
        return DEFAULT_FORKS


def configured_zone(catalog: Catalog) -> ZoneInfo:
    """The ``timezone`` setting's zone (the server's own when unset). Raises ConfigError, CatalogError."""
    with catalog.transaction(write=False) as tx:
        name = settings.timezone(tx)
    return schedule.zone(name or None)


def _limit(value: int | None, catalog: Catalog, key: str) -> Callable[[], int]:
    if value is not None:
        fixed = min(MAX_FORKS, max(1, value))
        return lambda: fixed
    return lambda: fork_setting(catalog, key)


class Service:
    """The long-running scheduler, worker pools and monitor over one catalog."""

    def __init__(
        self,
        catalog: Catalog,
        home: Path,
        *,
        clock: Clock = SYSTEM,
        backup_forks: int | None = None,
        queueable_forks: int | None = None,
        tz: ZoneInfo | None = None,
        executor: Executor | None = None,
        poll_interval: float = 2.0,
        schedule_interval: float = 30.0,
        monitor_interval: float = MONITOR_INTERVAL,
        integrity: bool = True,
        node: nodes.Me | None = None,
    ) -> None:
        self.catalog = catalog
        self.node = node
        node_id = node.id if node is not None else None
        self.home = Path(home)
        self.clock = clock
        self.monitor_interval = monitor_interval
        run: Executor = executor or execute_group
        self.scheduler = Scheduler(
            catalog, clock=clock, tz=tz or (lambda: configured_zone(catalog)), node=node_id
        )
        self.scheduler_thread = SchedulerThread(
            self.scheduler, poll_interval=schedule_interval, on_queued=self._queued
        )
        self.integrity_thread = (
            IntegrityThread(
                IntegrityScheduler(
                    catalog,
                    self.home,
                    clock=clock,
                    tz=tz or (lambda: configured_zone(catalog)),
                    leading=self.leading if node is not None else None,
                    node=node.id if node is not None else None,
                )
            )
            if integrity
            else None
        )
        self.backups = WorkerPool(
            catalog,
            self.home,
            name="backups",
            types=(QueueType.BACKUP,),
            limit=_limit(backup_forks, catalog, "backup_forks"),
            executor=run,
            clock=clock,
            poll_interval=poll_interval,
            on_finished=self._finished,
            node=node_id,
        )
        self.restores = WorkerPool(
            catalog,
            self.home,
            name="restores",
            # reindexes share the restores' pool and its queueable_forks limit
            types=(*RESTORE_TYPES, QueueType.REINDEX),
            limit=_limit(queueable_forks, catalog, "queueable_forks"),
            executor=run,
            clock=clock,
            poll_interval=poll_interval,
            on_finished=self._finished,
            node=node_id,
        )
        self._closing = threading.Event()
        self._monitor: threading.Thread | None = None
        self._node_thread: threading.Thread | None = None
        #: the nodes this service declared down (for tests and the log)
        self.declared: list[nodes.DownNode] = []
        #: since when this node's heartbeats succeed without a break (``nodes.sweep``)
        self._connected_since: datetime.datetime | None = None
        self.recovered: list[dict[str, Any]] = []

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Recover, then start the scheduler, the pools and the monitor. Raises CatalogError when
        the catalog cannot be read during recovery."""
        self._closing.clear()
        if self.node is not None:
            self.register()
        self.recovered = self.recover()
        self.scheduler_thread.start()
        if self.integrity_thread is not None:
            self.integrity_thread.start()
        self.backups.start()
        self.restores.start()
        self._monitor = threading.Thread(target=self._monitor_loop, name="snapkeep-monitor", daemon=True)
        self._monitor.start()
        if self.node is not None:
            self._node_thread = threading.Thread(target=self._node_loop, name="snapkeep-node", daemon=True)
            self._node_thread.start()

    def stop(self, timeout: float = 30.0) -> list[str]:
        """Stop scheduling and claiming, stop every running group and wait for the runs (at most
        ``timeout`` seconds). Returns the groups still running when the time ran out."""
        self._closing.set()
        self.scheduler_thread.stop(timeout=min(timeout, 10.0))
        if self.integrity_thread is not None:
            self.integrity_thread.stop(timeout=min(timeout, 10.0))
        for stop in {**self.backups.running(), **self.restores.running()}.values():
            stop.set()
        deadline = self.clock.monotonic() + timeout
        left = self.backups.stop(timeout)
        left += self.restores.stop(max(0.0, deadline - self.clock.monotonic()))
        if self._monitor is not None:
            self._monitor.join(5.0)
            self._monitor = None
        if self._node_thread is not None:
            self._node_thread.join(5.0)
            self._node_thread = None
        if self.node is not None and not left:
            try:
                with self.catalog.transaction() as tx:
                    nodes.leave(tx, self.node.id)
            except SnapkeepError as error:
                log.error("cannot record that node %s left: %s", self.node.name, error)
        return left

    def running(self) -> dict[str, threading.Event]:
        """Every group running now, with its stop event."""
        return {**self.backups.running(), **self.restores.running()}

    # --- recovery -------------------------------------------------------------------------------

    def recover(self) -> list[dict[str, Any]]:
        """Mark runs a dead process left Processing as Never Finished and release their locks;
        returns those groups. Raises CatalogError; a destination that cannot be reached is logged."""
        with self.catalog.transaction() as tx:
            marked = queue.mark_never_finished(tx, node=self.node.id if self.node is not None else None)
            places = []
            for group in marked:
                job_id = group["data"].get("_id")
                job = tx.get("jobs", str(job_id)) if job_id else None
                for ident in (job or {}).get("destination", []):
                    destination = tx.get("destinations", ident)
                    if destination is not None:
                        places.append((destination, str(job_id)))
        for group in marked:
            log.warning("queue group %s was left running by a dead process: Never Finished", group["_id"])
        raised = [str(group["alert_id"]) for group in marked if group.get("alert_id")]
        if raised:
            with self.catalog.transaction(write=False) as tx:
                found = [alerts.get_alert(tx, ident) for ident in raised]
            notify.notify(self.catalog, found)
        for destination, job_id in places:
            self._release_locks(destination, job_id)
        return marked

    def _release_locks(
        self, destination: dict[str, Any], job_id: str, *, process: tuple[str, int] | None = None
    ) -> None:
        try:
            with repositories.open_destination(destination, job_id) as opened:
                if process is not None:
                    removed = queue.release_process_locks(opened.store, host=process[0], pid=process[1])
                else:
                    removed = queue.release_dead_locks(opened.store, now=self.clock.time())
        except SnapkeepError as error:
            log.error(
                "cannot release the locks of Backup Job %s on Destination %r: %s",
                job_id,
                destination.get("name"),
                error,
            )
            return
        for name in removed:
            log.warning("removed stale lock %s of Backup Job %s on %r", name, job_id, destination.get("name"))

    # --- the node: registration, heartbeat, sweep --------------------------------------------------

    def register(self) -> dict[str, Any]:
        """Register this service's node (up, heartbeat now); return it. Raises ConflictError or
        ConfigError when it may not start (see ``jobs.nodes.register``), CatalogError."""
        assert self.node is not None
        with self.catalog.transaction() as tx:
            row = nodes.register(tx, self.node)
            nodes.node_back(tx, self.node.id)
        self._connected_since = self.clock.now()
        log.info("node %r (%s) registered on the catalog", self.node.name, self.node.id)
        return row

    def node_pass(self) -> list[nodes.DownNode]:
        """One heartbeat and one sweep now; returns the nodes declared down. Raises CatalogError."""
        assert self.node is not None
        try:
            with self.catalog.transaction() as tx:
                alive = nodes.heartbeat(tx, self.node.id)
        except SnapkeepError:
            self._connected_since = None  # judged again only a whole timeout after it is back
            raise
        if self._connected_since is None:
            self._connected_since = self.clock.now()
        if not alive:
            log.error(
                "node %r was declared down by another node (no heartbeat within %gs): stopping its runs "
                "and registering again",
                self.node.name,
                self.node.timeout,
            )
            for stop in self.running().values():
                stop.set()
            self.register()
        with self.catalog.transaction() as tx:
            declared = nodes.sweep(tx, self.node.id, connected_since=self._connected_since)
        for down in declared:
            log.error(
                "node %r (%s, pid %d on %s) declared down: %d run(s) marked Never Finished",
                down.name,
                down.id,
                down.pid,
                down.host,
                len(down.groups),
            )
            if down.alert_ids:
                with self.catalog.transaction(write=False) as tx:
                    found = [alerts.get_alert(tx, ident) for ident in down.alert_ids]
                notify.notify(self.catalog, found)
            for job_id, destination_ids in down.jobs:
                for ident in destination_ids:
                    with self.catalog.transaction(write=False) as tx:
                        destination = tx.get("destinations", ident)
                    if destination is not None:
                        self._release_locks(destination, job_id, process=(down.host, down.pid))
        self.declared.extend(declared)
        return declared

    def _node_loop(self) -> None:
        assert self.node is not None
        interval = nodes.heartbeat_interval(self.node.timeout)
        while not self._closing.wait(interval):
            try:
                self.node_pass()
            except SnapkeepError as error:
                log.error("node heartbeat failed: %s", error)
            except Exception:  # a bug: keep beating
                log.exception("node heartbeat failed")

    # --- callbacks and the monitor ----------------------------------------------------------------

    def _queued(self) -> None:
        self.backups.wake()

    def _finished(self, group: dict[str, Any], status: int) -> None:
        # a finished backup may make an "After Backup Job Done" schedule due
        if group.get("type") == QueueType.BACKUP:
            self.scheduler_thread.wake()

    def leading(self) -> bool:
        """Whether this service runs the catalog-wide passes: always without a node; with one, when
        it is the leading node (``jobs.nodes.leader``). Raises CatalogError."""
        if self.node is None:
            return True
        with self.catalog.transaction(write=False) as tx:
            return nodes.leader(tx) == self.node.id

    def monitor_pass(self) -> int:
        """One job-monitor pass now (on the leading node only: it reads every job); sends the alerts
        raised. Returns how many. Raises CatalogError."""
        if not self.leading():
            return 0
        raised = monitor.check_jobs(self.catalog, self.clock.now())
        if raised:
            notify.notify(self.catalog, raised)
        return len(raised)

    def prune_logs(self) -> int:
        """Delete the run logs older than the ``logs_ttl`` setting now, and the finished queue groups
        (not downloads) and the alerts (not of an open incident) older than it too (issue 16: a
        catalog many nodes write to stays small); how many logs. Raises CatalogError."""
        with self.catalog.transaction() as tx:
            pruned = len(logs.prune_logs(tx, self.home))
            days = settings.general(tx).logs_ttl
            if days:
                cutoff = self.clock.now() - datetime.timedelta(days=days)
                groups = queue.clear_finished(tx, ended_before=cutoff)
                raised = alerts.prune_alerts(tx, cutoff)
                if groups or raised:
                    log.info(
                        "deleted %d queue groups and %d alerts older than %d days", len(groups), raised, days
                    )
        return pruned

    def _monitor_loop(self) -> None:
        pruned = -LOG_PRUNE_INTERVAL
        while not self._closing.is_set():
            try:
                self.monitor_pass()
                if self.clock.monotonic() - pruned >= LOG_PRUNE_INTERVAL:
                    pruned = self.clock.monotonic()
                    self.prune_logs()
            except SnapkeepError as error:
                log.error("job monitor pass failed: %s", error)
            except Exception:  # a bug: keep monitoring
                log.exception("job monitor pass failed")
            self._closing.wait(self.monitor_interval)
