"""Fixtures for the daemon tests: the real catalog (SQLite and PostgreSQL) on a frozen clock, objects
made through the API, and a worker pool running the real runner in the test's thread."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from snapkeep.api.dispatch import Api
from snapkeep.clock import FrozenClock
from snapkeep.daemon.scheduler import Scheduler
from snapkeep.daemon.workers import WorkerPool
from snapkeep.jobs.codes import QueueType
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.runs import execute_group
from snapkeep.jobs.schedule import zone

START = dt.datetime(2026, 3, 2, 0, 30, tzinfo=dt.UTC)
UTC_ZONE = zone("UTC")


@pytest.fixture
def clock(catalog) -> FrozenClock:
    frozen = FrozenClock(START)
    catalog.clock = frozen
    return frozen


class World:
    """Objects made through the API on the test's catalog and clock."""

    def __init__(self, catalog, clock: FrozenClock, root: Path) -> None:
        self.catalog = catalog
        self.clock = clock
        self.root = root
        self.home = root / "home"
        self.api = Api(catalog, clock=clock)
        self.source = root / "source"
        self.source.mkdir()
        (self.source / "a.txt").write_text("alpha\n")
        (self.source / "sub").mkdir()
        (self.source / "sub" / "b.bin").write_bytes(bytes(range(256)) * 64)
        self.destination = self.ok(
            "manageDestination",
            {
                "action": "create",
                "name": "Local",
                "type": "Local",
                "options": {"path": str(root / "backups")},
            },
        )

    def ok(self, function: str, params: dict[str, Any]) -> Any:
        answer = self.api.call(function, params)
        assert answer["success"] == 1, (function, params, answer["message"])
        return answer["data"]

    def schedule(self, name: str, kind: int, type_data: Any, **fields: Any) -> dict[str, Any]:
        params = {"action": "create", "name": name, "type": kind, "type_data": type_data, **fields}
        return self.ok("manageSchedule", params)

    def job(self, name: str, links: list[tuple[dict[str, Any], int]], **fields: Any) -> dict[str, Any]:
        params = {
            "action": "create",
            "name": name,
            "type": 2,
            "destination": [self.destination["_id"]],
            "contains": 511,
            "structure": 1,
            "include_list": [str(self.source)],
            "schedules": [{"_id": item["_id"], "retain": retain} for item, retain in links],
            **fields,
        }
        return self.ok("manageBackupJob", params)

    def scheduler(self) -> Scheduler:
        return Scheduler(self.catalog, clock=self.clock, tz=UTC_ZONE)

    def pool(self, types=(QueueType.BACKUP,), limit: int = 2, executor=execute_group) -> WorkerPool:
        return WorkerPool(
            self.catalog,
            self.home,
            name="test",
            types=types,
            limit=lambda: limit,
            executor=executor,
            clock=self.clock,
            poll_interval=0.05,
        )

    def groups(self, job_id: str | None = None) -> list[Any]:
        table = schema.queue_groups
        query = table.select().order_by(table.c.created, table.c.id)
        if job_id is not None:
            query = query.where(table.c.job_id == job_id)
        with self.catalog.transaction(write=False) as tx:
            return list(tx.connection.execute(query))

    def job_row(self, job_id: str) -> Any:
        with self.catalog.transaction(write=False) as tx:
            return tx.connection.execute(schema.jobs.select().where(schema.jobs.c.id == job_id)).one()

    def backups(self, job_id: str) -> list[Any]:
        table = schema.TABLES["backups"]
        with self.catalog.transaction(write=False) as tx:
            return list(tx.connection.execute(table.select().where(table.c.job_id == job_id)))

    def advance_to(self, moment: dt.datetime) -> None:
        seconds = (moment - self.clock.now()).total_seconds()
        assert seconds >= 0, (moment, self.clock.now())
        self.clock.advance(seconds)


@pytest.fixture
def world(catalog, clock, tmp_path) -> World:
    return World(catalog, clock, tmp_path)
