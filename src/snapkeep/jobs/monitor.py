"""The job monitor (API.md section 4, ``monitor``): alerts for jobs that stopped backing up.

Interface (for the daemon's monitor pass and the runner)
--------------------------------------------------------
``check_jobs(catalog, now) -> list[Alert]``
    one pass over every job, in one transaction; returns the alerts raised now (send them with
    ``jobs.notify`` afterwards). Conditions, each a critical alert raised once per incident:

    - ``monitor.notran`` = N days: no successful run (queue status 100) for N days, counted from the
      end of the last successful run, or from the job's creation when it never had one. Disabled jobs
      are not checked (they are never scheduled). Incident ``monitor.notran:<job id>``: over when a
      successful run happens (or the setting is turned off, or the job is deleted).
    - ``monitor.ranfor`` = N days: one run (queue group) Processing for more than N days. Incident
      ``monitor.ranfor:<queue group id>``: over when that run ends.

    Incidents whose condition no longer holds are resolved in the same pass, so the next time the
    condition holds raises a new alert.
``run_finished(tx, job_id, group_id, status)``
    the runner's hook at the end of a run: resolves the run's ``ranfor`` incident and, for a
    successful run, the job's ``notran`` incident, without waiting for the next pass.

``0`` days turns a condition off. Days are 24-hour periods.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from sqlalchemy import func, select

from snapkeep.clock import isoformat
from snapkeep.jobs import alerts
from snapkeep.jobs.alerts import Alert
from snapkeep.jobs.catalog import Catalog, Transaction
from snapkeep.jobs.codes import QueueStatus, QueueType
from snapkeep.jobs.migrations import schema

PREFIX = "monitor."
NOTRAN = "monitor.notran:"
RANFOR = "monitor.ranfor:"
DAY = _dt.timedelta(days=1)


def _days(document: dict[str, Any], name: str) -> int:
    monitor = document.get("monitor") or {}
    try:
        return max(0, int(monitor.get(name) or 0))
    except (TypeError, ValueError):
        return 0


def _plural(days: int) -> str:
    return f"{days} day" if days == 1 else f"{days} days"


def _last_successes(tx: Transaction) -> dict[str, _dt.datetime]:
    table = schema.queue_groups
    query = (
        select(table.c.job_id, func.max(func.coalesce(table.c.ended, table.c.started, table.c.created)))
        .where(
            table.c.type == int(QueueType.BACKUP),
            table.c.status == int(QueueStatus.COMPLETED),
            table.c.job_id.is_not(None),
        )
        .group_by(table.c.job_id)
    )
    result: dict[str, _dt.datetime] = {}
    for job_id, moment in tx.connection.execute(query):
        if isinstance(moment, str):  # SQLite may hand an aggregate back as text
            moment = _dt.datetime.fromisoformat(moment)
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.UTC)
        result[job_id] = moment
    return result


def _notran(tx: Transaction, job: Any, days: int, last: _dt.datetime | None) -> Alert | None:
    if last is None:
        history = f"it has not completed a run since it was created on {isoformat(job.created)}"
    else:
        history = f"its last successful run ended {isoformat(last)}"
    return alerts.raise_alert(
        tx,
        title="Backup Job has not run",
        message=(
            f"Backup Job {job.name!r} ({job.id}) has had no successful run for {_plural(days)}: {history}"
        ),
        level=alerts.CRITICAL,
        incident=NOTRAN + job.id,
    )


def _ranfor(tx: Transaction, job: Any, days: int, group: Any) -> Alert | None:
    return alerts.raise_alert(
        tx,
        title="Backup Job is running too long",
        message=(
            f"Backup Job {job.name!r} ({job.id}) has been running for more than {_plural(days)}: "
            f"queue group {group.id} started {isoformat(group.started)}"
        ),
        level=alerts.CRITICAL,
        incident=RANFOR + group.id,
    )


def check_jobs(catalog: Catalog, now: _dt.datetime) -> list[Alert]:
    """One monitor pass at ``now`` (aware); the alerts raised. Raises CatalogError when the catalog
    cannot be read or written."""
    raised: list[Alert] = []
    holding: set[str] = set()
    with catalog.transaction() as tx:
        successes = _last_successes(tx)
        groups = schema.queue_groups
        processing: dict[str, list[Any]] = {}
        query = select(groups).where(
            groups.c.type == int(QueueType.BACKUP), groups.c.status == int(QueueStatus.PROCESSING)
        )
        for group in tx.connection.execute(query):
            processing.setdefault(group.job_id, []).append(group)
        for job in tx.connection.execute(select(schema.jobs).order_by(schema.jobs.c.created)):
            document = dict(job.document or {})
            notran, ranfor = _days(document, "notran"), _days(document, "ranfor")
            last = successes.get(job.id)
            if notran and not document.get("disabled") and now - (last or job.created) >= notran * DAY:
                holding.add(NOTRAN + job.id)
                alert = _notran(tx, job, notran, last)
                if alert is not None:
                    raised.append(alert)
            for group in processing.get(job.id, []) if ranfor else []:
                started = group.started or group.created
                if now - started > ranfor * DAY:
                    holding.add(RANFOR + group.id)
                    alert = _ranfor(tx, job, ranfor, group)
                    if alert is not None:
                        raised.append(alert)
        for key in alerts.open_incidents(tx, PREFIX):
            if key not in holding:
                alerts.resolve(tx, key)
    return raised


def run_finished(tx: Transaction, job_id: str, group_id: str, status: int) -> None:
    """End the incidents a finished run ends: its ``ranfor``, and the job's ``notran`` when it succeeded."""
    alerts.resolve(tx, RANFOR + group_id)
    if status == QueueStatus.COMPLETED:
        alerts.resolve(tx, NOTRAN + job_id)
