"""JetBackup 5 fields snapkeep accepts and ignores, with a warning (issue 13, conformance review D3).

A JetBackup admin script sends fields JetBackup defines and snapkeep does not implement (for example
``immutable`` on a job, ``hidden`` on a destination, ``options[terminate]`` on a restore). Refusing
them breaks the script for nothing; taking them silently would let it believe they took effect. So
each such field, listed here per function, is removed before validation and named in the answer's
``warnings``; any other unknown name is still refused by the function's own validation.
docs/api-decisions.md ("JetBackup fields snapkeep ignores") has the list and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_JOB = (
    "postgresql_exclude_db_by_size",
    "mongodb_exclude_db_by_size",
    "immutable",
    "object_lock_mode",
    "object_lock_days",
    "backup_quota",
    "state",
    "last_completed",
    "destination_details",
)
_DESTINATION = ("hidden", "dr", "reindex", "job_type", "legacy", "update_date", "running")
_RESTORE_OPTIONS = ("terminate", "suspend", "reseller", "owner", "package")

#: function -> top-level fields ignored; ``options`` -> fields of ``options[...]`` ignored
IGNORED: dict[str, dict[str, tuple[str, ...]]] = {
    "manageBackupJob": {"": _JOB},
    "manageDestination": {"": _DESTINATION},
    "manageSchedule": {"": ("type_name", "delay", "owner_name")},
    "manageAccountFilter": {"": ("count",)},
    "addQueueItems": {"options": _RESTORE_OPTIONS},
    "manageSettingsPerformance": {"": ("backup_fork_ttl",)},
}


def strip_ignored(function: str, params: dict[str, Any]) -> list[str]:
    """Remove the JetBackup fields ``function`` ignores from ``params``; return a warning for each."""
    rules = IGNORED.get(function)
    if not rules:
        return []
    warnings: list[str] = []
    for where, names in rules.items():
        target = params if where == "" else params.get(where)
        if not isinstance(target, dict):
            continue
        for name in names:
            if name in target:
                target.pop(name)
                shown = name if where == "" else f"{where}[{name}]"
                warnings.append(f"{shown}: a JetBackup field snapkeep does not implement; ignored")
    return warnings


def ignored_fields(function: str) -> Mapping[str, tuple[str, ...]]:
    """What ``function`` ignores (for the OpenAPI document and the docs)."""
    return IGNORED.get(function, {})
