"""Pydantic models of the objects the API manages (API.md sections 4-5), and their validation.

base         validators shared by every model and ``validate`` (pydantic errors -> one ValidationError)
job          Backup Job
destination  Destination: common fields, options per type, secret masking
schedule     Schedule: ``type_data`` rules per type
hook         Hook
filter       Account Filter
"""

from __future__ import annotations

from snapkeep.jobs.models.base import validate
from snapkeep.jobs.models.destination import DestinationFields, validate_destination
from snapkeep.jobs.models.filter import FilterFields
from snapkeep.jobs.models.hook import HookFields
from snapkeep.jobs.models.job import JobFields
from snapkeep.jobs.models.schedule import ScheduleFields

__all__ = [
    "DestinationFields",
    "FilterFields",
    "HookFields",
    "JobFields",
    "ScheduleFields",
    "validate",
    "validate_destination",
]
