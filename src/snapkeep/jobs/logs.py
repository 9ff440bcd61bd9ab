"""Run logs (API.md section 6, Logs): one log per run, as a catalog row, items and a text file.

This module is the only writer of ``logs`` and ``log_items``. A log row has the run's type
(``codes.LogType``), its status (``codes.LogStatus``: Processing while the run goes on), the job and
the queue group.

Logs are kept for the ``logs_ttl`` setting's days (``jobs.settings``): ``prune_logs(tx, home)``, which
the service calls about once an hour, deletes every finished log that ended before that, with its
items and its file (0 keeps every log; a log still Processing is never deleted). The files go after
the rows, inside the caller's transaction: should it then fail, the rows stay and read as logs
without text, and the next pass deletes them. A queue group keeps the ``log_id`` of a deleted log.

Every line is written twice: to ``<home>/logs/<log id>.log`` (the text that
``getLog content=1`` returns) and as a ``log_items`` row (level 1 info, 2 warning, 3 error) for
``listLogItems``. Writing the file never fails a run: a file error is reported once in the items.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update

from snapkeep.clock import isoformat
from snapkeep.errors import ConflictError, NotFoundError
from snapkeep.home import make_private, open_private
from snapkeep.ids import new_id
from snapkeep.jobs import settings
from snapkeep.jobs.catalog import Catalog, Transaction
from snapkeep.jobs.codes import LogLevel, LogStatus, LogType, QueueStatus
from snapkeep.jobs.migrations import schema

_service_log = logging.getLogger(__name__)

INFO, WARNING, ERROR = LogLevel.INFO, LogLevel.WARNING, LogLevel.ERROR
FOLDER = "logs"
_MICRO = _dt.timedelta(microseconds=1)


def log_path(home: Path, log_id: str) -> Path:
    """The text file of log ``log_id``."""
    return Path(home) / FOLDER / f"{log_id}.log"


#: error lines a run log keeps in memory for its alert
FIRST_ERRORS = 3


class RunLog:
    """The log of one run; thread-safe. Create with ``RunLog.start``."""

    def __init__(self, catalog: Catalog, home: Path, log_id: str) -> None:
        self.catalog = catalog
        self.id = log_id
        self.path = log_path(home, log_id)
        self._lock = threading.Lock()
        self._file_failed = False
        self.counts: dict[int, int] = {INFO: 0, WARNING: 0, ERROR: 0}
        #: the first error lines (up to ``FIRST_ERRORS``): why a run failed, for its alert
        self.first_errors: list[str] = []
        self._last = _dt.datetime.min.replace(tzinfo=_dt.UTC)

    @classmethod
    def start(
        cls,
        catalog: Catalog,
        home: Path,
        *,
        log_type: LogType,
        owner: str,
        name: str,
        job_id: str | None,
        group_id: str,
    ) -> RunLog:
        """Create the log row (status Processing) and its file. Raises CatalogError."""
        with catalog.transaction() as tx:
            log_id = new_id(tx.clock)
            tx.connection.execute(
                schema.logs.insert().values(
                    id=log_id,
                    type=int(log_type),
                    status=int(LogStatus.PROCESSING),
                    job_id=job_id,
                    queue_group_id=group_id,
                    owner=owner,
                    created=tx.clock.now(),
                    document={"name": name},
                )
            )
        return cls(catalog, home, log_id)

    def write(self, level: LogLevel | int, message: str) -> None:
        """Add one line (each line of a multi-line ``message`` is its own item)."""
        level = LogLevel(level)
        with self._lock:
            now = self.catalog.clock.now()
            lines = message.splitlines() or [""]
            self.counts[level] = self.counts.get(level, 0) + len(lines)
            if level == ERROR and len(self.first_errors) < FIRST_ERRORS:
                self.first_errors.extend(lines[: FIRST_ERRORS - len(self.first_errors)])
            self._append_file(now, level, lines)
            with self.catalog.transaction() as tx:
                for offset, line in enumerate(lines):
                    # at least a microsecond apart, so items sort in the order written
                    moment = max(now + _dt.timedelta(microseconds=offset), self._last + _MICRO)
                    self._last = moment
                    self._insert_item(tx, level, moment, line)

    def _insert_item(self, tx: Transaction, level: LogLevel, moment: _dt.datetime, line: str) -> None:
        tx.connection.execute(
            schema.log_items.insert().values(
                id=new_id(tx.clock),
                log_id=self.id,
                level=int(level),
                created=moment,
                message=line,
                document={},
            )
        )

    def info(self, message: str) -> None:
        self.write(INFO, message)

    def warning(self, message: str) -> None:
        self.write(WARNING, message)

    def error(self, message: str) -> None:
        self.write(ERROR, message)

    def _append_file(self, now: _dt.datetime, level: LogLevel, lines: list[str]) -> None:
        if self._file_failed:
            return
        stamp = isoformat(now)
        text = "".join(f"{stamp} [{LogLevel.label_of(level)}] {line}\n" for line in lines)
        try:
            # 0700 folder, 0600 file whatever the umask: run logs name paths of backed-up files
            make_private(self.path.parent)
            descriptor = open_private(self.path, os.O_WRONLY | os.O_APPEND)
            with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as error:
            self._file_failed = True
            with self.catalog.transaction() as tx:
                self._insert_item(
                    tx, WARNING, now, f"cannot write the log file {self.path}: {error.strerror}"
                )

    def finish(self, queue_status: QueueStatus, *, summary: dict[str, Any] | None = None) -> None:
        """Record the run's final status (given as its queue group's) and end time."""
        with self.catalog.transaction() as tx:
            row = tx.connection.execute(select(schema.logs).where(schema.logs.c.id == self.id)).one()
            document = {**dict(row.document or {}), **(summary or {})}
            tx.connection.execute(
                update(schema.logs)
                .where(schema.logs.c.id == self.id)
                .values(status=int(LogStatus.of_queue(queue_status)), ended=tx.clock.now(), document=document)
            )


def _present(row: Any) -> dict[str, Any]:
    document = dict(row.document or {})
    return {
        "_id": row.id,
        "type": row.type,
        "type_name": LogType.label_of(row.type),
        "status": row.status,
        "status_name": LogStatus.label_of(row.status),
        "name": document.get("name", ""),
        "job_id": row.job_id,
        "queue_group_id": row.queue_group_id,
        "owner": row.owner,
        "created": isoformat(row.created),
        "ended": isoformat(row.ended),
        "start_time": isoformat(row.created),
        "end_time": isoformat(row.ended),
        "execution_time": int((row.ended - row.created).total_seconds()) if row.ended else None,
        # JetBackup's scripts find a job's logs with find[info.ID]=JOB (and find[info.Backup Job]=NAME)
        "info": {
            **{key: value for key, value in document.items() if key != "name"},
            **({"ID": row.job_id, "Backup Job": document.get("name", "")} if row.job_id else {}),
        },
    }


def list_logs(tx: Transaction) -> list[dict[str, Any]]:
    """Every log, newest first, in API shape."""
    table = schema.logs
    query = select(table).order_by(table.c.created.desc(), table.c.id.desc())
    return [_present(row) for row in tx.connection.execute(query)]


def get_log(tx: Transaction, log_id: str) -> dict[str, Any]:
    """One log in API shape. Raises NotFoundError."""
    row = tx.connection.execute(select(schema.logs).where(schema.logs.c.id == log_id)).first()
    if row is None:
        raise NotFoundError(kind="Log", ident=log_id)
    return _present(row)


def log_text(home: Path, log_id: str) -> str:
    """The text of log ``log_id``'s file ("" when it has none yet)."""
    try:
        return log_path(home, log_id).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def list_items(tx: Transaction, log_id: str) -> list[dict[str, Any]]:
    """The lines of log ``log_id``, oldest first. Raises NotFoundError for an unknown log."""
    get_log(tx, log_id)
    table = schema.log_items
    query = select(table).where(table.c.log_id == log_id).order_by(table.c.created, table.c.id)
    return [_present_item(row) for row in tx.connection.execute(query)]


def _present_item(row: Any) -> dict[str, Any]:
    return {
        "_id": row.id,
        "log_id": row.log_id,
        "level": row.level,
        "level_name": LogLevel.label_of(row.level),
        "created": isoformat(row.created),
        "message": row.message,
    }


def get_item(tx: Transaction, item_id: str) -> dict[str, Any]:
    """One line of a log (``getLogItem``). Raises NotFoundError."""
    table = schema.log_items
    row = tx.connection.execute(select(table).where(table.c.id == item_id)).first()
    if row is None:
        raise NotFoundError(kind="Log Item", ident=item_id)
    return _present_item(row)


def log_of_item(tx: Transaction, item_id: str) -> str | None:
    """The log line ``item_id`` belongs to (None: no such line)."""
    table = schema.log_items
    found = tx.connection.execute(select(table.c.log_id).where(table.c.id == item_id)).scalar_one_or_none()
    return None if found is None else str(found)


def delete_log(tx: Transaction, home: Path, log_id: str) -> None:
    """Delete a finished log, its lines and its text file (``deleteLog``). Raises NotFoundError, and
    ConflictError for a log whose run is still going."""
    log = get_log(tx, log_id)
    if log["status"] == LogStatus.PROCESSING:
        raise ConflictError(f"Log {log_id} belongs to a run that is still going: stop it or wait")
    tx.connection.execute(delete(schema.log_items).where(schema.log_items.c.log_id == log_id))
    tx.connection.execute(delete(schema.logs).where(schema.logs.c.id == log_id))
    with contextlib.suppress(OSError):  # the row is gone; a file left behind is only disk space
        log_path(home, log_id).unlink(missing_ok=True)


def mark_never_finished(tx: Transaction, group_id: str) -> None:
    """The Processing logs of queue group ``group_id`` (whose worker died) become Never Finished."""
    table = schema.logs
    tx.connection.execute(
        update(table)
        .where(table.c.queue_group_id == group_id, table.c.status == int(LogStatus.PROCESSING))
        .values(status=int(LogStatus.NEVER_FINISHED), ended=tx.clock.now())
    )


# IDs per DELETE statement (SQLite limits the parameters of one statement)
BATCH = 500


def expired_logs(tx: Transaction, days: int) -> list[str]:
    """The IDs of the finished logs that ended more than ``days`` days ago, oldest first."""
    logs = schema.logs
    cutoff = tx.clock.now() - _dt.timedelta(days=days)
    query = (
        select(logs.c.id)
        .where(logs.c.status != int(LogStatus.PROCESSING), logs.c.ended.is_not(None), logs.c.ended < cutoff)
        .order_by(logs.c.ended, logs.c.id)
    )
    return [str(ident) for ident in tx.connection.execute(query).scalars()]


def prune_logs(tx: Transaction, home: Path) -> list[str]:
    """Delete the logs older than the ``logs_ttl`` setting (see the module docstring)."""
    days = settings.general(tx).logs_ttl
    if days == 0:
        return []
    expired = expired_logs(tx, days)
    if not expired:
        return []
    for start in range(0, len(expired), BATCH):
        batch = expired[start : start + BATCH]
        tx.connection.execute(delete(schema.log_items).where(schema.log_items.c.log_id.in_(batch)))
        tx.connection.execute(delete(schema.logs).where(schema.logs.c.id.in_(batch)))
    for ident in expired:
        try:
            log_path(home, ident).unlink(missing_ok=True)
        except OSError as error:
            _service_log.warning("log %s: cannot remove its file: %s", ident, error.strerror or error)
    _service_log.info("deleted %d run logs older than %d days", len(expired), days)
    return expired
