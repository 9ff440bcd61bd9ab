"""Alerts in the catalog (one per incident) and the alert API functions, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from snapkeep.clock import FrozenClock
from snapkeep.errors import NotFoundError, ValidationError
from snapkeep.ids import is_id
from snapkeep.jobs import alerts

START = dt.datetime(2026, 4, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock(catalog) -> FrozenClock:
    frozen = FrozenClock(START)
    catalog.clock = frozen
    return frozen


def test_an_alert_is_stored_with_the_api_fields(catalog, clock) -> None:
    with catalog.transaction() as tx:
        alert = alerts.raise_alert(tx, title="Disk nearly full", message="/srv is 97% full", level=2)
    assert alert is not None
    assert is_id(alert.id)
    with catalog.transaction(write=False) as tx:
        stored = alerts.get_alert(tx, alert.id)
    assert stored.as_api() == {
        "_id": alert.id,
        "title": "Disk nearly full",
        "message": "/srv is 97% full",
        "level": 2,
        "created": "2026-04-01T08:00:00+00:00",
    }
    assert stored.level_name == "warning"


def test_an_incident_raises_one_alert_until_it_is_resolved(catalog, clock) -> None:
    def check() -> alerts.Alert | None:
        with catalog.transaction() as tx:
            return alerts.raise_alert(tx, title="Job late", message="m", incident="monitor.notran:j1")

    first = check()
    assert first is not None
    clock.advance(3600)
    assert check() is None
    with catalog.transaction() as tx:  # clearing the alert does not reopen the incident
        alerts.clear_alerts(tx, [first.id])
    assert check() is None
    with catalog.transaction() as tx:
        assert alerts.open_incidents(tx, "monitor.") == {"monitor.notran:j1": first.id}
        assert alerts.resolve(tx, "monitor.notran:j1") is True
        assert alerts.resolve(tx, "monitor.notran:j1") is False
    second = check()
    assert second is not None
    assert second.id != first.id


def test_bad_alerts_are_refused_by_field(catalog, clock) -> None:
    with catalog.transaction() as tx:
        with pytest.raises(ValidationError, match="level: must be 1"):
            alerts.raise_alert(tx, title="t", message="m", level=4)
        with pytest.raises(ValidationError, match="title: must not be empty"):
            alerts.raise_alert(tx, title=" ", message="m")


def test_run_alerts_follow_the_queue_status(catalog, clock) -> None:
    job = {"_id": "a" * 24, "name": "Sites"}
    with catalog.transaction() as tx:
        assert alerts.run_alert(tx, job, 100, group_id="g" * 24) is None
        failed = alerts.run_alert(tx, job, 102, group_id="b" * 24, detail="destination unreachable")
        partial = alerts.run_alert(tx, job, 101, group_id="c" * 24)
        never = alerts.run_alert(tx, job, 104, group_id="d" * 24)
    assert failed is not None
    assert failed.level == alerts.CRITICAL
    assert failed.title == "Backup Job failed"
    assert (
        failed.message
        == f"Backup Job 'Sites' ({'a' * 24}) failed (queue group {'b' * 24}): destination unreachable"
    )
    assert partial is not None
    assert partial.level == alerts.WARNING
    assert never is not None
    assert never.level == alerts.CRITICAL


# --- through the API -----------------------------------------------------------------------------


def seed(catalog, clock, count: int = 3) -> list[str]:
    ids = []
    for index in range(count):
        with catalog.transaction() as tx:
            alert = alerts.raise_alert(
                tx, title=f"Alert {index}", message=f"details {index}", level=1 + index % 3
            )
        assert alert is not None
        ids.append(alert.id)
        clock.advance(60)
    return ids


def test_list_alerts_newest_first_with_list_params(api, catalog, clock, make: Any) -> None:
    ids = seed(catalog, clock)
    listed = make.ok("listAlerts")
    assert [item["_id"] for item in listed["alerts"]] == ids[::-1]
    assert listed["total"] == 3
    assert make.ok("listAlerts", "find[level]=3")["alerts"][0]["_id"] == ids[2]
    assert make.ok("listAlerts", "filter=DETAILS%201")["total"] == 1
    page = make.ok("listAlerts", "sort[created]=1&limit=1&skip=1")
    assert [item["_id"] for item in page["alerts"]] == [ids[1]]
    assert page["total"] == 3
    assert "bogus: unknown field" in api.call("listAlerts", {"bogus": 1})["message"]


def test_get_alert(api, catalog, clock, make: Any) -> None:
    (ident,) = seed(catalog, clock, 1)
    assert make.ok("getAlert", {"_id": ident})["title"] == "Alert 0"
    missing = api.call("getAlert", {"_id": "f" * 24})
    assert missing["success"] == 0
    assert missing["message"] == f"Alert not found: {'f' * 24}"
    assert "_id: must be an ID" in api.call("getAlert", {"_id": "nope"})["message"]


def test_clear_alerts_by_id_or_all(api, catalog, clock, make: Any) -> None:
    ids = seed(catalog, clock, 4)
    refused = api.call("clearAlerts", f"_id[]={ids[0]}&_id[]={'f' * 24}")
    assert refused["success"] == 0
    assert "Alert not found: " + "f" * 24 in refused["message"]
    assert make.ok("listAlerts")["total"] == 4  # nothing was cleared
    assert make.ok("clearAlerts", f"_id[]={ids[0]}&_id[]={ids[1]}") == {"cleared": 2}
    assert make.ok("clearAlerts", {"_id": ids[2]}) == {"cleared": 1}
    assert [item["_id"] for item in make.ok("listAlerts")["alerts"]] == [ids[3]]
    assert make.ok("clearAlerts") == {"cleared": 1}
    assert make.ok("listAlerts")["total"] == 0
    assert "level: unknown field" in api.call("clearAlerts", {"level": 3})["message"]
    with catalog.transaction() as tx, pytest.raises(NotFoundError):
        alerts.get_alert(tx, ids[3])
