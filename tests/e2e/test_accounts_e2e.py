"""The issue 6 "Show", end to end: a real ``snapkeep serve`` and ``snapkeep run`` subprocess, the real
MariaDB and PostgreSQL servers, three accounts of which a filter selects two.

The job (contains 511) runs through the command line; listing, the backup's items and the restores go
through the HTTP API and are executed by the service's restore workers. One database is dropped and
one folder deleted, both are restored, and rows (checksums of SELECTed rows) and files must match
what was backed up. SQLite catalog only: the account path does not depend on the catalog backend.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import require_server
from tests.e2e.conftest import Instance, Server
from tests.integration.runner_helpers import tree_state
from tests.integration.test_account_runs import (
    Site,
    mariadb,
    mariadb_checksum,
    postgres,
    postgres_checksum,
    servers_answer,
)


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    """A SQLite data directory (overrides the two-backend fixture of conftest)."""
    return Instance("sqlite", tmp_path_factory.mktemp("e2e-accounts") / "home", None)


@pytest.fixture
def site(instance: Instance, tmp_path: Path) -> Iterator[Site]:
    require_server(servers_answer(), "MariaDB at 127.0.0.1:3306 and PostgreSQL at 127.0.0.1:5432")
    made = Site(tmp_path, instance.home)
    try:
        made.build()
        yield made
    finally:
        made.drop()


def ok(server: Server, function: str, params: dict[str, Any] | None = None) -> Any:
    answer = server.call(function, params)
    assert answer["success"] == 1, (function, params, answer["message"])
    return answer["data"]


def wait_group(server: Server, group_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        group = ok(server, "getQueueGroup", {"_id": group_id})
        if int(group["status"]) >= 100:
            return dict(group)
        assert time.monotonic() < deadline, f"queue group {group_id} did not finish: {group}"
        time.sleep(0.2)


def log_of(server: Server, group: dict[str, Any]) -> str:
    return str(ok(server, "getLog", {"_id": group["data"]["log_id"], "content": 1})["content"])


def test_show_accounts_backup_drop_and_restore_through_the_command_line_and_http(
    server: Server, site: Site, tmp_path: Path
) -> None:
    alice, bob, carol = (site.user(short) for short in ("alice", "bob", "carol"))
    listed = ok(server, "listAccounts", {"limit": 0})["accounts"]
    assert {item["name"] for item in listed} == {alice, bob, carol}
    destination = ok(
        server,
        "manageDestination",
        {"action": "create", "name": "Disk", "type": "Local", "options": {"path": str(tmp_path / "backups")}},
    )
    group = ok(
        server,
        "manageAccountFilter",
        {"action": "create", "name": "not carol", "type": 2, "condition": 2, "list": [carol]},
    )
    job = ok(
        server,
        "manageBackupJob",
        {
            "action": "create",
            "name": "Accounts",
            "type": 1,
            "contains": 511,
            "structure": 1,
            "destination": [destination["_id"]],
            "filters": [[group["group_id"]]],
        },
    )
    rows = {"wp": mariadb_checksum(f"{alice}_wp"), "app": postgres_checksum(f"{alice}_app")}
    public_before = tree_state(site.account_home("alice") / "public_html")

    done = server.instance.cli("run", job["_id"])
    assert done.returncode == 0, done.stdout + done.stderr

    with_backups = ok(server, "listBackupForAccounts")["accounts"]
    assert [entry["account"] for entry in with_backups] == [alice, bob]
    (backup,) = ok(server, "listBackups", {"account_id": alice})["backups"]
    items = {item["name"]: item for item in ok(server, "getBackupItems", {"_id": backup["_id"]})["items"]}
    assert len(items) == 9
    assert items["email"]["backup_contains"] == 8

    mariadb(f"DROP DATABASE `{alice}_wp`")
    postgres(f'DROP DATABASE "{alice}_app" WITH (FORCE)')
    shutil.rmtree(site.account_home("alice") / "public_html")

    databases = items["databases"]["_id"]
    queued = ok(
        server,
        "addQueueItems",
        {
            "type": 2,
            "items": [databases],
            "files": {databases: {f"/mariadb/{alice}_wp": "File", f"/postgresql/{alice}_app": "File"}},
        },
    )
    restored = wait_group(server, queued["_id"])
    assert restored["status"] == 100, log_of(server, restored)
    home = items["homedir"]["_id"]
    queued = ok(
        server, "addQueueItems", {"type": 2, "items": [home], "files": {home: {"/public_html": "Directory"}}}
    )
    restored = wait_group(server, queued["_id"])
    assert restored["status"] == 100, log_of(server, restored)

    assert mariadb_checksum(f"{alice}_wp") == rows["wp"]
    assert postgres_checksum(f"{alice}_app") == rows["app"]
    assert tree_state(site.account_home("alice") / "public_html") == public_before
