"""The scheduled integrity check on real Local repositories: rotation within the cycle, a flipped
byte found and named, the mark cleared after repair, the cap warning, and the 104 alert."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.integration.runner_helpers import World

from snapkeep.cli.main import cli
from snapkeep.clock import UTC, FrozenClock
from snapkeep.engine.format import BlobType
from snapkeep.engine.repository import Repository
from snapkeep.jobs import integrity, queue
from snapkeep.jobs.keystore import KeyStore
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.runs import execute_group
from snapkeep.storage.local import LocalStore

MIB = 1024 * 1024
CYCLE = 4
DAY = dt.timedelta(days=1)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    opened = World(tmp_path)
    yield opened
    opened.close()


def write_version(source_a: Path, source_b: Path, version: int) -> None:
    """Job A holds the files of this version and the one before (so a pack is shared by two
    backups); job B one file rewritten each time."""
    for old in source_a.glob("data-*.bin"):
        if int(old.stem.split("-")[1]) < version - 1:
            old.unlink()
    (source_a / f"data-{version}.bin").write_bytes(os.urandom(1200 * 1024))
    (source_b / "blob.bin").write_bytes(os.urandom(700 * 1024))
    (source_b / "note.txt").write_text(f"version {version}\n")


@pytest.fixture
def jobs(world: World) -> dict[str, Any]:
    source_a, source_b = world.root / "a", world.root / "b"
    source_a.mkdir()
    source_b.mkdir()
    destination = world.destination()
    job_a = world.job(destination, name="Incremental", include_list=[str(source_a)], encrypted=1)
    job_b = world.job(destination, name="Archived", include_list=[str(source_b)], structure=2)
    for version in (1, 2, 3):
        write_version(source_a, source_b, version)
        for job in (job_a, job_b):
            status, group = world.run(job)
            assert status == 100, world.log_text(group)
    return {"a": job_a, "b": job_b, "destination": destination}


def backup_ids(world: World, job: dict[str, Any]) -> list[str]:
    """The job's backups, oldest first."""
    listed = world.ok("listBackups", {"find": {"job_id": job["_id"]}, "limit": 0})["backups"]
    return [backup["_id"] for backup in reversed(listed)]


def object_reads(world: World) -> dict[tuple[str, str, str], dt.datetime | None]:
    with world.catalog.transaction(write=False) as tx:
        rows = tx.connection.execute(schema.integrity_objects.select()).all()
    return {(row.job_id, row.kind, row.object_id): row.last_read for row in rows}


def stored_objects(world: World, job: dict[str, Any]) -> set[str]:
    root = world.backups / job["_id"]
    packs = {path.name for path in (root / "data").glob("*/*")}
    archives = {path.name.split(".")[0] for path in (root / "archives").glob("*.manifest")}
    return packs | archives


def check(world: World, clock: FrozenClock, **options: Any) -> integrity.IntegrityReport:
    return integrity.run_check(world.catalog, world.home, clock=clock, **options)


def settings(world: World, **values: Any) -> None:
    world.ok("manageSettingsIntegrity", {key: str(value) for key, value in values.items()})


def alerts_titled(world: World, text: str) -> list[dict[str, Any]]:
    return [alert for alert in world.ok("listAlerts", {"limit": 0})["alerts"] if text in alert["title"]]


def test_every_object_is_read_within_one_cycle(world: World, jobs: dict[str, Any]) -> None:
    settings(world, cycle_days=CYCLE, bytes_per_run=2 * MIB)
    clock = FrozenClock(dt.datetime(2026, 5, 1, 3, tzinfo=UTC))
    expected = {
        (jobs[name]["_id"], item) for name in ("a", "b") for item in stored_objects(world, jobs[name])
    }
    assert len(expected) >= 6  # three packs or more, three archives
    history: dict[tuple[str, str], list[dt.datetime]] = {key: [] for key in expected}
    start = clock.now()
    partial_runs = 0
    for _day in range(3 * CYCLE):
        report = check(world, clock)
        assert report.ok, report.to_dict()
        for result in report.repositories:
            assert result.bytes_read <= 2 * MIB or result.read == 1
            partial_runs += result.read < result.objects
        for (job_id, _kind, object_id), last in object_reads(world).items():
            if last == clock.now():
                history[(job_id, object_id)].append(last)
        clock.advance(DAY.total_seconds())
    assert partial_runs, "the cap must make the check read a share per run, not everything"
    assert not alerts_titled(world, "cannot cover")
    for key, reads in history.items():
        assert reads, f"{key} never read"
        assert reads[0] - start < CYCLE * DAY, (key, reads)
        for before, after in itertools.pairwise(reads):
            assert after - before <= CYCLE * DAY, (key, reads)
    # the same figures the CLI prints come from the run records
    with world.catalog.transaction(write=False) as tx:
        assert len(integrity.latest_runs(tx, 100)) == 3 * CYCLE


def pack_files(world: World, job: dict[str, Any]) -> list[Path]:
    """The job's packs of file data (folder listings have packs of their own), in the order their
    backups wrote them."""
    root = world.backups / job["_id"]
    repository = Repository.open(
        LocalStore(root), password=KeyStore(world.catalog).get(job["_id"]), load_index=False
    )
    try:
        packs = [
            path
            for path in (root / "data").glob("*/*")
            if any(entry.blob_type is BlobType.DATA for entry in repository.read_pack_trailer(path.name))
        ]
    finally:
        repository.close()
    return sorted(packs, key=lambda path: path.stat().st_mtime_ns)


def test_a_flipped_byte_names_exactly_its_backups_and_repair_clears_them(
    world: World, jobs: dict[str, Any]
) -> None:
    settings(world, cycle_days=CYCLE, bytes_per_run=2 * MIB)
    clock = FrozenClock(dt.datetime(2026, 5, 1, 3, tzinfo=UTC))
    check(world, clock)  # a first, clean pass
    first, second, third = backup_ids(world, jobs["a"])
    packs = pack_files(world, jobs["a"])
    assert len(packs) == 3
    damaged = packs[1]  # backup 2's pack: data-2.bin, also used by backup 3
    original = damaged.read_bytes()
    spoiled = bytearray(original)
    spoiled[len(spoiled) // 3] ^= 0x40
    damaged.chmod(0o600)
    damaged.write_bytes(bytes(spoiled))

    found: list[dict[str, Any]] = []
    for _day in range(CYCLE):
        clock.advance(DAY.total_seconds())
        check(world, clock)
        found = alerts_titled(world, "damaged backups")
        if found:
            break
    assert len(found) == 1, "the damage is found within one cycle, and raises one alert"
    alert = found[0]
    assert alert["level"] == 3
    assert second in alert["message"]
    assert third in alert["message"]
    assert first not in alert["message"]
    assert damaged.name in alert["message"]
    listed = {backup["_id"]: backup for backup in world.ok("listBackups", {"limit": 0})["backups"]}
    marked = {ident for ident, backup in listed.items() if backup["damaged"] == 1}
    assert marked == {second, third}
    assert all(backup["damaged"] is None for ident, backup in listed.items() if ident not in marked)
    assert listed[second]["damage"]
    items = world.ok("getBackupItems", {"_id": third})["items"]
    assert items[0]["damaged"] == 1
    # an unchanged damage found again does not raise a second alert
    clock.advance(DAY.total_seconds())
    check(world, clock)
    assert len(alerts_titled(world, "damaged backups")) == 1

    damaged.write_bytes(original)  # the repair
    clock.advance(DAY.total_seconds())
    report = check(world, clock)
    assert report.ok, report.to_dict()
    cleared = {ident for result in report.repositories for ident in result.cleared_backups}
    assert cleared == {second, third}
    listed_after = world.ok("listBackups", {"limit": 0})["backups"]
    assert all(backup["damaged"] is None for backup in listed_after)


def test_a_damaged_archive_marks_its_backup(world: World, jobs: dict[str, Any]) -> None:
    clock = FrozenClock(dt.datetime(2026, 5, 1, 3, tzinfo=UTC))
    first, second, third = backup_ids(world, jobs["b"])
    archives = sorted(
        (world.backups / jobs["b"]["_id"] / "archives").glob("*.tar"), key=lambda p: p.stat().st_mtime_ns
    )
    spoiled = bytearray(archives[0].read_bytes())
    spoiled[len(spoiled) // 2] ^= 0x01
    archives[0].write_bytes(bytes(spoiled))
    report = check(world, clock, everything=True)
    assert not report.ok
    listed = {backup["_id"]: backup["damaged"] for backup in world.ok("listBackups", {"limit": 0})["backups"]}
    assert [listed[ident] for ident in (first, second, third)] == [1, None, None]
    assert all(value is None for ident, value in listed.items() if ident not in (first, second, third))
    (alert,) = alerts_titled(world, "damaged backups")
    assert first in alert["message"]
    assert "contents" in alert["message"]


def test_a_cap_too_small_for_the_cycle_warns_once(world: World, jobs: dict[str, Any]) -> None:
    settings(world, cycle_days=1, bytes_per_run=MIB)  # job A stores about 3.6 MiB, job B 2.1 MiB
    clock = FrozenClock(dt.datetime(2026, 5, 1, 3, tzinfo=UTC))
    report = check(world, clock)
    assert all(result.cap_too_small for result in report.repositories)
    warnings = alerts_titled(world, "cannot cover")
    assert len(warnings) == 2, "one per repository"
    assert {alert["level"] for alert in warnings} == {2}
    assert sorted("'Incremental'" in alert["message"] for alert in warnings) == [False, True]
    assert all("bytes_per_run" in alert["message"] for alert in warnings)
    clock.advance(DAY.total_seconds())
    check(world, clock)
    assert len(alerts_titled(world, "cannot cover")) == 2, "one alert while the condition holds"
    settings(world, cycle_days=30)  # 3.6 MiB / 30 days fits in 1 MiB a day: the incident ends
    clock.advance(DAY.total_seconds())
    report = check(world, clock)
    assert not any(result.cap_too_small for result in report.repositories)
    settings(world, cycle_days=1)
    clock.advance(DAY.total_seconds())
    check(world, clock)
    assert len(alerts_titled(world, "cannot cover")) == 4, "a new incident raises a new alert"


def test_unencrypted_backups_are_not_authenticated(world: World, jobs: dict[str, Any]) -> None:
    listed = world.ok("listBackups", {"limit": 0})["backups"]
    shown = {(backup["job_id"], backup["authenticated"]) for backup in listed}
    assert shown == {(jobs["a"]["_id"], 1), (jobs["b"]["_id"], 0)}


def test_a_run_that_never_finished_raises_a_critical_alert(world: World) -> None:
    source = world.root / "source"
    source.mkdir()
    (source / "file.txt").write_text("x")
    job = world.job(name="Crashed")
    world.ok("runBackupJobManually", {"_id": job["_id"]})
    group = world.ok("listQueueGroups", {"type": 1})["groups"][0]
    with world.catalog.transaction() as tx:
        assert queue.claim(
            tx, group["_id"], worker={"host": queue.worker_identity()["host"], "pid": os.getpid()}
        )
    with world.catalog.transaction() as tx:
        marked = queue.mark_never_finished(tx)
    assert [item["_id"] for item in marked] == [group["_id"]]
    alert = world.ok("getAlert", {"_id": marked[0]["alert_id"]})
    assert alert["level"] == 3
    assert "never finished" in alert["message"]
    assert "Crashed" in alert["message"]
    assert group["_id"] in alert["message"]
    # the job runs normally afterwards
    world.ok("runBackupJobManually", {"_id": job["_id"]})
    fresh = world.ok("listQueueGroups", {"type": 1, "find": {"status": 1}})["groups"][0]
    assert execute_group(world.catalog, world.home, fresh["_id"], stop=threading.Event()) == 100


def test_the_command_line_runs_it_and_shows_the_settings(world: World, jobs: dict[str, Any]) -> None:
    runner = CliRunner()
    home = ["--home", str(world.home)]
    shown = runner.invoke(cli, [*home, "settings", "set", "cycle_days=7", "bytes_per_run=5000000"])
    assert shown.exit_code == 0, shown.output
    assert "cycle_days" in shown.output
    assert "5000000" in shown.output
    refused = runner.invoke(cli, [*home, "settings", "set", "hour=24"])
    assert refused.exit_code == 2
    assert "hour" in refused.output
    result = runner.invoke(cli, [*home, "integrity", "run", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] == 1
    assert {item["job_name"] for item in report["repositories"]} == {"Incremental", "Archived"}
    pack = pack_files(world, jobs["a"])[0]
    spoiled = bytearray(pack.read_bytes())
    spoiled[-20] ^= 1  # the trailer
    pack.write_bytes(bytes(spoiled))
    other = runner.invoke(cli, [*home, "integrity", "run", "--all", "--destination", "f" * 24])
    assert other.exit_code != 0
    assert "Destination not found" in str(other.exception)
    damaged = runner.invoke(
        cli, [*home, "integrity", "run", "--all", "--destination", jobs["destination"]["_id"]]
    )
    assert damaged.exit_code == 8, damaged.output
    assert pack.name in damaged.output
    history = runner.invoke(cli, [*home, "integrity", "history"])
    assert history.exit_code == 0
    assert report["_id"] in history.output


def test_a_stop_request_ends_the_run_between_repositories(world: World, jobs: dict[str, Any]) -> None:
    clock = FrozenClock(dt.datetime(2026, 5, 1, 3, tzinfo=UTC))
    asked: list[int] = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 1  # the first repository is read, then the service stops

    report = check(world, clock, stop=stop)
    assert len(report.repositories) == 1
    assert report.ended is not None
    assert {job_id for job_id, _kind, _object in object_reads(world)} == {report.repositories[0].job_id}
