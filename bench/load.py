"""``make bench-load``: the API under load, with lists paged in the catalog (issue 11, "Show").

Starts the real server (``snapkeep serve`` on a fresh data directory, a free loopback port) as a
subprocess and talks HTTP to it, as a client would:

1. creates one Local destination and ``--jobs`` (2,000) Backup Jobs through the API;
2. ``--clients`` (50) concurrent clients for ``--seconds`` (60 s), each calling in a loop (mix as the
   attack report's load test, with the list split three ways): ``listBackupJobs limit=100`` (40 %),
   the same sorted by name (15 %) or finding ``monitor[notran]`` (15 %), ``getBackupJob`` (25 %) and
   ``manageBackupJob action=modify`` (5 %); per-call p50/p99, requests per second, errors;
3. on a second fresh server, one client's ``listBackupJobs`` (100-row page) p50/p99 at each of
   ``--scales`` (100, 1,000, 10,000 jobs): plain, sorted by name, and with a find. Jobs up to 1,000 are
   created through the API; beyond that they are inserted through the jobs layer (``Catalog`` and the
   same validated document the API stores) while the server runs, which takes seconds instead of
   minutes. The server reads them like any other job.

Writes ``bench/load-results.json`` and the generated block of ``docs/RELIABILITY.md`` (``bench/
load_report.py``). The clients are asyncio tasks in this one process (httpx), on the same 2 cores
as the server: the figures are those of the pair, and the load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from bench import load_report  # noqa: E402
from bench.load_server import Server, serve  # noqa: E402
from snapkeep.api.params import encode  # noqa: E402
from snapkeep.jobs.catalog import Catalog  # noqa: E402
from snapkeep.jobs.models import JobFields, validate  # noqa: E402

BENCH = PROJECT / "bench"
# (label, weight): what one concurrent client calls, chosen at random by weight
MIX = [("list", 40), ("list sorted", 15), ("list find", 15), ("get", 25), ("modify", 5)]
PAGE = {"limit": 100}
SORTED = {"limit": 100, "sort": {"name": 1}}
FOUND = {"limit": 100, "find": {"monitor": {"notran": 3}}}


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000, help="jobs for the concurrent phase (2,000)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the concurrent phase (60)")
    parser.add_argument("--scales", default="100,1000,10000", help="job counts for the one-client lists")
    parser.add_argument("--calls", type=int, default=200, help="one-client calls per list variant (200)")
    parser.add_argument("--api-limit", type=int, default=1000, help="beyond this many jobs, insert directly")
    parser.add_argument("--work", type=Path, default=BENCH / "work" / "load", help="scratch folder")
    parser.add_argument("--results", type=Path, default=BENCH / "load-results.json")
    parser.add_argument("--doc", type=Path, default=PROJECT / "docs" / "RELIABILITY.md")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite the block in --doc")
    parser.add_argument("--seed", type=int, default=11)
    return parser.parse_args(argv)


# --- calls ----------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Latencies (seconds) per label, and the errors seen."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: list[str] = field(default_factory=list)

    def error(self, label: str, what: str) -> None:
        self.errors[label] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{label}: {what[:200]}")


async def call(
    client: httpx.AsyncClient, tally: Tally, label: str, function: str, params: dict[str, Any]
) -> dict[str, Any] | None:
    """POST one function call; record its latency under ``label`` (errors too); the data or None."""
    body = encode({"function": function, **params}).encode()
    started = time.perf_counter()
    try:
        response = await client.post("/", content=body)
        answer = response.json()
    except (httpx.HTTPError, ValueError) as error:
        elapsed = time.perf_counter() - started
        tally.latencies[label].append(elapsed)
        tally.error(label, f"{type(error).__name__} after {elapsed:.3f} s: {error!r}")
        return None
    tally.latencies[label].append(time.perf_counter() - started)
    if response.status_code != 200 or answer.get("success") != 1:
        tally.error(label, f"HTTP {response.status_code}: {answer.get('message')}")
        return None
    data: dict[str, Any] = answer["data"]
    return data


def client_for(server: Server, connections: int) -> httpx.AsyncClient:
    # Idle connections are dropped after 2 s, before the server's 5 s keep-alive timeout closes them:
    # at the same 5 s on both sides a request could go out on a connection the server was closing.
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2.0
    )
    return httpx.AsyncClient(
        base_url=server.base_url,
        headers={
            "Authorization": f"Bearer {server.token}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        limits=limits,
        timeout=300.0,
    )


def job_params(index: int, destination: str) -> dict[str, Any]:
    return {
        "name": f"Load job {index:05d}",
        "type": 2,
        "destination": [destination],
        "contains": 511,
        "structure": 1,
        "include_list": [f"/srv/site{index % 50}"],
        "monitor": {"notran": index % 7, "ranfor": 0},
    }


async def create_jobs(server: Server, destination: str, first: int, count: int, tally: Tally) -> list[str]:
    """Create jobs ``first`` .. ``first + count - 1`` through the API, four requests at a time."""
    created: list[str] = []
    indexes = iter(range(first, first + count))
    async with client_for(server, 4) as client:

        async def worker() -> None:
            for index in indexes:
                params = {"action": "create", **job_params(index, destination)}
                data = await call(client, tally, "create", "manageBackupJob", params)
                if data is not None:
                    created.append(data["_id"])

        await asyncio.gather(*(worker() for _ in range(4)))
    return created


async def create_destination(server: Server, work: Path) -> str:
    tally = Tally()
    target = work / "destination"
    target.mkdir(parents=True, exist_ok=True)
    params = {"action": "create", "name": "Load disk", "type": "Local", "options": {"path": str(target)}}
    async with client_for(server, 1) as client:
        data = await call(client, tally, "destination", "manageDestination", params)
    if data is None:
        raise SystemExit(f"cannot create the destination: {tally.examples}")
    return str(data["_id"])


def insert_jobs(home: Path, destination: str, first: int, count: int) -> None:
    """Insert jobs through the jobs layer: the document the API would store, in one transaction."""
    catalog = Catalog.open(home)
    try:
        with catalog.transaction() as tx:
            for index in range(first, first + count):
                tx.insert(
                    "jobs", validate(JobFields, job_params(index, destination)).model_dump(by_alias=True)
                )
    finally:
        catalog.close()


# --- phases ---------------------------------------------------------------------------------------


async def concurrent_phase(
    server: Server, ids: list[str], clients: int, seconds: float, seed: int
) -> dict[str, Any]:
    """``clients`` loops of the ``MIX`` for ``seconds``; the figures per call and in all."""
    tally = Tally()
    labels = [label for label, _ in MIX]
    weights = [weight for _, weight in MIX]
    started = time.perf_counter()
    deadline = started + seconds

    async def one(number: int) -> None:
        rng = random.Random(seed * 1000 + number)  # noqa: S311 - a reproducible mix, not a secret
        while time.perf_counter() < deadline:
            label = rng.choices(labels, weights)[0]
            if label == "list":
                await call(client, tally, label, "listBackupJobs", PAGE)
            elif label == "list sorted":
                await call(client, tally, label, "listBackupJobs", SORTED)
            elif label == "list find":
                await call(client, tally, label, "listBackupJobs", FOUND)
            elif label == "get":
                await call(client, tally, label, "getBackupJob", {"_id": rng.choice(ids)})
            else:
                change = {
                    "action": "modify",
                    "_id": rng.choice(ids),
                    "monitor": {"notran": rng.randint(0, 6)},
                }
                await call(client, tally, label, "manageBackupJob", change)

    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    async with client_for(server, clients) as client:
        await asyncio.gather(*(one(number) for number in range(clients)))
    elapsed = time.perf_counter() - started
    server_after = server.cpu_seconds()
    cpu = {
        "server_cpu_seconds": None
        if server_cpu is None or server_after is None
        else round(server_after - server_cpu, 1),
        "client_cpu_seconds": round(time.process_time() - client_cpu, 1),
    }
    return (
        load_report.summarise(tally.latencies, tally.errors, elapsed)
        | cpu
        | {"error_examples": tally.examples}
    )


async def one_client(server: Server, calls: int) -> dict[str, Any]:
    """One client's list latencies: plain page, sorted by name, with a find (a few warm-up calls first)."""
    tally = Tally()
    async with client_for(server, 1) as client:
        for label, params in (("page", PAGE), ("sorted", SORTED), ("find", FOUND)):
            for _ in range(5):
                await call(client, Tally(), label, "listBackupJobs", params)
            for _ in range(calls if label == "page" else max(calls // 2, 1)):
                data = await call(client, tally, label, "listBackupJobs", params)
                if data is not None and len(data["jobs"]) > 100:
                    tally.error(label, f"page of {len(data['jobs'])} rows")
        data = await call(client, Tally(), "total", "listBackupJobs", {"limit": 1})
    busy = sum(sum(values) for values in tally.latencies.values())  # one client: back to back
    summary = load_report.summarise(tally.latencies, tally.errors, busy)
    summary["total_listed"] = None if data is None else data["total"]
    return summary


async def scaling_phase(
    server: Server, work: Path, scales: list[int], calls: int, api_limit: int
) -> list[dict[str, Any]]:
    destination = await create_destination(server, work)
    via_api = via_layer = 0
    levels = []
    for scale in scales:
        through_api = min(scale, api_limit) - via_api - via_layer
        if through_api > 0:
            tally = Tally()
            created = await create_jobs(server, destination, via_api + via_layer, through_api, tally)
            if len(created) != through_api:
                raise SystemExit(f"creating jobs failed: {tally.examples}")
            via_api += through_api
        if scale > via_api + via_layer:
            insert_jobs(server.home, destination, via_api + via_layer, scale - via_api - via_layer)
            via_layer = scale - via_api
        how = "API" if not via_layer else f"API {via_api:,}, jobs layer {via_layer:,}"
        figures = await one_client(server, calls)
        if figures["total_listed"] != scale:
            figures["all"]["errors"] += 1
            figures["error_examples"] = [f"listBackupJobs total {figures['total_listed']}, expected {scale}"]
        levels.append({"jobs": scale, "created": how, **figures})
        print(f"  {scale:>6} jobs: " + load_report.one_line(figures), flush=True)
    return levels


def machine() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT, capture_output=True, text=True, check=False
    )
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "commit": commit.stdout.strip() or None,
    }


async def run(arguments: argparse.Namespace) -> dict[str, Any]:
    work: Path = arguments.work
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine_before": machine(),
        "settings": {
            "jobs": arguments.jobs,
            "clients": arguments.clients,
            "seconds": arguments.seconds,
            "mix": dict(MIX),
            "calls": arguments.calls,
            "catalog": "SQLite",
        },
    }
    began = time.perf_counter()
    print(
        f"concurrent: {arguments.jobs:,} jobs, {arguments.clients} clients, {arguments.seconds:g} s",
        flush=True,
    )
    with serve(work / "home-concurrent") as server:
        destination = await create_destination(server, work)
        tally = Tally()
        started = time.perf_counter()
        ids = await create_jobs(server, destination, 0, arguments.jobs, tally)
        results["creation"] = load_report.summarise(
            tally.latencies, tally.errors, time.perf_counter() - started
        )
        print("  created: " + load_report.one_line(results["creation"]), flush=True)
        if not ids:
            raise SystemExit(f"no job could be created: {tally.examples}")
        results["concurrent"] = await concurrent_phase(
            server, ids, arguments.clients, arguments.seconds, arguments.seed
        )
        results["concurrent"]["server_peak_rss_mib"] = server.peak_rss_mib()
        print("  mixed: " + load_report.one_line(results["concurrent"]), flush=True)
    scales = [int(value) for value in arguments.scales.split(",") if value]
    print(f"one client: listBackupJobs limit=100 at {', '.join(f'{s:,}' for s in scales)} jobs", flush=True)
    with serve(work / "home-scaling") as server:
        results["scaling"] = await scaling_phase(server, work, scales, arguments.calls, arguments.api_limit)
        results["scaling_server_peak_rss_mib"] = server.peak_rss_mib()
    results["seconds"] = round(time.perf_counter() - began, 1)
    results["machine_after"] = machine()
    return results


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    results = asyncio.run(run(arguments))
    arguments.results.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {arguments.results}")
    if not arguments.no_doc:
        load_report.write_block(arguments.doc, load_report.render(results))
        print(f"figures: {arguments.doc}")
    errors = results["concurrent"]["all"]["errors"] + sum(
        level["all"]["errors"] for level in results["scaling"]
    )
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
