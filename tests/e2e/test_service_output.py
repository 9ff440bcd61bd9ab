"""Issue 14 item 1: the service says in its own output when each run starts and ends, with its
status, one plain line per event (what journald records), with no terminal codes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import Instance, printed_token, start_server

from snapkeep.api.params import encode


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    """A SQLite data directory (overrides the two-backend fixture of conftest)."""
    return Instance("sqlite", tmp_path_factory.mktemp("service-output") / "home", None)


def test_each_run_start_and_end_is_one_line_of_the_services_output(
    instance: Instance, tmp_path: Path
) -> None:
    source = tmp_path / "site"
    source.mkdir()
    (source / "index.html").write_text("hello\n")
    log = tmp_path / "serve.log"
    process, base_url, output = start_server(instance, log, "--log-level", "info")
    try:
        token = printed_token(output)
        assert token
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-www-form-urlencoded"}

        def call(function: str, params: dict) -> dict:
            body = encode({"function": function, **params}).encode()
            answer = httpx.post(f"{base_url}/", content=body, headers=headers, timeout=30).json()
            assert answer["success"] == 1, answer["message"]
            return dict(answer["data"])

        destination = call(
            "manageDestination",
            {"action": "create", "name": "d", "type": "Local", "options": {"path": str(tmp_path / "b")}},
        )
        job = call(
            "manageBackupJob",
            {
                "action": "create",
                "name": "Site",
                "type": 2,
                "contains": 511,
                "structure": 1,
                "destination": [destination["_id"]],
                "include_list": [str(source)],
            },
        )
        group_id = call("runBackupJobManually", {"_id": job["_id"]})["queue_group_id"]
        deadline = time.monotonic() + 60
        while call("getQueueGroup", {"_id": group_id})["status"] < 100:
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.2)
        deadline = time.monotonic() + 10
        while f"queue group {group_id} ended" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        text = log.read_text()
        started = [
            line for line in text.splitlines() if f"queue group {group_id} started: Backup 'Site'" in line
        ]
        ended = [
            line
            for line in text.splitlines()
            if f"queue group {group_id} ended: Backup 'Site', status 100 (Completed)" in line
        ]
        assert len(started) == len(ended) == 1, text
        assert "\x1b[" not in text, "no terminal codes when the output is not a terminal"
    finally:
        process.terminate()
        process.wait(timeout=30)
