"""Recovery of queue groups whose worker died, and the end of groups a run could not end itself.

``mark_never_finished`` runs when the service starts (and a shared catalog's other servers leave
alone what is not theirs): groups left Processing by a dead process of this host become 104 Never
Finished, with their logs and items, and each raises a critical alert (``alerts.never_finished_alert``;
its ID is in the returned group as ``alert_id``, for the caller to send once the transaction has
committed). ``release_dead_locks`` then removes the repository locks such
processes left behind. ``end_unfinished`` is the worker's last word on a run that raised.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sqlalchemy import exists, select, update

from snapkeep.engine.repository.locks import is_stale, list_locks, process_alive
from snapkeep.jobs import alerts, logs
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.codes import ACTIVE, FINISHED, ItemStatus, QueueStatus, QueueType
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.queue.groups import Group, _update_document, get_group, worker_identity
from snapkeep.storage.base import Store


def _orphaned(document: Mapping[str, Any], host: str) -> bool:
    worker = document.get("worker")
    if not isinstance(worker, dict):
        return True
    if worker.get("host") != host:
        return False
    pid = worker.get("pid")
    return not isinstance(pid, int) or pid == os.getpid() or not process_alive(pid)


def _never_finish(tx: Transaction, row: Any) -> Group | None:
    """Move Processing group ``row`` to 104 Never Finished with its log and items, clear its job's
    flag and raise its critical alert; the group (with ``alert_id``), or None when it had moved on."""
    table = schema.queue_groups
    now = tx.clock.now()
    done = tx.connection.execute(
        update(table)
        .where(table.c.id == row.id, table.c.status == int(QueueStatus.PROCESSING))
        .values(status=int(QueueStatus.NEVER_FINISHED), ended=now)
    )
    if done.rowcount != 1:
        return None
    if row.type == QueueType.BACKUP and row.job_id:
        tx.set_job_running(row.job_id, False)
    logs.mark_never_finished(tx, row.id)
    items = schema.queue_items
    tx.connection.execute(
        update(items)
        .where(items.c.group_id == row.id, items.c.status.in_([int(status) for status in ACTIVE]))
        .values(status=int(ItemStatus.NEVER_FINISHED), ended=now)
    )
    document = dict(row.document or {})
    job = tx.get("jobs", row.job_id) if row.type == QueueType.BACKUP and row.job_id else None
    if job is None and row.type == QueueType.BACKUP:
        job = {"_id": row.job_id or "", "name": str(dict(document.get("data") or {}).get("name", ""))}
    alert = alerts.never_finished_alert(tx, group_id=row.id, group_type=row.type, job=job)
    group = get_group(tx, row.id)
    group["alert_id"] = alert.id if alert is not None else None
    return group


def _clear_idle_flags(tx: Transaction) -> None:
    """Jobs whose ``running`` flag is set without any pending or processing group (a crash between
    two writes) are cleared."""
    table, jobs = schema.queue_groups, schema.jobs
    busy = exists().where(
        table.c.job_id == jobs.c.id,
        table.c.type == int(QueueType.BACKUP),
        table.c.status.in_([int(status) for status in ACTIVE]),
    )
    tx.connection.execute(update(jobs).where(jobs.c.running == 1, ~busy).values(running=0))


def mark_never_finished(tx: Transaction, *, host: str | None = None, node: str | None = None) -> list[Group]:
    """Recover from a crash: groups left Processing by a dead process of ``host`` become 104 Never
    Finished; return them, each with the ID of the critical alert it raised as ``alert_id``.

    With ``node`` (the starting node, issue 16), only that node's groups are looked at (the
    ``node`` column, or the node recorded in the claim); the other nodes' groups are theirs to
    recover. Groups claimed on another host, or by a live process, are left alone. Their Backup
    jobs' ``running`` flags are cleared, their Processing logs become Never Finished and their
    unfinished items 104. Jobs whose ``running`` flag is set without any pending or processing group
    (a crash between two writes) are cleared too.
    """
    host = host or worker_identity()["host"]
    table = schema.queue_groups
    marked: list[Group] = []
    processing = select(table).where(table.c.status == int(QueueStatus.PROCESSING))
    for row in tx.connection.execute(processing).all():
        document = dict(row.document or {})
        claimed_by = dict(document.get("worker") or {}).get("node")
        if node is not None and node not in (row.node, claimed_by):
            continue
        # claimed by this node's earlier process (one process serves a node: ``nodes.register``),
        # wherever it ran; else by a process of this host that is gone
        if not (node is not None and claimed_by == node) and not _orphaned(document, host):
            continue
        group = _never_finish(tx, row)
        if group is not None:
            marked.append(group)
    _clear_idle_flags(tx)
    return marked


def adopt_groups(tx: Transaction, node: str, *, every: bool = False) -> int:
    """Unfinished groups without a node (queued before nodes existed) become ``node``'s (the first
    node to register, ``jobs.nodes.register``); with ``every``, those of any other node too (the
    catalog's only node); how many."""
    table = schema.queue_groups
    orphan = table.c.node.is_(None) | (table.c.node != node) if every else table.c.node.is_(None)
    result = tx.connection.execute(
        update(table).where(orphan, table.c.status.in_([int(status) for status in ACTIVE])).values(node=node)
    )
    return int(result.rowcount or 0)


def mark_node_down(tx: Transaction, node: str) -> list[Group]:
    """The groups a node declared down left Processing (its own, or claimed by it) become 104 Never
    Finished (``jobs.nodes.sweep``); return them with their ``alert_id``."""
    table = schema.queue_groups
    processing = select(table).where(table.c.status == int(QueueStatus.PROCESSING))
    marked: list[Group] = []
    for row in tx.connection.execute(processing.with_for_update()).all():
        claimed_by = dict(dict(row.document or {}).get("worker") or {}).get("node")
        if node not in (row.node, claimed_by):
            continue
        if claimed_by not in (None, node):
            continue  # claimed by another, live node
        group = _never_finish(tx, row)
        if group is not None:
            marked.append(group)
    _clear_idle_flags(tx)
    return marked


def release_dead_locks(store: Store, *, now: float, hostname: str | None = None) -> list[str]:
    """Delete the repository locks in ``store`` that the engine's rule calls stale: taken on this
    host by a process that no longer exists, or with a heartbeat older than their timeout. Returns
    the names removed. Raises LockError for an unreadable lock, StorageError from the store.
    """
    removed = []
    for name, info in list_locks(store).items():
        if is_stale(info, now, hostname=hostname):
            store.delete(name, missing_ok=True)
            removed.append(name)
    return removed


def release_process_locks(store: Store, *, host: str, pid: int) -> list[str]:
    """Delete the repository locks in ``store`` taken by process ``pid`` on ``host`` (a node declared
    down: its process is gone even when its host is not this one). Returns the names removed."""
    removed = []
    for name, info in list_locks(store).items():
        if info.host == host and info.pid == pid:
            store.delete(name, missing_ok=True)
            removed.append(name)
    return removed


def end_unfinished(tx: Transaction, group_id: str, status: QueueStatus, *, reason: str) -> bool:
    """End a group the runner left Pending or Processing (it raised) with ``status``, clearing its
    job's ``running`` flag; ``reason`` is kept in its document. False when it had already ended."""
    table = schema.queue_groups
    row = tx.connection.execute(select(table).where(table.c.id == group_id)).first()
    if row is None or row.status in FINISHED:
        return False
    tx.connection.execute(
        update(table)
        .where(table.c.id == group_id, table.c.status.in_([int(s) for s in ACTIVE]))
        .values(status=int(status), ended=tx.clock.now())
    )
    _update_document(tx, group_id, error=reason)
    if row.type == QueueType.BACKUP and row.job_id:
        tx.set_job_running(row.job_id, False)
    return True
