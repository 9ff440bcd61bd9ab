"""Alerts (API.md section 6): ``{_id, title, message, level, created}`` in the catalog, one per incident.

Interface (for the runner, the monitor and the API)
---------------------------------------------------
All functions take an open catalog ``Transaction``; notifications (``jobs.notify``) go out after it
commits, never inside it.

``raise_alert(tx, title=..., message=..., level=CRITICAL, incident=None) -> Alert | None``
    store a new alert. With an ``incident`` key (``"monitor.notran:<job>"``) the alert is raised only
    when that incident is not already open, and the incident stays open until ``resolve``: a condition
    that holds for days raises one alert, not one per check. Returns None when nothing was raised.
``resolve(tx, incident) -> bool``
    the condition is over: the next time it holds raises a new alert.
``open_incidents(tx, prefix)`` the open incident keys starting with ``prefix``, with their alert IDs.
``run_alert(tx, job, status, group_id=..., detail="")``
    the alert a finished run raises by its queue status: 101 warning, 102 critical, 103 warning
    (a run skipped by a hook raises none: do not call this), 104 critical; 100 raises nothing.
``never_finished_alert(tx, group_id=..., group_type=..., job=None) -> Alert | None``
    the alert for a run the service died under (104, ``queue.mark_never_finished``): critical, like a
    failed run, because nothing it was doing can be trusted to be complete. Backups name the job;
    restores, downloads and reindexes name their queue group.
``list_alerts(tx)`` (newest first), ``get_alert(tx, id)``, ``clear_alerts(tx, ids=None)``.

Clearing an alert deletes it but leaves its incident open, so clearing does not make the monitor
raise the same alert again while the condition still holds.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from snapkeep.clock import isoformat
from snapkeep.errors import NotFoundError, ValidationError
from snapkeep.ids import new_id
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.codes import AlertLevel, QueueStatus, QueueType
from snapkeep.jobs.migrations import schema

INFO, WARNING, CRITICAL = AlertLevel.INFO, AlertLevel.WARNING, AlertLevel.CRITICAL
LABEL = "Alert"
TITLE_LIMIT = 255

# queue status of a finished run -> (level, what happened); 100 Completed raises nothing
RUN_ALERTS: dict[int, tuple[AlertLevel, str]] = {
    QueueStatus.PARTIAL: (WARNING, "partially completed"),
    QueueStatus.FAILED: (CRITICAL, "failed"),
    QueueStatus.ABORTED: (WARNING, "aborted"),
    QueueStatus.NEVER_FINISHED: (CRITICAL, "never finished"),
}


@dataclass(frozen=True)
class Alert:
    """One stored alert."""

    id: str
    title: str
    message: str
    level: int
    created: _dt.datetime
    incident: str | None = None

    @property
    def level_name(self) -> str:
        return AlertLevel.label_of(self.level)

    def as_api(self) -> dict[str, Any]:
        """The API object."""
        return {
            "_id": self.id,
            "title": self.title,
            "message": self.message,
            "level": self.level,
            "created": isoformat(self.created),
        }


def _alert(row: Any) -> Alert:
    document = dict(row.document or {})
    return Alert(row.id, row.title, row.message, row.level, row.created, document.get("incident"))


def raise_alert(
    tx: Transaction,
    *,
    title: str,
    message: str,
    level: int = CRITICAL,
    incident: str | None = None,
) -> Alert | None:
    """Store an alert; None when its ``incident`` is already open. Raises ValidationError for a bad
    level or an empty title."""
    if level not in AlertLevel.labels():
        raise ValidationError(
            field="level", problem=f"must be 1 (info), 2 (warning) or 3 (critical) (got {level!r})"
        )
    if not title.strip():
        raise ValidationError(field="title", problem="must not be empty")
    now = tx.clock.now()
    if incident is not None:
        table = schema.incidents
        if tx.connection.execute(select(table.c.key).where(table.c.key == incident)).first() is not None:
            return None
    ident = new_id(tx.clock)
    tx.connection.execute(
        schema.alerts.insert().values(
            id=ident,
            level=level,
            title=title[:TITLE_LIMIT],
            message=message,
            created=now,
            document={"incident": incident},
        )
    )
    if incident is not None:
        tx.connection.execute(schema.incidents.insert().values(key=incident, alert_id=ident, opened=now))
    return Alert(ident, title[:TITLE_LIMIT], message, level, now, incident)


def resolve(tx: Transaction, incident: str) -> bool:
    """Close ``incident``; False when it was not open."""
    table = schema.incidents
    return bool(tx.connection.execute(delete(table).where(table.c.key == incident)).rowcount)


def open_incidents(tx: Transaction, prefix: str = "") -> dict[str, str]:
    """Open incident keys starting with ``prefix`` -> the ID of the alert each raised."""
    table = schema.incidents
    query = select(table.c.key, table.c.alert_id)
    if prefix:
        query = query.where(table.c.key.startswith(prefix, autoescape=True))
    return {row.key: row.alert_id for row in tx.connection.execute(query)}


def run_alert(
    tx: Transaction, job: Mapping[str, Any], status: int, *, group_id: str, detail: str = ""
) -> Alert | None:
    """The alert for a finished run of ``job`` with queue ``status``; None for a completed run."""
    if status not in RUN_ALERTS:
        return None
    level, what = RUN_ALERTS[status]
    name, ident = job.get("name", ""), job.get("_id", "")
    message = f"Backup Job {name!r} ({ident}) {what} (queue group {group_id})"
    if detail:
        message += f": {detail}"
    return raise_alert(tx, title=f"Backup Job {what}", message=message, level=level)


_GROUP_LABELS: dict[int, str] = {
    QueueType.RESTORE: "Restore",
    QueueType.DOWNLOAD: "Download",
    QueueType.REINDEX: "Reindex",
}


def never_finished_alert(
    tx: Transaction, *, group_id: str, group_type: int, job: Mapping[str, Any] | None = None
) -> Alert | None:
    """The critical alert of a run that ended 104 Never Finished (the service died under it)."""
    detail = "the service stopped while it ran; start it again and check the run's log"
    if group_type == QueueType.BACKUP and job is not None:
        return run_alert(tx, job, QueueStatus.NEVER_FINISHED, group_id=group_id, detail=detail)
    level, what = RUN_ALERTS[QueueStatus.NEVER_FINISHED]
    label = _GROUP_LABELS.get(group_type, "Backup Job")
    return raise_alert(
        tx, title=f"{label} {what}", message=f"{label} (queue group {group_id}) {what}: {detail}", level=level
    )


def list_alerts(tx: Transaction) -> list[Alert]:
    """Every alert, newest first."""
    table = schema.alerts
    query = select(table).order_by(table.c.created.desc(), table.c.id.desc())
    return [_alert(row) for row in tx.connection.execute(query)]


def get_alert(tx: Transaction, ident: str) -> Alert:
    """The alert ``ident``. Raises NotFoundError."""
    row = tx.connection.execute(select(schema.alerts).where(schema.alerts.c.id == ident)).first()
    if row is None:
        raise NotFoundError(kind=LABEL, ident=ident)
    return _alert(row)


def clear_alerts(tx: Transaction, ids: Sequence[str] | None = None) -> int:
    """Delete the alerts ``ids`` (every alert when None); return how many. Raises NotFoundError naming
    the first ID that does not exist (and deletes nothing: the caller's transaction rolls back)."""
    table = schema.alerts
    if ids is None:
        return int(tx.connection.execute(delete(table)).rowcount)
    count = 0
    for ident in dict.fromkeys(ids):
        if tx.connection.execute(delete(table).where(table.c.id == ident)).rowcount != 1:
            raise NotFoundError(kind=LABEL, ident=ident)
        count += 1
    return count


def prune_alerts(tx: Transaction, before: _dt.datetime) -> int:
    """Delete the alerts raised before ``before`` whose incident is not open any more (the daemon's
    pruning by the ``logs_ttl`` setting, issue 16); how many. Index ``ix_alerts_created``."""
    table, incidents = schema.alerts, schema.incidents
    still_open = select(incidents.c.alert_id).where(incidents.c.alert_id.is_not(None))
    query = delete(table).where(table.c.created < before, table.c.id.not_in(still_open))
    return int(tx.connection.execute(query).rowcount or 0)
