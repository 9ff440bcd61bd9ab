"""Rendering API objects for people: rich tables of backup jobs, and the words behind the numbers.

The API speaks in integers and bitmasks (API.md section 4); these tables say "Directories",
"Incremental", "Daily at 02:00". Nothing here calls the dispatcher or reads the catalog.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from snapkeep.cli.humane import local_time
from snapkeep.jobs.codes import JobType, ScheduleType, Structure

JOB_TYPES = JobType.labels()
STRUCTURES = Structure.labels()
SCHEDULE_TYPES = {**ScheduleType.labels(), ScheduleType.AFTER_JOB: "After job"}  # short for tables
CONTAINS_BITS = {
    1: "config",
    2: "home",
    4: "databases",
    8: "email",
    16: "cron",
    32: "domains",
    64: "certificates",
    128: "database users",
    256: "FTP",
}
EVERYTHING = 511
NONE_SHOWN = "-"


class CallFailed(click.ClickException):
    """A dispatcher call answered ``success: 0``; exits 2 like ``snapkeep api``."""

    exit_code = 2


def require_success(answer: Mapping[str, Any]) -> Any:
    """Return an envelope's ``data``. Raises CallFailed with the envelope's message on failure."""
    if answer.get("success") != 1:
        raise CallFailed(str(answer.get("message") or "the call failed"))
    return answer.get("data")


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def named(table: Mapping[int, str], value: Any) -> str:
    """``2`` -> ``"Directories"``; an unknown or missing value is shown as it is."""
    number = _as_int(value)
    if number is not None and number in table:
        return table[number]
    return NONE_SHOWN if value is None else str(value)


def flag(value: Any) -> str:
    """A 1/null flag: ``yes`` or blank."""
    return "yes" if value not in (None, 0, "0", False, "") else ""


def when(value: Any) -> str:
    """An ISO-8601 time in the local zone with its name (``2026-12-05 13:45:00 CET``), or ``-``."""
    return local_time(str(value) if value else None)


def contains_text(value: Any) -> str:
    """The ``contains`` bitmask as words (``everything`` for 511)."""
    number = _as_int(value)
    if number is None:
        return NONE_SHOWN
    if number & EVERYTHING == EVERYTHING:
        return "everything"
    words = [word for bit, word in CONTAINS_BITS.items() if number & bit]
    return ", ".join(words) or "nothing"


def listing(values: Any) -> str:
    """A list as comma-separated text, ``-`` when empty."""
    if not values:
        return NONE_SHOWN
    if isinstance(values, str):
        return values
    return ", ".join(str(value) for value in values)


def schedules_text(schedules: Iterable[Mapping[str, Any]] | None, separator: str = ", ") -> str:
    """Each schedule as ``name (Daily, keep 7)``."""
    parts = []
    for schedule in schedules or []:
        label = str(schedule.get("name") or schedule.get("_id") or "?")
        details = [named(SCHEDULE_TYPES, schedule.get("type"))]
        if schedule.get("retain") is not None:
            details.append(f"keep {schedule['retain']}")
        parts.append(f"{label} ({', '.join(details)})")
    return separator.join(parts) or NONE_SHOWN


def destinations_text(job: Mapping[str, Any], separator: str = ", ") -> str:
    """The job's destinations by name, falling back to their IDs."""
    names = job.get("destination_name") or job.get("destination") or []
    return separator.join(str(name) for name in names) or NONE_SHOWN


def time_of_day(value: Any) -> str:
    """HHMM integer -> ``HH:MM``."""
    number = _as_int(value)
    if number is None:
        return NONE_SHOWN
    return f"{number // 100:02d}:{number % 100:02d}"


#: characters of an ID that tables show: its random end (the start is the creation second, shared by
#: objects made together); commands and the API take it back (docs/api-decisions.md, abbreviated IDs)
SHORT_ID = 8


def short_id(ident: Any) -> str:
    """The end of an ID that tables show."""
    return str(ident or "")[-SHORT_ID:]


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the API's answer as JSON, for scripts."
)


def print_json(data: Any) -> None:
    """The ``data`` of an answer as JSON on stdout (full IDs, ISO-8601 UTC times)."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def jobs_table(jobs: Iterable[Mapping[str, Any]], total: int | None = None) -> Table:
    """One row per backup job."""
    table = Table(title="Backup jobs" if total is None else f"Backup jobs ({total})")
    table.add_column("ID", no_wrap=True)
    for column in ("Name", "Type", "Structure", "Destinations", "Schedules", "Next run", "Last run"):
        table.add_column(column, overflow="fold")
    table.add_column("Running")
    table.add_column("Disabled")
    for job in jobs:
        table.add_row(
            short_id(job.get("_id")),
            str(job.get("name", "")),
            named(JOB_TYPES, job.get("type")),
            named(STRUCTURES, job.get("structure")),
            destinations_text(job),
            schedules_text(job.get("schedules")),
            when(job.get("next_run")),
            when(job.get("last_run")),
            flag(job.get("running")),
            flag(job.get("disabled")),
        )
    return table


def job_table(job: Mapping[str, Any]) -> Table:
    """One backup job as a two-column field/value table."""
    table = Table(title=f"Backup job {job.get('name', '')}", show_header=False)
    table.add_column("Field", style="bold")
    table.add_column("Value", overflow="fold")
    monitor = job.get("monitor") or {}
    rows = [
        ("ID", str(job.get("_id", ""))),
        ("Name", str(job.get("name", ""))),
        ("Type", named(JOB_TYPES, job.get("type"))),
        ("Structure", named(STRUCTURES, job.get("structure"))),
        ("Contains", contains_text(job.get("contains"))),
        ("Encrypted", flag(job.get("encrypted"))),
        ("Destinations", destinations_text(job, "\n")),
        ("Schedules", schedules_text(job.get("schedules"), "\n")),
        ("Time of day", time_of_day(job.get("time"))),
        ("Include", listing(job.get("include_list"))),
        ("Exclude", listing(job.get("exclude_list"))),
        ("Filter groups", listing([" or ".join(map(str, group)) for group in job.get("filters") or []])),
        ("Hooks", listing([hook.get("name", hook.get("_id")) for hook in job.get("hooks") or []])),
        ("Monitor", f"not ran: {monitor.get('notran', 0)} days, ran for: {monitor.get('ranfor', 0)} days"),
        ("Manual runs kept", str(job.get("manually_retain", NONE_SHOWN))),
        ("Owner", str(job.get("owner_name") or job.get("owner") or NONE_SHOWN)),
        ("Next run", when(job.get("next_run"))),
        ("Last run", when(job.get("last_run"))),
        ("Running", flag(job.get("running"))),
        ("Disabled", flag(job.get("disabled"))),
    ]
    for field, value in rows:
        table.add_row(field, value)
    return table


def console() -> Console:
    """The console tables are printed on (wide enough for IDs when not on a terminal)."""
    return Console(soft_wrap=False, width=None if _is_terminal() else 200)


def _is_terminal() -> bool:
    return sys.stdout.isatty()


#: update(completed, total, description=None) of an item bar
ItemUpdate = Callable[[int, int | None, str | None], None]


@contextmanager
def item_bar(label: str, unit: str) -> Iterator[ItemUpdate]:
    """A bar of counted items (``3/12 repositories``) with the time elapsed and left, on a terminal
    only: yields ``update(completed, total, description)``; a no-op when stdout is not a terminal."""
    if not _is_terminal():

        def nothing(_done: int, _total: int | None, _description: str | None = None) -> None:
            return None

        yield nothing
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None, description: str | None = None) -> None:
            bar.update(task, completed=done, total=total, description=description or label)

        yield update


@contextmanager
def step_bar(label: str, steps: int) -> Iterator[Callable[[str], None]]:
    """A bar over a command's ``steps`` (``dr export``: read, derive the key and seal, write):
    yields ``step(name)``, called as each one starts; a no-op when stdout is not a terminal."""
    with item_bar(label, "steps") as update:
        done = 0

        def step(name: str) -> None:
            nonlocal done
            update(done, steps, f"{label}: {name}")
            done += 1

        yield step
        update(steps, steps, label)
