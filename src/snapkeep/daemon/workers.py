"""Worker pools: claim queue groups and run them, a bounded number at a time.

A ``WorkerPool`` serves some queue types (Backup; or Restore and Download) with at most ``limit()``
runs at once (the ``backup_forks`` / ``queueable_forks`` setting, re-read on every round so a change
applies without a restart). One dispatcher thread claims pending groups (``queue.claim_next``: exclusive
even against other processes), starts a thread per claimed group that calls the executor
(``jobs.runs.execute_group``) and, every round, asks the catalog which running groups were asked to
stop (``queue.stop_requested``, set by ``stopQueueGroup``) and sets their stop events.

A job never runs twice at once: its ``running`` flag keeps it from being queued twice, the claim skips a
Backup group while another group of its job is Processing, and the pool never claims a group of a job it
is running. When the executor raises (a bug), the group is ended as Failed so it does not stay
Processing forever.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from snapkeep.clock import SYSTEM, Clock
from snapkeep.errors import SnapkeepError
from snapkeep.jobs import queue
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.codes import QueueStatus

log = logging.getLogger(__name__)

FAILED = QueueStatus.FAILED


class Executor(Protocol):
    """Runs one claimed queue group to its final status (``jobs.runs.execute_group``)."""

    def __call__(
        self, catalog: Catalog, home: Path, group_id: str, *, stop: threading.Event, clock: Clock
    ) -> int: ...


@dataclass
class Run:
    """A group this pool is running."""

    group: dict[str, Any]
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class WorkerPool:
    """Claims and runs queue groups of ``types``; ``limit`` gives how many may run at once."""

    def __init__(
        self,
        catalog: Catalog,
        home: Path,
        *,
        name: str,
        types: Collection[int],
        limit: Callable[[], int],
        executor: Executor,
        clock: Clock = SYSTEM,
        poll_interval: float = 2.0,
        on_finished: Callable[[dict[str, Any], int], None] | None = None,
        node: str | None = None,
    ) -> None:
        self.catalog = catalog
        self.home = home
        self.name = name
        self.types = tuple(types)
        self.limit = limit
        self.executor = executor
        self.clock = clock
        self.poll_interval = poll_interval
        self.on_finished = on_finished
        #: the node whose groups this pool claims (None: any group, a catalog used without nodes)
        self.node = node
        self.worker = queue.worker_identity(node)
        self._runs: dict[str, Run] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what is running ------------------------------------------------------------------------

    def running(self) -> dict[str, threading.Event]:
        """The groups running now and their stop events."""
        with self._lock:
            return {group_id: run.stop for group_id, run in self._runs.items()}

    def _running_jobs(self) -> set[str]:
        with self._lock:
            return {str(run.group["data"].get("_id")) for run in self._runs.values()}

    # --- synchronous use (tests, and a caller that runs groups in its own thread) ------------------

    def claim(self) -> dict[str, Any] | None:
        """Claim the oldest pending group this pool serves, or None. Raises CatalogError."""
        with self.catalog.transaction() as tx:
            return queue.claim_next(
                tx, self.types, worker=self.worker, skip_jobs=self._running_jobs(), node=self.node
            )

    def execute(self, group: dict[str, Any], stop: threading.Event | None = None) -> int:
        """Run a claimed group in this thread; its final status. Never raises for a failed run."""
        with self._lock:
            run = self._runs.setdefault(group["_id"], Run(group, stop or threading.Event()))
        status: int = FAILED
        what = f"{group.get('type_name', 'run')} {str(group.get('data', {}).get('name', ''))!r}"
        # one line per event for the service's own output (journald keeps each as a record)
        log.info("queue group %s started: %s", group["_id"], what)
        try:
            status = self.executor(self.catalog, self.home, group["_id"], stop=run.stop, clock=self.clock)
        except Exception as error:  # the run must end even when the runner has a bug
            log.exception("queue group %s failed in the runner", group["_id"])
            self._abandon(group["_id"], f"{type(error).__name__}: {error}")
        finally:
            with self._lock:
                self._runs.pop(group["_id"], None)
            self._wake.set()
        log.info(
            "queue group %s ended: %s, status %d (%s)",
            group["_id"],
            what,
            status,
            QueueStatus.label_of(status),
        )
        if self.on_finished is not None:
            try:
                self.on_finished(group, status)
            except Exception:
                log.exception("after queue group %s", group["_id"])
        return status

    def run_pending(self) -> list[tuple[str, int]]:
        """Claim and run pending groups one by one in this thread until none is left."""
        done: list[tuple[str, int]] = []
        while (group := self.claim()) is not None:
            done.append((group["_id"], self.execute(group)))
        return done

    def _abandon(self, group_id: str, reason: str) -> None:
        try:
            with self.catalog.transaction() as tx:
                queue.end_unfinished(tx, group_id, FAILED, reason=reason)
        except SnapkeepError as error:
            log.error("cannot end queue group %s: %s", group_id, error)

    # --- the dispatcher thread ------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher thread."""
        self._closing.clear()
        self._thread = threading.Thread(target=self._dispatch, name=f"snapkeep-{self.name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look for work now (something was queued)."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> list[str]:
        """Stop claiming, ask every running group to stop, and wait for them (at most ``timeout``
        seconds in all). Returns the IDs of groups still running when the time ran out."""
        self._closing.set()
        self._wake.set()
        for stop in self.running().values():
            stop.set()
        deadline = self.clock.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for stop in self.running().values():  # a run claimed while the dispatcher was stopping
            stop.set()
        with self._lock:
            threads = [run.thread for run in self._runs.values() if run.thread is not None]
        for thread in threads:
            thread.join(max(0.0, deadline - self.clock.monotonic()))
        return list(self.running())

    def _fill(self) -> None:
        while not self._closing.is_set():
            with self._lock:
                busy = len(self._runs)
            if busy >= max(1, self.limit()):
                return
            group = self.claim()
            if group is None:
                return
            run = Run(group)
            thread = threading.Thread(
                target=self.execute, args=(group, run.stop), name=f"snapkeep-run-{group['_id']}", daemon=True
            )
            run.thread = thread
            with self._lock:
                self._runs[group["_id"]] = run
            thread.start()

    def _check_stops(self) -> None:
        runs = self.running()
        if not runs:
            return
        with self.catalog.transaction(write=False) as tx:
            asked = queue.stop_requested(tx, list(runs))
        for group_id in asked:
            if not runs[group_id].is_set():
                log.info("queue group %s: stop requested", group_id)
                runs[group_id].set()

    def _dispatch(self) -> None:
        while not self._closing.is_set():
            try:
                self._fill()
                self._check_stops()
            except SnapkeepError as error:
                log.error("%s pool: %s", self.name, error)
            except Exception:  # a bug: keep serving
                log.exception("%s pool failed a round", self.name)
            self._wake.wait(self.poll_interval)
            self._wake.clear()
