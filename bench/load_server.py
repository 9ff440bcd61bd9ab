"""``snapkeep serve`` for ``bench/load.py``: a fresh data directory, a free loopback port, the token it
prints on its first start, and what the benchmark reads of the process (CPU time, peak RSS)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

SNAPKEEP = Path(sys.executable).parent / "snapkeep"
TOKEN_HEADING = 'API token (send as "Authorization: Bearer <token>"):'
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    home: Path
    process: subprocess.Popen[bytes]
    base_url: str
    token: str

    def cpu_seconds(self) -> float | None:
        """User plus system CPU time the server has used so far (``/proc/PID/stat``)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mib(self) -> float | None:
        """The server's peak resident set so far (``VmHWM``), in MiB."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            return None
        return None


@contextmanager
def serve(home: Path) -> Iterator[Server]:
    """``snapkeep serve`` on a fresh ``home`` and a free loopback port; stopped (SIGTERM) on exit."""
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    port = free_port()
    log = home.parent / f"{home.name}.log"
    env = {**os.environ, "SNAPKEEP_HOME": str(home)}
    env.pop("SNAPKEEP_CATALOG_URL", None)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(SNAPKEEP), "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=home.parent,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise SystemExit(f"snapkeep serve exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{base_url}/openapi.json", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"snapkeep serve did not answer within {START_TIMEOUT} s:\n{log.read_text()}"
                )
            time.sleep(0.1)
        lines = log.read_text().splitlines()
        token = next(
            (lines[i + 1].strip() for i, line in enumerate(lines[:-1]) if line.strip() == TOKEN_HEADING), ""
        )
        if not token:
            raise SystemExit(f"the first start of snapkeep serve printed no token:\n{log.read_text()}")
        yield Server(home, process, base_url, token)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
