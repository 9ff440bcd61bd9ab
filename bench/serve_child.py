"""A ``snapkeep serve`` child on a free loopback port with a fresh home, for the HTTP benches
(``bench/fuzz_api.py``, ``bench/slow_clients.py``)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.reliability.common import environment, snapkeep_command

TOKEN_HEADING = 'API token (send as "Authorization: Bearer <token>"):'


@dataclass
class Child:
    base_url: str
    token: str
    home: Path
    log: Path
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(home: Path, *options: str, timeout: float = 60) -> Iterator[Child]:
    """Start ``snapkeep --home HOME serve --api-only OPTIONS`` and stop it (SIGTERM) at the end."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = home.parent / f"{home.name}-serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            snapkeep_command("--home", str(home), "serve", "--port", str(port), "--api-only", *options),
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment(),
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited with {process.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{base_url}/openapi.json", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve did not answer within {timeout} s: {log.read_text()}")
            time.sleep(0.1)
        lines = log.read_text().splitlines()
        token = lines[lines.index(TOKEN_HEADING) + 1].strip()
        yield Child(base_url, token, home, log, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
