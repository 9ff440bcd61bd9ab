"""The body of an Accounts job's run (job type 1): one backup per account per destination, tagged with it.

``AccountsBody(context, job, tags, destinations).run()`` is what ``runs.backup.BackupRun`` runs for an
Accounts job, in place of ``runs.directories``. The run:

1. asks the account provider (``jobs.accounts``, ``config.toml``) for the accounts and keeps those
   the job's ``filters`` select;
2. runs the pre Backup hooks, opens every destination once (``runs.common.open_target``: disabled
   ones and those over their ``disk_limit`` are skipped), under a shared repository lock;
3. per account: the pre Backup Account hooks (position 8: a non-zero exit skips the account, 75
   quietly), then per destination one queue item and, by the job's structure, either
   ``sources.components.backup_account`` (Incremental: one snapshot) or
   ``sources.account_archive.archive_account`` (Archived/Compressed: one archive, the same layout,
   dumps streamed in parts) with the job's ``contains``, ``options``, ``exclude_list`` and
   ``mysql_exclude_db_by_size``, a catalog row (``account`` = the username, its component items,
   ``partial`` when an item failed), then the post hooks;
4. ``retry_failed``: the accounts that failed or had a failed item are backed up once more;
5. retention per destination, counted per (job, schedule, account); the newest complete backup of
   each account is never removed; then the post Backup hooks.

Status: every account stored complete -> 100; some stored, or stored with a failed item (a dump
that failed: the dump is left out, never stored truncated) -> 101; nothing stored -> 102;
stopped -> 103. Progress counts queue items (accounts x destinations).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
from collections.abc import Iterable
from dataclasses import dataclass

from snapkeep.errors import BackupAbortedError, SnapkeepError
from snapkeep.jobs import accounts, backups, hooks, settings
from snapkeep.jobs.codes import HookPosition, HookStage, QueueStatus, QueueType, Structure
from snapkeep.jobs.runs.common import (
    BackupBody,
    BackupProgress,
    JobSpec,
    Outcome,
    RunContext,
    RunResult,
    Target,
    apply_retention,
    failure_reason,
    open_target,
    rollup,
    scheduled_only,
)
from snapkeep.sources.account_archive import archive_account
from snapkeep.sources.accounts.base import Account
from snapkeep.sources.components import (
    COMPONENT_BITS,
    AccountSources,
    ComponentFailure,
    account_sources,
    backup_account,
)
from snapkeep.sources.dbclient import DatabaseSettings


@dataclass(frozen=True, slots=True)
class Stored:
    """What one account's backup stored, whichever the structure (for its catalog row)."""

    engine_id: str
    created: _dt.datetime
    size: int
    failures: list[ComponentFailure]
    partial: bool


class AccountsBody(BackupBody):
    """One run of an Accounts job."""

    units = "accounts"

    def __init__(self, context: RunContext, job: JobSpec, tags: list[str], destinations: list[str]) -> None:
        super().__init__(context, job, tags, destinations)
        self.settings = DatabaseSettings()
        self.results: dict[tuple[str, str], Outcome] = {}
        self.incomplete: set[str] = set()
        self.failure = ""

    def run(self) -> RunResult:
        chosen = self.select_accounts()
        if chosen is None:
            return RunResult(QueueStatus.FAILED, self.failure)
        stopped = self.hooks(HookStage.PRE)
        if stopped is not None:
            return stopped
        self.group.advance(force=True, total=len(chosen) * len(self.destinations))
        with contextlib.ExitStack() as stack:
            targets = [
                stack.enter_context(
                    open_target(
                        self.context, ident, job_id=self.job.id, encrypted=self.job.encrypted, create=True
                    )
                )
                for ident in self.destinations
            ]
            self.accounts(chosen, targets)
        return self.result(QueueStatus.COMPLETED if not chosen else self.status(self.results.values()))

    def status(self, outcomes: Iterable[Outcome]) -> QueueStatus:
        return rollup(outcomes, stopped=self.group.stop.is_set())

    def select_accounts(self) -> list[Account] | None:
        """The accounts the job's filters select (None, with ``failure`` set, when they cannot be listed)."""
        home = self.context.home
        try:
            config = accounts.load_config(home)
            self.settings = accounts.database_settings(config)
            found = accounts.provider(home, config)
            everyone = found.list_accounts() if found is not None else []
            with self.context.catalog.transaction(write=False) as tx:
                chosen = accounts.job_accounts(tx, everyone, dict(self.job.document))
            owner = self.owner()
            if not owner.admin:
                others = [account.username for account in chosen if not owner.sees_account(account.username)]
                if others:
                    self.log.warning(
                        f"left out {len(others)} account(s) the job's owner {owner.name!r} does not own: "
                        + ", ".join(others[:20])
                    )
                chosen = [account for account in chosen if owner.sees_account(account.username)]
            with self.context.catalog.transaction(write=False) as tx:
                # the account's own exclude lists (manageAccountExcludeList) join the provider's
                chosen = [
                    dataclasses.replace(account, excludes=(*account.excludes, *extra)) if extra else account
                    for account in chosen
                    for extra in [settings.excludes_for_run(tx, account.username, self.job.id)]
                ]
        except SnapkeepError as error:
            self.log.error(f"accounts: {error.message}")
            self.failure = f"accounts: {error.message}"
            return None
        for account in everyone:
            for reason in account.extra.get("discovery_errors", []) or []:
                self.log.warning(f"account {account.username}: {reason}")
        names = ", ".join(account.username for account in chosen) or "none"
        self.log.info(f"{len(chosen)} of {len(everyone)} accounts selected by the job's filters: {names}")
        return chosen

    def accounts(self, chosen: list[Account], targets: list[Target]) -> None:
        """Every account into every target, the failed ones once more, then retention."""
        for account in chosen:
            self.account(account, targets)
        retry = [account for account in chosen if account.username in self.incomplete]
        if retry and self.job.retry_failed and not self.context.stopping():
            self.log.info(f"retrying {len(retry)} failed account(s) once")
            self.incomplete.clear()
            for account in retry:
                self.account(account, targets, retry=True)
        for target in targets:
            target.locks.close()
            if target.repository is not None and target.stored and not self.context.stopping():
                try:
                    apply_retention(self.context, self.job, target)
                except (SnapkeepError, OSError) as error:
                    self.log.warning(f"{target.where}: retention not applied: {error}")

    # --- one account ----------------------------------------------------------------------------

    def account(self, account: Account, targets: list[Target], *, retry: bool = False) -> None:
        """Back up ``account`` to every target between its Backup Account hooks."""
        username = account.username
        pre = self.account_hooks(HookStage.PRE, account, None)
        if pre.status is not None:
            result = Outcome.SKIPPED if pre.verdict is hooks.Verdict.SKIPPED else Outcome.FAILURE
            for target in targets:
                item = self.group.add_item(
                    QueueType.BACKUP, f"{username} on {target.where}", account=username, retry=retry
                )
                self.group.end_item(item, Outcome.STOPPED.item_status, pre.message)
                self.group.advance(force=True, completed=1)
                self.results[(username, target.ident)] = result
            self.log.warning(f"account {username}: {pre.message}")
            return
        outcomes = []
        for target in targets:
            name = f"{username} on {target.destination.name if target.destination else target.ident}"
            item = self.group.add_item(
                QueueType.BACKUP, name, account=username, destination=target.ident, retry=retry
            )
            result, message = self.backup(account, target)
            self.group.end_item(item, result.item_status, message)
            self.group.advance(force=True, completed=1)
            self.results[(username, target.ident)] = result
            outcomes.append(result)
            if result == Outcome.FAILURE or message.startswith("failed items"):
                self.incomplete.add(username)
        self.account_hooks(HookStage.POST, account, self.status(outcomes))

    def backup(self, account: Account, target: Target) -> tuple[Outcome, str]:
        """One account into one destination; (result, queue item message)."""
        where = f"account {account.username} on {target.where}"
        if target.problem is not None:
            return target.problem
        if self.context.stopping():
            return Outcome.STOPPED, "stopped"
        assert target.repository is not None
        assert target.destination is not None
        progress = BackupProgress(self.group)
        job = self.job
        try:
            sources = account_sources(
                account,
                job.contains,
                job.options,
                job.exclude_list,
                settings=self.settings,
                exclude_db_by_size=job.exclude_db_by_size,
            )
            made = self.store(target, sources, progress)
            backup_id = self.record(account, target, made, sources.names)
        except BackupAbortedError:
            self.log.warning(f"{where}: stopped on request; nothing was committed")
            return Outcome.STOPPED, "stopped"
        except (SnapkeepError, OSError) as error:
            self.log.error(f"{where}: backup failed: {failure_reason(error)}")
            return Outcome.FAILURE, failure_reason(error)
        target.stored += 1
        for failure in made.failures:
            self.log.error(f"{where}: {failure.target}: {failure.message} (left out of the backup)")
        self.context.log_warnings(where, progress.warnings)
        self.log.info(f"{where}: backup {backup_id} stored ({', '.join(sources.names)})")
        if made.failures:
            return Outcome.WARNINGS, f"failed items: {', '.join(failure.target for failure in made.failures)}"
        if made.partial or progress.warnings:
            return Outcome.WARNINGS, "completed with warnings"
        return Outcome.OK, ""

    def store(self, target: Target, sources: AccountSources, progress: BackupProgress) -> Stored:
        """One account's snapshot (Incremental) or archive (Archived, Compressed) in ``target``."""
        assert target.repository is not None
        job = self.job
        if job.structure == Structure.INCREMENTAL:
            made = backup_account(
                target.repository,
                sources,
                job_id=job.id,
                tags=self.tags,
                progress=progress,
                clock=self.context.clock,
                extra={"schedules": scheduled_only(self.tags), "structure": "incremental"},
            )
            snapshot = made.snapshot
            size = int(snapshot.stats.get("bytes", 0))
            return Stored(snapshot.id, snapshot.time, size, made.failures, made.partial)
        archived = archive_account(
            target.repository,
            sources,
            compressed=job.structure == Structure.COMPRESSED,
            job_id=job.id,
            tags=self.tags,
            progress=progress,
            clock=self.context.clock,
        )
        manifest = archived.manifest
        return Stored(manifest.id, manifest.time, manifest.size, archived.failures, archived.partial)

    def record(self, account: Account, target: Target, made: Stored, names: list[str]) -> str:
        assert target.destination is not None
        contains = sum(COMPONENT_BITS[name] for name in names)
        with self.context.catalog.transaction() as tx:
            return backups.record(
                tx,
                job=dict(self.job.document),
                destination=dict(target.destination.document),
                engine_id=made.engine_id,
                created=made.created,
                size=made.size,
                tags=self.tags,
                details={
                    "account": account.username,
                    "contains": contains,
                    "components": backups.component_items(names, tx.clock),
                    "failures": [failure.target for failure in made.failures],
                    "partial": made.partial,
                    "home": account.home,
                    "queue_group_id": self.group.id,
                    "log_id": self.log.id,
                },
            )

    def account_hooks(
        self, stage: HookStage, account: Account, status: QueueStatus | None
    ) -> hooks.StageOutcome:
        with self.context.catalog.transaction(write=False) as tx:
            chosen = hooks.select_hooks(
                tx.all("hooks"), position=HookPosition.BACKUP_ACCOUNT, stage=stage, job_id=self.job.id
            )
        if not chosen:
            return hooks.StageOutcome()
        context = hooks.HookContext(
            position=HookPosition.BACKUP_ACCOUNT,
            stage=stage,
            job_id=self.job.id,
            log_id=self.log.id,
            account_id=account.username,
            username=account.username,
            status=status,
        )
        outcome = hooks.run_stage(chosen, context, clock=self.context.clock, stopping=self.context.stopping)
        for level, line in outcome.log_lines:
            self.log.write(level, line)
        return outcome
