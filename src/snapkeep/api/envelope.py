"""The answer every API call returns, success or failure (API.md section 2).

``{"success": 1|0, "message": "...", "system": {...}, "data": {...}}``: built here and nowhere else; a
success may add ``"warnings": [...]``.
"""

from __future__ import annotations

from typing import Any

from snapkeep import __version__

TIER = "STABLE"
SYSTEM_TYPE = "Linux"


def system_block() -> dict[str, Any]:
    """The ``system`` member: package version, release tier, system type, licence state (always 0)."""
    return {"version": __version__, "tier": TIER, "type": SYSTEM_TYPE, "licenseIssue": 0}


def success(message: str, data: Any = None, warnings: list[str] | None = None) -> dict[str, Any]:
    """A success envelope; ``data`` defaults to an empty object. ``warnings`` (what was accepted but
    deserves a look, e.g. a JetBackup field snapkeep ignores) is present only when there are some."""
    answer = {
        "success": 1,
        "message": message,
        "system": system_block(),
        "data": {} if data is None else data,
    }
    if warnings:
        answer["warnings"] = list(warnings)
    return answer


def failure(message: str) -> dict[str, Any]:
    """A failure envelope: ``success: 0``, the message, empty ``data``."""
    return {"success": 0, "message": message, "system": system_block(), "data": {}}


def is_success(envelope: dict[str, Any]) -> bool:
    """Whether an envelope reports success."""
    return envelope.get("success") == 1
