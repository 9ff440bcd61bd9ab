"""The job monitor on a fake clock: monitor.notran and monitor.ranfor, once per incident."""

from __future__ import annotations

import datetime as dt

import pytest

from snapkeep.clock import FrozenClock
from snapkeep.ids import new_id
from snapkeep.jobs import alerts, monitor
from snapkeep.jobs.migrations import schema

START = dt.datetime(2026, 4, 1, 8, 0, tzinfo=dt.UTC)
DAY = 86400


@pytest.fixture
def clock(catalog) -> FrozenClock:
    frozen = FrozenClock(START)
    catalog.clock = frozen
    return frozen


def add_job(catalog, name: str = "Sites", *, notran: int = 0, ranfor: int = 0, disabled: bool = False) -> str:
    document = {
        "name": name,
        "owner": "root",
        "type": 2,
        "monitor": {"notran": notran, "ranfor": ranfor},
        "disabled": disabled,
    }
    with catalog.transaction() as tx:
        return tx.insert("jobs", document)


def add_run(
    catalog, job_id: str, *, status: int, started: dt.datetime, ended: dt.datetime | None = None
) -> str:
    ident = new_id(catalog.clock)
    with catalog.transaction() as tx:
        tx.connection.execute(
            schema.queue_groups.insert().values(
                id=ident,
                type=1,
                status=status,
                job_id=job_id,
                owner="root",
                created=started,
                started=started,
                ended=ended,
                document={"data": {"_id": job_id}},
            )
        )
    return ident


def end_run(catalog, group_id: str, status: int, ended: dt.datetime) -> None:
    table = schema.queue_groups
    with catalog.transaction() as tx:
        tx.connection.execute(table.update().where(table.c.id == group_id).values(status=status, ended=ended))


def check(catalog, clock) -> list[alerts.Alert]:
    return monitor.check_jobs(catalog, clock.now())


def test_notran_counts_from_creation_and_alerts_once_per_incident(catalog, clock) -> None:
    job = add_job(catalog, notran=2)
    clock.advance(2 * DAY - 60)
    assert check(catalog, clock) == []
    clock.advance(60)
    (alert,) = check(catalog, clock)
    assert alert.level == alerts.CRITICAL
    assert alert.title == "Backup Job has not run"
    assert f"'Sites' ({job}) has had no successful run for 2 days" in alert.message
    assert "created on 2026-04-01T08:00:00+00:00" in alert.message
    clock.advance(DAY)
    assert check(catalog, clock) == []  # the same incident: no second alert
    with catalog.transaction() as tx:
        assert [item.id for item in alerts.list_alerts(tx)] == [alert.id]


def test_a_failed_run_does_not_end_the_incident_but_a_successful_one_does(catalog, clock) -> None:
    job = add_job(catalog, notran=1)
    clock.advance(DAY)
    assert len(check(catalog, clock)) == 1
    add_run(catalog, job, status=102, started=clock.now(), ended=clock.now())
    clock.advance(3600)
    assert check(catalog, clock) == []
    with catalog.transaction(write=False) as tx:
        assert alerts.open_incidents(tx, monitor.NOTRAN) != {}
    add_run(catalog, job, status=100, started=clock.now(), ended=clock.now() + dt.timedelta(minutes=5))
    clock.advance(600)
    assert check(catalog, clock) == []
    with catalog.transaction(write=False) as tx:
        assert alerts.open_incidents(tx, monitor.NOTRAN) == {}
    clock.advance(DAY - 301)
    assert check(catalog, clock) == []  # a day after the end of the successful run, less 1 s
    clock.advance(1)
    (again,) = check(catalog, clock)
    assert "its last successful run ended 2026-04-02T09:05:00+00:00" in again.message


def test_clearing_the_alert_does_not_raise_it_again_during_the_incident(catalog, clock, make) -> None:
    add_job(catalog, notran=1)
    clock.advance(DAY)
    assert len(check(catalog, clock)) == 1
    make.ok("clearAlerts")
    clock.advance(DAY)
    assert check(catalog, clock) == []


def test_notran_is_off_at_zero_and_for_disabled_jobs(catalog, clock) -> None:
    add_job(catalog, "off", notran=0)
    disabled = add_job(catalog, "disabled", notran=1, disabled=True)
    clock.advance(30 * DAY)
    assert check(catalog, clock) == []
    with catalog.transaction() as tx:
        document = tx.require("jobs", disabled, "Backup Job")
        document.pop("_id")
        for key in ("running", "last_run", "next_run"):
            document.pop(key)
        tx.replace("jobs", disabled, {**document, "disabled": False})
    (alert,) = check(catalog, clock)
    assert "'disabled'" in alert.message


def test_ranfor_alerts_once_per_run_and_ends_with_the_run(catalog, clock) -> None:
    job = add_job(catalog, ranfor=1)
    group = add_run(catalog, job, status=2, started=clock.now())
    clock.advance(DAY)
    assert check(catalog, clock) == []  # exactly one day is not longer than one day
    clock.advance(60)
    (alert,) = check(catalog, clock)
    assert alert.title == "Backup Job is running too long"
    assert f"queue group {group} started 2026-04-01T08:00:00+00:00" in alert.message
    clock.advance(DAY)
    assert check(catalog, clock) == []
    end_run(catalog, group, 100, clock.now())
    assert check(catalog, clock) == []
    with catalog.transaction(write=False) as tx:
        assert alerts.open_incidents(tx, monitor.RANFOR) == {}
    second = add_run(catalog, job, status=2, started=clock.now())
    clock.advance(DAY + 60)
    (again,) = check(catalog, clock)
    assert second in again.message


def test_run_finished_resolves_without_waiting_for_a_pass(catalog, clock) -> None:
    job = add_job(catalog, notran=1, ranfor=1)
    group = add_run(catalog, job, status=2, started=clock.now())
    clock.advance(DAY + 60)
    assert len(check(catalog, clock)) == 2
    with catalog.transaction() as tx:
        monitor.run_finished(tx, job, group, 102)
        assert set(alerts.open_incidents(tx, "monitor.")) == {monitor.NOTRAN + job}
        monitor.run_finished(tx, job, group, 100)
        assert alerts.open_incidents(tx, "monitor.") == {}
