"""Schedule maths on worked examples: every type, DST changes, month ends, chains, catch-up."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from snapkeep.errors import ConfigError, ValidationError
from snapkeep.jobs.schedule import (
    after_job_due,
    catch_up_due,
    job_next_run,
    missed_runs,
    next_run,
    zone,
)

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
EVERY_DAY = {"type": 2, "type_data": [1, 2, 3, 4, 5, 6, 7]}


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


def local(tz: ZoneInfo, *parts: int, fold: int = 0) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=tz, fold=fold).astimezone(dt.UTC)


def slots_between(
    schedule: dict, job_time: int, start: dt.datetime, end: dt.datetime, tz: ZoneInfo
) -> list[dt.datetime]:
    """Every slot in ``(start, end]`` by stepping ``next_run``."""
    result: list[dt.datetime] = []
    moment = next_run(schedule, job_time, start, tz)
    while moment is not None and moment <= end:
        result.append(moment)
        moment = next_run(schedule, job_time, moment, tz)
    return result


def test_hourly_slots_fall_at_hours_divisible_by_n_at_the_jobs_minute() -> None:
    every_six = {"type": 1, "type_data": 6}
    slots = slots_between(every_six, 1745, utc(2026, 5, 1), utc(2026, 5, 2), UTC)
    assert slots == [utc(2026, 5, 1, h, 45) for h in (0, 6, 12, 18)]
    every_hour = {"type": 1, "type_data": 1}
    assert len(slots_between(every_hour, 5, utc(2026, 5, 1), utc(2026, 5, 2), UTC)) == 24


def test_next_run_is_strictly_after() -> None:
    assert next_run(EVERY_DAY, 200, utc(2026, 5, 1, 2, 0), UTC) == utc(2026, 5, 2, 2, 0)
    assert next_run(EVERY_DAY, 200, utc(2026, 5, 1, 1, 59, 59), UTC) == utc(2026, 5, 1, 2, 0)


def test_daily_weekdays_count_from_sunday() -> None:
    weekends = {"type": 2, "type_data": [1, 7]}  # Sunday, Saturday
    slots = slots_between(weekends, 300, utc(2026, 5, 4), utc(2026, 5, 18), UTC)  # Monday 4 May
    assert [slot.strftime("%a %d") for slot in slots] == ["Sat 09", "Sun 10", "Sat 16", "Sun 17"]


def test_weekly_runs_once_a_week() -> None:
    wednesday = {"type": 3, "type_data": 4}
    slots = slots_between(wednesday, 2330, utc(2026, 5, 1), utc(2026, 6, 1), UTC)
    assert [slot.day for slot in slots] == [6, 13, 20, 27]


def test_monthly_day_31_runs_on_the_last_day_of_shorter_months_once() -> None:
    monthly = {"type": 4, "type_data": [30, 31]}
    slots = slots_between(monthly, 0, utc(2026, 1, 1), utc(2026, 4, 1), UTC)
    assert slots == [utc(2026, 1, 30), utc(2026, 1, 31), utc(2026, 2, 28), utc(2026, 3, 30), utc(2026, 3, 31)]
    leap = slots_between({"type": 4, "type_data": [31]}, 0, utc(2028, 2, 1), utc(2028, 3, 1), UTC)
    assert leap == [utc(2028, 2, 29)]


def test_a_time_skipped_by_dst_runs_at_the_first_valid_minute() -> None:
    # Berlin, 29 March 2026: 02:00 becomes 03:00; 02:30 runs at 03:00 local (01:00 UTC)
    assert next_run(EVERY_DAY, 230, local(BERLIN, 2026, 3, 28, 12), BERLIN) == local(BERLIN, 2026, 3, 29, 3)
    # New York, 8 March 2026: 02:15 runs at 03:00 EDT
    assert next_run(EVERY_DAY, 215, utc(2026, 3, 8), NEW_YORK) == local(NEW_YORK, 2026, 3, 8, 3)
    # Lord Howe, 4 October 2026: 02:00 becomes 02:30; 02:10 runs at 02:30
    assert next_run(EVERY_DAY, 210, utc(2026, 10, 3), LORD_HOWE) == local(LORD_HOWE, 2026, 10, 4, 2, 30)


def test_a_repeated_time_runs_once_at_its_first_occurrence() -> None:
    # Berlin, 25 October 2026: 03:00 becomes 02:00; 02:30 happens twice
    first = local(BERLIN, 2026, 10, 25, 2, 30, fold=0)
    assert next_run(EVERY_DAY, 230, utc(2026, 10, 24, 12), BERLIN) == first
    assert next_run(EVERY_DAY, 230, first, BERLIN) == local(BERLIN, 2026, 10, 26, 2, 30)
    hourly = slots_between(
        {"type": 1, "type_data": 1}, 30, first - dt.timedelta(hours=2), first + dt.timedelta(hours=3), BERLIN
    )
    walls = [slot.astimezone(BERLIN).strftime("%H:%M%z") for slot in hourly]
    assert walls == ["01:30+0200", "02:30+0200", "03:30+0100", "04:30+0100"]


def test_after_job_done_has_no_slots_and_fires_after_its_delay() -> None:
    chained = {"type": 5, "type_data": "0" * 24, "delay_amount": 10, "delay_type": 1}
    assert next_run(chained, 0, utc(2026, 1, 1), UTC) is None
    assert after_job_due(chained, utc(2026, 1, 1, 3, 55)) == utc(2026, 1, 1, 4, 5)
    assert after_job_due({**chained, "delay_type": 2, "delay_amount": 3}, utc(2026, 1, 1)) == utc(
        2026, 1, 1, 3
    )
    assert after_job_due({**chained, "delay_type": 3, "delay_amount": 2}, utc(2026, 1, 1)) == utc(2026, 1, 3)
    with pytest.raises(ValidationError, match="type"):
        after_job_due(EVERY_DAY, utc(2026, 1, 1))


def test_job_next_run_is_the_earliest_linked_schedule() -> None:
    daily = {"_id": "a" * 24, **EVERY_DAY}
    hourly = {"_id": "b" * 24, "type": 1, "type_data": 4}
    chained = {"_id": "c" * 24, "type": 5, "type_data": "d" * 24, "delay_amount": 0, "delay_type": 1}
    job = {"time": 130, "schedules": [{"_id": "a" * 24}, {"_id": "c" * 24}], "disabled": False}
    after = utc(2026, 5, 1, 0, 0)
    assert job_next_run(job, [daily, hourly, chained], after, UTC) == utc(2026, 5, 1, 1, 30)
    job["schedules"].append({"_id": "b" * 24})
    assert job_next_run(job, [daily, hourly, chained], after, UTC) == utc(2026, 5, 1, 0, 30)
    assert job_next_run({**job, "disabled": True}, [daily, hourly], after, UTC) is None
    assert job_next_run({**job, "schedules": [{"_id": "c" * 24}]}, [chained], after, UTC) is None


def test_a_service_down_for_three_days_catches_up_once() -> None:
    last_run = utc(2026, 5, 1, 2, 0)
    back = utc(2026, 5, 4, 12, 0)
    assert missed_runs(EVERY_DAY, 200, last_run, back, UTC)
    assert catch_up_due(EVERY_DAY, 200, last_run, back, UTC)
    # the catch-up run becomes the last run: nothing is missed any more
    assert not catch_up_due(EVERY_DAY, 200, back, back + dt.timedelta(minutes=5), UTC)


def test_catch_up_is_skipped_when_the_next_slot_is_under_30_minutes_away() -> None:
    last_run = utc(2026, 5, 1, 2, 0)
    assert not catch_up_due(EVERY_DAY, 200, last_run, utc(2026, 5, 3, 1, 31), UTC)
    assert catch_up_due(EVERY_DAY, 200, last_run, utc(2026, 5, 3, 1, 30), UTC)
    assert not missed_runs(EVERY_DAY, 200, last_run, utc(2026, 5, 2, 1, 59), UTC)


def test_bad_input_names_the_field() -> None:
    with pytest.raises(ValidationError, match="after: must be a timezone-aware"):
        next_run(EVERY_DAY, 200, dt.datetime(2026, 1, 1), UTC)  # noqa: DTZ001 - the naive time refused
    with pytest.raises(ValidationError, match="time: must be HHMM"):
        next_run(EVERY_DAY, 2460, utc(2026, 1, 1), UTC)
    with pytest.raises(ValidationError, match="type_data: hourly interval"):
        next_run({"type": 1, "type_data": 5}, 0, utc(2026, 1, 1), UTC)
    with pytest.raises(ValidationError, match="type: unknown schedule type"):
        next_run({"type": 9, "type_data": 1}, 0, utc(2026, 1, 1), UTC)


def test_zone_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert zone("Europe/Berlin") == BERLIN
    monkeypatch.setenv("TZ", "America/New_York")
    assert zone("") == NEW_YORK
    with pytest.raises(ConfigError, match="timezone: unknown time zone 'Mars/Olympus'"):
        zone("Mars/Olympus")


@pytest.mark.parametrize(
    ("minute", "spring", "autumn"),
    [(0, 23, 24), (30, 24, 24)],
)
def test_hourly_runs_on_the_days_the_clocks_change(minute: int, spring: int, autumn: int) -> None:
    hourly = {"type": 1, "type_data": 1}
    second = dt.timedelta(seconds=1)

    def runs(day: int, month: int) -> int:
        start = local(BERLIN, 2026, month, day) - second
        end = local(BERLIN, 2026, month, day + 1) - second
        return len(slots_between(hourly, minute, start, end, BERLIN))

    assert runs(29, 3) == spring
    assert runs(25, 10) == autumn
