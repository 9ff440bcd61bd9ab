"""The scheduled integrity check: read a rotating share of every repository so damage is found before
a restore needs the data (issue 10, section 3; docs/maintenance.md, "Scheduled integrity check").

A repository is one (destination, job) pair that has backups in the catalog. Its objects are its packs
(Incremental) and its archives (Archived, Compressed: data plus manifest). Each run:

1. lists the objects and their sizes, and drops the state of objects that are gone;
2. chooses what to read (``choose``): objects found damaged before come first (so a repair is seen
   at the next run), then those never read, then the ones read longest ago. It reads at least
   ``ceil(stored / cycle_days)`` bytes (the share that covers the repository once per cycle), more
   when objects are due (read ``cycle_days - 1`` days ago or earlier, so they would go past the cycle
   before the next daily run), never more than ``bytes_per_run`` (except that one object is always
   read, however big);
3. reads them whole under a shared repository lock (a prune, which takes an exclusive lock, waits or
   makes the check skip the repository this time): ``engine.maintenance.scrub.verify_packs`` and
   ``engine.archive.verify.verify_archive``;
4. maps damage to backups: damaged blobs to the snapshots whose trees use them
   (``scrub.affected_snapshots``), a damaged archive to its backup, and marks those backups
   (``backups.mark_damaged``: ``listBackups`` shows ``damaged: 1``); a mark whose objects all read
   clean again, or are gone, is removed;
5. records what was read and when (``integrity_objects``), and raises alerts: **critical** when new
   damage is found (the message names every newly damaged backup and object; the same damage found
   again on later runs does not raise it again), **warning** when ``bytes_per_run`` cannot cover the
   repository within the cycle (stored bytes / ``cycle_days`` > ``bytes_per_run``; one alert while
   this holds), and **warning** when the repository cannot be opened (one alert while this holds).

``run_check(..., everything=True)`` (``snapkeep integrity run --all``) reads every object now,
without the cap. ``is_due`` says whether the daily scheduled run is due; the service's
``IntegrityScheduler`` (``daemon.scheduler``) calls ``run_check(scheduled=True)`` when it is.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select, update

from snapkeep.clock import SYSTEM, UTC, Clock, isoformat
from snapkeep.engine.archive.manifest import ArchiveDestination
from snapkeep.engine.archive.verify import verify_archive
from snapkeep.engine.format import ARCHIVES_PREFIX
from snapkeep.engine.maintenance import scrub
from snapkeep.engine.repository import Repository
from snapkeep.errors import ConflictError, IntegrityError, LockError, NotFoundError, SnapkeepError
from snapkeep.ids import new_id
from snapkeep.jobs import alerts, backups, notify, repositories, settings
from snapkeep.jobs.catalog import Catalog, Transaction
from snapkeep.jobs.migrations import schema

log = logging.getLogger(__name__)

PACK, ARCHIVE = "pack", "archive"
ARCHIVE_SUFFIXES = (".tar.zst", ".tar")
MANIFEST_SUFFIX = ".manifest"
#: Objects and backups named in one alert's message before "and N more".
SHOWN = 20

ObjectKey = tuple[str, str]  # (kind, object id)
_EARLIEST = _dt.datetime.min.replace(tzinfo=UTC)


@dataclass
class ObjectState:
    """What the catalog remembers of one object."""

    size: int
    last_read: _dt.datetime | None
    damaged: bool
    reason: str = ""


@dataclass
class RepositoryResult:
    """What one run did to one repository."""

    destination_id: str
    destination_name: str
    job_id: str
    job_name: str
    objects: int = 0
    stored_bytes: int = 0
    read: int = 0
    bytes_read: int = 0
    damaged: dict[str, str] = field(default_factory=dict)  # "kind:id" -> reason
    damaged_backups: list[str] = field(default_factory=list)
    newly_damaged_backups: list[str] = field(default_factory=list)
    cleared_backups: list[str] = field(default_factory=list)
    cap_too_small: bool = False
    error: str = ""


@dataclass
class IntegrityReport:
    """What one run of the check did."""

    id: str
    scheduled: bool
    started: _dt.datetime
    ended: _dt.datetime | None = None
    repositories: list[RepositoryResult] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    #: the node that ran it ("" when the check named none)
    node: str = ""

    @property
    def ok(self) -> bool:
        """No damage found and every repository was read."""
        return all(not result.damaged and not result.error for result in self.repositories)

    def to_dict(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "scheduled": 1 if self.scheduled else 0,
            "started": isoformat(self.started),
            "ended": isoformat(self.ended) if self.ended else None,
            "ok": 1 if self.ok else 0,
            "alerts": list(self.alerts),
            "repositories": [asdict(result) for result in self.repositories],
            **({"node": self.node} if self.node else {}),
        }


# --- choosing what to read ------------------------------------------------------------------------


def choose(
    objects: Mapping[ObjectKey, int],
    state: Mapping[ObjectKey, ObjectState],
    now: _dt.datetime,
    config: settings.Integrity,
) -> list[ObjectKey]:
    """The objects to read this run (see the module docstring, step 2)."""
    total = sum(objects.values())
    due_before = now - _dt.timedelta(days=config.cycle_days - 1)

    def known(key: ObjectKey) -> ObjectState | None:
        return state.get(key)

    def is_due(key: ObjectKey) -> bool:
        seen = known(key)
        return seen is None or seen.damaged or seen.last_read is None or seen.last_read <= due_before

    def order(key: ObjectKey) -> tuple[int, _dt.datetime, ObjectKey]:
        seen = known(key)
        if seen is not None and seen.damaged:
            return (0, _EARLIEST, key)
        if seen is None or seen.last_read is None:
            return (1, _EARLIEST, key)
        return (2, seen.last_read, key)

    due_bytes = sum(size for key, size in objects.items() if is_due(key))
    quota = min(config.bytes_per_run, max(math.ceil(total / config.cycle_days), due_bytes))
    chosen: list[ObjectKey] = []
    taken = 0
    for key in sorted(objects, key=order):
        size = objects[key]
        if chosen and taken + size > quota:
            break
        chosen.append(key)
        taken += size
        if taken >= quota:
            break
    return chosen


def cap_too_small(stored_bytes: int, config: settings.Integrity) -> bool:
    """Whether ``bytes_per_run`` cannot cover ``stored_bytes`` once within the cycle."""
    return stored_bytes / config.cycle_days > config.bytes_per_run


# --- the catalog's side ---------------------------------------------------------------------------


def _state(tx: Transaction, destination_id: str, job_id: str) -> dict[ObjectKey, ObjectState]:
    table = schema.integrity_objects
    query = select(table).where(table.c.destination_id == destination_id, table.c.job_id == job_id)
    return {
        (row.kind, row.object_id): ObjectState(
            int(row.size), row.last_read, bool(row.damaged), str(dict(row.document or {}).get("reason", ""))
        )
        for row in tx.connection.execute(query)
    }


def _save_state(
    tx: Transaction,
    destination_id: str,
    job_id: str,
    objects: Mapping[ObjectKey, int],
    read: Mapping[ObjectKey, str | None],
    now: _dt.datetime,
) -> None:
    """Forget objects that are gone; record the ones read now (``read``: key -> damage or None)."""
    table = schema.integrity_objects
    where = (table.c.destination_id == destination_id, table.c.job_id == job_id)
    for kind, object_id in list(_state(tx, destination_id, job_id)):
        if (kind, object_id) not in objects:
            tx.connection.execute(
                delete(table).where(*where, table.c.kind == kind, table.c.object_id == object_id)
            )
    for (kind, object_id), reason in read.items():
        values = {
            "size": objects.get((kind, object_id), 0),
            "last_read": now,
            "damaged": 0 if reason is None else 1,
            "document": {"reason": reason or ""},
        }
        changed = tx.connection.execute(
            update(table).where(*where, table.c.kind == kind, table.c.object_id == object_id).values(**values)
        ).rowcount
        if not changed:
            tx.connection.execute(
                table.insert().values(
                    destination_id=destination_id, job_id=job_id, kind=kind, object_id=object_id, **values
                )
            )


def read_here(destination: dict[str, Any], node: str | None, shared: bool) -> bool:
    """Whether a check run by ``node`` reads ``destination`` (issue 16, docs/nodes.md): a Local
    destination is its node's own disk, so only that node reads it (any node when it names none, or
    when the check names no node); a shared one (SFTP, S3, FTP) when ``shared``: the leading node's
    scheduled check, or a check run by hand."""
    if destination.get("type") == "Local":
        owner = str(destination.get("node") or "")
        return node is None or not owner or owner == node
    return shared


def repositories_to_check(
    tx: Transaction, destination_id: str | None = None, *, node: str | None = None, shared: bool = True
) -> list[dict[str, Any]]:
    """``{destination, job_id, job_name, encrypted}`` for every (destination, job) with backups
    that a check run by ``node`` reads (``read_here``)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    skipped: set[str] = set()
    for backup in backups.rows(tx):
        if destination_id is not None and backup.destination_id != destination_id:
            continue
        if backup.destination_id in skipped:
            continue
        key = (backup.destination_id, backup.job_id)
        entry = found.get(key)
        if entry is None:
            destination = tx.get("destinations", backup.destination_id)
            if destination is None or not read_here(destination, node, shared):
                skipped.add(backup.destination_id)
                continue
            job = tx.get("jobs", backup.job_id)
            entry = found[key] = {
                "destination": destination,
                "job_id": backup.job_id,
                "job_name": str((job or {}).get("name") or backup.document.get("job_name", "")),
                "encrypted": False,
            }
        entry["encrypted"] = entry["encrypted"] or bool(backup.encrypted)
    return list(found.values())


def last_scheduled_start(tx: Transaction) -> _dt.datetime | None:
    """When the last scheduled run started (None: never)."""
    table = schema.integrity_runs
    return tx.connection.execute(select(func.max(table.c.started)).where(table.c.scheduled == 1)).scalar()


def ran_since(tx: Transaction, since: _dt.datetime, node: str | None) -> bool:
    """Whether a scheduled run started at or after ``since``; with ``node``, one of that node (a
    run recorded before nodes, without one, counts for every node: its catalog had one server)."""
    if node is None:
        last = last_scheduled_start(tx)
        return last is not None and last >= since
    table = schema.integrity_runs
    query = select(table.c.document).where(table.c.scheduled == 1, table.c.started >= since)
    documents = tx.connection.execute(query).scalars()
    return any((document or {}).get("node", node) == node for document in documents)


def latest_runs(tx: Transaction, limit: int = 10) -> list[dict[str, Any]]:
    """The last runs' summaries, newest first."""
    table = schema.integrity_runs
    query = select(table).order_by(table.c.started.desc(), table.c.id.desc()).limit(limit)
    return [dict(row.document or {}) for row in tx.connection.execute(query)]


# --- the daily slot -------------------------------------------------------------------------------


def slot_before(now: _dt.datetime, hour: int, tz: ZoneInfo) -> _dt.datetime:
    """The latest ``hour``:00 in ``tz`` at or before ``now`` (UTC)."""
    local = now.astimezone(tz)
    slot = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if slot > local:
        slot = (local - _dt.timedelta(days=1)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return slot.astimezone(UTC)


def is_due(tx: Transaction, now: _dt.datetime, tz: ZoneInfo, *, node: str | None = None) -> bool:
    """Whether the daily scheduled run is due: enabled, and none started since the last slot (with
    ``node``: none of that node; each node checks its own Local destinations)."""
    config = settings.integrity(tx)
    if not config.enabled:
        return False
    return not ran_since(tx, slot_before(now, config.hour, tz), node)


def next_due(
    tx: Transaction, now: _dt.datetime, tz: ZoneInfo, *, node: str | None = None
) -> _dt.datetime | None:
    """When the next scheduled run is due (now when it is due; None when turned off)."""
    config = settings.integrity(tx)
    if not config.enabled:
        return None
    if is_due(tx, now, tz, node=node):
        return now
    slot = slot_before(now, config.hour, tz).astimezone(tz)
    following = (slot + _dt.timedelta(days=1)).replace(hour=config.hour)
    return following.astimezone(UTC)


# --- reading a repository -------------------------------------------------------------------------


def stored_objects(repository: Repository) -> dict[ObjectKey, int]:
    """Every pack and every archive (with a manifest) of ``repository`` with its stored size."""
    objects: dict[ObjectKey, int] = {
        (PACK, pack_id): size for pack_id, size in scrub.stored_packs(repository).items()
    }
    manifests: dict[str, int] = {}
    data: dict[str, int] = {}
    for info in repository.store.list(ARCHIVES_PREFIX):
        name = info.name[len(ARCHIVES_PREFIX) :]
        if name.endswith(MANIFEST_SUFFIX):
            manifests[name[: -len(MANIFEST_SUFFIX)]] = info.size
            continue
        for suffix in ARCHIVE_SUFFIXES:
            if name.endswith(suffix):
                data[name[: -len(suffix)]] = info.size
                break
    for archive_id, size in manifests.items():
        objects[(ARCHIVE, archive_id)] = size + data.get(archive_id, 0)
    return objects


@dataclass
class _Found:
    """What reading found: key -> damage (None: clean); keys that vanished; snapshots hurt."""

    read: dict[ObjectKey, str | None] = field(default_factory=dict)
    vanished: set[ObjectKey] = field(default_factory=set)
    bytes_read: int = 0
    snapshots: dict[str, str] = field(default_factory=dict)  # engine snapshot id -> reason


def _read_objects(repository: Repository, chosen: Sequence[ObjectKey]) -> _Found:
    found = _Found()
    pack_ids = [object_id for kind, object_id in chosen if kind == PACK]
    if pack_ids:
        report = scrub.verify_packs(repository, pack_ids)
        found.bytes_read += report.bytes_read
        for pack_id, verdict in report.packs.items():
            if verdict.vanished:
                found.vanished.add((PACK, pack_id))
            else:
                found.read[(PACK, pack_id)] = None if verdict.ok else verdict.reason
        if report.damaged_blobs:
            found.snapshots = scrub.affected_snapshots(repository, report.damaged_blobs)
    destination: ArchiveDestination = repository
    for kind, archive_id in chosen:
        if kind != ARCHIVE:
            continue
        try:
            manifest = verify_archive(destination, archive_id)
            found.bytes_read += manifest.size
            found.read[(ARCHIVE, archive_id)] = None
        except IntegrityError as error:
            found.read[(ARCHIVE, archive_id)] = str(error)
        except NotFoundError:
            found.vanished.add((ARCHIVE, archive_id))
    return found


# --- one run --------------------------------------------------------------------------------------


def _label(key: ObjectKey) -> str:
    return f"{key[0]}:{key[1]}"


def _shown(items: Sequence[str]) -> str:
    text = "; ".join(items[:SHOWN])
    return text + (f"; and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


class _Run:
    def __init__(
        self,
        catalog: Catalog,
        home: Path,
        clock: Clock,
        config: settings.Integrity,
        everything: bool,
        report: IntegrityReport,
    ) -> None:
        self.catalog = catalog
        self.home = home
        self.clock = clock
        self.config = config
        self.everything = everything
        self.report = report
        self.raised: list[alerts.Alert] = []

    def keep(self, alert: alerts.Alert | None) -> None:
        if alert is not None:
            self.raised.append(alert)
            self.report.alerts.append(alert.id)

    def repository(self, entry: dict[str, Any]) -> RepositoryResult:
        destination = entry["destination"]
        job_id = str(entry["job_id"])
        result = RepositoryResult(
            destination_id=str(destination["_id"]),
            destination_name=str(destination.get("name", "")),
            job_id=job_id,
            job_name=str(entry["job_name"]),
        )
        where = f"Backup Job {result.job_name!r} ({job_id}) on Destination {result.destination_name!r}"
        incident = f"{result.destination_id}:{job_id}"
        if destination.get("disabled"):
            result.error = "the destination is disabled: not checked"
            return result
        try:
            with (
                repositories.job_repository(
                    destination,
                    job_id,
                    catalog=self.catalog,
                    encrypted=bool(entry["encrypted"]),
                    clock=self.clock,
                ) as repository,
                repository.lock(exclusive=False, holder="snapkeep integrity check"),
            ):
                objects, found = self.read(repository, result)
        except LockError as error:
            result.error = f"busy, checked on a later run: {error}"
            log.info("integrity check of %s skipped: %s", where, result.error)
            return result
        except SnapkeepError as error:
            result.error = str(error)
            log.error("integrity check of %s failed: %s", where, error)
            with self.catalog.transaction() as tx:
                self.keep(
                    alerts.raise_alert(
                        tx,
                        title="Integrity check cannot read a repository",
                        message=f"The integrity check cannot read {where}: {error}",
                        level=alerts.WARNING,
                        incident=f"integrity.unreadable:{incident}",
                    )
                )
            return result
        with self.catalog.transaction() as tx:
            alerts.resolve(tx, f"integrity.unreadable:{incident}")
            self.record(tx, result, objects, found, where, incident)
        return result

    def read(self, repository: Repository, result: RepositoryResult) -> tuple[dict[ObjectKey, int], _Found]:
        objects = stored_objects(repository)
        result.objects = len(objects)
        result.stored_bytes = sum(objects.values())
        with self.catalog.transaction(write=False) as tx:
            state = _state(tx, result.destination_id, result.job_id)
        chosen = sorted(objects) if self.everything else choose(objects, state, self.clock.now(), self.config)
        found = _read_objects(repository, chosen)
        result.read = len(found.read)
        result.bytes_read = found.bytes_read
        result.damaged = {_label(key): reason for key, reason in found.read.items() if reason is not None}
        for key in found.vanished:
            objects.pop(key, None)
        return objects, found

    def record(
        self,
        tx: Transaction,
        result: RepositoryResult,
        objects: dict[ObjectKey, int],
        found: _Found,
        where: str,
        incident: str,
    ) -> None:
        before = _state(tx, result.destination_id, result.job_id)
        newly_damaged_objects = [
            _label(key)
            for key, reason in found.read.items()
            if reason is not None and not (key in before and before[key].damaged)
        ]
        _save_state(tx, result.destination_id, result.job_id, objects, found.read, self.clock.now())
        damaged_packs = [
            _label(key) for key, reason in found.read.items() if reason is not None and key[0] == PACK
        ]
        clean = {_label(key) for key, reason in found.read.items() if reason is None}
        present = {_label(key) for key in objects}
        lines: list[str] = []
        for backup in backups.rows(tx, destination_id=result.destination_id, job_id=result.job_id):
            hurt_by: list[str] = []
            reason = ""
            if backup.engine_id in found.snapshots:
                hurt_by, reason = damaged_packs, found.snapshots[backup.engine_id]
            archive = _label((ARCHIVE, backup.engine_id))
            if found.read.get((ARCHIVE, backup.engine_id)):
                hurt_by, reason = [archive], str(found.read[(ARCHIVE, backup.engine_id)])
            if hurt_by:
                result.damaged_backups.append(backup.id)
                if backups.mark_damaged(tx, backup.id, objects=hurt_by, reason=reason):
                    result.newly_damaged_backups.append(backup.id)
                    created = isoformat(backup.created)
                    lines.append(f"Backup {backup.id} ({created}): {reason}")
            elif backup.damage is not None:
                left = [
                    name for name in backup.damage.get("objects", []) if name not in clean and name in present
                ]
                if not left:
                    backups.clear_damaged(tx, backup.id)
                    result.cleared_backups.append(backup.id)
                elif left != backup.damage.get("objects"):
                    backups.clear_damaged(tx, backup.id)
                    backups.mark_damaged(
                        tx, backup.id, objects=left, reason=str(backup.damage.get("reason", ""))
                    )
                    result.damaged_backups.append(backup.id)
                else:
                    result.damaged_backups.append(backup.id)
        if result.newly_damaged_backups or newly_damaged_objects:
            objects_text = _shown([f"{name}: {result.damaged[name]}" for name in newly_damaged_objects])
            message = f"The integrity check found damage in {where}."
            if lines:
                message += f" Damaged backups ({len(lines)}): {_shown(lines)}."
            else:
                message += " No backup in the catalog uses the damaged data."
            if newly_damaged_objects:
                message += f" Damaged objects: {objects_text}."
            self.keep(
                alerts.raise_alert(
                    tx,
                    title=f"Integrity check: damaged backups of {result.job_name!r}"
                    if lines
                    else f"Integrity check: damaged data of {result.job_name!r}",
                    message=message,
                    level=alerts.CRITICAL,
                )
            )
        capacity = f"integrity.capacity:{incident}"
        result.cap_too_small = cap_too_small(result.stored_bytes, self.config)
        if result.cap_too_small:
            needed = math.ceil(result.stored_bytes / self.config.cycle_days)
            self.keep(
                alerts.raise_alert(
                    tx,
                    title="Integrity check cannot cover a repository within its cycle",
                    message=(
                        f"{where} stores {result.stored_bytes} bytes: reading it once every "
                        f"{self.config.cycle_days} days needs {needed} bytes per run, more than the "
                        f"bytes_per_run setting ({self.config.bytes_per_run}). Raise bytes_per_run or "
                        "cycle_days (snapkeep settings set ...)."
                    ),
                    level=alerts.WARNING,
                    incident=capacity,
                )
            )
        else:
            alerts.resolve(tx, capacity)


def run_check(
    catalog: Catalog,
    home: Path,
    *,
    clock: Clock = SYSTEM,
    destination_id: str | None = None,
    everything: bool = False,
    scheduled: bool = False,
    config: settings.Integrity | None = None,
    on_repository: Callable[[RepositoryResult], None] | None = None,
    stop: Callable[[], bool] | None = None,
    node: str | None = None,
    shared: bool = True,
) -> IntegrityReport:
    """Run the integrity check over every repository with backups (or those on ``destination_id``);
    see the module docstring. Alerts are sent (``jobs.notify``) after their transactions commit.
    ``stop`` is asked before each repository: when it answers True the run ends there (what was
    read so far is recorded; the rest waits for the next run). ``node`` and ``shared`` choose the
    destinations a node reads (``read_here``): its own Local ones, and the shared ones when ``shared``.

    Raises NotFoundError for an unknown ``destination_id``, CatalogError; a repository that cannot
    be read is reported in its result (and a warning alert), not raised.
    """
    with catalog.transaction() as tx:
        if destination_id is not None:
            chosen = tx.require("destinations", destination_id, "Destination")
            if not read_here(chosen, node, True):
                raise ConflictError(
                    f"destination {chosen.get('name', destination_id)!r} is the Local disk of node "
                    f"{chosen.get('node')}: run the integrity check on that node"
                )
        config = config or settings.integrity(tx)
        entries = repositories_to_check(tx, destination_id, node=node, shared=shared)
        report = IntegrityReport(id=new_id(clock), scheduled=scheduled, started=clock.now(), node=node or "")
        tx.connection.execute(
            schema.integrity_runs.insert().values(
                id=report.id,
                scheduled=1 if scheduled else 0,
                started=report.started,
                document=report.to_dict(),
            )
        )
    run = _Run(catalog, home, clock, config, everything, report)
    try:
        for entry in entries:
            if stop is not None and stop():
                break
            result = run.repository(entry)
            report.repositories.append(result)
            if on_repository is not None:
                on_repository(result)
    finally:
        report.ended = clock.now()
        with catalog.transaction() as tx:
            tx.connection.execute(
                update(schema.integrity_runs)
                .where(schema.integrity_runs.c.id == report.id)
                .values(ended=report.ended, document=report.to_dict())
            )
        if run.raised:
            notify.notify(catalog, run.raised)
    return report
