"""Runs: executing one queue group: a backup run of a job, a restore/download or a reindex (API.md section 6).

Interface (for the daemon's workers and ``snapkeep run``/``restore``)
--------------------------------------------------------------------
``execute_group(catalog, home, group_id, *, stop, clock=SYSTEM, on_progress=None) -> QueueStatus``
    runs the group to its end and returns its final status (100 Completed, 101 Partially
    Completed, 102 Failed, 103 Aborted). A Pending group is claimed here; a Processing one is taken
    as claimed by the caller. Setting ``stop`` (or ``stopQueueGroup``) stops the run cleanly: no
    snapshot is committed for it, the repository stays valid, the status is 103. Never raises for
    the run's own failures (they are the status and the log); raises NotFoundError for an unknown
    group and ConflictError for one that has already finished.

The modules: ``backup`` (a job's run: log, end, alerts) with its bodies ``directories`` and
``accounts``; ``restore`` (restores and downloads) with ``account_restore``; ``reindex`` (a
destination's repositories into the catalog); ``common`` (what they all
share: typed job and destination views, progress, ``open_target``, hooks, warnings, status roll-up,
retention).
"""

from __future__ import annotations

import threading
from pathlib import Path

from snapkeep.clock import SYSTEM, Clock
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.codes import QueueStatus, QueueType
from snapkeep.jobs.queue import ProgressCallback, RunningGroup
from snapkeep.jobs.runs.backup import BackupRun
from snapkeep.jobs.runs.common import GroupRun
from snapkeep.jobs.runs.reindex import ReindexRun
from snapkeep.jobs.runs.restore import RestoreRun

#: queue type -> what runs a group of it
RUNNERS: dict[QueueType, type[GroupRun]] = {
    QueueType.BACKUP: BackupRun,
    QueueType.RESTORE: RestoreRun,
    QueueType.DOWNLOAD: RestoreRun,
    QueueType.REINDEX: ReindexRun,
}


def execute_group(
    catalog: Catalog,
    home: Path,
    group_id: str,
    *,
    stop: threading.Event,
    clock: Clock = SYSTEM,
    on_progress: ProgressCallback | None = None,
) -> QueueStatus:
    """Run queue group ``group_id`` to its end; return its final status (see the module docstring)."""
    group = RunningGroup(catalog, group_id, stop, on_progress)
    record = group.begin()
    runner = RUNNERS.get(record.type)
    if runner is None:  # a queue type this version cannot run
        with catalog.transaction() as tx:
            group.finish(tx, QueueStatus.FAILED)
        return QueueStatus.FAILED
    return runner(catalog, Path(home), group, record, clock).run()
