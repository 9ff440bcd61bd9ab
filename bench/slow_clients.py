"""Slow clients against ``snapkeep serve``: N connections trickle request headers (slowloris, one
header line per second, reconnecting when closed) while one normal client times its calls.

    python bench/slow_clients.py [--slow 1000] [--seconds 30] [--header-timeout 10]

Prints the normal client's latencies with and without the slow clients, how long the server let a
slow connection live, and how many were opened and closed. Figures go into docs/http.md by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serve_child import serve


def timed_calls(base_url: str, token: str, seconds: float) -> dict[str, Any]:
    """One client calling listBackupJobs back to back for ``seconds``: count, errors, latencies."""
    latencies: list[float] = []
    errors = 0
    end = time.monotonic() + seconds
    with httpx.Client(base_url=base_url, timeout=30) as client:
        while time.monotonic() < end:
            start = time.monotonic()
            try:
                ok = client.get(
                    "/?api=1&function=listBackupJobs", headers={"Authorization": f"Bearer {token}"}
                ).status_code
            except httpx.HTTPError:
                ok = 0
            latencies.append(time.monotonic() - start)
            errors += ok != 200
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def slow_connection(
    host: str, port: int, stop: asyncio.Event, lives: list[float], counts: dict[str, int]
) -> None:
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            counts["refused"] += 1
            await asyncio.sleep(1)
            continue
        counts["opened"] += 1
        born = time.monotonic()
        writer.write(b"GET /?api=1&function=listBackupJobs HTTP/1.1\r\nHost: slow\r\n")
        try:
            while not stop.is_set():
                await writer.drain()
                try:
                    if await asyncio.wait_for(reader.read(1), 1.0) == b"":
                        counts["closed_by_server"] += 1
                        lives.append(time.monotonic() - born)
                        break
                except TimeoutError:
                    writer.write(b"X-Slow: a\r\n")
        except (ConnectionError, OSError):
            counts["closed_by_server"] += 1
            lives.append(time.monotonic() - born)
        finally:
            writer.close()


def slow_clients(base_url: str, n: int, seconds: float, result: dict[str, Any]) -> None:
    host, port = base_url.removeprefix("http://").split(":")

    async def main() -> None:
        stop = asyncio.Event()
        lives: list[float] = []
        counts = {"opened": 0, "closed_by_server": 0, "refused": 0}
        tasks = [asyncio.create_task(slow_connection(host, int(port), stop, lives, counts)) for _ in range(n)]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        result.update(counts)
        result["longest_life_s"] = round(max(lives), 1) if lives else None
        result["median_life_s"] = round(statistics.median(lives), 1) if lives else None

    asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--header-timeout", type=float, default=10)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="snapkeep-slow-") as work,
        serve(
            Path(work) / "home", "--header-timeout", str(args.header_timeout), "--log-level", "warning"
        ) as child,
    ):
        quiet = timed_calls(child.base_url, child.token, 5)
        slow: dict[str, Any] = {}
        attack = threading.Thread(target=slow_clients, args=(child.base_url, args.slow, args.seconds, slow))
        attack.start()
        time.sleep(2)  # let the slow connections open
        loaded = timed_calls(child.base_url, child.token, args.seconds - 4)
        attack.join()
        alive = child.process.poll() is None
    print(
        json.dumps(
            {
                "slow_connections": args.slow,
                "seconds": args.seconds,
                "header_timeout_s": args.header_timeout,
                "normal_client_alone": quiet,
                "normal_client_under_slow_clients": loaded,
                "slow_clients": slow,
                "server_alive": alive,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
