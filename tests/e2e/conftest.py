"""End-to-end fixtures: the installed ``snapkeep`` command in a subprocess, a real ``snapkeep serve``.

Every module that asks for ``instance`` or ``server`` runs once per catalog backend (SQLite in a temporary
data directory; PostgreSQL in a database created for that module on 127.0.0.1:5432 and dropped after).
One server per backend per module keeps the suite fast; tests inside a module share its catalog, so
they name what they create uniquely.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import httpx
import psycopg
import pytest
from tests.conftest import require_server

from snapkeep.api.params import encode
from snapkeep.jobs.catalog import Catalog

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SNAPKEEP = BIN / "snapkeep"
POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
POSTGRES_ADMIN_URL = f"postgresql://root@{POSTGRES_HOST}:{POSTGRES_PORT}/test"
TOKEN_HEADING = 'API token (send as "Authorization: Bearer <token>"):'
START_TIMEOUT = 60.0
CLI_TIMEOUT = 120.0
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def postgres_answers() -> bool:
    """Whether something accepts connections on the PostgreSQL port."""
    try:
        socket.create_connection((POSTGRES_HOST, POSTGRES_PORT), timeout=2).close()
    except OSError:
        return False
    return True


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create ``snapkeep_e2e_<random>`` for the duration of the block; yield its URL."""
    name = f"snapkeep_e2e_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://root@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Instance:
    """A data directory (and catalog) that the command line and a server share."""

    backend: str
    home: Path
    catalog_url: str | None

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for a ``snapkeep`` subprocess on this instance."""
        env = dict(os.environ)
        env.pop("SNAPKEEP_CATALOG_URL", None)
        env["SNAPKEEP_HOME"] = str(self.home)
        if self.catalog_url:
            env["SNAPKEEP_CATALOG_URL"] = self.catalog_url
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("COLUMNS", "200")
        env.update(extra)
        return env

    def cli(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``snapkeep ARGS`` as a subprocess of the installed command."""
        return subprocess.run(
            [str(SNAPKEEP), *args],
            env=self.env(),
            cwd=cwd or self.home.parent,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )

    def api(self, function: str, params: dict[str, Any] | str = "") -> tuple[int, dict[str, Any]]:
        """``snapkeep api -F FUNCTION -D QUERY -O json``: (exit code, envelope)."""
        query = params if isinstance(params, str) else encode(params)
        done = self.cli("api", "-F", function, "-D", query, "-O", "json")
        try:
            answer = json.loads(done.stdout)
        except ValueError:
            pytest.fail(
                f"snapkeep api printed no JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done.returncode, answer

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every catalog table, read in this process."""
        catalog = Catalog.open(self.home, self.catalog_url)
        try:
            return catalog.dump()
        finally:
            catalog.close()


@dataclass
class Server:
    """A running ``snapkeep serve`` subprocess on a free loopback port."""

    instance: Instance
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path
    token: str
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        # a node started with --tls-self-signed: the test trusts it (the nodes pin each other)
        self.client = httpx.Client(base_url=self.base_url, timeout=60.0, verify=not self.https)

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https:")

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def call(
        self, function: str, params: dict[str, Any] | None = None, *, how: str = "form"
    ) -> dict[str, Any]:
        """Call a function over HTTP and return the envelope (asserting HTTP 200).

        ``how``: ``query`` (GET /?api=1&function=...), ``form`` (POST urlencoded), ``multipart``,
        ``json`` (POST a JSON object), ``path`` (POST /function/NAME with JSON).
        """
        params = dict(params or {})
        if how == "query":
            query = encode({"api": "1", "function": function, **params})
            response = self.client.get(f"/?{query}", headers=self.auth())
        elif how == "form":
            response = self.client.post(
                "/",
                content=encode({"function": function, **params}).encode(),
                headers={**self.auth(), "Content-Type": "application/x-www-form-urlencoded"},
            )
        elif how == "multipart":
            pairs = [
                part.partition("=") for part in encode({"function": function, **params}).split("&") if part
            ]
            fields = [(unquote_plus(name), (None, unquote_plus(value).encode())) for name, _, value in pairs]
            response = self.client.post("/", files=fields, headers=self.auth())
        elif how == "json":
            response = self.client.post("/", json={"function": function, **params}, headers=self.auth())
        elif how == "path":
            response = self.client.post(f"/function/{function}", json=params, headers=self.auth())
        else:
            raise ValueError(how)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def start_server(instance: Instance, log: Path, *options: str) -> tuple[subprocess.Popen[bytes], str, str]:
    """Start ``snapkeep serve [OPTIONS]`` and wait until it answers; returns (process, base URL, printed
    output)."""
    port = free_port()
    scheme = "https" if "--tls-self-signed" in options else "http"
    base_url = f"{scheme}://127.0.0.1:{port}"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [
                str(SNAPKEEP),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                *options,
            ],
            env=instance.env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=instance.home.parent,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"snapkeep serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/openapi.json", timeout=5, verify=scheme == "http").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"snapkeep serve did not answer within {START_TIMEOUT} s:\n{log.read_text()}")
        time.sleep(0.1)
    return process, base_url, log.read_text()


def printed_token(output: str) -> str | None:
    """The token printed under the first-start heading, if any."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.strip() == TOKEN_HEADING and index + 1 < len(lines):
            return lines[index + 1].strip()
    return None


@pytest.fixture(scope="module", params=BACKENDS)
def instance(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    """A fresh data directory, with a fresh PostgreSQL database for the postgresql backend."""
    backend: str = request.param
    home = tmp_path_factory.mktemp(f"e2e-{backend}") / "home"
    if backend == "sqlite":
        yield Instance(backend, home, None)
        return
    require_server(postgres_answers(), f"PostgreSQL on {POSTGRES_HOST}:{POSTGRES_PORT}")
    with fresh_postgres_database() as url:
        yield Instance(backend, home, url)


@pytest.fixture(scope="module")
def server(instance: Instance) -> Iterator[Server]:
    """``snapkeep serve`` on the module's instance; its first-start token authenticates the client."""
    log = instance.home.parent / "serve.log"
    process, base_url, output = start_server(instance, log)
    token = printed_token(output)
    if token is None:
        process.kill()
        process.wait()
        pytest.fail(f"the first start of snapkeep serve printed no token:\n{output}")
    running = Server(instance, process, base_url, log, token)
    try:
        yield running
    finally:
        running.stop()
