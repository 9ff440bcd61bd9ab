"""Schedule maths (API.md section 5): when a job's schedules fire. Pure: no catalog, no clock reads.

Interface (for the runner and the daemon's scheduler)
-----------------------------------------------------
``next_run(schedule, job_time, after, tz)``
    the first slot of ``schedule`` strictly after ``after`` (an aware datetime), as an aware UTC
    datetime; None for type 5 (After Backup Job Done) and for a schedule without slots.
``job_next_run(job, schedules, after, tz)``
    the earliest ``next_run`` over a job's schedules; None for a disabled job or one without timed
    schedules. ``schedules`` are the schedule documents the job links (any order, extra ones ignored).
``after_job_due(schedule, finished_at)``
    when a type 5 schedule fires: the followed job's finish + ``delay_amount`` times ``delay_type``.
``missed_runs(schedule, job_time, since, now, tz)`` / ``catch_up_due(...)``
    whether a slot fell in ``(since, now]`` while the service was down, and whether the daemon should
    run it once now (not when the next slot is under ``CATCH_UP_WINDOW`` away).
``zone(name)``
    the ZoneInfo for the ``timezone`` setting (empty: the server's own zone).

A schedule is a mapping with ``type``, ``type_data`` and, for type 5, ``delay_amount`` and
``delay_type`` (a catalog document or ``ScheduleFields.model_dump()``). Slots are server-local wall-clock
times in ``tz``: Hourly at the hours divisible by N at the minute of the job's ``time``; Daily, Weekly
and Monthly at the job's ``time``; a Monthly day the month lacks means its last day. A wall time skipped
by a daylight-saving change fires at the first valid minute after it; a repeated one fires once (at its
first occurrence).
"""

from __future__ import annotations

import calendar
import datetime as _dt
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from snapkeep.clock import UTC
from snapkeep.errors import ConfigError, ValidationError
from snapkeep.jobs.codes import ScheduleType

HOURLY, DAILY, WEEKLY, MONTHLY, AFTER_JOB = (
    ScheduleType.HOURLY,
    ScheduleType.DAILY,
    ScheduleType.WEEKLY,
    ScheduleType.MONTHLY,
    ScheduleType.AFTER_JOB,
)
HOURLY_INTERVALS = frozenset({1, 2, 3, 4, 6, 8, 12})
DELAY_UNITS = {1: _dt.timedelta(minutes=1), 2: _dt.timedelta(hours=1), 3: _dt.timedelta(days=1)}
# the daemon runs a missed schedule once, unless its next slot is nearer than this
CATCH_UP_WINDOW = _dt.timedelta(minutes=30)
# the longest gap between two slots of any timed schedule is a month; look a little further
HORIZON_DAYS = 400

_MINUTE = _dt.timedelta(minutes=1)


def api_weekday(day: _dt.date) -> int:
    """The API's weekday number of ``day``: 1 = Sunday .. 7 = Saturday."""
    return day.isoweekday() % 7 + 1


def _int_list(schedule: Mapping[str, Any]) -> list[int]:
    data = schedule.get("type_data")
    values: list[Any] = list(data) if isinstance(data, list | tuple) else [data]
    try:
        return [int(value) for value in values]
    except (TypeError, ValueError):
        raise ValidationError(
            field="type_data", problem=f"must be a number or a list of numbers (got {data!r})"
        ) from None


def _hours(schedule: Mapping[str, Any]) -> list[int]:
    values = _int_list(schedule)
    interval = values[0] if len(values) == 1 else 0
    if interval not in HOURLY_INTERVALS:
        raise ValidationError(
            field="type_data", problem=f"hourly interval must be one of 1 2 3 4 6 8 12 (got {values})"
        )
    return list(range(0, 24, interval))


def _day_slots(schedule: Mapping[str, Any], job_time: int, day: _dt.date) -> list[_dt.time]:
    """The wall-clock times at which ``schedule`` fires on ``day`` (ascending)."""
    kind = int(schedule.get("type", 0))
    hour, minute = divmod(int(job_time), 100)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValidationError(field="time", problem=f"must be HHMM between 0000 and 2359 (got {job_time})")
    if kind == HOURLY:
        return [_dt.time(slot_hour, minute) for slot_hour in _hours(schedule)]
    if kind in (DAILY, WEEKLY):
        return [_dt.time(hour, minute)] if api_weekday(day) in _int_list(schedule) else []
    if kind == MONTHLY:
        last = calendar.monthrange(day.year, day.month)[1]
        days = {min(value, last) for value in _int_list(schedule) if 1 <= value <= 31}
        return [_dt.time(hour, minute)] if day.day in days else []
    if kind == AFTER_JOB:
        return []
    raise ValidationError(field="type", problem=f"unknown schedule type {kind!r}")


def _wall(moment: _dt.datetime, tz: ZoneInfo) -> _dt.datetime:
    """The naive local wall-clock time of an aware instant."""
    return moment.astimezone(tz).replace(tzinfo=None)


def wall_to_instant(wall: _dt.datetime, tz: ZoneInfo) -> _dt.datetime:
    """The UTC instant a naive local wall time fires at in ``tz``.

    A repeated wall time (clocks set back) maps to its first occurrence; a skipped one (clocks set
    forward) to the first valid minute after it, which is the instant the clocks jumped.
    """
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    for candidate in sorted({first, second}):
        if _wall(candidate, tz) == wall:
            return candidate
    # Skipped: the jump lies between the two readings; find the first minute whose wall time is later.
    low, high = sorted((first, second))
    low = low.replace(second=0, microsecond=0)
    while high - low > _MINUTE:
        middle = low + ((high - low) // _MINUTE // 2) * _MINUTE
        if _wall(middle, tz) > wall:
            high = middle
        else:
            low = middle
    return high


def _slots_from(
    schedule: Mapping[str, Any], job_time: int, start: _dt.date, tz: ZoneInfo
) -> Iterator[_dt.datetime]:
    """Every slot instant from local day ``start`` on, ascending (a skipped and a real slot may coincide)."""
    for offset in range(HORIZON_DAYS):
        day = start + _dt.timedelta(days=offset)
        for slot in _day_slots(schedule, job_time, day):
            yield wall_to_instant(_dt.datetime.combine(day, slot), tz)


def _aware(name: str, moment: _dt.datetime) -> _dt.datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValidationError(field=name, problem="must be a timezone-aware datetime")
    return moment.astimezone(UTC)


def next_run(
    schedule: Mapping[str, Any], job_time: int, after: _dt.datetime, tz: ZoneInfo
) -> _dt.datetime | None:
    """The first slot of ``schedule`` strictly after ``after``, in UTC; None when it has no time slots.

    Raises ValidationError for a naive ``after``, a bad ``job_time`` or a malformed schedule.
    """
    after = _aware("after", after)
    if int(schedule.get("type", 0)) == AFTER_JOB:
        return None
    # a day earlier: a slot of the previous local day can still be later than ``after`` near a DST jump
    start = _wall(after, tz).date() - _dt.timedelta(days=1)
    for instant in _slots_from(schedule, job_time, start, tz):
        if instant > after:
            return instant
    return None


def job_next_run(
    job: Mapping[str, Any], schedules: Iterable[Mapping[str, Any]], after: _dt.datetime, tz: ZoneInfo
) -> _dt.datetime | None:
    """The earliest next run over the schedules ``job`` links; None when disabled or nothing is timed.

    ``schedules`` are schedule documents with ``_id``; those the job does not link are ignored (when
    they carry no ``_id`` they are all used). Raises ValidationError like ``next_run``.
    """
    if job.get("disabled"):
        return None
    linked = {str(link.get("_id")) for link in job.get("schedules", []) if isinstance(link, Mapping)}
    times = [
        moment
        for schedule in schedules
        if "_id" not in schedule or str(schedule["_id"]) in linked
        for moment in [next_run(schedule, int(job.get("time", 0)), after, tz)]
        if moment is not None
    ]
    return min(times, default=None)


def after_job_due(schedule: Mapping[str, Any], finished_at: _dt.datetime) -> _dt.datetime:
    """When an After Backup Job Done schedule fires: ``finished_at`` + ``delay_amount`` ``delay_type``.

    Raises ValidationError for another schedule type, a naive time or a bad delay.
    """
    finished_at = _aware("finished_at", finished_at)
    if int(schedule.get("type", 0)) != AFTER_JOB:
        raise ValidationError(field="type", problem="only an After Backup Job Done schedule (5) has a delay")
    unit = DELAY_UNITS.get(int(schedule.get("delay_type", 1)))
    amount = int(schedule.get("delay_amount", 0))
    if unit is None or amount < 0:
        raise ValidationError(
            field="delay_type", problem=f"bad delay {amount} x type {schedule.get('delay_type')!r}"
        )
    return finished_at + amount * unit


def missed_runs(
    schedule: Mapping[str, Any], job_time: int, since: _dt.datetime, now: _dt.datetime, tz: ZoneInfo
) -> bool:
    """Whether a slot of ``schedule`` fell in ``(since, now]``: a run was missed while the service was down.

    ``since`` is the job's last run (or its creation when it never ran). Type 5 schedules fire on the
    followed job's completion and never count as missed here. Raises ValidationError like ``next_run``.
    """
    first = next_run(schedule, job_time, since, tz)
    return first is not None and first <= _aware("now", now)


def catch_up_due(
    schedule: Mapping[str, Any],
    job_time: int,
    since: _dt.datetime,
    now: _dt.datetime,
    tz: ZoneInfo,
    *,
    window: _dt.timedelta = CATCH_UP_WINDOW,
) -> bool:
    """Whether the daemon should run ``schedule`` once now, on start: a slot was missed since
    ``since`` and the next slot is not under ``window`` away. Raises ValidationError like ``next_run``.
    """
    if not missed_runs(schedule, job_time, since, now, tz):
        return False
    upcoming = next_run(schedule, job_time, now, tz)
    return upcoming is None or upcoming - _aware("now", now) >= window


def zone(name: str | None) -> ZoneInfo:
    """The time zone for the ``timezone`` setting: an IANA name, or empty for the server's own zone
    (``TZ``, then ``/etc/localtime``, else UTC). Raises ConfigError for an unknown name.
    """
    if not name:
        name = os.environ.get("TZ", "").lstrip(":") or _system_zone_name()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"timezone: unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from None


def _system_zone_name() -> str:
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        return "UTC"
    marker = "/zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else "UTC"
