"""The Schedule model (API.md section 5): ``type_data`` is checked by the rule of its ``type``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import Field, model_validator

from snapkeep.ids import is_id
from snapkeep.jobs.codes import ScheduleType
from snapkeep.jobs.models.base import (
    Name,
    NonNegative,
    Strict,
    choice,
    describe,
    field_error,
    listish,
    one_of,
    shown,
)

SCHEDULE_TYPES = ScheduleType.labels()
HOURLY_INTERVALS = {n: str(n) for n in (1, 2, 3, 4, 6, 8, 12)}
WEEKDAYS = {1: "Sunday", 2: "Monday", 3: "Tuesday", 4: "Wednesday", 5: "Thursday", 6: "Friday", 7: "Saturday"}
MONTH_DAYS = {day: str(day) for day in range(1, 32)}
DELAY_TYPES = {1: "minutes", 2: "hours", 3: "days"}
AFTER_JOB = ScheduleType.AFTER_JOB


def _days(choices: Mapping[int, str]) -> Callable[[Any], list[int]]:
    def rule(value: Any) -> list[int]:
        values = listish(value)
        if not isinstance(values, list) or not values:
            raise field_error("type_data", "needs at least one of {allowed}", allowed=describe(choices))
        return sorted({one_of(choices, item, f"type_data[{index}]") for index, item in enumerate(values)})

    return rule


def _single(choices: Mapping[int, str]) -> Callable[[Any], int]:
    def rule(value: Any) -> int:
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        return one_of(choices, value, "type_data")

    return rule


def _after_job(value: Any) -> str:
    if not is_id(value):
        raise field_error("type_data", "must be the ID of a Backup Job (got {got})", got=shown(value))
    return str(value)


TYPE_DATA_RULES: dict[int, Callable[[Any], Any]] = {
    1: _single(HOURLY_INTERVALS),
    2: _days(WEEKDAYS),
    3: _single(WEEKDAYS),
    4: _days(MONTH_DAYS),
    AFTER_JOB: _after_job,
}


class ScheduleFields(Strict):
    """The writable fields of a Schedule."""

    name: Name = Field(description="free text, 1-255 characters")
    type: Annotated[int, choice(SCHEDULE_TYPES)] = Field(
        description="1 Hourly, 2 Daily, 3 Weekly, 4 Monthly, 5 After Backup Job Done"
    )
    type_data: Any = Field(
        None,
        description="hours (1), weekdays 1=Sunday..7 (2), one weekday (3), month days (4), job ID (5)",
    )
    delay_amount: NonNegative = Field(0, description="wait this long after the job is done (type 5)")
    delay_type: Annotated[int, choice(DELAY_TYPES)] = Field(1, description="1 minutes, 2 hours, 3 days")

    @model_validator(mode="after")
    def _type_data(self) -> ScheduleFields:
        self.type_data = TYPE_DATA_RULES[self.type](self.type_data)
        return self
