"""The OpenAPI fuzz of the HTTP API: schemathesis, run from the service's own ``/openapi.json``.

Shared by the bounded test (``tests/e2e/test_fuzz_openapi.py``) and the longer run that writes
figures into docs/RELIABILITY.md (``bench/fuzz_api.py``, ``make fuzz``). This module is also the
schemathesis hooks module (``SCHEMATHESIS_HOOKS=bench.fuzz_checks``): it registers the check
``no_internals``, which fails any answer that carries a traceback, an exception's class name, a
source path, or the server's home folder (``SNAPKEEP_FUZZ_HOME``). Alongside it runs schemathesis'
own ``not_a_server_error`` (no 5xx). Schema-conformance checks are not run: bad parameters answer
HTTP 200 with ``success: 0`` by design (API.md section 2).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HOME_ENV = "SNAPKEEP_FUZZ_HOME"
CHECKS = "not_a_server_error,no_internals"
LEAKS = re.compile(
    r"Traceback|File \"|\b[A-Z][A-Za-z]*(?:Error|Exception)\b|\bsnapkeep/[a-z_/]+\.py|site-packages"
)


def leak_in(text: str, home: str | None) -> str | None:
    """What in ``text`` must not reach a caller, or None."""
    found = LEAKS.search(text)
    if found:
        return found.group(0)
    if home and home in text:
        return "the server's home path"
    return None


try:  # registered only when schemathesis loads this module as its hooks
    import schemathesis

    @schemathesis.check
    def no_internals(ctx: Any, response: Any, case: Any) -> bool | None:
        """No traceback, exception class name, source path or home path in any answer."""
        leaked = leak_in(response.text or "", os.environ.get(HOME_ENV))
        if leaked:
            raise AssertionError(f"the answer carries {leaked!r}: {response.text[:300]}")
        return None

except ImportError:  # pragma: no cover - schemathesis is a test extra
    pass


def token_for(cli: Callable[..., subprocess.CompletedProcess[str]], root_token: str, user: str) -> str:
    """The bearer string of ``user``: root's first-start token, or a new one from ``snapkeep token
    create --user NAME`` (``cli(*args)`` runs ``snapkeep ARGS`` on the server's home). Where users
    must exist first (issue 11's roles), a missing one is added as an account user."""
    if user == "root":
        return root_token
    done = cli("token", "create", "--user", user)
    if done.returncode != 0 and "no user named" in done.stdout + done.stderr:
        added = cli("user", "add", user, "--role", "account")
        if added.returncode != 0:
            raise RuntimeError(f"snapkeep user add {user}: {added.stdout}{added.stderr}")
        done = cli("token", "create", "--user", user)
    if done.returncode != 0:
        raise RuntimeError(f"snapkeep token create --user {user}: {done.stdout}{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


@dataclass
class FuzzRun:
    """Figures of one schemathesis run with one token."""

    label: str
    seconds: float
    requests: int
    statuses: dict[str, int]
    failures: int
    exit_code: int
    failing: list[str] = field(default_factory=list)
    #: schemathesis' own errors (its generator failing, not a check): reported, not counted as failures
    fuzzer_errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_fuzz(
    base_url: str,
    token: str,
    home: Path,
    report_dir: Path,
    *,
    label: str,
    max_time: int,
    seed: int = 12345,
    workers: int = 2,
) -> FuzzRun:
    """Run schemathesis against ``base_url`` with ``token`` for at most ``max_time`` seconds;
    count the requests and statuses from its HAR report."""
    report_dir.mkdir(parents=True, exist_ok=True)
    har = report_dir / f"{label}.har"
    junit = report_dir / f"{label}.xml"
    binary = Path(sys.executable).with_name("schemathesis")
    command = [
        str(binary),
        "run",
        f"{base_url}/openapi.json",
        "-H",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--max-time",
        str(max_time),
        "--workers",
        str(workers),
        "--request-timeout",
        "30",
        "--seed",
        str(seed),
        "--generation-database",
        "none",
        "--report",
        "har,junit",
        "--report-har-path",
        str(har),
        "--report-junit-path",
        str(junit),
        "--output-truncate",
        "true",
    ]
    repo = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "bench.fuzz_checks",
        HOME_ENV: str(home),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH", "")])),
        "NO_COLOR": "1",
    }
    started = time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=max_time + 300, check=False, cwd=report_dir
    )
    seconds = round(time.monotonic() - started, 1)
    (report_dir / f"{label}.out").write_text(done.stdout + done.stderr)
    statuses: Counter[str] = Counter()
    if har.exists():
        for entry in json.loads(har.read_text())["log"]["entries"]:
            statuses[str(entry["response"]["status"])] += 1
    failing, errors = _failures(junit)
    return FuzzRun(
        label=label,
        seconds=seconds,
        requests=sum(statuses.values()),
        statuses=dict(sorted(statuses.items())),
        failures=len(failing),
        exit_code=done.returncode,
        failing=failing,
        fuzzer_errors=errors,
    )


def _failures(junit: Path) -> tuple[list[str], list[str]]:
    """(check failures, schemathesis' own errors) from the JUnit report, one line each."""
    if not junit.exists():
        return ["no JUnit report was written"], []
    failures: list[str] = []
    errors: list[str] = []
    for case in ElementTree.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our child's report
        for kind, found in (("failure", failures), ("error", errors)):
            for problem in case.findall(kind):
                text = (problem.get("message") or problem.text or "").strip().splitlines()
                found.append(f"{case.get('name')}: {text[0] if text else kind}")
    return failures, errors
