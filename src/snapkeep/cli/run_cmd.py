"""``snapkeep run JOB_ID``: run a backup job now, in the foreground, with a progress bar.

The run is a queue group like any other (``listQueueGroups`` shows it) executed in this process by
the same runner the service uses, so it works with or without ``snapkeep serve``. Ctrl-C stops it
cleanly (nothing committed, status 103). Exit 0 when the run completed, 1 otherwise. The progress
bar is drawn only on a terminal; piped output gets the final line alone.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from snapkeep.cli.main import Context
from snapkeep.cli.output import console, item_bar
from snapkeep.errors import ConflictError
from snapkeep.jobs import abbreviations, logs, queue
from snapkeep.jobs.access import ROOT_PRINCIPAL
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.codes import LogLevel, QueueStatus
from snapkeep.jobs.queue import claim, worker_identity
from snapkeep.jobs.runs import execute_group
from snapkeep.jobs.users import ROOT_ID

STATUS_EXIT: dict[int, int] = {QueueStatus.COMPLETED: 0}  # any other final status exits 1


def exit_with(status: int) -> NoReturn:
    """End the command with the exit code of a run's final queue ``status``."""
    sys.exit(STATUS_EXIT.get(status, 1))


@contextmanager
def progress_display(label: str, unit: str | None = None) -> Iterator[Callable[[dict[str, int]], None]]:
    """A callback drawing a rich progress bar on a terminal (a no-op when output is piped): bytes,
    files, throughput and time left; or, with ``unit`` (a reindex's "repositories"), the group's item
    counts (``completed`` of ``total``)."""
    if not sys.stdout.isatty():
        yield lambda _progress: None
        return
    if unit is not None:
        with item_bar(label, unit) as items:

            def count(progress: dict[str, int]) -> None:
                items(progress.get("completed", 0), progress.get("total") or None, None)

            yield count
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[files]} files"),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None, files=0)

        def update(progress: dict[str, int]) -> None:
            total = progress.get("total_bytes") or None
            bar.update(
                task,
                completed=progress.get("completed_bytes", 0),
                total=total,
                files=progress.get("completed_files", 0),
            )

        yield update


@contextmanager
def stop_on_interrupt() -> Iterator[threading.Event]:
    """An event set by SIGINT/SIGTERM while the block runs (the run then stops cleanly)."""
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def execute_in_foreground(
    context: Context, catalog: Catalog, group_id: str, label: str, *, unit: str | None = None
) -> int:
    """Execute a queue group here with a progress bar (of bytes, or of ``unit`` items); print and
    return its status."""
    with stop_on_interrupt() as stop, progress_display(label, unit) as update:
        status = execute_group(catalog, context.home, group_id, stop=stop, on_progress=update)
    with catalog.transaction(write=False) as tx:
        group = queue.get_group(tx, group_id)
    log_id = group["data"].get("log_id", "-")
    click.echo(f"{label}: {group['status_name']} (status {status}, queue group {group_id}, log {log_id})")
    if status != QueueStatus.COMPLETED and log_id != "-":
        explain(catalog, str(log_id), context)
    return status


#: error lines of a run's log printed when it did not complete
EXPLAINED_LINES = 10


def explain(catalog: Catalog, log_id: str, context: Context) -> None:
    """Say why a run did not complete: its log's error (else warning) lines, and how to read it all."""
    with catalog.transaction(write=False) as tx:
        items = logs.list_items(tx, log_id)
    for level in (LogLevel.ERROR, LogLevel.WARNING):
        lines = [str(item["message"]) for item in items if item["level"] == level]
        if lines:
            click.echo(f"{LogLevel(level).label.lower()}s in the log:", err=True)
            for line in lines[:EXPLAINED_LINES]:
                click.echo(f"  {line}", err=True)
            if len(lines) > EXPLAINED_LINES:
                click.echo(f"  ... and {len(lines) - EXPLAINED_LINES} more", err=True)
            break
    click.echo(f"the whole log: snapkeep --home {context.home} logs show {log_id[-8:]}", err=True)


@click.command("run")
@click.argument("job_id")
@click.pass_obj
def run_command(context: Context, job_id: str) -> None:
    """Run backup job JOB_ID (or a unique start or end of it, 6 characters or more) now, in the foreground."""
    catalog = Catalog.open(context.home, context.catalog_url)
    try:
        with catalog.transaction() as tx:
            if abbreviations.is_abbreviation(job_id):
                job_id = abbreviations.resolve(tx, ROOT_PRINCIPAL, "jobs", job_id, "JOB_ID")
            job = tx.require("jobs", job_id, "Backup Job", lock=True)
            try:
                group = queue.enqueue_backup(tx, job, owner=ROOT_ID)
            except ConflictError:
                # A `snapkeep run` killed (or stopped by a full disk) left its group Processing:
                # recover it as the service does when it starts (104 Never Finished), then queue.
                if not queue.mark_never_finished(tx):
                    raise
                group = queue.enqueue_backup(tx, job, owner=ROOT_ID)
            # ours from the start: a service never picks it up
            claim(tx, group["_id"], worker=worker_identity())
        status = execute_in_foreground(context, catalog, group["_id"], f"Backup Job {job['name']!r}")
    finally:
        catalog.close()
    exit_with(status)
