"""Nodes sharing one PostgreSQL catalog (issue 16): registration, heartbeats and down detection,
claims by two nodes at once, the scheduler and recovery per node, the SQLite refusal, the master key
check, and the indexes of the hot queries (EXPLAIN).

Each test gets its own PostgreSQL schema (dropped after), so nothing here shares rows with the
session's catalog tests. Two nodes are two ``Catalog`` objects (two connection pools, as two servers
have) over that schema, each with its own home, sharing one frozen clock the tests move.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import socket
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, text
from tests.conftest import fresh_postgres_schema

from snapkeep.api.dispatch import Api
from snapkeep.api.functions.base import Caller
from snapkeep.clock import FrozenClock
from snapkeep.daemon.scheduler import IntegrityScheduler, Scheduler
from snapkeep.daemon.service import Service
from snapkeep.engine.format import LOCKS_PREFIX
from snapkeep.errors import CatalogError, ConfigError, ConflictError, LockError
from snapkeep.jobs import access, alerts, integrity, nodes, queue, repositories, users
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.codes import QueueStatus, QueueType
from snapkeep.jobs.models import JobFields
from snapkeep.jobs.runs import execute_group

START = _dt.datetime(2026, 3, 2, 12, 0, tzinfo=_dt.UTC)
UTC_ZONE = ZoneInfo("UTC")


@pytest.fixture
def pg_url():
    """A ``postgresql://`` URL whose search_path is a schema of this test alone, dropped after."""
    yield from fresh_postgres_schema("snapkeep_nodes")


class Cluster:
    """Nodes over one catalog URL, each a home and a ``Catalog``, on one shared frozen clock."""

    def __init__(self, root: Path, url: str | None) -> None:
        self.root = root
        self.url = url
        self.clock = FrozenClock(START)
        self.catalogs: dict[str, Catalog] = {}
        self.me: dict[str, nodes.Me] = {}

    def home(self, name: str) -> Path:
        return self.root / name

    def catalog(self, name: str) -> Catalog:
        if name not in self.catalogs:
            self.catalogs[name] = Catalog.open(self.home(name), self.url, clock=self.clock)
        return self.catalogs[name]

    def node(self, name: str, *, timeout: float = 3.0, pid: int | None = None) -> nodes.Me:
        """Register node ``name`` (its ID from its home); return what it said of itself."""
        me = nodes.Me(id=nodes.local_id(self.home(name)), name=name, timeout=timeout, pid=pid or os.getpid())
        with self.catalog(name).transaction() as tx:
            nodes.register(tx, me)
        self.me[name] = me
        return me

    def api(self, name: str) -> Api:
        return Api(self.catalog(name), clock=self.clock)

    def ok(self, name: str, function: str, params: dict | None = None, caller: Caller | None = None):
        answer = self.api(name).call(function, params or {}, caller)
        assert answer["success"] == 1, (function, params, answer["message"])
        return answer["data"]

    def fails(self, name: str, function: str, params: dict, caller: Caller | None = None) -> str:
        answer = self.api(name).call(function, params, caller)
        assert answer["success"] == 0, (function, params, answer)
        return str(answer["message"])

    def job(self, name: str, label: str, folder: Path, **fields) -> dict:
        """A Directories job created through node ``name``'s API (so it belongs to that node)."""
        folder.mkdir(parents=True, exist_ok=True)
        destination = self.ok(
            name,
            "manageDestination",
            {"action": "create", "name": f"disk {label}", "type": "Local", "options": {"path": str(folder)}},
        )
        return self.ok(
            name,
            "manageBackupJob",
            {
                "action": "create",
                "name": label,
                "type": 2,
                "destination": [destination["_id"]],
                "contains": 511,
                "structure": 1,
                "include_list": [str(folder)],
                **fields,
            },
        )

    def backed_up(self, name: str, root: Path, disk: str) -> tuple[dict, dict]:
        """A job of node ``name`` backing up a small folder to its Local ``disk``, run once here
        (Completed); (the job, its group)."""
        source = root / "site"
        source.mkdir()
        (source / "index.html").write_text("hello" * 100)
        job = self.job(name, "site", root / disk)
        self.ok(
            name, "manageBackupJob", {"action": "modify", "_id": job["_id"], "include_list": [str(source)]}
        )
        with self.catalog(name).transaction() as tx:
            group = queue.enqueue_backup(tx, tx.require("jobs", job["_id"], "job"), owner="root")
        status = execute_group(
            self.catalog(name), self.home(name), group["_id"], stop=threading.Event(), clock=self.clock
        )
        assert status == QueueStatus.COMPLETED
        return job, group

    def close(self) -> None:
        for catalog in self.catalogs.values():
            catalog.close()


@pytest.fixture
def cluster(tmp_path, pg_url):
    made = Cluster(tmp_path, pg_url)
    yield made
    made.close()


# --- registration ------------------------------------------------------------------------------


def test_every_node_registers_with_a_stable_private_id(cluster):
    a = cluster.node("node-a")
    b = cluster.node("node-b")
    id_file = cluster.home("node-a") / nodes.NODE_FILE
    assert id_file.stat().st_mode & 0o777 == 0o600
    assert nodes.local_id(cluster.home("node-a")) == a.id != b.id  # the same ID on every start
    listed = cluster.ok("node-a", "listNodes", {"sort": {"name": "1"}})
    assert listed["total"] == 2
    first = listed["nodes"][0]
    assert (first["_id"], first["name"], first["host"], first["state"], first["alive"]) == (
        a.id,
        "node-a",
        socket.gethostname(),
        "up",
        1,
    )
    assert first["pid"] == os.getpid()
    assert first["version"]
    assert first["timeout"] == 3.0
    assert cluster.ok("node-b", "getNode", {"_id": "node-a"})["_id"] == a.id  # by name, through B
    # a second node may not take a name in use, and a home may not be served twice
    with cluster.catalog("node-c").transaction() as tx, pytest.raises(ConflictError, match="is taken"):
        nodes.register(tx, nodes.Me(id=nodes.local_id(cluster.home("node-c")), name="node-a"))
    with cluster.catalog("node-a").transaction() as tx, pytest.raises(ConflictError, match="already running"):
        nodes.register(tx, nodes.Me(id=a.id, name="node-a", host="elsewhere", pid=1))
    # only root sees nodes
    reseller = cluster.ok("node-a", "manageUser", {"action": "create", "name": "res", "role": "reseller"})
    who = Caller(id=reseller["_id"], name="res", role="reseller")
    assert cluster.fails("node-a", "listNodes", {}, who) == "permission denied: listNodes"


def test_a_job_belongs_to_the_node_serving_the_call_and_root_moves_it(cluster, tmp_path):
    a = cluster.node("node-a")
    b = cluster.node("node-b")
    job = cluster.job("node-a", "sites", tmp_path / "data-a")
    assert (job["node"], job["node_name"]) == (a.id, "node-a")
    # its Local destination is node A's disk: the job cannot move to B while it writes there
    local = cluster.ok("node-a", "getDestination", {"_id": job["destination"][0]})
    assert local["node"] == a.id
    refused = cluster.fails(
        "node-a", "manageBackupJob", {"action": "modify", "_id": job["_id"], "node": "node-b"}
    )
    assert refused == (
        "destination[0]: Local destination 'disk sites' is the disk of node 'node-a'; "
        "this job runs on node 'node-b'"
    )
    shared = cluster.ok(
        "node-a",
        "manageDestination",
        {
            "action": "create",
            "name": "shared sftp",
            "type": "SFTP",
            "options": {"host": "127.0.0.1", "port": 22, "username": "u", "password": "pw", "path": "/b"},
        },
    )
    assert shared["node"] == ""  # SFTP and S3 are shared by every node
    moved = cluster.ok(
        "node-a",
        "manageBackupJob",
        {"action": "modify", "_id": job["_id"], "node": "node-b", "destination": [shared["_id"]]},
    )
    assert (moved["node"], moved["node_name"]) == (b.id, "node-b")
    # a read-modify-write keeps it; an unknown node is named
    again = cluster.ok("node-a", "manageBackupJob", {"action": "modify", "_id": job["_id"], "name": "sites2"})
    assert again["node"] == b.id
    bad = cluster.fails("node-a", "manageBackupJob", {"action": "modify", "_id": job["_id"], "node": "nope"})
    assert bad == "node: no such node: nope"
    listed = cluster.ok("node-a", "listBackupJobs", {"find": {"node": b.id}})
    assert [item["_id"] for item in listed["jobs"]] == [job["_id"]]
    assert cluster.ok("node-a", "listBackupJobs", {"find": {"node": a.id}})["total"] == 0
    # a node with jobs cannot be removed, nor a live one
    assert "is up" in cluster.fails("node-a", "deleteNode", {"_id": "node-b"})
    cluster.clock.advance(10)
    assert "still has 1 Backup Job" in cluster.fails("node-a", "deleteNode", {"_id": "node-b"})
    cluster.ok("node-a", "deleteBackupJob", {"_id": job["_id"]})
    assert cluster.ok("node-a", "deleteNode", {"_id": "node-b"})["name"] == "node-b"
    assert [node["name"] for node in cluster.ok("node-a", "listNodes")["nodes"]] == ["node-a"]


def test_a_restore_runs_on_the_backups_node_and_a_local_disk_stays_on_its_node(cluster, tmp_path):
    a = cluster.node("node-a")
    b = cluster.node("node-b")
    _job, group = cluster.backed_up("node-a", tmp_path, "disk-a")
    # its log file is on A; through B the same text comes from the catalog's log lines
    with cluster.catalog("node-a").transaction(write=False) as tx:
        log_id = queue.get_group(tx, group["_id"])["log_id"]
    on_a = cluster.ok("node-a", "getLog", {"_id": log_id, "content": 1})["content"]
    assert on_a
    assert cluster.ok("node-b", "getLog", {"_id": log_id, "content": 1})["content"] == on_a
    backup = cluster.ok("node-a", "listBackups", {"type": 2})["backups"][0]
    # asked through node B, the restore still runs on A (the backup's node)
    restore = cluster.ok(
        "node-b",
        "addQueueItems",
        {"type": 2, "snapshot_id": backup["_id"], "options": {"target": str(tmp_path / "back")}},
    )
    assert restore["node"] == a.id
    onto_b = cluster.fails(
        "node-a", "addQueueItems", {"type": 2, "snapshot_id": backup["_id"], "options": {"node": "node-b"}}
    )
    assert onto_b == (
        f"options[node]: backup {backup['_id']} is on Local destination 'disk site', the disk of node "
        "'node-a': it cannot be restored on node 'node-b' (only SFTP and S3 destinations are shared)"
    )
    assert "no such node: nope" in cluster.fails(
        "node-a", "addQueueItems", {"type": 4, "snapshot_id": backup["_id"], "options": {"node": "nope"}}
    )
    # only node A's pool claims it
    with cluster.catalog("node-b").transaction() as tx:
        assert queue.claim_next(tx, [QueueType.RESTORE], node=b.id) is None
    with cluster.catalog("node-a").transaction() as tx:
        assert queue.claim_next(tx, [QueueType.RESTORE], node=a.id)["_id"] == restore["_id"]


def test_only_root_moves_a_job(cluster, tmp_path):
    cluster.node("node-a")
    cluster.node("node-b")
    reseller = cluster.ok("node-a", "manageUser", {"action": "create", "name": "res", "role": "reseller"})
    who = Caller(id=reseller["_id"], name="res", role="reseller")
    folder = tmp_path / "data"
    folder.mkdir()
    answer = cluster.api("node-a").call(
        "manageBackupJob",
        {
            "action": "create",
            "name": "theirs",
            "type": 2,
            "destination": [],
            "contains": 511,
            "structure": 1,
            "include_list": [str(folder)],
            "node": "node-b",
        },
        who,
    )
    assert answer["message"] == "permission denied: manageBackupJob"


# --- heartbeats and down detection -----------------------------------------------------------------


def _plant_lock(catalog: Catalog, job: dict, *, host: str, pid: int) -> str:
    """A repository lock of ``job``'s first destination as process ``pid`` on ``host`` took it."""
    with catalog.transaction(write=False) as tx:
        destination = tx.require("destinations", job["destination"][0], "Destination")
    name = f"{LOCKS_PREFIX}{secrets.token_hex(12)}"
    now = catalog.clock.time()
    document = {
        "holder": "snapkeep backup",
        "pid": pid,
        "host": host,
        "exclusive": False,
        "created": now,
        "heartbeat": now,
        "timeout": 1800.0,
    }
    with repositories.open_destination(destination, job["_id"]) as opened:
        opened.store.store(name, json.dumps(document).encode())
    return name


def _locks(catalog: Catalog, job: dict) -> list[str]:
    with catalog.transaction(write=False) as tx:
        destination = tx.require("destinations", job["destination"][0], "Destination")
    with repositories.open_destination(destination, job["_id"]) as opened:
        return sorted(entry.name for entry in opened.store.list(LOCKS_PREFIX))


def test_a_silent_node_is_declared_down_its_runs_never_finished_and_its_locks_released(cluster, tmp_path):
    a = cluster.node("node-a", timeout=3.0)
    b = cluster.node("node-b", timeout=3.0, pid=424242)  # B's process: not this one
    job = cluster.job("node-b", "b-sites", tmp_path / "data-b")
    with cluster.catalog("node-b").transaction() as tx:
        group = queue.enqueue_backup(tx, tx.require("jobs", job["_id"], "job"), owner="root")
        claimed = queue.claim_next(tx, [QueueType.BACKUP], node=b.id, worker={"host": "h", "pid": 424242})
    assert claimed is not None
    assert claimed["_id"] == group["_id"]
    theirs = _plant_lock(cluster.catalog("node-b"), job, host=b.host, pid=b.pid)
    other = _plant_lock(cluster.catalog("node-b"), job, host=b.host, pid=os.getpid())  # a live holder

    service = Service(cluster.catalog("node-a"), cluster.home("node-a"), clock=cluster.clock, node=a)
    service.register()
    # within its timeout B is alive: nothing happens
    cluster.clock.advance(2.0)
    assert service.node_pass() == []
    cluster.clock.advance(2.0)  # 4 s without a heartbeat from B (timeout 3 s)
    declared = service.node_pass()
    assert [(down.id, down.name, len(down.groups)) for down in declared] == [(b.id, "node-b", 1)]
    with cluster.catalog("node-a").transaction(write=False) as tx:
        assert queue.get_group(tx, group["_id"])["status"] == QueueStatus.NEVER_FINISHED
        assert tx.require("jobs", job["_id"], "job")["running"] is False
        titles = [alert["title"] for alert in cluster.ok("node-a", "listAlerts")["alerts"]]
    assert "Node node-b is down" in titles
    assert _locks(cluster.catalog("node-a"), job) == [other]  # only the dead process's lock went
    assert theirs not in _locks(cluster.catalog("node-a"), job)
    shown = cluster.ok("node-a", "getNode", {"_id": b.id})
    assert (shown["state"], shown["alive"], shown["down_since"] is not None) == ("down", 0, True)
    # declared once: the next pass finds nothing; a node that comes back is up again
    assert service.node_pass() == []
    cluster.node("node-b", timeout=3.0)
    assert cluster.ok("node-a", "getNode", {"_id": b.id})["alive"] == 1


def test_a_node_declared_down_while_alive_stops_its_runs_and_registers_again(cluster):
    a = cluster.node("node-a", timeout=3.0)
    cluster.node("node-b", timeout=3.0)
    service = Service(cluster.catalog("node-a"), cluster.home("node-a"), clock=cluster.clock, node=a)
    with cluster.catalog("node-b").transaction() as tx:
        cluster.clock.advance(5)
        assert [down.name for down in nodes.sweep(tx, cluster.me["node-b"].id)] == ["node-a"]
    service.node_pass()
    assert cluster.ok("node-b", "getNode", {"_id": "node-a"})["state"] == "up"


def test_two_nodes_sweeping_at_once_declare_a_node_down_once(cluster):
    a, b = cluster.node("node-a"), cluster.node("node-b")
    cluster.node("node-c")
    cluster.clock.advance(10)
    with cluster.catalog("node-a").transaction() as tx:
        nodes.heartbeat(tx, a.id)
    with cluster.catalog("node-b").transaction() as tx:
        nodes.heartbeat(tx, b.id)
    found: list[list[str]] = []
    barrier = threading.Barrier(2)

    def sweep(name: str) -> None:
        barrier.wait()
        with cluster.catalog(name).transaction() as tx:
            found.append([down.name for down in nodes.sweep(tx, cluster.me[name].id)])

    threads = [threading.Thread(target=sweep, args=(name,)) for name in ("node-a", "node-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(found) == [[], ["node-c"]]
    titles = [alert["title"] for alert in cluster.ok("node-a", "listAlerts")["alerts"]]
    assert titles.count("Node node-c is down") == 1


# --- claims, the scheduler and recovery per node ---------------------------------------------------


def test_two_nodes_claiming_at_once_never_take_the_same_group(cluster, tmp_path):
    a, b = cluster.node("node-a"), cluster.node("node-b")
    with cluster.catalog("node-a").transaction() as tx:
        for index in range(60):
            queue.enqueue_restore(
                tx, QueueType.DOWNLOAD, owner="root", document={"data": {"n": index}}, node=a.id
            )
        for index in range(10):
            queue.enqueue_restore(
                tx, QueueType.DOWNLOAD, owner="root", document={"data": {"n": index}}, node=b.id
            )
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def claimer(name: str) -> None:
        barrier.wait()
        catalog = cluster.catalog(name)  # two threads per pool, two pools (two nodes' processes)
        while True:
            with catalog.transaction() as tx:
                group = queue.claim_next(tx, [QueueType.DOWNLOAD], node=a.id)
            if group is None:
                return
            with lock:
                claimed.append((group["_id"], group["node"]))

    for name in ("node-a", "node-b"):
        cluster.catalog(name)
    threads = [threading.Thread(target=claimer, args=(name,)) for name in ("node-a", "node-b") * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    ids = [ident for ident, _node in claimed]
    assert len(ids) == 60 == len(set(ids))  # every group of A once, none twice
    assert {node for _ident, node in claimed} == {a.id}  # none of B's
    with cluster.catalog("node-b").transaction() as tx:
        left = queue.claim_next(tx, [QueueType.DOWNLOAD], node=b.id)
    assert left is not None
    assert left["node"] == b.id


def test_run_manually_sent_to_every_node_at_once_queues_once(cluster, tmp_path):
    for name in ("node-a", "node-b", "node-c"):
        cluster.node(name)
    job = cluster.job("node-a", "sites", tmp_path / "data")
    answers: list[dict] = []
    barrier = threading.Barrier(3)

    def run(name: str) -> None:
        api = cluster.api(name)
        barrier.wait()
        answers.append(api.call("runBackupJobManually", {"_id": job["_id"]}))

    threads = [threading.Thread(target=run, args=(name,)) for name in ("node-a", "node-b", "node-c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answer["success"] for answer in answers) == [0, 0, 1]
    assert all("already running" in answer["message"] for answer in answers if not answer["success"])
    with cluster.catalog("node-a").transaction(write=False) as tx:
        groups = queue.list_groups(tx, group_type=QueueType.BACKUP)
    assert [(group["job_id"], group["node"]) for group in groups] == [(job["_id"], cluster.me["node-a"].id)]


def test_each_scheduler_queues_only_its_own_jobs_and_recovery_only_its_own_groups(cluster, tmp_path):
    a, b = cluster.node("node-a"), cluster.node("node-b")
    hourly = cluster.ok(
        "node-a", "manageSchedule", {"action": "create", "name": "hourly", "type": 1, "type_data": 1}
    )
    link = {"schedules": [{"_id": hourly["_id"], "retain": 3}]}
    job_a = cluster.job("node-a", "on-a", tmp_path / "a", **link)
    job_b = cluster.job("node-b", "on-b", tmp_path / "b", **link)
    cluster.clock.advance(2 * 3600)
    scheduler = Scheduler(cluster.catalog("node-a"), clock=cluster.clock, tz=UTC_ZONE, node=a.id)
    queued = scheduler.tick()
    assert [group["job_id"] for group in queued] == [job_a["_id"]]
    other = Scheduler(cluster.catalog("node-b"), clock=cluster.clock, tz=UTC_ZONE, node=b.id)
    assert [group["job_id"] for group in other.tick()] == [job_b["_id"]]
    # both runs claimed by processes that are gone: A's on the server A ran on before (its data
    # directory moved to this host), B's on this host
    with cluster.catalog("node-a").transaction() as tx:
        for node, host in ((a.id, "old-server"), (b.id, b.host)):
            assert queue.claim_next(
                tx, [QueueType.BACKUP], node=node, worker={"host": host, "pid": 2**22 + 7, "node": node}
            )
    with cluster.catalog("node-a").transaction() as tx:
        recovered = queue.mark_never_finished(tx, node=a.id)
    assert [group["job_id"] for group in recovered] == [job_a["_id"]]
    with cluster.catalog("node-b").transaction(write=False) as tx:
        statuses = {group["job_id"]: group["status"] for group in queue.list_groups(tx)}
    assert statuses == {job_a["_id"]: QueueStatus.NEVER_FINISHED, job_b["_id"]: QueueStatus.PROCESSING}


# --- SQLite, the master key -------------------------------------------------------------------------


def test_a_second_live_node_on_a_sqlite_catalog_is_refused(tmp_path):
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    cluster = Cluster(tmp_path, shared)
    try:
        cluster.node("node-a")
        with pytest.raises(ConfigError, match="a SQLite catalog serves one node, and node 'node-a'"):
            cluster.node("node-b")
        # once A is down (no heartbeat within its timeout) another node may take over
        cluster.clock.advance(10)
        assert cluster.node("node-b").name == "node-b"
    finally:
        cluster.close()


def test_a_node_without_the_catalogs_master_key_refuses_to_start(cluster):
    cluster.node("node-a")
    cluster.ok(
        "node-a",
        "manageSettingsNotification",
        {"webhook": {"url": "https://hooks.example.com/T0KEN", "levels": [3]}},
    )
    nodes.check_master_key(cluster.catalog("node-a"))  # A has the key it sealed with
    key_file = cluster.home("node-b") / "master.key"
    with pytest.raises(ConfigError) as refused:
        nodes.check_master_key(cluster.catalog("node-b"))
    assert f"{key_file} does not exist" in str(refused.value)
    key_file.parent.mkdir(mode=0o700, exist_ok=True)
    key_file.write_bytes(os.urandom(32))
    key_file.chmod(0o600)
    with pytest.raises(ConfigError, match="is master key"):
        nodes.check_master_key(cluster.catalog("node-b"))
    key_file.write_bytes((cluster.home("node-a") / "master.key").read_bytes())
    nodes.check_master_key(cluster.catalog("node-b"))


# --- the plans of the hot queries -------------------------------------------------------------------


def _captured(catalog: Catalog, action) -> list[tuple[str, object]]:
    seen: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(catalog.engine, "before_cursor_execute", capture)
    try:
        action()
    finally:
        event.remove(catalog.engine, "before_cursor_execute", capture)
    return seen


def _plans(catalog: Catalog, statements: list[tuple[str, object]]) -> list[tuple[str, str]]:
    """Each statement's plan with sequential scans priced out: a Seq Scan left means no index fits."""
    plans = []
    with catalog.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
            for statement, parameters in statements:
                cursor.execute("EXPLAIN " + statement, parameters)
                plans.append((statement, "\n".join(str(row[0]) for row in cursor.fetchall())))
        raw.rollback()
    return plans


WHOLE_READS = ("nodes", "users")


def test_the_scheduler_pass_the_claim_and_list_backup_jobs_use_indexes(cluster, tmp_path):
    a = cluster.node("node-a")
    cluster.node("node-b")
    for index in range(3):
        cluster.job("node-a" if index % 2 else "node-b", f"job {index}", tmp_path / f"d{index}")
    catalog = cluster.catalog("node-a")
    scheduler = Scheduler(catalog, clock=cluster.clock, tz=UTC_ZONE, node=a.id)

    def claim() -> None:
        with catalog.transaction() as tx:
            queue.claim_next(tx, [QueueType.BACKUP], node=a.id)

    hot = {
        "scheduler pass": _captured(catalog, scheduler.tick),
        "claim": _captured(catalog, claim),
        "listBackupJobs": _captured(
            catalog, lambda: cluster.ok("node-a", "listBackupJobs", {"limit": 10, "find": {"node": a.id}})
        ),
    }
    scans = []
    for what, statements in hot.items():
        assert statements, what
        for statement, plan in _plans(catalog, statements):
            # Lookup tables read whole for names: nodes (one row per server) and users (the owner
            # names of a page: jobs.users, a known limit recorded in docs/SCALE.md)
            table_scans = [
                line
                for line in plan.splitlines()
                if "Seq Scan" in line and not any(f" {name} " in line for name in WHOLE_READS)
            ]
            if table_scans:
                scans.append(f"{what}: {statement}\n{plan}")
    assert not scans, "\n\n".join(scans)
    # the claim reads its candidates with row locks that other claimers skip
    claim_sql = [statement for statement, _ in hot["claim"] if "queue_groups" in statement]
    assert any("FOR UPDATE" in statement and "SKIP LOCKED" in statement for statement in claim_sql)
    with catalog.engine.connect() as connection:
        names = set(connection.execute(text("SELECT indexname FROM pg_indexes")).scalars())
    assert {"ix_jobs_node", "ix_queue_groups_claim", "ix_nodes_state_heartbeat"} <= names


def test_old_queue_groups_and_alerts_are_pruned_by_the_log_retention_setting(cluster):
    a = cluster.node("node-a")
    cluster.ok("node-a", "manageSettingsGeneral", {"logs_ttl": 10})
    catalog = cluster.catalog("node-a")
    with catalog.transaction() as tx:
        old = queue.enqueue_restore(tx, QueueType.RESTORE, owner="root", document={"data": {}}, node=a.id)
        queue.end_unfinished(tx, old["_id"], QueueStatus.FAILED, reason="test")
        old_alert = alerts.raise_alert(tx, title="old", message="old")
        open_alert = alerts.raise_alert(tx, title="open", message="still open", incident="test:open")
    cluster.clock.advance(11 * 86400)
    with catalog.transaction() as tx:
        recent = queue.enqueue_restore(tx, QueueType.RESTORE, owner="root", document={"data": {}}, node=a.id)
        queue.end_unfinished(tx, recent["_id"], QueueStatus.FAILED, reason="test")
        pending = queue.enqueue_restore(tx, QueueType.RESTORE, owner="root", document={"data": {}}, node=a.id)
    Service(catalog, cluster.home("node-a"), clock=cluster.clock, node=a).prune_logs()
    with catalog.transaction(write=False) as tx:
        left = {group["_id"] for group in queue.list_groups(tx)}
        kept_alerts = {alert.id for alert in alerts.list_alerts(tx)}
    assert left == {recent["_id"], pending["_id"]}
    assert old_alert is not None
    assert open_alert is not None
    assert kept_alerts == {open_alert.id}


def test_every_group_has_a_node_and_a_reindex_of_a_local_disk_runs_on_its_node(cluster, tmp_path):
    a, b = cluster.node("node-a"), cluster.node("node-b")
    job = cluster.job("node-a", "sites", tmp_path / "disk-a")
    with cluster.catalog("node-b").transaction() as tx:
        local = tx.require("destinations", job["destination"][0], "Destination")
        reindex = queue.enqueue_reindex(tx, local, owner="root")  # asked on B, for A's disk
        download = queue.enqueue_restore(tx, QueueType.DOWNLOAD, owner="root", document={"data": {}})
    assert reindex["node"] == a.id
    assert download["node"] == b.id  # nothing said: the node of the data directory queueing it


def test_what_names_no_node_is_adopted_and_another_servers_jobs_are_not(cluster, tmp_path):
    # node-c's server made its job before it ever served (its ID is in its home, not yet registered)
    theirs = cluster.job("node-c", "of node c", tmp_path / "disk-c")
    with cluster.catalog("node-c").transaction() as tx:  # a job from before nodes: no node at all
        old = tx.insert(
            "jobs",
            {key: value for key, value in theirs.items() if key in JobFields.model_fields and key != "node"}
            | {"name": "old"},
        )
    a = cluster.node("node-a")
    assert cluster.ok("node-a", "getBackupJob", {"_id": old})["node"] == a.id
    assert cluster.ok("node-a", "getBackupJob", {"_id": theirs["_id"]})["node"] == nodes.local_id(
        cluster.home("node-c")
    )


def test_the_node_of_a_sqlite_catalog_adopts_every_job_after_a_dr_import(tmp_path):
    cluster = Cluster(tmp_path, f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        job = cluster.job("old-home", "from a dr import", tmp_path / "disk")  # the old data directory's ID
        with cluster.catalog("old-home").transaction() as tx:
            pending = queue.enqueue_backup(tx, tx.require("jobs", job["_id"], "job"), owner="root")
        a = cluster.node("new-home")
        assert cluster.ok("new-home", "getBackupJob", {"_id": job["_id"]})["node"] == a.id
        assert cluster.ok("new-home", "getQueueGroup", {"_id": pending["_id"]})["node"] == a.id
        assert cluster.ok("new-home", "getDestination", {"_id": job["destination"][0]})["node"] == a.id
    finally:
        cluster.close()


def test_a_repository_is_never_pruned_by_two_nodes_at_once(cluster, tmp_path):
    cluster.node("node-a")
    cluster.node("node-b")
    job, _group = cluster.backed_up("node-a", tmp_path, "disk")
    with cluster.catalog("node-a").transaction(write=False) as tx:
        destination = tx.require("destinations", job["destination"][0], "Destination")
    opened = {
        name: repositories.job_repository(
            destination, job["_id"], catalog=cluster.catalog(name), encrypted=False
        )
        for name in ("node-a", "node-b")
    }
    with opened["node-a"] as on_a, opened["node-b"] as on_b:
        # node A prunes (the prune's exclusive lock, held here); node B's prune meanwhile is refused
        with (
            on_a.lock(exclusive=True, holder="snapkeep prune"),
            pytest.raises(LockError, match="snapkeep prune"),
        ):
            repositories.prune_repository(on_b)
        assert repositories.prune_repository(on_b) >= 0  # once A is done, B may


def test_one_live_node_leads_the_catalog_wide_passes(cluster):
    me = {name: cluster.node(name, timeout=3.0) for name in ("node-a", "node-b")}
    first, second = sorted(me.values(), key=lambda node: node.id)
    services = {
        node.id: Service(cluster.catalog(node.name), cluster.home(node.name), clock=cluster.clock, node=node)
        for node in me.values()
    }
    assert [services[first.id].leading(), services[second.id].leading()] == [True, False]
    assert services[second.id].monitor_pass() == 0  # the monitor reads every job: only the leader does
    # the leader falls silent: once past its timeout the other one leads
    cluster.clock.advance(4)
    with cluster.catalog(second.name).transaction() as tx:
        nodes.heartbeat(tx, second.id)
    assert services[second.id].leading()


def test_after_a_catalog_outage_no_node_is_judged_before_it_could_beat_again(cluster, monkeypatch):
    a, b = cluster.node("node-a", timeout=3.0), cluster.node("node-b", timeout=3.0)
    on_a = Service(cluster.catalog("node-a"), cluster.home("node-a"), clock=cluster.clock, node=a)
    on_b = Service(cluster.catalog("node-b"), cluster.home("node-b"), clock=cluster.clock, node=b)
    on_a.register()
    on_b.register()
    real = nodes.heartbeat

    def unreachable(tx, node):
        raise CatalogError("catalog error: connection refused")

    monkeypatch.setattr(nodes, "heartbeat", unreachable)  # the catalog is gone for 10 s
    with pytest.raises(CatalogError):
        on_a.node_pass()
    cluster.clock.advance(10)
    monkeypatch.setattr(nodes, "heartbeat", real)
    assert on_a.node_pass() == []  # A is back first: B's old heartbeat is not held against it yet
    cluster.clock.advance(1)
    assert on_b.node_pass() == []
    cluster.clock.advance(4)  # now B falls silent for longer than its timeout, A connected all along
    assert [down.name for down in on_a.node_pass()] == ["node-b"]


def test_each_node_checks_its_own_local_disks_and_the_leader_the_shared_ones(cluster, tmp_path):
    me = {name: cluster.node(name, timeout=3.0) for name in ("node-a", "node-b")}
    jobs = {}
    for name in me:
        (tmp_path / f"{name}-data").mkdir()
        jobs[name], _group = cluster.backed_up(name, tmp_path / f"{name}-data", "disk")
    services = {
        name: Service(cluster.catalog(name), cluster.home(name), clock=cluster.clock, node=node)
        for name, node in me.items()
    }
    checks = {
        name: IntegrityScheduler(
            cluster.catalog(name),
            cluster.home(name),
            clock=cluster.clock,
            tz=UTC_ZONE,
            node=node.id,
            leading=services[name].leading,
        )
        for name, node in me.items()
    }
    for name in me:  # the leader and the other node alike: each reads its own Local disk only
        report = checks[name].tick()
        assert report is not None, name
        assert [result.job_id for result in report.repositories] == [jobs[name]["_id"]], name
        assert report.ok, report.to_dict()
        assert report.to_dict()["node"] == me[name].id
    assert [checks[name].tick() for name in me] == [None, None]  # each ran today: not again
    # by hand, another node's Local disk is refused clearly (it is that server's disk)
    disk_of_b = jobs["node-b"]["destination"][0]
    with pytest.raises(ConflictError, match="is the Local disk of node"):
        integrity.run_check(
            cluster.catalog("node-a"), cluster.home("node-a"), destination_id=disk_of_b, node=me["node-a"].id
        )
    with cluster.catalog("node-a").transaction(write=False) as tx:
        shared = {"type": "S3", "node": ""}
        local_b = tx.require("destinations", disk_of_b, "Destination")
    assert integrity.read_here(shared, me["node-a"].id, True)
    assert not integrity.read_here(shared, me["node-b"].id, False)  # the leader reads shared ones
    assert not integrity.read_here(local_b, me["node-a"].id, True)
    assert integrity.read_here(local_b, None, True)  # a check naming no node (a single server)


def test_an_account_is_its_nodes_alice_of_two_servers_is_two_accounts(cluster, tmp_path):
    """Issue 16: an account is identified by its node and username. Two servers each host an
    "alice" (two customers): each node's Accounts job backs up its own; the account user bound to
    node A sees only A's alice; root sees two accounts and must say which one to restore."""
    me = {name: cluster.node(name) for name in ("node-a", "node-b")}
    for name in me:
        account_home = tmp_path / f"{name}-homes" / "alice"
        account_home.mkdir(parents=True)
        (account_home / "whose.txt").write_text(f"alice of {name}")
        inventory = tmp_path / f"{name}-inventory.toml"
        inventory.write_text(f'[[account]]\nusername = "alice"\nhome = "{account_home}"\n')
        (cluster.home(name) / "config.toml").write_text(
            f'[accounts]\nprovider = "inventory"\ninventory = "{inventory}"\n'
        )
        (tmp_path / f"{name}-disk").mkdir()
        disk = cluster.ok(
            name,
            "manageDestination",
            {
                "action": "create",
                "name": f"disk {name}",
                "type": "Local",
                "options": {"path": str(tmp_path / f"{name}-disk")},
            },
        )
        job = cluster.ok(
            name,
            "manageBackupJob",
            {"action": "create", "name": f"accounts {name}", "type": 1, "contains": 511, "structure": 1,
             "destination": [disk["_id"]]},
        )  # fmt: skip
        with cluster.catalog(name).transaction() as tx:
            group = queue.enqueue_backup(tx, tx.require("jobs", job["_id"], "job"), owner="root")
        stop = threading.Event()
        status = execute_group(
            cluster.catalog(name), cluster.home(name), group["_id"], stop=stop, clock=cluster.clock
        )
        assert status == QueueStatus.COMPLETED

    listed = cluster.ok("node-a", "listBackupForAccounts", {"limit": 0})["accounts"]
    assert sorted((entry["account"], entry["node"]) for entry in listed) == sorted(
        ("alice", node.id) for node in me.values()
    )
    # the account user made through node A's API is A's alice: B's alice is another customer
    user = cluster.ok(
        "node-a", "manageUser", {"action": "create", "name": "alice-a", "role": "account", "account": "alice"}
    )
    assert user["node"] == me["node-a"].id
    with cluster.catalog("node-b").transaction(write=False) as tx:
        alice = access.principal(tx, users.named(tx, "alice-a"), cluster.home("node-b"))
    seen = cluster.ok("node-b", "listBackups", {"limit": 0}, caller=alice)["backups"]
    assert [item["node"] for item in seen] == [me["node-a"].id]
    other = next(item for item in cluster.ok("node-a", "listBackups", {"limit": 0})["backups"]
                 if item["node"] == me["node-b"].id)  # fmt: skip
    refused = cluster.fails("node-a", "getBackupItems", {"_id": other["_id"]}, caller=alice)
    assert "not found" in refused
    # root names the node when the name is ambiguous
    message = cluster.fails("node-a", "addMultiAccountQueueItems", {"type": 2, "accounts": ["alice"]})
    assert "accounts[0]: account 'alice' has backups from nodes node-a, node-b" in message
    assert "account_node" in message
    queued = cluster.ok(
        "node-a", "addMultiAccountQueueItems", {"type": 2, "accounts": ["alice"], "account_node": "node-b"}
    )
    assert queued["groups"][0]["node"] == me["node-b"].id
    # a node that is not registered is refused naming the field
    assert "account_node: no such node: node-z" in cluster.fails(
        "node-a", "addMultiAccountQueueItems", {"type": 2, "accounts": ["alice"], "account_node": "node-z"}
    )
