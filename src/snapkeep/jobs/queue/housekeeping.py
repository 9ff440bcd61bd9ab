"""Queue housekeeping a JetBackup script expects (issue 13): one item, clear the finished groups,
stop every group.

- ``get_item``: one queue item by its ID (``getQueueItem``).
- ``clear_finished``: delete finished groups (status 100 and up) and their items (``clearQueue``).
  Download groups stay: their file is fetched through the group until it expires
  (``downloadBackupFile``), and they go with their file. ``owners`` limits it to some users' groups.
- ``stop_all``: ``request_stop`` on every pending and processing group (``stopAllQueueGroup``).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Collection
from typing import Any

from sqlalchemy import delete, select

from snapkeep.errors import ConflictError, NotFoundError
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.codes import ACTIVE, QueueStatus, QueueType
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.queue.groups import present_item, request_stop

#: IDs per DELETE statement (SQLite limits the parameters of one statement)
BATCH = 500


def get_item(tx: Transaction, item_id: str) -> dict[str, Any]:
    """Queue item ``item_id`` in API shape. Raises NotFoundError."""
    table = schema.queue_items
    row = tx.connection.execute(select(table).where(table.c.id == item_id)).first()
    if row is None:
        raise NotFoundError(kind="Queue Item", ident=item_id)
    return present_item(row)


def group_of_item(tx: Transaction, item_id: str) -> str | None:
    """The queue group item ``item_id`` belongs to (None: no such item)."""
    table = schema.queue_items
    found = tx.connection.execute(select(table.c.group_id).where(table.c.id == item_id)).scalar_one_or_none()
    return None if found is None else str(found)


def clear_finished(
    tx: Transaction, owners: Collection[str] | None = None, *, ended_before: _dt.datetime | None = None
) -> list[str]:
    """Delete the finished groups (not downloads) of ``owners`` (None: everyone's); return their IDs.
    ``ended_before`` keeps the groups that ended later (the daemon's pruning by the ``logs_ttl``
    setting, issue 16: index ``ix_queue_groups_status_ended``)."""
    groups = schema.queue_groups
    query = select(groups.c.id).where(
        groups.c.status >= int(QueueStatus.COMPLETED), groups.c.type != int(QueueType.DOWNLOAD)
    )
    if owners is not None:
        query = query.where(groups.c.owner.in_(list(owners)))
    if ended_before is not None:
        query = query.where(groups.c.ended < ended_before)
    cleared = [str(ident) for ident in tx.connection.execute(query).scalars()]
    for start in range(0, len(cleared), BATCH):
        batch = cleared[start : start + BATCH]
        tx.connection.execute(delete(schema.queue_items).where(schema.queue_items.c.group_id.in_(batch)))
        tx.connection.execute(delete(groups).where(groups.c.id.in_(batch)))
    return cleared


def stop_all(tx: Transaction, owners: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Ask every pending and processing group (of ``owners``; None: all) to stop; return them."""
    groups = schema.queue_groups
    query = select(groups.c.id).where(groups.c.status.in_([int(status) for status in ACTIVE]))
    if owners is not None:
        query = query.where(groups.c.owner.in_(list(owners)))
    stopped = []
    for ident in tx.connection.execute(query.order_by(groups.c.created)).scalars().all():
        try:
            stopped.append(request_stop(tx, str(ident)))
        except ConflictError:  # it finished meanwhile
            continue
    return stopped
