"""Reindex (API.md section 6): ``reindexDestination``.

``_id`` names the destination. The answer's ``data`` is the new queue group (type 8 Reindex,
Pending): poll ``getQueueGroup`` for its status and progress (one item per repository on the
destination) and read ``getLog`` with the group's ``data.log_id`` for what it found. The run rebuilds
the destination's rows of ``listBackups``: backups of known jobs are linked to them, backups of jobs
this catalog does not know are listed with ``orphan: 1`` (owned by root, restorable), an encrypted
repository without its key is one row with ``key_required: 1`` until ``snapkeep keys import`` supplies
the key, and a backup the destination lost is kept with ``missing: 1`` (see ``jobs.reindex``).
"""

from __future__ import annotations

from typing import Any

from snapkeep.api.functions.base import CallContext, FunctionSpec, IdParams, Result, only_id, param_specs
from snapkeep.jobs import reindex


def reindex_destination(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction() as tx:
        group = reindex.enqueue(tx, ident, owner=context.caller.user)
    return f"Reindex queued ({group['_id']})", group


FUNCTIONS = [
    FunctionSpec(
        "reindexDestination",
        "Rebuild a destination's backups list from what the destination holds (queue type 8)",
        param_specs(IdParams),
        reindex_destination,
    ),
]
