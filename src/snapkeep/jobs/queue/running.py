"""A queue group while a run executes it: its claim, items, progress, stop requests and its end.

``RunningGroup`` is how the runs (``jobs.runs``) write to the queue; it is the only writer of queue
items. ``stopping()`` is true once the run's ``stop`` event is set or ``stopQueueGroup`` asked for it
(a flag in the group's document, read at most once a second). Progress is written to the catalog at
most once a second (and at the end); ``on_progress`` sees every change.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from snapkeep.clock import SYSTEM
from snapkeep.errors import ConflictError
from snapkeep.ids import new_id
from snapkeep.jobs.catalog import Catalog, Transaction
from snapkeep.jobs.codes import ItemStatus, QueueStatus, QueueType
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.queue.groups import _row, empty_progress

STOP_CHECK_SECONDS = 1.0
PROGRESS_WRITE_SECONDS = 1.0

ProgressCallback = Callable[[dict[str, int]], None]


@dataclass(frozen=True)
class GroupRecord:
    """What a run needs to know of its queue group, read when it begins."""

    id: str
    type: QueueType
    owner: str
    job_id: str | None
    started: _dt.datetime
    document: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        """The group's ``data`` (what the API shows: the job or backup, the log ID...)."""
        return dict(self.document.get("data") or {})


class RunningGroup:
    """A queue group being run. Create, then ``begin``; every method is thread-safe."""

    def __init__(
        self,
        catalog: Catalog,
        group_id: str,
        stop: threading.Event,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.catalog = catalog
        # catalog reads and progress writes are rate-limited in real time, whatever clock the run uses
        self.ticker = SYSTEM
        self.id = group_id
        self.stop = stop
        self.on_progress = on_progress
        self.progress = empty_progress()
        self._lock = threading.Lock()
        self._checked = -1e9
        self._written = -1e9

    def begin(self) -> GroupRecord:
        """Claim the group when it is Pending (Processing means the caller claimed it); return it.
        Raises NotFoundError; ConflictError when it has finished."""
        table = schema.queue_groups
        with self.catalog.transaction() as tx:
            row = _row(tx, self.id, lock=True)
            if row.status not in (QueueStatus.PENDING, QueueStatus.PROCESSING):
                name = QueueStatus.label_of(row.status)
                raise ConflictError(f"Queue Group {self.id} has already finished ({name})")
            started = row.started or tx.clock.now()
            if row.status == QueueStatus.PENDING or row.started is None:
                tx.connection.execute(
                    update(table)
                    .where(table.c.id == self.id)
                    .values(status=int(QueueStatus.PROCESSING), started=started)
                )
            return GroupRecord(
                id=row.id,
                type=QueueType(row.type),
                owner=str(row.owner),
                job_id=row.job_id,
                started=started,
                document=dict(row.document or {}),
            )

    def stopping(self) -> bool:
        """Whether the run should stop now."""
        if self.stop.is_set():
            return True
        now = self.ticker.monotonic()
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
            # a total learned while counting (files found as the walk goes) never trails what is done
            for done_key, total_key in (
                ("completed", "total"),
                ("completed_files", "total_files"),
                ("completed_bytes", "total_bytes"),
            ):
                if self.progress.get(done_key, 0) > self.progress.get(total_key, 0):
                    self.progress[total_key] = self.progress[done_key]
            total, done = self.progress["total"], self.progress["completed"]
            self.progress["percentage"] = min(100, int(done * 100 / total)) if total else 0
            snapshot = dict(self.progress)
            write = force or self.ticker.monotonic() - self._written >= PROGRESS_WRITE_SECONDS
            if write:
                self._written = self.ticker.monotonic()
        if self.on_progress is not None:
            self.on_progress(snapshot)
        if write:
            self.update_document(progress=snapshot)

    def update_document(self, **fields: Any) -> None:
        """Merge ``fields`` into the group's document (``data`` is merged one level down)."""
        table = schema.queue_groups
        with self.catalog.transaction() as tx:
            document = dict(_row(tx, self.id).document or {})
            for key, value in fields.items():
                if key == "data":
                    document["data"] = {**document.get("data", {}), **value}
                else:
                    document[key] = value
            tx.connection.execute(update(table).where(table.c.id == self.id).values(document=document))

    def add_item(self, item_type: QueueType, name: str, **details: Any) -> str:
        """A queue item of this group (a destination of a backup, a backup of a restore), Processing."""
        with self.catalog.transaction() as tx:
            ident = new_id(tx.clock)
            tx.connection.execute(
                schema.queue_items.insert().values(
                    id=ident,
                    group_id=self.id,
                    type=int(item_type),
                    status=int(ItemStatus.PROCESSING),
                    created=tx.clock.now(),
                    started=tx.clock.now(),
                    document={"name": name, **details},
                )
            )
        return ident

    def end_item(self, item_id: str, status: ItemStatus, message: str = "") -> None:
        """Record a queue item's final status and why."""
        table = schema.queue_items
        with self.catalog.transaction() as tx:
            document = dict(
                tx.connection.execute(select(table.c.document).where(table.c.id == item_id)).scalar_one()
            )
            document["message"] = message
            tx.connection.execute(
                update(table)
                .where(table.c.id == item_id)
                .values(status=int(status), ended=tx.clock.now(), document=document)
            )

    def finish(self, tx: Transaction, status: QueueStatus) -> None:
        """Record the group's final status and progress, inside the caller's transaction."""
        table = schema.queue_groups
        document = dict(_row(tx, self.id).document or {})
        document["progress"] = dict(self.progress)
        document.pop("stop_requested", None)
        tx.connection.execute(
            update(table)
            .where(table.c.id == self.id)
            .values(status=int(status), ended=tx.clock.now(), document=document)
        )
