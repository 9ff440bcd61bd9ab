"""Property tests of schedule maths against a brute-force, minute-by-minute reference.

The reference walks UTC minutes one at a time and decides, from the local wall clock alone, whether a
minute is due: its wall time is a slot (first occurrence only when clocks were set back), or the clocks
jumped forward onto it over a slot. ``next_run`` must agree with it, never skip a due minute, and always
answer a time strictly after the one it was given.
"""

from __future__ import annotations

import calendar
import datetime as dt
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapkeep.jobs.schedule import api_weekday, catch_up_due, missed_runs, next_run

UTC = dt.UTC
MINUTE = dt.timedelta(minutes=1)
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]


@cache
def transitions(name: str) -> tuple[dt.datetime, ...]:
    """Every UTC offset change of ``name`` in 2025-2027, to the minute."""
    tz = ZoneInfo(name)
    found = []
    moment = dt.datetime(2025, 1, 1, tzinfo=UTC)
    end = dt.datetime(2028, 1, 1, tzinfo=UTC)
    while moment < end:
        later = moment + dt.timedelta(hours=6)
        if moment.astimezone(tz).utcoffset() != later.astimezone(tz).utcoffset():
            low, high = moment, later
            while high - low > MINUTE:
                middle = low + (high - low) // 2
                middle = middle.replace(second=0, microsecond=0)
                if middle.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high)
        moment = later
    return tuple(found)


def month_ends(name: str) -> list[dt.datetime]:
    tz = ZoneInfo(name)
    result = []
    for year in (2025, 2026, 2027):
        for month in range(1, 13):
            last = calendar.monthrange(year, month)[1]
            result.append(dt.datetime(year, month, last, 22, 0, tzinfo=tz).astimezone(UTC))
    return result


def is_slot(schedule: dict, job_time: int, wall: dt.datetime) -> bool:
    """Whether a naive local wall time is a slot, decided directly from the API rules."""
    hour, minute = divmod(job_time, 100)
    kind = schedule["type"]
    if kind == 1:
        return wall.minute == minute and wall.hour % schedule["type_data"] == 0
    if (wall.hour, wall.minute) != (hour, minute):
        return False
    if kind == 2:
        return api_weekday(wall.date()) in schedule["type_data"]
    if kind == 3:
        return api_weekday(wall.date()) == schedule["type_data"]
    last = calendar.monthrange(wall.year, wall.month)[1]
    days = schedule["type_data"]
    return wall.day in days or (wall.day == last and any(day > last for day in days))


def reference_due(schedule: dict, job_time: int, minute: dt.datetime, tz: ZoneInfo) -> bool:
    """Whether the UTC ``minute`` is a run time, by scanning the wall clock around it."""
    local = minute.astimezone(tz)
    wall = local.replace(tzinfo=None, fold=0)
    if local.fold == 0 and is_slot(schedule, job_time, wall):
        return True
    previous = (minute - MINUTE).astimezone(tz).replace(tzinfo=None, fold=0)
    skipped = previous + MINUTE
    while skipped < wall:  # the clocks jumped forward onto this minute
        if is_slot(schedule, job_time, skipped):
            return True
        skipped += MINUTE
    return False


def reference_next(schedule: dict, job_time: int, after: dt.datetime, tz: ZoneInfo, limit: dt.datetime):
    minute = after.astimezone(UTC).replace(second=0, microsecond=0) + MINUTE
    while minute <= limit:
        if reference_due(schedule, job_time, minute, tz):
            return minute
        minute += MINUTE
    return None


schedules = st.one_of(
    st.builds(lambda n: {"type": 1, "type_data": n}, st.sampled_from([1, 2, 3, 4, 6, 8, 12])),
    st.builds(
        lambda days: {"type": 2, "type_data": sorted(days)},
        st.sets(st.integers(1, 7), min_size=1, max_size=7),
    ),
    st.builds(lambda day: {"type": 3, "type_data": day}, st.integers(1, 7)),
    st.builds(
        lambda days: {"type": 4, "type_data": sorted(days)},
        st.sets(st.one_of(st.integers(1, 31), st.integers(28, 31)), min_size=1, max_size=4),
    ),
)
# times near DST changes (where 02:00-03:00 and 01:00-02:00 matter) are drawn often
job_times = st.one_of(
    st.sampled_from([0, 30, 100, 130, 159, 200, 210, 230, 245, 259, 300, 2330, 2359]),
    st.builds(lambda h, m: h * 100 + m, st.integers(0, 23), st.integers(0, 59)),
)


@st.composite
def instants(draw, name: str) -> dt.datetime:
    """An instant near a DST change or a month end of ``name``, or anywhere in 2025-2027."""
    kind = draw(st.sampled_from(["transition", "transition", "month end", "anywhere"]))
    if kind == "transition" and transitions(name):
        center = draw(st.sampled_from(transitions(name)))
    elif kind == "month end":
        center = draw(st.sampled_from(month_ends(name)))
    else:
        center = dt.datetime(2025, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=draw(st.integers(0, 1_500_000)))
    minutes = draw(st.one_of(st.integers(-180, 60), st.integers(-3 * 24 * 60, 24 * 60)))
    shift = dt.timedelta(minutes=minutes, seconds=draw(st.integers(0, 59)))
    return center + shift


@st.composite
def cases(draw):
    name = draw(st.sampled_from(ZONES))
    return draw(schedules), draw(job_times), draw(instants(name)), ZoneInfo(name)


FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(cases())
def test_next_run_matches_the_minute_by_minute_reference(case) -> None:
    schedule, job_time, after, tz = case
    answer = next_run(schedule, job_time, after, tz)
    assert answer is not None
    assert answer > after
    assert answer.second == 0
    assert answer.microsecond == 0
    expected = reference_next(schedule, job_time, after, tz, answer)
    assert expected == answer, (schedule, job_time, after, tz, answer)


@settings(max_examples=40, deadline=None)
@given(cases(), st.integers(1, 6))
def test_following_slots_never_skip_a_due_minute(case, steps) -> None:
    schedule, job_time, after, tz = case
    moment = after
    for _ in range(steps):
        following = next_run(schedule, job_time, moment, tz)
        assert following is not None
        assert following > moment
        if schedule["type"] == 1:  # cheap enough to scan the whole gap for hourly schedules
            assert reference_next(schedule, job_time, moment, tz, following) == following
        else:
            assert reference_due(schedule, job_time, following, tz)
        moment = following


@settings(max_examples=60, deadline=None)
@given(cases(), st.integers(0, 600))
def test_any_instant_before_the_answer_gives_the_same_answer(case, minutes) -> None:
    schedule, job_time, after, tz = case
    answer = next_run(schedule, job_time, after, tz)
    assert answer is not None
    between = min(after + dt.timedelta(minutes=minutes), answer - dt.timedelta(seconds=1))
    assert next_run(schedule, job_time, between, tz) == answer


@settings(max_examples=60, deadline=None)
@given(cases(), st.integers(1, 60 * 24 * 40))
def test_missed_runs_is_a_slot_in_the_down_interval(case, down_minutes) -> None:
    schedule, job_time, since, tz = case
    now = since + dt.timedelta(minutes=down_minutes)
    first = next_run(schedule, job_time, since, tz)
    assert first is not None
    assert missed_runs(schedule, job_time, since, now, tz) == (first <= now)
    due = catch_up_due(schedule, job_time, since, now, tz)
    upcoming = next_run(schedule, job_time, now, tz)
    assert upcoming is not None
    assert due == (first <= now and upcoming - now >= dt.timedelta(minutes=30))


@st.composite
def gap_cases(draw):
    """A slot inside a wall-clock gap (clocks set forward), asked for shortly before the jump."""
    name = draw(st.sampled_from(ZONES[1:]))
    tz = ZoneInfo(name)
    forward = [
        moment
        for moment in transitions(name)
        if moment.astimezone(tz).utcoffset() > (moment - MINUTE).astimezone(tz).utcoffset()
    ]
    jump = draw(st.sampled_from(forward))
    gap_start = (jump - MINUTE).astimezone(tz).replace(tzinfo=None) + MINUTE
    gap_end = jump.astimezone(tz).replace(tzinfo=None)
    gap_minutes = int((gap_end - gap_start) / MINUTE)
    wall = gap_start + MINUTE * draw(st.integers(0, gap_minutes - 1))
    job_time = wall.hour * 100 + wall.minute
    schedule = draw(
        st.sampled_from(
            [
                {"type": 2, "type_data": [api_weekday(wall.date())]},
                {"type": 3, "type_data": api_weekday(wall.date())},
                {"type": 4, "type_data": [wall.day]},
                {"type": 1, "type_data": 1},
            ]
        )
    )
    after = jump - dt.timedelta(minutes=draw(st.integers(1, 59)), seconds=draw(st.integers(0, 59)))
    return schedule, job_time, after, tz, jump


@settings(max_examples=40, deadline=None)
@given(gap_cases())
def test_a_slot_skipped_by_the_clocks_runs_at_the_first_valid_minute(case) -> None:
    schedule, job_time, after, tz, jump = case
    answer = next_run(schedule, job_time, after, tz)
    assert answer == reference_next(schedule, job_time, after, tz, jump)
    if schedule["type"] == 1:  # an earlier hourly slot may come first
        assert answer is not None
        assert answer <= jump
    else:
        assert answer == jump
