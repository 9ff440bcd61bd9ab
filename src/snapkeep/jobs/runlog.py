"""Run logs (API.md section 6, Logs): one log per run, as a catalog row, items and a text file.

A log row (``logs``) has the run's type (1 Backup, 2 Restore, 4 Download, like its queue group), its
status (1 Completed, 2 Failed, 3 Aborted, 4 Partially Completed, 5 Never Finished, 6 Processing), the
job and the queue group. Every line is written twice: to ``<home>/logs/<log id>.log`` (the text that
``getLog content=1`` returns) and as a ``log_items`` row (level 1 info, 2 warning, 3 error) for
``listLogItems``. Writing the file never fails a run: a file error is reported once in the items.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from snapkeep.clock import isoformat
from snapkeep.errors import ConflictError, NotFoundError
from snapkeep.ids import new_id
from snapkeep.jobs.catalog import Catalog, Transaction
from snapkeep.jobs.migrations import schema

INFO, WARNING, ERROR = 1, 2, 3
LEVEL_NAMES = {INFO: "info", WARNING: "warning", ERROR: "error"}
LOG_STATUSES = {
    1: "Completed",
    2: "Failed",
    3: "Aborted",
    4: "Partially Completed",
    5: "Never Finished",
    6: "Processing",
}
PROCESSING = 6
# queue status of a finished group -> log status
FROM_QUEUE = {100: 1, 101: 4, 102: 2, 103: 3, 104: 5}
LOG_TYPES = {1: "Backup", 2: "Restore", 4: "Download", 8: "Reindex"}
FOLDER = "logs"
_MICRO = _dt.timedelta(microseconds=1)


def log_path(home: Path, log_id: str) -> Path:
    """The text file of log ``log_id``."""
    return Path(home) / FOLDER / f"{log_id}.log"


class RunLog:
    """The log of one run; thread-safe. Create with ``RunLog.start``."""

    def __init__(self, catalog: Catalog, home: Path, log_id: str) -> None:
        self.catalog = catalog
        self.id = log_id
        self.path = log_path(home, log_id)
        self._lock = threading.Lock()
        self._file_failed = False
        self.counts = {INFO: 0, WARNING: 0, ERROR: 0}
        self._last = _dt.datetime.min.replace(tzinfo=_dt.UTC)

    @classmethod
    def start(
        cls,
        catalog: Catalog,
        home: Path,
        *,
        log_type: int,
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
                    type=log_type,
                    status=PROCESSING,
                    job_id=job_id,
                    queue_group_id=group_id,
                    owner=owner,
                    created=tx.clock.now(),
                    document={"name": name},
                )
            )
        return cls(catalog, home, log_id)

    def write(self, level: int, message: str) -> None:
        """Add one line (each line of a multi-line ``message`` is its own item)."""
        with self._lock:
            now = self.catalog.clock.now()
            lines = message.splitlines() or [""]
            self.counts[level] = self.counts.get(level, 0) + len(lines)
            self._append_file(now, level, lines)
            with self.catalog.transaction() as tx:
                for offset, line in enumerate(lines):
                    # at least a microsecond apart, so items sort in the order written
                    moment = max(now + _dt.timedelta(microseconds=offset), self._last + _MICRO)
                    self._last = moment
                    tx.connection.execute(
                        schema.log_items.insert().values(
                            id=new_id(tx.clock),
                            log_id=self.id,
                            level=level,
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

    def _append_file(self, now: _dt.datetime, level: int, lines: list[str]) -> None:
        if self._file_failed:
            return
        stamp = isoformat(now)
        text = "".join(f"{stamp} [{LEVEL_NAMES.get(level, level)}] {line}\n" for line in lines)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as error:
            self._file_failed = True
            with self.catalog.transaction() as tx:
                tx.connection.execute(
                    schema.log_items.insert().values(
                        id=new_id(tx.clock),
                        log_id=self.id,
                        level=WARNING,
                        created=now,
                        message=f"cannot write the log file {self.path}: {error.strerror}",
                        document={},
                    )
                )

    def finish(self, queue_status: int, *, summary: dict[str, Any] | None = None) -> None:
        """Record the run's final status (a queue status, 100-104) and end time."""
        with self.catalog.transaction() as tx:
            row = tx.connection.execute(select(schema.logs).where(schema.logs.c.id == self.id)).one()
            document = {**dict(row.document or {}), **(summary or {})}
            tx.connection.execute(
                update(schema.logs)
                .where(schema.logs.c.id == self.id)
                .values(status=FROM_QUEUE.get(queue_status, 2), ended=tx.clock.now(), document=document)
            )


def _present(row: Any) -> dict[str, Any]:
    document = dict(row.document or {})
    return {
        "_id": row.id,
        "type": row.type,
        "type_name": LOG_TYPES.get(row.type, str(row.type)),
        "status": row.status,
        "status_name": LOG_STATUSES.get(row.status, str(row.status)),
        "name": document.get("name", ""),
        "job_id": row.job_id,
        "queue_group_id": row.queue_group_id,
        "owner": row.owner,
        "created": isoformat(row.created),
        "ended": isoformat(row.ended),
        "execution_time": int((row.ended - row.created).total_seconds()) if row.ended else None,
        "info": {key: value for key, value in document.items() if key != "name"},
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
    return [
        {
            "_id": row.id,
            "log_id": row.log_id,
            "level": row.level,
            "level_name": LEVEL_NAMES.get(row.level, str(row.level)),
            "created": isoformat(row.created),
            "message": row.message,
        }
        for row in tx.connection.execute(query)
    ]


# --- the queue group of a run -------------------------------------------------------------------

STATUS_PENDING, STATUS_PROCESSING = 1, 2
STOP_CHECK_SECONDS = 1.0
PROGRESS_WRITE_SECONDS = 1.0


class GroupState:
    """A queue group while a run executes it: claim, items, progress, stop requests, the end.

    ``stopping()`` is true once ``stop`` is set or ``stopQueueGroup`` asked for it (the request is a
    flag in the group's document, read at most once a second). Progress is written to the catalog
    at most once a second (and at the end); ``on_progress`` sees every change.
    """

    def __init__(
        self,
        catalog: Catalog,
        group_id: str,
        stop: threading.Event,
        on_progress: Callable[[dict[str, int]], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.id = group_id
        self.stop = stop
        self.on_progress = on_progress
        self.progress = {
            "total": 0,
            "completed": 0,
            "total_files": 0,
            "completed_files": 0,
            "total_bytes": 0,
            "completed_bytes": 0,
            "percentage": 0,
        }
        self._lock = threading.Lock()
        self._checked = -1e9
        self._written = -1e9

    def begin(self) -> Any:
        """Claim the group when it is Pending (Processing already means the caller claimed it);
        return its row. Raises NotFoundError; ConflictError when it has finished."""
        table = schema.queue_groups
        with self.catalog.transaction() as tx:
            row = tx.connection.execute(select(table).where(table.c.id == self.id).with_for_update()).first()
            if row is None:
                raise NotFoundError(kind="Queue Group", ident=self.id)
            if row.status not in (STATUS_PENDING, STATUS_PROCESSING):
                raise ConflictError(f"Queue Group {self.id} has already finished (status {row.status})")
            if row.status == STATUS_PENDING or row.started is None:
                tx.connection.execute(
                    update(table)
                    .where(table.c.id == self.id)
                    .values(status=STATUS_PROCESSING, started=row.started or tx.clock.now())
                )
            return tx.connection.execute(select(table).where(table.c.id == self.id)).one()

    def stopping(self) -> bool:
        """Whether the run should stop now."""
        if self.stop.is_set():
            return True
        now = time.monotonic()
        if now - self._checked < STOP_CHECK_SECONDS:
            return False
        self._checked = now
        table = schema.queue_groups
        with self.catalog.transaction(write=False) as tx:
            document = tx.connection.execute(select(table.c.document).where(table.c.id == self.id)).scalar()
        if document and document.get("stop_requested"):
            self.stop.set()
        return self.stop.is_set()

    def advance(self, *, force: bool = False, **amounts: int) -> None:
        """Add ``amounts`` to progress counters (``completed_bytes=n``...), then publish."""
        with self._lock:
            for key, amount in amounts.items():
                self.progress[key] += amount
            total, done = self.progress["total"], self.progress["completed"]
            self.progress["percentage"] = min(100, int(done * 100 / total)) if total else 0
            snapshot = dict(self.progress)
            write = force or time.monotonic() - self._written >= PROGRESS_WRITE_SECONDS
            if write:
                self._written = time.monotonic()
        if self.on_progress is not None:
            self.on_progress(snapshot)
        if write:
            self.update_document(progress=snapshot)

    def update_document(self, **fields: Any) -> None:
        """Merge ``fields`` into the group's document (``data`` is merged one level down)."""
        table = schema.queue_groups
        with self.catalog.transaction() as tx:
            document = dict(
                tx.connection.execute(select(table.c.document).where(table.c.id == self.id)).scalar_one()
            )
            for key, value in fields.items():
                if key == "data":
                    document["data"] = {**document.get("data", {}), **value}
                else:
                    document[key] = value
            tx.connection.execute(update(table).where(table.c.id == self.id).values(document=document))

    def add_item(self, item_type: int, name: str, **details: Any) -> str:
        """A queue item of this group (a destination of a backup, a backup of a restore), Processing."""
        with self.catalog.transaction() as tx:
            ident = new_id(tx.clock)
            tx.connection.execute(
                schema.queue_items.insert().values(
                    id=ident,
                    group_id=self.id,
                    type=item_type,
                    status=STATUS_PROCESSING,
                    created=tx.clock.now(),
                    started=tx.clock.now(),
                    document={"name": name, **details},
                )
            )
        return ident

    def end_item(self, item_id: str, status: int, message: str = "") -> None:
        """Record a queue item's final status (100-104) and why."""
        table = schema.queue_items
        with self.catalog.transaction() as tx:
            document = dict(
                tx.connection.execute(select(table.c.document).where(table.c.id == item_id)).scalar_one()
            )
            document["message"] = message
            tx.connection.execute(
                update(table)
                .where(table.c.id == item_id)
                .values(status=status, ended=tx.clock.now(), document=document)
            )

    def finish(self, tx: Transaction, status: int) -> None:
        """Record the group's final status and progress, inside the caller's transaction."""
        table = schema.queue_groups
        document = dict(
            tx.connection.execute(select(table.c.document).where(table.c.id == self.id)).scalar_one()
        )
        document["progress"] = dict(self.progress)
        document.pop("stop_requested", None)
        tx.connection.execute(
            update(table)
            .where(table.c.id == self.id)
            .values(status=status, ended=tx.clock.now(), document=document)
        )


def claim(tx: Transaction, group_id: str) -> bool:
    """Move a Pending group to Processing (this caller runs it); False when someone else has it."""
    table = schema.queue_groups
    result = tx.connection.execute(
        update(table)
        .where(table.c.id == group_id, table.c.status == STATUS_PENDING)
        .values(status=STATUS_PROCESSING, started=tx.clock.now())
    )
    return bool(result.rowcount == 1)


def list_queue_items(tx: Transaction, group_id: str) -> list[dict[str, Any]]:
    """The items of queue group ``group_id`` in API shape, oldest first."""
    table = schema.queue_items
    query = select(table).where(table.c.group_id == group_id).order_by(table.c.created, table.c.id)
    return [
        {
            "_id": row.id,
            "group_id": row.group_id,
            "type": row.type,
            "status": row.status,
            "name": dict(row.document or {}).get("name", ""),
            "message": dict(row.document or {}).get("message", ""),
            "created": isoformat(row.created),
            "started": isoformat(row.started),
            "ended": isoformat(row.ended),
        }
        for row in tx.connection.execute(query)
    ]
