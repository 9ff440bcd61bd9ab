"""What every run shares: its context, typed views of the job and destination, progress, the opening of
a destination's repository, hooks, warnings, status roll-up and retention.

Directories runs (``runs.directories``), Accounts runs (``runs.accounts``) and restores
(``runs.restore``) are each only what differs between them; everything below is written once.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as _dt
import enum
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from snapkeep.clock import Clock
from snapkeep.engine.maintenance import retention
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.errors import BackupAbortedError, SnapkeepError, WrongPasswordError
from snapkeep.jobs import access, backups, hooks, repositories
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.codes import HookPosition, HookStage, ItemStatus, JobType, QueueStatus, Structure
from snapkeep.jobs.keystore import KeyStore
from snapkeep.jobs.logs import RunLog
from snapkeep.jobs.queue import GroupRecord, RunningGroup

#: warnings of one destination (or account on a destination) written to the log; the rest are counted
LOGGED_WARNINGS = 50


class Outcome(enum.Enum):
    """How one unit of a run (a destination, an account on a destination, a restored backup) ended."""

    OK = "ok"
    WARNINGS = "warnings"
    FAILURE = "failed"
    SKIPPED = "skipped"
    STOPPED = "stopped"

    @property
    def item_status(self) -> ItemStatus:
        """The status of the queue item that records this unit."""
        return _ITEM_STATUS[self]

    @classmethod
    def of_status(cls, status: QueueStatus) -> Outcome:
        """The outcome a unit that ended with queue ``status`` counts as."""
        return _OUTCOME_OF_STATUS.get(status, Outcome.FAILURE)


_ITEM_STATUS = {
    Outcome.OK: ItemStatus.COMPLETED,
    Outcome.WARNINGS: ItemStatus.PARTIAL,
    Outcome.FAILURE: ItemStatus.FAILED,
    Outcome.SKIPPED: ItemStatus.ABORTED,
    Outcome.STOPPED: ItemStatus.ABORTED,
}
_OUTCOME_OF_STATUS = {
    QueueStatus.COMPLETED: Outcome.OK,
    QueueStatus.PARTIAL: Outcome.WARNINGS,
    QueueStatus.FAILED: Outcome.FAILURE,
    QueueStatus.ABORTED: Outcome.STOPPED,
}


class RunResult(NamedTuple):
    """How a run's body ended: its status, a detail for the log and alert, whether to alert."""

    status: QueueStatus
    detail: str = ""
    alert: bool = True


def rollup(outcomes: Iterable[Outcome], *, stopped: bool = False) -> QueueStatus:
    """A run's status from its units: any stopped → 103; all OK → 100; some OK or with warnings →
    101; none (or none usable) → 102."""
    values = set(outcomes)
    if stopped or Outcome.STOPPED in values:
        return QueueStatus.ABORTED
    if values and values <= {Outcome.OK}:
        return QueueStatus.COMPLETED
    if values & {Outcome.OK, Outcome.WARNINGS}:
        return QueueStatus.PARTIAL
    return QueueStatus.FAILED


# --- typed views of catalog documents --------------------------------------------------------------


def _strings(values: Any) -> list[str]:
    return [str(value) for value in values or []]


@dataclass(frozen=True)
class JobSpec:
    """The fields of a Backup Job a run uses, typed; ``document`` is the whole stored job."""

    id: str
    name: str
    type: JobType
    structure: Structure
    encrypted: bool
    include_list: list[str]
    exclude_list: list[str]
    destinations: list[str]
    retry_failed: bool
    contains: int
    options: int
    exclude_db_by_size: int
    document: Mapping[str, Any]

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> JobSpec:
        """The view of a stored job (validated by the API when it was saved)."""
        return cls(
            id=str(document["_id"]),
            name=str(document.get("name", "")),
            type=JobType(int(document.get("type", JobType.DIRECTORIES))),
            structure=Structure(int(document.get("structure", Structure.INCREMENTAL))),
            encrypted=bool(document.get("encrypted")),
            include_list=_strings(document.get("include_list")),
            exclude_list=_strings(document.get("exclude_list")),
            destinations=_strings(document.get("destination")),
            retry_failed=bool(document.get("retry_failed")),
            contains=int(document.get("contains") or 0),
            options=int(document.get("options") or 0),
            exclude_db_by_size=int(document.get("mysql_exclude_db_by_size") or 0),
            document=document,
        )


@dataclass(frozen=True)
class DestinationSpec:
    """The fields of a destination a run uses; ``document`` is the whole stored destination."""

    id: str
    name: str
    disabled: bool
    disk_limit: int
    document: Mapping[str, Any]

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> DestinationSpec:
        return cls(
            id=str(document["_id"]),
            name=str(document.get("name", "")),
            disabled=bool(document.get("disabled")),
            disk_limit=int(document.get("disk_limit") or 0),
            document=document,
        )

    @property
    def where(self) -> str:
        """How log lines name it."""
        return f"destination {self.name!r} ({self.id})"


# --- the run's context and progress ----------------------------------------------------------------


@dataclass
class RunContext:
    """What every part of one run works with."""

    catalog: Catalog
    home: Path
    clock: Clock
    group: RunningGroup
    log: RunLog
    started: _dt.datetime

    def stopping(self) -> bool:
        return self.group.stopping()

    def hooks(
        self, job: Mapping[str, Any], position: HookPosition, stage: HookStage, status: int | None
    ) -> hooks.StageOutcome:
        """Run the job's hooks of ``position`` and ``stage``; their lines go to the log."""
        with self.catalog.transaction(write=False) as tx:
            every_hook = tx.all("hooks")
        outcome = hooks.run_job_stage(
            every_hook,
            job,
            position=position,
            stage=stage,
            log_id=self.log.id,
            start_time=int(self.started.timestamp()),
            status=status,
            clock=self.clock,
            stopping=self.stopping,
        )
        for level, line in outcome.log_lines:
            self.log.write(level, line)
        return outcome

    def log_warnings(self, where: str, warnings: Sequence[tuple[str, str]]) -> None:
        """Write the first ``LOGGED_WARNINGS`` of ``warnings`` (path, message) and count the rest."""
        for path, message in warnings[:LOGGED_WARNINGS]:
            self.log.warning(f"{where}: {path}: {message}")
        if len(warnings) > LOGGED_WARNINGS:
            self.log.warning(f"{where}: ... and {len(warnings) - LOGGED_WARNINGS} more warnings")


class RunProgress(Progress):
    """Engine progress into the queue group; raises BackupAbortedError once a stop is asked for."""

    def __init__(self, group: RunningGroup, stopped_message: str) -> None:
        self.group = group
        self.stopped_message = stopped_message
        self.warnings: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def check(self) -> None:
        if self.group.stopping():
            raise BackupAbortedError(self.stopped_message)

    def on_warning(self, path: str, message: str) -> None:
        with self._lock:
            self.warnings.append((path, message))


class BackupProgress(RunProgress):
    """A backup's progress: totals grow as files are found."""

    def __init__(self, group: RunningGroup) -> None:
        super().__init__(group, "stopped on request; nothing was committed")

    def on_file(self, path: str, size: int) -> None:
        self.check()
        self.group.advance(completed_files=1, total_files=1)

    def on_bytes(self, count: int) -> None:
        self.check()
        self.group.advance(completed_bytes=count, total_bytes=count)


class RestoreProgress(RunProgress):
    """A restore's progress: totals are known when it starts."""

    def __init__(self, group: RunningGroup) -> None:
        super().__init__(group, "stopped on request")

    def on_start(self, total_files: int | None, total_bytes: int | None) -> None:
        self.group.advance(force=True, total_files=total_files or 0, total_bytes=total_bytes or 0)

    def on_file(self, path: str, size: int) -> None:
        self.check()
        self.group.advance(completed_files=1)

    def on_bytes(self, count: int) -> None:
        self.group.advance(completed_bytes=count)


# --- what a run is ------------------------------------------------------------------------------------


class GroupRun(abc.ABC):
    """The run of one queue group (``runs.RUNNERS`` maps queue types to subclasses)."""

    def __init__(
        self, catalog: Catalog, home: Path, group: RunningGroup, record: GroupRecord, clock: Clock
    ) -> None:
        self.catalog = catalog
        self.home = home
        self.group = group
        self.record = record
        self.clock = clock

    @abc.abstractmethod
    def run(self) -> QueueStatus:
        """Execute the group to its end; its final status. Never raises for the run's own failures."""


class BackupBody(abc.ABC):
    """What a backup run does between its pre and post Backup hooks, by job type."""

    #: what "some ... failed" names in the run's detail
    units = "destinations"

    def __init__(self, context: RunContext, job: JobSpec, tags: list[str], destinations: list[str]) -> None:
        self.context = context
        self.log = context.log
        self.group = context.group
        self.job = job
        self.tags = tags
        self.destinations = destinations

    @abc.abstractmethod
    def run(self) -> RunResult:
        """The body's work; its status, detail and whether to alert."""

    def owner(self) -> access.Principal:
        """What the job's owner may reach: a reseller's job backs up only that reseller's accounts
        and folders, checked again at every run (accounts change owners)."""
        owner = str(self.job.document.get("owner") or access.ROOT_PRINCIPAL.id)
        if owner in (access.ROOT_PRINCIPAL.id, access.ROOT_PRINCIPAL.name):  # the name: a stored job
            return access.ROOT_PRINCIPAL  # written before owners were user IDs (migration 6)
        with self.context.catalog.transaction(write=False) as tx:
            return access.owner_principal(tx, owner, self.context.home)

    def hooks(self, stage: HookStage, status: QueueStatus | None = None) -> RunResult | None:
        """Run the job's Backup hooks of ``stage``; the run's result when a pre hook stops it."""
        outcome = self.context.hooks(self.job.document, HookPosition.BACKUP, stage, status)
        if outcome.status is None:
            return None
        return RunResult(QueueStatus(outcome.status), outcome.message, outcome.alert)

    def result(self, status: QueueStatus) -> RunResult:
        """The run's result for ``status``, after the post hooks."""
        self.hooks(HookStage.POST, status)
        details = {
            QueueStatus.FAILED: "no backup was stored",
            QueueStatus.PARTIAL: f"some {self.units} failed or had warnings",
            QueueStatus.ABORTED: "stopped on request",
        }
        return RunResult(status, details.get(status, ""))


# --- a destination's repository ---------------------------------------------------------------------


def failure_reason(error: SnapkeepError | OSError) -> str:
    """What a log line says of a failed step."""
    return getattr(error, "strerror", None) or str(error)


@dataclass
class Target:
    """One destination of a run: its repository while the run holds it, or why it is unusable."""

    ident: str
    where: str
    destination: DestinationSpec | None = None
    repository: Repository | None = None
    problem: tuple[Outcome, str] | None = None
    stored: int = 0
    locks: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)


@contextlib.contextmanager
def open_target(
    context: RunContext,
    ident: str,
    *,
    job_id: str,
    encrypted: bool,
    create: bool,
    lock: bool = True,
    action: str = "backup",
) -> Iterator[Target]:
    """Open destination ``ident``'s repository of ``job_id`` for the block; always yields a Target.

    A missing destination, a disabled one (when ``create``: a backup), one over its ``disk_limit``
    or one that cannot be opened yields a Target with ``problem`` set (and logged: "<where>:
    <action> failed: <reason>") and no repository. With ``lock`` the repository's shared lock is
    held for the block. On exit the lock, the repository and the store are closed and the store's
    retries are written to the log.
    """
    with context.catalog.transaction(write=False) as tx:
        document = tx.get("destinations", ident)
    if document is None:
        context.log.error(f"destination {ident} no longer exists")
        yield Target(ident, f"destination {ident}", problem=(Outcome.FAILURE, "no such destination"))
        return
    spec = DestinationSpec.of(document)
    target = Target(ident, spec.where, spec)
    if create and spec.disabled:
        context.log.warning(f"{target.where} is disabled: skipped")
        target.problem = (Outcome.SKIPPED, "disabled")
        yield target
        return
    opened: repositories.Opened | None = None
    try:
        try:
            opened = repositories.open_destination(document, job_id, clock=context.clock)
            target.problem = _over_limit(context, spec, opened) if create else None
            if target.problem is None:
                new_key = encrypted and create and not KeyStore(context.catalog).has(job_id)
                password = repositories.job_password(context.catalog, job_id, encrypted, create=create)
                try:
                    target.repository = repositories.open_repository(
                        opened.store, password=password, create=create, clock=context.clock
                    )
                except WrongPasswordError as error:
                    if not new_key:
                        raise
                    raise WrongPasswordError(
                        f"{error}: the destination holds this job's repository from another server; "
                        f"import its key with 'snapkeep keys import {job_id} FILE' (from 'keys export' "
                        "or 'dr export' there)"
                    ) from None
                if new_key:
                    context.log.info(
                        f"{target.where}: a new repository password was made for this encrypted job; "
                        f"export it now ('snapkeep keys export {job_id}' or 'snapkeep dr export FILE') and "
                        "keep it apart from the backups: without it no other server can read them"
                    )
                if lock:
                    holder = f"snapkeep run {context.group.id}"
                    target.locks.enter_context(target.repository.lock(exclusive=False, holder=holder))
        except (SnapkeepError, OSError) as error:
            context.log.error(f"{target.where}: {action} failed: {failure_reason(error)}")
            target.problem = (Outcome.FAILURE, failure_reason(error))
        yield target
    finally:
        # a store that failed mid-run may fail these too: say so, and still close the store
        _release(context, target.where, "lock", target.locks.close)
        if target.repository is not None:
            _release(context, target.where, "repository", target.repository.close)
        repositories.finish(context.catalog, opened, ident).report(context.log, target.where)


def _release(context: RunContext, where: str, what: str, close: Callable[[], None]) -> None:
    try:
        close()
    except (SnapkeepError, OSError) as error:
        context.log.warning(f"{where}: closing the {what} failed: {failure_reason(error)}")


def _over_limit(
    context: RunContext, spec: DestinationSpec, opened: repositories.Opened
) -> tuple[Outcome, str] | None:
    if not spec.disk_limit:
        return None
    info = opened.store.info()
    if info.total and info.usage is not None and info.usage * 100 >= spec.disk_limit * info.total:
        used = info.usage * 100 // info.total
        context.log.warning(
            f"{spec.where} is {used}% full, over its disk limit of {spec.disk_limit}%: skipped"
        )
        return Outcome.SKIPPED, f"over disk limit {spec.disk_limit}%"
    return None


# --- retention ---------------------------------------------------------------------------------------


def apply_retention(context: RunContext, job: JobSpec, target: Target) -> None:
    """Remove the backups of ``job`` on ``target`` that retention does not keep, then prune."""
    assert target.repository is not None
    assert target.destination is not None
    repository = target.repository
    with context.catalog.transaction(write=False) as tx:
        stored = backups.rows(tx, job_id=job.id, destination_id=target.destination.id)
        names = {item["_id"]: item["name"] for item in tx.all("schedules")}
    by_id = {row.id: row for row in stored}
    removed = 0
    for decision in backups.retention_plan(dict(job.document), stored, names, context.clock.now()):
        if decision.keep:
            continue
        row = by_id[decision.id]
        repositories.remove_stored(repository, row.structure, row.engine_id)
        with context.catalog.transaction() as tx:
            backups.forget_row(tx, row.id)
        removed += 1
        why = "; ".join(decision.reasons)
        context.log.info(f"retention removed backup {row.id} of {row.created:%Y-%m-%d %H:%M:%S}: {why}")
    if removed and any(row.structure == Structure.INCREMENTAL for row in stored):
        freed = repositories.prune_repository(repository)
        context.log.info(f"prune freed {freed} bytes")


def run_tags(document: Mapping[str, Any]) -> list[str]:
    """A backup run's tags: the schedules that made it due, or ``manual``."""
    scheduled = [str(ident) for ident in document.get("schedules") or []]
    return scheduled or [retention.MANUAL]


def scheduled_only(tags: Sequence[str]) -> list[str]:
    """The schedule IDs among a run's tags."""
    return [tag for tag in tags if tag != retention.MANUAL]
