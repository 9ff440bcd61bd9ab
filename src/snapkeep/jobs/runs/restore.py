"""The run of a restore or download group (queue types 2 and 4; ``jobs.restores`` queues them).

A restore puts each chosen backup, whole or only the group's ``paths`` (as they were backed up,
``/home/a/x``), under ``target``: ``/home/a/x`` lands in ``<target>/home/a/x``; without
``options[target]`` the target is ``/`` (the original place), and an Accounts backup goes back into its
account and database servers (``runs.account_restore``). Nothing is written outside the target (the
engine refuses crafted names). ``options[merge]`` 1 (default) keeps files in the target that the
backup does not have; 0 removes what is at each restored path inside the target first, so the
result is exactly the backup. ``options[overwrite]`` decides what happens to files already in the
target (``engine.fs.restore_policy``), ``options[dry_run]`` writes nothing and lists what would
change, ``options[special_files]`` allows fifos, device nodes and set-user/group-ID bits (never by
default); the counts (written, overwritten, skipped, removed) and the paths
overwritten or kept go to the run's log. Pre and post Restore hooks (position 2) of the backup's
job run around a restore (not a dry run); a failing pre hook stops it before anything is written.

A download restores the chosen items into a private folder (0700) under ``<home>/downloads``, packs
it as ``<home>/downloads/<group id>.tar.zst`` (0600; modes, owners and times kept inside) and names
that file in the group's ``data.file``; ``GET /download/GROUP_ID`` delivers it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import zstandard

from snapkeep.clock import Clock
from snapkeep.engine.archive import load_manifest
from snapkeep.engine.archive.reader import ArchiveRestore
from snapkeep.engine.fs.restore_policy import ALWAYS, NEVER, REMOVE, Changes, RestoreOptions
from snapkeep.engine.fs.safe_target import existing, open_existing_folder, remove_below, split_path
from snapkeep.engine.restore import restore
from snapkeep.errors import BackupAbortedError, SnapkeepError
from snapkeep.jobs import backups
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.codes import HookPosition, HookStage, LogType, QueueStatus, QueueType, Structure
from snapkeep.jobs.logs import RunLog
from snapkeep.jobs.queue import GroupRecord, RunningGroup
from snapkeep.jobs.runs import account_content, account_restore
from snapkeep.jobs.runs.common import (
    GroupRun,
    Outcome,
    RestoreProgress,
    RunContext,
    failure_reason,
    open_target,
    rollup,
)

DOWNLOADS = "downloads"
#: Paths overwritten or kept that a real restore names in its log (the rest are counted).
LOGGED_CHANGES = 200


def clear_paths(
    target: Path, paths: Sequence[str], *, changes: Changes | None = None, dry_run: bool = False
) -> None:
    """Remove what is at each path inside ``target`` (merge=0), never following a symlink out
    (``engine.fs.safe_target.remove_below``); each removal is a ``remove`` in ``changes``. A
    ``dry_run`` only looks (through the same no-follow descent) and records what it would remove."""
    for path in paths:
        if dry_run:
            if _exists_below(target, path) and changes is not None:
                changes.add(REMOVE, path)
        elif remove_below(target, path) and changes is not None:
            changes.add(REMOVE, path)


def _exists_below(target: Path, path: str) -> bool:
    parts = split_path(path, lenient=True)
    try:
        folder = os.open(os.fsencode(target), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        for part in parts[:-1]:
            child = open_existing_folder(part, folder)
            os.close(folder)
            if child is None:
                return False
            folder = child
        return existing(parts[-1], folder) is not None
    finally:
        os.close(folder)


def restore_options(options: Mapping[str, Any], *, account: bool = False) -> RestoreOptions:
    """The engine's options of a restore group: its policy (default by merge, for groups queued
    before there was one), dry run, and special files (only when asked for; never into a hosting
    account)."""
    merge = int(options.get("merge", 1))
    overwrite = str(options.get("overwrite") or (NEVER if merge else ALWAYS))
    return RestoreOptions(
        overwrite=overwrite,
        dry_run=bool(int(options.get("dry_run", 0))),
        special_files=not account and bool(int(options.get("special_files", 0))),
    )


def log_changes(log: RunLog, where: str, changes: Changes, *, dry_run: bool) -> None:
    """The counts, then the paths (every listed one in a dry run, ``LOGGED_CHANGES`` otherwise)."""
    shown = changes.entries if dry_run else changes.entries[:LOGGED_CHANGES]
    lines = [f"  {action} {path}" for action, path in shown]
    rest = changes.omitted + len(changes.entries) - len(shown)
    if rest:
        lines.append(f"  ... and {rest} more")
    if lines:
        log.info("\n".join(lines))  # one transaction for the whole list
    log.info(f"{where}: {'dry run, would be: ' if dry_run else ''}{changes.summary()}")


def _pack(folder: Path, output: Path) -> int:
    """Write ``folder``'s contents as a .tar.zst at ``output`` (via a temporary name, 0600);
    modes, owners and times are kept inside. Returns its size."""
    temporary = output.with_name(output.name + ".part")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
    )
    with (
        os.fdopen(descriptor, "wb") as raw,
        zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False) as compressed,
        tarfile.open(fileobj=compressed, mode="w|", format=tarfile.PAX_FORMAT) as archive,
    ):
        for entry in sorted(folder.iterdir()):
            archive.add(entry, arcname=entry.name)
    os.replace(temporary, output)
    return output.stat().st_size


class RestoreRun(GroupRun):
    """One restore or download group."""

    def __init__(
        self, catalog: Catalog, home: Path, group: RunningGroup, record: GroupRecord, clock: Clock
    ) -> None:
        super().__init__(catalog, home, group, record, clock)
        self.download = record.type == QueueType.DOWNLOAD
        self.options: dict[str, Any] = dict(record.document.get("options", {}))
        self.job: dict[str, Any] = {}

    def run(self) -> QueueStatus:
        """Execute the group; return its final status."""
        data = self.record.data
        kind = "Download" if self.download else "Restore"
        run_log = RunLog.start(
            self.catalog,
            self.home,
            log_type=LogType.of_queue(self.record.type),
            owner=self.record.owner,
            name=f"{kind} of {data.get('name', '')}",
            job_id=data.get("job_id"),
            group_id=self.group.id,
        )
        self.group.update_document(data={"log_id": run_log.id})
        context = RunContext(self.catalog, self.home, self.clock, self.group, run_log, self.clock.now())
        job_id = str(data.get("job_id") or "")
        with self.catalog.transaction(write=False) as tx:
            self.job = (tx.get("jobs", job_id) if job_id else None) or {"_id": job_id}
        # Restore hooks for a restore, Download hooks (position 4) for a download; a dry run changes
        # nothing, so no hook runs
        hooked = not int(self.options.get("dry_run", 0))
        stopped = self.hooks(context, HookStage.PRE) if hooked else None
        status = stopped if stopped is not None else self.restore_all(context)
        if hooked and stopped is None:
            self.hooks(context, HookStage.POST, status)
        run_log.info(f"finished: {kind} status {int(status)}")
        run_log.finish(status)
        with self.catalog.transaction() as tx:
            self.group.finish(tx, status)
        return status

    def hooks(self, context: RunContext, stage: HookStage, status: int | None = None) -> QueueStatus | None:
        """Run one stage of Restore (or, for a download, Download) hooks; the status the run ends with
        when a pre hook stops it."""
        position = HookPosition.DOWNLOAD if self.download else HookPosition.RESTORE
        outcome = context.hooks(self.job, position, stage, status)
        if outcome.status is None:
            return None
        context.log.error(f"restore {outcome.message}")
        return QueueStatus(outcome.status)

    def restore_all(self, context: RunContext) -> QueueStatus:
        chosen = list(self.record.document.get("backups", []))
        if self.download:
            downloads = self.home / DOWNLOADS
            downloads.mkdir(mode=0o700, exist_ok=True)
            os.chmod(downloads, 0o700)
            target = downloads / f".{self.group.id}"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(mode=0o700)
        else:
            target = Path(self.options.get("target") or "/")
        self.group.advance(force=True, total=len(chosen))
        results: list[Outcome] = []
        for entry in chosen:
            results.append(Outcome.of_status(self.restore_one(context, entry, target)))
            self.group.advance(force=True, completed=1)
        status = rollup(results)
        if self.download:
            status = self.pack(context, target, status)
        return status

    def pack(self, context: RunContext, folder: Path, status: QueueStatus) -> QueueStatus:
        """Pack a download's folder (when something was restored), then remove it."""
        if status in (QueueStatus.COMPLETED, QueueStatus.PARTIAL):
            output = self.home / DOWNLOADS / f"{self.group.id}.tar.zst"
            try:
                size = _pack(folder, output)
                self.group.update_document(data={"file": str(output), "size": size})
                context.log.info(f"download ready: {output} ({size} bytes)")
            except OSError as error:
                context.log.error(f"cannot write the download {output}: {error.strerror or error}")
                status = QueueStatus.FAILED
        shutil.rmtree(folder, ignore_errors=True)
        return status

    def restore_one(self, context: RunContext, entry: Mapping[str, Any], target: Path) -> QueueStatus:
        """Restore one backup of the group, recorded as one queue item."""
        with self.catalog.transaction(write=False) as tx:
            try:
                row = backups.row(tx, entry["backup"])
            except SnapkeepError as error:
                context.log.error(str(error))
                return QueueStatus.FAILED
        item = self.group.add_item(QueueType.RESTORE, row.id, backup=row.id)
        paths = [str(path) for path in entry.get("paths") or []]
        where = f"backup {row.id}"
        progress = RestoreProgress(self.group)
        status: QueueStatus
        try:
            with open_target(
                context,
                row.destination_id,
                job_id=row.job_id,
                encrypted=bool(row.encrypted),
                create=False,
                lock=False,
                action="restore",
            ) as opened:
                if opened.problem is not None:
                    raise SnapkeepError(opened.problem[1])
                assert opened.repository is not None
                if not self.download and not self.options.get("target") and row.account:
                    context.log.info(
                        f"restoring {where} of account {row.account} ({', '.join(paths) or 'everything'})"
                    )
                    restorer = account_restore.AccountRestore(
                        self.home, self.group.id, context.log, row, self.options, self.clock
                    )
                    status = restorer.run(opened.repository, paths, progress)
                    problems, counts = [], ", ".join(restorer.done) or "nothing"
                else:
                    options = restore_options(self.options)
                    if not options.dry_run:
                        target.mkdir(parents=True, exist_ok=True)
                    cleared = Changes()
                    if not int(self.options.get("merge", 1)):
                        clear_paths(
                            target,
                            paths or list(row.document.get("paths", [])),
                            changes=cleared,
                            dry_run=options.dry_run,
                        )
                    context.log.info(
                        f"{'dry run: ' if options.dry_run else ''}restoring {where} "
                        f"({', '.join(paths) or 'everything'}) into {target}, overwrite {options.overwrite}"
                    )
                    if row.structure == Structure.INCREMENTAL:
                        snapshot = opened.repository.load_snapshot(row.engine_id)
                        result = restore(
                            opened.repository,
                            snapshot,
                            str(target),
                            includes=paths,
                            progress=progress,
                            options=options,
                        )
                        problems = list(result.failures) + list(result.warnings)
                        counts = f"{result.files} files, {result.bytes} bytes"
                        changes = result.changes
                    else:
                        manifest = load_manifest(opened.repository, row.engine_id)
                        done = ArchiveRestore(
                            opened.repository,
                            manifest,
                            str(target),
                            includes=account_content.layout_includes(manifest, paths),
                            progress=progress,
                            options=options,
                        ).run()
                        account_content.join_parts(target, manifest, paths, dry_run=options.dry_run)
                        problems = list(done.warnings)
                        counts = f"{done.files} files, {done.bytes} bytes"
                        changes = done.changes
                    for action, path in cleared.entries:
                        changes.add(action, path)
                    log_changes(context.log, where, changes, dry_run=options.dry_run)
                    if options.dry_run:
                        counts = "nothing (dry run)"
                    status = QueueStatus.PARTIAL if problems else QueueStatus.COMPLETED
        except BackupAbortedError:
            context.log.warning(f"{where}: stopped on request")
            self.group.end_item(item, Outcome.STOPPED.item_status, "stopped")
            return QueueStatus.ABORTED
        except (SnapkeepError, OSError) as error:
            context.log.error(f"{where}: restore failed: {failure_reason(error)}")
            self.group.end_item(item, Outcome.FAILURE.item_status, failure_reason(error))
            return QueueStatus.FAILED
        context.log_warnings(where, [*problems, *progress.warnings])
        context.log.info(f"{where}: restored {counts}")
        self.group.end_item(item, Outcome.of_status(status).item_status, "")
        return status
