"""``make bench-nodes``: many nodes on one PostgreSQL catalog (issue 16, "Show"; docs/SCALE.md).

Creates a fresh PostgreSQL database, then ``--nodes`` (10) node processes, each the daemon of
``snapkeep serve`` (``daemon.service.Service`` with its node: registration, heartbeat and sweep,
scheduler, worker pools; no HTTP, which the catalog does not see) over its own data directory, with
``--jobs`` (50) tiny Directories jobs each (one small file, a Local destination of that node). A
driver in this process keeps every job queued (``queue.enqueue_backup``, what the scheduler and
``runBackupJobManually`` call) for ``--seconds`` (120), then stops queueing and lets the nodes
drain. Every node runs real backups (``jobs.runs.execute_group``) and records, in its own files:

- each claim's latency (the claim transaction, ``queue.claim_next`` with ``FOR UPDATE SKIP LOCKED``),
- each run it executed (group, job, status),
- every SQL statement its catalog engine sent (counted by kind), idle and under load.

Then the driver checks that no run was lost (every group finished, none left Pending or
Processing), none doubled (no group executed twice, by one node or two) and every run executed on
its job's node; measures the catalog's rows and bytes per run (tables and indexes, ``pg_total_
relation_size``) and writes ``bench/nodes-results.json`` and the generated block of
``docs/SCALE.md``, with the 500-node estimate computed from these measured per-run costs.

The nodes, the driver and PostgreSQL share the machine's cores: the figures are those of the whole,
and the load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

import psycopg  # noqa: E402
from sqlalchemy import event, text  # noqa: E402

from snapkeep.errors import ConflictError  # noqa: E402
from snapkeep.jobs import nodes, queue  # noqa: E402
from snapkeep.jobs.catalog import Catalog  # noqa: E402
from snapkeep.jobs.codes import QueueStatus  # noqa: E402

BENCH = PROJECT / "bench"
RESULTS = BENCH / "nodes-results.json"
SCALE = PROJECT / "docs" / "SCALE.md"
BEGIN, END = "<!-- bench-nodes:begin -->", "<!-- bench-nodes:end -->"
ADMIN = "postgresql://root@127.0.0.1:5432/test"
TABLES = ("jobs", "queue_groups", "queue_items", "logs", "log_items", "backups", "alerts", "nodes")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10, help="node processes (default 10)")
    parser.add_argument("--jobs", type=int, default=50, help="jobs per node (default 50)")
    parser.add_argument("--seconds", type=float, default=120.0, help="how long runs are queued (120)")
    parser.add_argument("--drain", type=float, default=60.0, help="at most this long to drain after (60)")
    parser.add_argument("--forks", type=int, default=2, help="backups one node runs at once (2)")
    parser.add_argument("--pool", default="2+2", help="SNAPKEEP_CATALOG_POOL of each node (2+2)")
    parser.add_argument("--work", type=Path, default=BENCH / "work" / "nodes", help="scratch folder")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-report", action="store_true", help="do not rewrite docs/SCALE.md")
    # the node process (started by the driver)
    parser.add_argument("--node", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- a node process ---------------------------------------------------------------------------------


def statement_kind(statement: str) -> str:
    """``SELECT queue_groups``, ``UPDATE nodes``...: the verb and the first table named."""
    words = statement.split()
    verb = words[0].upper() if words else "?"
    table = "?"
    for keyword in ("FROM", "INTO", "UPDATE"):
        if keyword in (word.upper() for word in words):
            index = [word.upper() for word in words].index(keyword)
            if index + 1 < len(words):
                table = words[index + 1].strip('"(').split(".")[-1]
                break
    return f"{verb} {table}"


def run_node(arguments: argparse.Namespace) -> None:
    """One node: the service of ``snapkeep serve`` with a measuring executor, until SIGTERM."""
    from snapkeep.daemon.service import Service
    from snapkeep.jobs.runs import execute_group

    home: Path = arguments.home
    catalog = Catalog.open(home, arguments.url)
    statements: Counter[str] = Counter()
    lock = threading.Lock()
    phase = {"name": "start"}  # then "idle" once started, "load" from the first run on

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        with lock:
            statements[f"{phase['name']}|{statement_kind(statement)}"] += 1

    event.listen(catalog.engine, "before_cursor_execute", count)
    runs = (home / "runs.jsonl").open("a", buffering=1)
    claims = (home / "claims.jsonl").open("a", buffering=1)

    def executor(catalog: Catalog, home: Path, group_id: str, *, stop: threading.Event, clock: Any) -> int:
        phase["name"] = "load"
        started = time.monotonic()
        status = execute_group(catalog, home, group_id, stop=stop, clock=clock)
        runs.write(
            json.dumps({"group": group_id, "status": status, "seconds": time.monotonic() - started}) + "\n"
        )
        return status

    me = nodes.Me(id=nodes.local_id(home), name=str(arguments.node), timeout=30.0)
    service = Service(
        catalog,
        home,
        node=me,
        executor=executor,
        backup_forks=arguments.forks,
        queueable_forks=1,
        integrity=False,
        monitor_interval=3600.0,
    )
    claim = service.backups.claim

    def timed_claim() -> dict[str, Any] | None:
        started = time.perf_counter()
        group = claim()
        took = time.perf_counter() - started
        if group is not None:
            claims.write(json.dumps({"group": group["_id"], "seconds": took}) + "\n")
        return group

    service.backups.claim = timed_claim  # type: ignore[method-assign]
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    service.start()
    phase["name"] = "idle"
    (home / "ready").write_text("1")
    stopping.wait()
    service.stop(30.0)
    with lock:
        (home / "statements.json").write_text(json.dumps(dict(statements)))
    catalog.close()


# --- the driver -------------------------------------------------------------------------------------


def make_jobs(url: str, homes: dict[str, Path], jobs: int, work: Path) -> dict[str, str]:
    """``jobs`` tiny Directories jobs per node (created in each node's catalog, so they belong to it);
    job ID -> node ID."""
    from snapkeep.api.dispatch import Api

    owner: dict[str, str] = {}
    for name, home in homes.items():
        catalog = Catalog.open(home, url)
        try:
            api = Api(catalog)
            folder = work / "data" / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "site.txt").write_text(f"a tiny site of {name}\n" * 20)
            destination = api.call(
                "manageDestination",
                {
                    "action": "create",
                    "name": f"disk {name}",
                    "type": "Local",
                    "options": {"path": str(work / "backups" / name)},
                },
            )["data"]
            for index in range(jobs):
                answer = api.call(
                    "manageBackupJob",
                    {
                        "action": "create",
                        "name": f"{name} job {index}",
                        "type": 2,
                        "destination": [destination["_id"]],
                        "contains": 511,
                        "structure": 1,
                        "include_list": [str(folder)],
                        "manually_retain": 2,
                    },
                )
                assert answer["success"] == 1, answer["message"]
                owner[answer["data"]["_id"]] = answer["data"]["node"]
        finally:
            catalog.close()
    return owner


def keep_queued(catalog: Catalog, job_ids: list[str], until: float, counter: Counter[str]) -> int:
    """Queue a run of every job that is not queued or running, over and over until ``until``."""
    queued = 0
    while time.monotonic() < until:
        with catalog.transaction(write=False) as tx:
            idle = set(tx.connection.execute(text("SELECT id FROM jobs WHERE running = 0")).scalars())
        for job_id in job_ids:
            if job_id not in idle:
                continue
            try:
                with catalog.transaction() as tx:
                    job = tx.get("jobs", job_id, lock=True)
                    if job is None or job["running"]:
                        continue
                    queue.enqueue_backup(tx, job, owner="root")
                    queued += 1
            except ConflictError:
                continue
        counter["passes"] += 1
        time.sleep(0.2)
    return queued


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def table_sizes(url: str) -> dict[str, dict[str, int]]:
    with psycopg.connect(url, autocommit=True) as connection:
        sizes = {}
        for table in TABLES:
            rows = connection.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 - our names
            total = connection.execute(
                "SELECT pg_table_size(%s), pg_indexes_size(%s)", (table, table)
            ).fetchone()
            assert rows is not None
            assert total is not None
            sizes[table] = {"rows": int(rows[0]), "table_bytes": int(total[0]), "index_bytes": int(total[1])}
        return sizes


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.node:
        run_node(arguments)
        return 0
    work: Path = arguments.work / secrets.token_hex(3)
    work.mkdir(parents=True)
    database = f"snapkeep_bench_nodes_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    url = f"postgresql://root@127.0.0.1:5432/{database}"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        return drive(arguments, work, url, processes)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def drive(
    arguments: argparse.Namespace, work: Path, url: str, processes: list[subprocess.Popen[bytes]]
) -> int:
    key = os.urandom(32)
    homes = {f"node-{index:02d}": work / f"node-{index:02d}" for index in range(arguments.nodes)}
    for home in homes.values():
        home.mkdir(mode=0o700)
        (home / "master.key").write_bytes(key)
        (home / "master.key").chmod(0o600)
    setup_started = time.monotonic()
    owner = make_jobs(url, homes, arguments.jobs, work)
    print(
        f"{len(owner)} jobs on {len(homes)} nodes made in {time.monotonic() - setup_started:.1f} s",
        flush=True,
    )
    env = {**os.environ, "SNAPKEEP_CATALOG_POOL": arguments.pool}
    for name, home in homes.items():
        log = (home / "node.log").open("ab")
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--node",
                    name,
                    "--home",
                    str(home),
                    "--url",
                    url,
                    "--forks",
                    str(arguments.forks),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
    deadline = time.monotonic() + 60
    while not all((home / "ready").exists() for home in homes.values()):
        if time.monotonic() > deadline or any(process.poll() is not None for process in processes):
            raise SystemExit("a node did not start: see its node.log under " + str(work))
        time.sleep(0.2)
    idle_seconds = 10.0
    time.sleep(idle_seconds)  # idle: heartbeats, sweeps, scheduler passes, pool polls only
    catalog = Catalog.open(work / "driver", url)
    driver_statements: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        driver_statements[statement_kind(statement)] += 1

    event.listen(catalog.engine, "before_cursor_execute", count)
    passes: Counter[str] = Counter()
    load_started = time.monotonic()
    load_average_before = os.getloadavg()
    queued = keep_queued(catalog, list(owner), load_started + arguments.seconds, passes)
    load_seconds = time.monotonic() - load_started
    load_average = os.getloadavg()
    drain_deadline = time.monotonic() + arguments.drain
    while True:
        with catalog.transaction(write=False) as tx:
            active = [group for group in queue.list_groups(tx) if group["status"] < 100]
        if not active or time.monotonic() > drain_deadline:
            break
        time.sleep(0.5)
    drained = time.monotonic() - load_started
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(60)
    with catalog.transaction(write=False) as tx:
        groups = queue.list_groups(tx)
    catalog.close()
    sizes = table_sizes(url)

    executed: list[dict[str, Any]] = []
    claims: list[float] = []
    statements: Counter[str] = Counter()
    node_ids = {name: nodes.local_id(home) for name, home in homes.items()}
    for name, home in homes.items():
        for line in (home / "runs.jsonl").read_text().splitlines():
            executed.append({**json.loads(line), "node": node_ids[name]})
        for line in (home / "claims.jsonl").read_text().splitlines():
            claims.append(float(json.loads(line)["seconds"]))
        statements.update(json.loads((home / "statements.json").read_text()))
    by_group = Counter(run["group"] for run in executed)
    group_job = {group["_id"]: group["job_id"] for group in groups}
    doubled = sorted(group for group, times in by_group.items() if times > 1)
    lost = sorted(group["_id"] for group in groups if group["status"] < 100 or group["_id"] not in by_group)
    wrong_node = sorted(
        run["group"] for run in executed if owner.get(group_job.get(run["group"], "")) != run["node"]
    )
    statuses = Counter(QueueStatus.label_of(group["status"]) for group in groups)
    finished = sum(1 for group in groups if group["status"] >= 100)
    load_queries = sum(count for key, count in statements.items() if key.startswith("load|"))
    idle_queries = sum(count for key, count in statements.items() if key.startswith("idle|"))
    run_seconds = [float(run["seconds"]) for run in executed]
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": load_average,
            "load_average_before": load_average_before,
        },
        "nodes": arguments.nodes,
        "jobs_per_node": arguments.jobs,
        "forks": arguments.forks,
        "pool": arguments.pool,
        "load_seconds": round(load_seconds, 1),
        "drained_after": round(drained, 1),
        "queued": queued,
        "groups": len(groups),
        "finished": finished,
        "statuses": dict(statuses),
        "runs_per_minute": round(finished / (drained / 60), 1),
        "run_seconds_p50": round(percentile(run_seconds, 0.5), 3),
        "claim_ms_p50": round(1000 * percentile(claims, 0.5), 2),
        "claim_ms_p99": round(1000 * percentile(claims, 0.99), 2),
        "claims": len(claims),
        "lost": lost,
        "doubled": doubled,
        "wrong_node": wrong_node,
        "idle_queries_per_node_second": round(idle_queries / (arguments.nodes * idle_seconds), 2),
        "node_queries_per_run": round(load_queries / max(1, finished), 1),
        "driver_queries_per_run": round(sum(driver_statements.values()) / max(1, queued), 1),
        "queries_by_kind": dict(statements.most_common(25)),
        "tables": sizes,
        "run_seconds_mean": round(statistics.fmean(run_seconds), 3) if run_seconds else 0.0,
    }
    arguments.results.write_text(json.dumps(results, indent=2) + "\n")
    print(
        json.dumps(
            {key: value for key, value in results.items() if key not in ("queries_by_kind", "tables")},
            indent=2,
        )
    )
    if not arguments.no_report:
        write_report(results)
    return 1 if lost or doubled or wrong_node else 0


# --- the report ---------------------------------------------------------------------------------------


def per_run(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Rows and bytes (table, indexes) per finished run, of each table a run writes."""
    finished = max(1, results["finished"])
    answer = {}
    for table, size in results["tables"].items():
        if table in ("jobs", "nodes"):
            continue
        answer[table] = {
            "rows": size["rows"] / finished,
            "table_bytes": size["table_bytes"] / finished,
            "index_bytes": size["index_bytes"] / finished,
        }
    return answer


def estimate(
    results: dict[str, Any], nodes_count: int, jobs_per_node: int, runs_per_day: int
) -> dict[str, float]:
    """What ``nodes_count`` nodes with ``jobs_per_node`` jobs, each run ``runs_per_day`` times, would need
    of the catalog, from the measured per-run costs (30 days kept: the default logs_ttl)."""
    costs = per_run(results)
    runs_day = nodes_count * jobs_per_node * runs_per_day
    rows_day = sum(cost["rows"] for cost in costs.values()) * runs_day
    bytes_day = sum(cost["table_bytes"] + cost["index_bytes"] for cost in costs.values()) * runs_day
    index_30 = sum(cost["index_bytes"] for cost in costs.values()) * runs_day * 30
    queries_second = (
        runs_day / 86400 * (results["node_queries_per_run"] + results["driver_queries_per_run"])
        + nodes_count * results["idle_queries_per_node_second"]
    )
    return {
        "runs_per_day": runs_day,
        "rows_per_day": rows_day,
        "gib_per_day": bytes_day / 1024**3,
        "gib_30_days": bytes_day * 30 / 1024**3,
        "index_gib_30_days": index_30 / 1024**3,
        "queries_per_second": queries_second,
    }


def write_report(results: dict[str, Any]) -> None:
    costs = per_run(results)
    statuses = ", ".join(f"{label} {count}" for label, count in results["statuses"].items())
    claims = f"{results['claim_ms_p50']} ms / {results['claim_ms_p99']} ms ({results['claims']} claims)"
    wrong = f"{len(results['lost'])} / {len(results['doubled'])} / {len(results['wrong_node'])}"
    lines = [
        BEGIN,
        f"Measured {results['when']} by `make bench-nodes` (bench/nodes.py; raw figures in "
        "bench/nodes-results.json): "
        f"{results['nodes']} node processes x {results['jobs_per_node']} tiny Directories jobs on one "
        "PostgreSQL "
        f"({results['machine']['cpus']} cores shared by the nodes, the driver and PostgreSQL; load average "
        f"{results['machine']['load_average'][0]:.1f} at the end), each node {results['forks']} backups at "
        f"once, pool {results['pool']}, runs kept queued for {results['load_seconds']:.0f} s.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| runs finished | {results['finished']} of {results['groups']} queued ({statuses}) |",
        f"| runs per minute (all nodes) | {results['runs_per_minute']} |",
        f"| one run (tiny job), p50 | {results['run_seconds_p50'] * 1000:.0f} ms |",
        f"| claim latency p50 / p99 | {claims} |",
        f"| catalog statements per run, by the node | {results['node_queries_per_run']} |",
        f"| catalog statements per run, queueing it | {results['driver_queries_per_run']} |",
        f"| statements per idle node per second | {results['idle_queries_per_node_second']} |",
        f"| lost / doubled / on another node | {wrong} |",
        "",
        "Per finished run, measured (rows and bytes divided by the runs; bytes include the pages' slack):",
        "",
        "| table | rows | table bytes | index bytes |",
        "|---|---|---|---|",
    ]
    for table, cost in costs.items():
        lines.append(
            f"| {table} | {cost['rows']:.2f} | {cost['table_bytes']:.0f} | {cost['index_bytes']:.0f} |"
        )
    lines += [
        "",
        "On paper, from those per-run costs (30 days kept, the default `logs_ttl`):",
        "",
        "| deployment | runs/day | rows/day | catalog growth/day | 30 days (of which indexes) "
        "| statements/s |",
        "|---|---|---|---|---|---|",
    ]
    for label, count, jobs, per_day in (
        ("500 nodes x 50 jobs, daily", 500, 50, 1),
        ("500 nodes x 50 jobs, hourly", 500, 50, 24),
    ):
        figure = estimate(results, count, jobs, per_day)
        lines.append(
            f"| {label} | {figure['runs_per_day']:,.0f} | {figure['rows_per_day']:,.0f} | "
            f"{figure['gib_per_day']:.2f} GiB | {figure['gib_30_days']:.1f} GiB "
            f"({figure['index_gib_30_days']:.1f} GiB) | "
            f"{figure['queries_per_second']:,.0f} |"
        )
    lines.append(END)
    block = "\n".join(lines)
    text = SCALE.read_text() if SCALE.exists() else ""
    if BEGIN in text and END in text:
        text = text.split(BEGIN)[0] + block + text.split(END, 1)[1]
    else:
        text = text + "\n" + block + "\n"
    SCALE.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
