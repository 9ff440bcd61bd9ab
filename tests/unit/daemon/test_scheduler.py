"""The scheduler on a frozen clock, with the real catalog and the real runner: hourly and daily runs,
retention per schedule, a chained job with a delay, and a service that was down for three days."""

from __future__ import annotations

import datetime as dt

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
HOURLY, DAILY, AFTER_JOB = 1, 2, 5
EVERY_DAY = [1, 2, 3, 4, 5, 6, 7]


def run_until(world, scheduler, pool, end: dt.datetime) -> list[tuple[dt.datetime, list[str]]]:
    """Advance the clock from due time to due time until ``end``; run what each pass queues."""
    fired = []
    while scheduler.next_due is not None and scheduler.next_due <= end:
        world.advance_to(scheduler.next_due)
        for group in scheduler.tick():
            row = next(g for g in world.groups() if g.id == group["_id"])
            fired.append((world.clock.now(), list(row.document["schedules"])))
        for _group_id, status in pool.run_pending():
            assert status == 100, world.groups()[-1].document
    return fired


def test_a_day_of_hourly_runs(world) -> None:
    hourly = world.schedule("Hourly", HOURLY, 1)
    job = world.job("Hourly job", [(hourly, 5)], time=15)
    scheduler, pool = world.scheduler(), world.pool()

    assert scheduler.tick() == []  # created at 00:30: the first slot is 01:15
    assert world.job_row(job["_id"]).next_run == dt.datetime(2026, 3, 2, 1, 15, tzinfo=dt.UTC)
    fired = run_until(world, scheduler, pool, dt.datetime(2026, 3, 3, 0, 59, tzinfo=dt.UTC))

    expected = [dt.datetime(2026, 3, 2, hour, 15, tzinfo=dt.UTC) for hour in range(1, 24)]
    expected.append(dt.datetime(2026, 3, 3, 0, 15, tzinfo=dt.UTC))
    assert [moment for moment, _ in fired] == expected
    assert all(tags == [hourly["_id"]] for _, tags in fired)
    groups = world.groups(job["_id"])
    assert [group.status for group in groups] == [100] * 24
    assert [group.started for group in groups] == expected
    row = world.job_row(job["_id"])
    assert not row.running
    assert row.next_run == dt.datetime(2026, 3, 3, 1, 15, tzinfo=dt.UTC)
    assert len(world.backups(job["_id"])) == 5, "retain 5 keeps the newest five"


def test_a_week_of_daily_runs_keeps_three(world) -> None:
    daily = world.schedule("Daily", DAILY, EVERY_DAY)
    job = world.job("Daily job", [(daily, 3)], time=200)
    scheduler, pool = world.scheduler(), world.pool()
    scheduler.tick()
    fired = run_until(world, scheduler, pool, dt.datetime(2026, 3, 9, 0, 30, tzinfo=dt.UTC))

    assert [moment for moment, _ in fired] == [
        dt.datetime(2026, 3, 2 + day, 2, 0, tzinfo=dt.UTC) for day in range(7)
    ]
    kept = sorted(backup.created for backup in world.backups(job["_id"]))
    assert kept == [dt.datetime(2026, 3, day, 2, 0, tzinfo=dt.UTC) for day in (6, 7, 8)]


def test_a_chained_job_runs_ten_minutes_after_its_leader(world) -> None:
    daily = world.schedule("Nightly", DAILY, EVERY_DAY)
    leader = world.job("Leader", [(daily, 3)], time=200)
    after = world.schedule("After leader", AFTER_JOB, leader["_id"], delay_amount=10, delay_type=1)
    follower = world.job("Follower", [(after, 3)])
    scheduler, pool = world.scheduler(), world.pool()
    scheduler.tick()

    world.advance_to(dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC))
    assert [group["data"]["_id"] for group in scheduler.tick()] == [leader["_id"]]
    assert [status for _, status in pool.run_pending()] == [100]
    assert scheduler.tick() == [], "not before the delay"
    assert scheduler.next_due == dt.datetime(2026, 3, 2, 2, 10, tzinfo=dt.UTC)

    world.advance_to(dt.datetime(2026, 3, 2, 2, 9, 59, tzinfo=dt.UTC))
    assert scheduler.tick() == []
    world.advance_to(dt.datetime(2026, 3, 2, 2, 10, tzinfo=dt.UTC))
    queued = scheduler.tick()
    assert [group["data"]["_id"] for group in queued] == [follower["_id"]]
    assert [status for _, status in pool.run_pending()] == [100]
    assert world.groups(follower["_id"])[0].document["schedules"] == [after["_id"]]

    world.advance_to(dt.datetime(2026, 3, 2, 3, 0, tzinfo=dt.UTC))
    assert scheduler.tick() == [], "one leader run fires the follower once"
    assert world.backups(follower["_id"])[0].document["schedules"] == [after["_id"]]


def test_a_failed_leader_does_not_fire_the_follower(world, tmp_path) -> None:
    daily = world.schedule("Nightly", DAILY, EVERY_DAY)
    leader = world.job("Leader", [(daily, 3)], time=200)
    after = world.schedule("After leader", AFTER_JOB, leader["_id"], delay_amount=0)
    follower = world.job("Follower", [(after, 3)])
    world.ok(
        "manageBackupJob",
        {"action": "modify", "_id": leader["_id"], "include_list": [str(tmp_path / "missing")]},
    )
    scheduler, pool = world.scheduler(), world.pool()
    scheduler.tick()
    world.advance_to(dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC))
    scheduler.tick()
    statuses = [status for _, status in pool.run_pending()]
    assert statuses
    assert statuses[0] != 100
    world.advance_to(dt.datetime(2026, 3, 2, 2, 30, tzinfo=dt.UTC))
    assert scheduler.tick() == []
    assert world.groups(follower["_id"]) == []


def test_a_service_down_for_three_days_runs_each_schedule_once(world) -> None:
    daily = world.schedule("Daily", DAILY, EVERY_DAY)
    hourly6 = world.schedule("Every 6 hours", HOURLY, 6)
    job = world.job("Sites", [(daily, 7), (hourly6, 7)], time=200)
    first = world.scheduler()
    first.tick()
    world.advance_to(dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC))
    assert len(first.tick()) == 1
    world.pool().run_pending()

    # the service dies at 02:05 and comes back three days later at 13:00
    world.advance_to(dt.datetime(2026, 3, 5, 13, 0, tzinfo=dt.UTC))
    restarted = world.scheduler()
    queued = restarted.catch_up()
    assert len(queued) == 1, "once, not once per missed slot"
    tags = world.groups(job["_id"])[-1].document["schedules"]
    assert sorted(tags) == sorted([daily["_id"], hourly6["_id"]])
    assert [status for _, status in world.pool().run_pending()] == [100]
    assert restarted.tick() == []
    assert world.job_row(job["_id"]).next_run == dt.datetime(2026, 3, 5, 18, 0, tzinfo=dt.UTC)


def test_catch_up_is_skipped_when_the_next_slot_is_near(world) -> None:
    daily = world.schedule("Daily", DAILY, EVERY_DAY)
    job = world.job("Sites", [(daily, 7)], time=200)
    world.scheduler().tick()
    world.advance_to(dt.datetime(2026, 3, 4, 1, 45, tzinfo=dt.UTC))  # down since 00:30 two days ago
    restarted = world.scheduler()
    assert restarted.catch_up() == [], "02:00 is 15 minutes away: it runs then, not now and then"
    world.advance_to(dt.datetime(2026, 3, 4, 2, 0, tzinfo=dt.UTC))
    assert len(restarted.tick()) == 1
    assert len(world.groups(job["_id"])) == 1


def test_a_busy_job_is_not_queued_twice_and_its_slot_is_skipped(world) -> None:
    hourly = world.schedule("Hourly", HOURLY, 1)
    job = world.job("Sites", [(hourly, 3)])
    scheduler = world.scheduler()
    scheduler.tick()
    world.ok("runBackupJobManually", {"_id": job["_id"]})
    world.advance_to(dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC))
    assert scheduler.tick() == []
    assert len(world.groups(job["_id"])) == 1
    assert world.job_row(job["_id"]).next_run == dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)


def test_disabled_jobs_are_not_queued_and_do_not_replay_when_enabled(world) -> None:
    hourly = world.schedule("Hourly", HOURLY, 1)
    job = world.job("Sites", [(hourly, 3)], disabled=1)
    scheduler = world.scheduler()
    scheduler.tick()
    world.advance_to(dt.datetime(2026, 3, 2, 5, 30, tzinfo=dt.UTC))
    assert scheduler.tick() == []
    world.ok("manageBackupJob", {"action": "modify", "_id": job["_id"], "disabled": 0})
    assert scheduler.tick() == []
    world.advance_to(dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC))
    assert len(scheduler.tick()) == 1


def test_changing_a_schedule_moves_the_cursor(world) -> None:
    monthly = world.schedule("Monthly", 4, [1])
    job = world.job("Sites", [(monthly, 3)])
    scheduler = world.scheduler()
    scheduler.tick()
    assert world.job_row(job["_id"]).next_run == dt.datetime(2026, 4, 1, 0, 0, tzinfo=dt.UTC)
    world.ok("manageSchedule", {"action": "modify", "_id": monthly["_id"], "type": 1, "type_data": 1})
    scheduler.tick()
    assert world.job_row(job["_id"]).next_run == dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
