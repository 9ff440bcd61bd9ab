"""Runs of Accounts jobs (job type 1): one snapshot per account per destination, tagged with it.

``run_accounts(run, job) -> (status, detail, alert)`` is what ``jobs.runner.BackupRun.body`` calls
for an Accounts job, in place of the Directories path; ``run`` is that ``BackupRun`` (its log,
queue group state, hooks, tags and catalog). The run:

1. refuses any structure but Incremental (an account's snapshot is a layout of files *and*
   streamed database dumps, which only the deduplicating repository takes: 102 with a message
   saying so);
2. asks the account provider (``jobs.accounts``, ``config.toml``) for the accounts and keeps those
   the job's ``filters`` select;
3. runs the pre Backup hooks, opens every destination once (skipping disabled ones and those over
   their ``disk_limit``), under a shared repository lock;
4. per account: the pre Backup Account hooks (position 8: a non-zero exit skips the account, 75
   quietly), then per destination one queue item and ``sources.components.backup_account`` with
   the job's ``contains``, ``options``, ``exclude_list`` and ``mysql_exclude_db_by_size``, a catalog
   row (``account`` = the username, ``partial`` when an item failed), then the post hooks;
5. ``retry_failed``: the accounts that failed or had a failed item are backed up once more;
6. retention per destination, counted per (job, schedule, account); the newest complete backup of
   each account is never removed; then the post Backup hooks.

Status: every account stored complete -> 100; some stored, or stored with a failed item (a dump
that failed: the dump is left out, never stored truncated) -> 101; nothing stored -> 102;
stopped -> 103. Progress counts queue items (accounts x destinations).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any

from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.errors import BackupAbortedError, SnapkeepError
from snapkeep.jobs import accounts, backups, hooks, repositories
from snapkeep.sources.accounts.base import Account
from snapkeep.sources.components import COMPONENT_BITS, AccountBackup, account_sources, backup_account
from snapkeep.sources.dbclient import DatabaseSettings

BACKUP = 1
COMPLETED, PARTIAL, FAILED, ABORTED = 100, 101, 102, 103
OK, WARNINGS, FAILURE, SKIPPED, STOPPED = "ok", "warnings", "failed", "skipped", "stopped"
ITEM_STATUS = {OK: COMPLETED, WARNINGS: PARTIAL, FAILURE: FAILED, SKIPPED: ABORTED, STOPPED: ABORTED}
INCREMENTAL_ONLY = (
    "structure: Accounts jobs support only 1 (Incremental): an account's backup holds streamed "
    "database dumps in a fixed layout that Archived (2) and Compressed (4) cannot take; change the "
    "job's structure to 1"
)
LOGGED_WARNINGS = 20


class _Progress(Progress):
    """Engine progress into the queue group; raises BackupAbortedError once a stop is asked for."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.warnings: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def on_file(self, path: str, size: int) -> None:
        if self.state.stopping():
            raise BackupAbortedError("stopped on request; nothing was committed")
        self.state.advance(completed_files=1, total_files=1)

    def on_bytes(self, count: int) -> None:
        if self.state.stopping():
            raise BackupAbortedError("stopped on request; nothing was committed")
        self.state.advance(completed_bytes=count, total_bytes=count)

    def on_warning(self, path: str, message: str) -> None:
        with self._lock:
            self.warnings.append((path, message))


@dataclass
class _Target:
    """One destination of the run: its repository while the run holds it, or why it is unusable."""

    ident: str
    where: str
    destination: dict[str, Any] | None = None
    opened: repositories.Opened | None = None
    repository: Repository | None = None
    problem: tuple[str, str] | None = None
    stored: int = 0
    locks: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)


def run_accounts(run: Any, job: dict[str, Any]) -> tuple[int, str, bool]:
    """Back up the accounts ``job`` selects (see the module docstring); (status, detail, alert)."""
    return AccountsRun(run, job).body()


class AccountsRun:
    """One run of an Accounts job, on top of the runner's ``BackupRun``."""

    def __init__(self, run: Any, job: dict[str, Any]) -> None:
        self.run = run
        self.job = job
        self.log = run.log
        self.state = run.state
        self.settings = DatabaseSettings()
        self.results: dict[tuple[str, str], str] = {}
        self.incomplete: set[str] = set()

    def body(self) -> tuple[int, str, bool]:
        if int(self.job["structure"]) != backups.INCREMENTAL:
            self.log.error(INCREMENTAL_ONLY)
            return FAILED, INCREMENTAL_ONLY, True
        try:
            config = accounts.load_config(self.run.home)
            self.settings = accounts.database_settings(config)
            found = accounts.provider(self.run.home, config)
            everyone = found.list_accounts() if found is not None else []
            with self.run.catalog.transaction(write=False) as tx:
                chosen = accounts.job_accounts(tx, everyone, self.job)
        except SnapkeepError as error:
            self.log.error(f"accounts: {error.message}")
            return FAILED, f"accounts: {error.message}", True
        for account in everyone:
            for reason in account.extra.get("discovery_errors", []) or []:
                self.log.warning(f"account {account.username}: {reason}")
        names = ", ".join(account.username for account in chosen) or "none"
        self.log.info(f"{len(chosen)} of {len(everyone)} accounts selected by the job's filters: {names}")
        outcome = self.run.hooks(hooks.PRE, None)
        if outcome.status is not None:
            return outcome.status, outcome.message, outcome.alert
        idents = list(self.run.document.get("destinations") or self.job["destination"])
        self.state.advance(force=True, total=len(chosen) * len(idents))
        targets = [self.open_target(ident) for ident in idents]
        try:
            for account in chosen:
                self.account(account, targets)
            retry = [account for account in chosen if account.username in self.incomplete]
            if retry and self.job.get("retry_failed") and not self.state.stopping():
                self.log.info(f"retrying {len(retry)} failed account(s) once")
                self.incomplete.clear()
                for account in retry:
                    self.account(account, targets, retry=True)
            for target in targets:
                target.locks.close()
                if target.repository is not None and target.stored and not self.state.stopping():
                    self.retention(target)
        finally:
            for target in targets:
                self.close_target(target)
        status = COMPLETED if not chosen else self.run.status(self.results)
        self.run.hooks(hooks.POST, status)
        detail = {FAILED: "no backup was stored", PARTIAL: "some accounts failed or had warnings"}
        return status, detail.get(status, "stopped on request" if status == ABORTED else ""), True

    # --- destinations ---------------------------------------------------------------------------

    def open_target(self, ident: str) -> _Target:
        """Open one destination's repository and take its shared lock; record why when it cannot."""
        with self.run.catalog.transaction(write=False) as tx:
            destination = tx.get("destinations", ident)
        if destination is None:
            self.log.error(f"destination {ident} no longer exists")
            return _Target(ident, f"destination {ident}", problem=(FAILURE, "no such destination"))
        target = _Target(ident, f"destination {destination['name']!r} ({ident})", destination)
        if destination.get("disabled"):
            self.log.warning(f"{target.where} is disabled: skipped")
            target.problem = (SKIPPED, "disabled")
            return target
        try:
            target.opened = repositories.open_destination(destination, self.run.job_id, clock=self.run.clock)
            store = target.opened.store
            limit = int(destination.get("disk_limit") or 0)
            if limit:
                info = store.info()
                if info.total and info.usage is not None and info.usage * 100 >= limit * info.total:
                    used = info.usage * 100 // info.total
                    self.log.warning(
                        f"{target.where} is {used}% full, over its disk limit of {limit}%: skipped"
                    )
                    target.problem = (SKIPPED, f"over disk limit {limit}%")
                    return target
            password = repositories.job_password(
                self.run.home, self.run.job_id, bool(self.job.get("encrypted")), create=True
            )
            target.repository = repositories.open_repository(
                store, password=password, create=True, clock=self.run.clock
            )
            target.locks.enter_context(
                target.repository.lock(exclusive=False, holder=f"snapkeep run {self.state.id}")
            )
        except (SnapkeepError, OSError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            self.log.error(f"{target.where}: cannot be opened: {reason}")
            target.problem = (FAILURE, reason)
        return target

    def close_target(self, target: _Target) -> None:
        target.locks.close()
        if target.repository is not None:
            target.repository.close()
        if target.destination is not None:
            repositories.finish(self.run.catalog, target.opened, target.ident).report(self.log, target.where)

    # --- one account ----------------------------------------------------------------------------

    def account(self, account: Account, targets: list[_Target], *, retry: bool = False) -> None:
        """Back up ``account`` to every target between its Backup Account hooks."""
        username = account.username
        pre = self.account_hooks(hooks.PRE, account, None)
        if pre.status is not None:
            result = SKIPPED if pre.verdict is hooks.Verdict.SKIPPED else FAILURE
            for target in targets:
                item = self.state.add_item(
                    BACKUP, f"{username} on {target.where}", account=username, retry=retry
                )
                self.state.end_item(item, ABORTED, pre.message)
                self.state.advance(force=True, completed=1)
                self.results[(username, target.ident)] = result
            self.log.warning(f"account {username}: {pre.message}")
            return
        outcomes = []
        for target in targets:
            name = f"{username} on {target.destination['name'] if target.destination else target.ident}"
            item = self.state.add_item(BACKUP, name, account=username, destination=target.ident, retry=retry)
            result, message = self.backup(account, target)
            self.state.end_item(item, ITEM_STATUS[result], message)
            self.state.advance(force=True, completed=1)
            self.results[(username, target.ident)] = result
            outcomes.append(result)
            if result == FAILURE or message.startswith("failed items"):
                self.incomplete.add(username)
        status = self.run.status({str(index): value for index, value in enumerate(outcomes)})
        self.account_hooks(hooks.POST, account, status)

    def backup(self, account: Account, target: _Target) -> tuple[str, str]:
        """One account into one destination; (result, queue item message)."""
        where = f"account {account.username} on {target.where}"
        if target.problem is not None:
            return target.problem
        if self.state.stopping():
            return STOPPED, "stopped"
        assert target.repository is not None and target.destination is not None
        progress = _Progress(self.state)
        tags = self.run.tags()
        scheduled = [tag for tag in tags if tag != "manual"]
        try:
            sources = account_sources(
                account,
                int(self.job.get("contains", 0)),
                int(self.job.get("options", 0)),
                list(self.job.get("exclude_list", [])),
                settings=self.settings,
                exclude_db_by_size=int(self.job.get("mysql_exclude_db_by_size") or 0),
            )
            made = backup_account(
                target.repository,
                sources,
                job_id=self.run.job_id,
                tags=tags,
                progress=progress,
                clock=self.run.clock,
                extra={"schedules": scheduled, "structure": "incremental"},
            )
            backup_id = self.record(account, target, made, sources.names, tags)
        except BackupAbortedError:
            self.log.warning(f"{where}: stopped on request; nothing was committed")
            return STOPPED, "stopped"
        except (SnapkeepError, OSError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            self.log.error(f"{where}: backup failed: {reason}")
            return FAILURE, reason
        target.stored += 1
        for failure in made.failures:
            self.log.error(f"{where}: {failure.target}: {failure.message} (left out of the backup)")
        warnings = progress.warnings
        for path, message in warnings[:LOGGED_WARNINGS]:
            self.log.warning(f"{where}: {path}: {message}")
        if len(warnings) > LOGGED_WARNINGS:
            self.log.warning(f"{where}: ... and {len(warnings) - LOGGED_WARNINGS} more warnings")
        self.log.info(f"{where}: backup {backup_id} stored ({', '.join(sources.names)})")
        if made.failures:
            return WARNINGS, f"failed items: {', '.join(failure.target for failure in made.failures)}"
        return (WARNINGS, "completed with warnings") if made.partial or progress.warnings else (OK, "")

    def record(
        self, account: Account, target: _Target, made: AccountBackup, names: list[str], tags: list[str]
    ) -> str:
        snapshot = made.snapshot
        contains = sum(COMPONENT_BITS[name] for name in names)
        with self.run.catalog.transaction() as tx:
            return backups.record(
                tx,
                job=self.job,
                destination=target.destination or {"_id": target.ident},
                engine_id=snapshot.id,
                created=snapshot.time,
                size=int(snapshot.stats.get("bytes", 0)),
                tags=tags,
                details={
                    "account": account.username,
                    "contains": contains,
                    "components": backups.component_items(names, tx.clock),
                    "failures": [failure.target for failure in made.failures],
                    "partial": made.partial,
                    "home": account.home,
                    "queue_group_id": self.state.id,
                    "log_id": self.log.id,
                },
            )

    def account_hooks(self, stage: int, account: Account, status: int | None) -> hooks.StageOutcome:
        with self.run.catalog.transaction(write=False) as tx:
            chosen = hooks.select_hooks(
                tx.all("hooks"), position=hooks.BACKUP_ACCOUNT, stage=stage, job_id=self.run.job_id
            )
        if not chosen:
            return hooks.StageOutcome()
        context = hooks.HookContext(
            position=hooks.BACKUP_ACCOUNT,
            stage=stage,
            job_id=self.run.job_id,
            log_id=self.log.id,
            account_id=account.username,
            username=account.username,
            status=status,
        )
        outcome = hooks.run_stage(chosen, context, clock=self.run.clock)
        for level, line in outcome.log_lines:
            self.log.write(level, line)
        return outcome

    def retention(self, target: _Target) -> None:
        """Retention for this job on one destination (counted per account), then prune."""
        assert target.repository is not None and target.destination is not None
        try:
            self.run.retention(target.repository, target.destination)
        except (SnapkeepError, OSError) as error:
            self.log.warning(f"{target.where}: retention not applied: {error}")
