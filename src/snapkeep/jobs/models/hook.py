"""The Hook model (API.md section 5): a script run before or after a backup, restore or reindex.

``script`` is checked against the trust rule of ``jobs.hook_scripts`` when the hook is saved (the file
must exist then), and again before every run (docs/hooks.md).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from snapkeep.jobs.codes import HookPosition, HookStage
from snapkeep.jobs.hook_scripts import UnsafeScript, verify_script
from snapkeep.jobs.models.base import AbsolutePath, Flag, IdList, Name, Strict, choice, integer

HOOK_POSITION_TYPES = HookStage.labels()
HOOK_POSITIONS = HookPosition.labels()
DEFAULT_HOOK_TIMEOUT = 3600


def _trusted(value: Any) -> str:
    try:
        verify_script(value)
    except UnsafeScript as unsafe:
        raise PydanticCustomError("unsafe_script", "{reason}", {"reason": unsafe.reason}) from None
    return str(value)


TrustedScript = Annotated[AbsolutePath, AfterValidator(_trusted)]


class HookFields(Strict):
    """The writable fields of a Hook."""

    name: Name = Field(description="free text, 1-255 characters")
    script: TrustedScript = Field(
        description="absolute path of the script to run: a regular file owned by root (or the service's "
        "user), not writable by group or others, in folders that are not either (docs/hooks.md)"
    )
    position_type: Annotated[int, choice(HOOK_POSITION_TYPES)] = Field(description="1 pre, 2 post")
    position: Annotated[int, choice(HOOK_POSITIONS)] = Field(
        description="1 Backup, 2 Restore, 4 Download, 8 Backup Account, 5 Reindex"
    )
    data_list: IdList = Field(default_factory=list, description="job IDs it applies to (empty = all)")
    disabled: Flag = Field(False, description="a disabled hook never runs")
    timeout: Annotated[int, integer(1)] = Field(
        DEFAULT_HOOK_TIMEOUT, description="seconds before it is stopped"
    )
