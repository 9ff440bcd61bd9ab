"""The run queue: queue groups (one per requested run) and their items (API.md section 6).

This package is the only writer of ``queue_groups`` and ``queue_items`` (a test checks it): the API,
the daemon, the CLI and the runs go through the functions below.

- ``groups``: enqueue a backup (``enqueue_backup``: the job's ``running`` flag is set in the same
  transaction, so a job is never queued twice), a restore/download (``enqueue_restore``) or a
  reindex of a destination (``enqueue_reindex``); read
  groups and items; ``claim``/``claim_next`` (one conditional UPDATE: of several claimers exactly one
  wins); ``request_stop`` (``stopQueueGroup``); ``rerun`` (``rerunFailedQueueGroup``); the
  scheduler's questions (``last_success``, ``fired_since``).
- ``running``: ``RunningGroup``, the group while a run executes it (items, progress, stop requests,
  its final status).
- ``housekeeping``: one item, clearing the finished groups, stopping every group.
- ``recovery``: groups whose worker died become 104 Never Finished; stale repository locks go.

Numbers (types, statuses) are ``jobs.codes``.
"""

from snapkeep.jobs.queue.groups import (
    Group,
    claim,
    claim_next,
    empty_progress,
    enqueue_backup,
    enqueue_reindex,
    enqueue_restore,
    fired_since,
    get_group,
    group_document,
    job_has_active_group,
    last_success,
    list_groups,
    list_items,
    request_stop,
    rerun,
    stop_requested,
    worker_identity,
)
from snapkeep.jobs.queue.housekeeping import clear_finished, get_item, group_of_item, stop_all
from snapkeep.jobs.queue.recovery import (
    adopt_groups,
    end_unfinished,
    mark_never_finished,
    mark_node_down,
    release_dead_locks,
    release_process_locks,
)
from snapkeep.jobs.queue.running import GroupRecord, ProgressCallback, RunningGroup

__all__ = [
    "Group",
    "GroupRecord",
    "ProgressCallback",
    "RunningGroup",
    "adopt_groups",
    "claim",
    "claim_next",
    "clear_finished",
    "empty_progress",
    "end_unfinished",
    "enqueue_backup",
    "enqueue_reindex",
    "enqueue_restore",
    "fired_since",
    "get_group",
    "get_item",
    "group_document",
    "group_of_item",
    "job_has_active_group",
    "last_success",
    "list_groups",
    "list_items",
    "mark_never_finished",
    "mark_node_down",
    "release_dead_locks",
    "release_process_locks",
    "request_stop",
    "rerun",
    "stop_all",
    "stop_requested",
    "worker_identity",
]
