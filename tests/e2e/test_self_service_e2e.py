"""Issue 11's self-service scenario, end to end over HTTP against a real ``snapkeep serve``.

Root makes a reseller (owning two of the three accounts) and two account owners, and a destination
for the reseller; the reseller makes an Accounts job with no filter (so the run itself must keep it
to its own accounts) and runs it; each owner lists only its own backups, restores a deleted file and
a dropped MariaDB database into its own account, and is refused for the other account's backup, a
hook, a Directories job on ``/etc``, and settings. The real MariaDB and PostgreSQL servers hold the
accounts' databases (``tests.integration.test_account_runs.Site``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import require_server
from tests.e2e.conftest import Instance, Server
from tests.integration.test_account_runs import Site, mariadb, mariadb_checksum, servers_answer

from snapkeep.api.params import encode


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    """A SQLite data directory (overrides the two-backend fixture of conftest)."""
    return Instance("sqlite", tmp_path_factory.mktemp("e2e-self-service") / "home", None)


@pytest.fixture
def site(instance: Instance, tmp_path: Path) -> Iterator[Site]:
    require_server(servers_answer(), "MariaDB at 127.0.0.1:3306 and PostgreSQL at 127.0.0.1:5432")
    made = Site(tmp_path, instance.home)
    try:
        made.build()
        yield made
    finally:
        made.drop()


def call(server: Server, token: str, function: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    response = server.client.post(
        "/",
        content=encode({"function": function, **(params or {})}).encode(),
        headers={**server.auth(token), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def ok(server: Server, token: str, function: str, params: dict[str, Any] | None = None) -> Any:
    answer = call(server, token, function, params)
    assert answer["success"] == 1, (function, params, answer["message"])
    return answer["data"]


def wait(server: Server, token: str, group_id: str, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        group = ok(server, token, "getQueueGroup", {"_id": group_id})
        if int(group["status"]) >= 100:
            return dict(group)
        assert time.monotonic() < deadline, f"queue group {group_id} did not finish: {group}"
        time.sleep(0.3)


def log_of(server: Server, token: str, group: dict[str, Any]) -> str:
    return str(ok(server, token, "getLog", {"_id": group["data"]["log_id"], "content": 1})["content"])


def test_reseller_and_account_owners_serve_themselves(server: Server, site: Site, tmp_path: Path) -> None:
    root = server.token
    alice, bob, carol = (site.user(short) for short in ("alice", "bob", "carol"))
    reseller = ok(
        server,
        root,
        "manageUser",
        {"action": "create", "name": "res", "role": "reseller", "accounts": [alice, bob]},
    )
    for name in (alice, bob):
        ok(server, root, "manageUser", {"action": "create", "name": name, "role": "account", "account": name})
    tokens = {
        name: ok(server, root, "createToken", {"user": name, "expires": "1d"})["token"]
        for name in ("res", alice, bob)
    }
    destination = ok(
        server,
        root,
        "manageDestination",
        {
            "action": "create",
            "name": "Reseller disk",
            "type": "Local",
            "options": {"path": str(tmp_path / "backups")},
            "owner": reseller["_id"],
        },
    )

    res = tokens["res"]
    assert ok(server, res, "listDestinations")["total"] == 1
    job = ok(
        server,
        res,
        "manageBackupJob",
        {
            "action": "create",
            "name": "My accounts",
            "type": 1,
            "contains": 511,
            "structure": 1,
            "destination": [destination["_id"]],
        },
    )
    assert job["owner_name"] == "res"
    run = ok(server, res, "runBackupJobManually", {"_id": job["_id"]})
    groups = ok(server, res, "listQueueGroups", {"find": {"job_id": job["_id"]}})["groups"]
    done = wait(server, res, groups[0]["_id"])
    text = log_of(server, res, done)
    assert done["status"] == 100 or done["status"] == 101, text
    assert f"left out 1 account(s) the job's owner 'res' does not own: {carol}" in text
    assert run["_id"] == job["_id"]
    with_backups = ok(server, root, "listBackupForAccounts")["accounts"]
    assert sorted(entry["account"] for entry in with_backups) == sorted([alice, bob])

    for name, other in ((alice, bob), (bob, alice)):
        token = tokens[name]
        mine = ok(server, token, "listBackups")["backups"]
        assert [backup["account"] for backup in mine] == [name]
        theirs = ok(server, root, "listBackups", {"account_id": other})["backups"][0]["_id"]
        assert (
            call(server, token, "getBackupItems", {"_id": theirs})["message"] == f"Backup not found: {theirs}"
        )
        refused = call(server, token, "addQueueItems", {"type": 2, "snapshot_id": theirs})
        assert refused["message"] == f"Backup not found: {theirs}"
        items = {
            item["name"]: item["_id"]
            for item in ok(server, token, "getBackupItems", {"_id": mine[0]["_id"]})["items"]
        }

        report = site.account_home("alice" if name == alice else "bob") / "docs" / "2024" / "report.txt"
        content = report.read_text()
        report.unlink()
        database = f"{name}_wp"
        rows = mariadb_checksum(database)
        mariadb(f"DROP DATABASE `{database}`")
        home_item, db_item = items["homedir"], items["databases"]
        for params in (
            {"type": 2, "items": [home_item], "files": {home_item: {"/docs/2024/report.txt": "File"}}},
            {"type": 2, "items": [db_item], "files": {db_item: {f"/mariadb/{database}": "File"}}},
        ):
            queued = ok(server, token, "addQueueItems", params)
            restored = wait(server, token, queued["_id"])
            assert restored["status"] == 100, log_of(server, token, restored)
        assert report.read_text() == content
        assert mariadb_checksum(database) == rows

        before = server.instance.dump()
        for function, params in (
            (
                "manageHook",
                {"action": "create", "name": "h", "position_type": 1, "position": 1, "script": "/bin/true"},
            ),
            (
                "manageBackupJob",
                {
                    "action": "create",
                    "name": "etc",
                    "type": 2,
                    "contains": 511,
                    "structure": 1,
                    "destination": [destination["_id"]],
                    "include_list": ["/etc"],
                },
            ),
            ("manageSettingsPerformance", {"backup_forks": 4}),
            ("getSettingsPerformance", {}),
            ("listBackupJobs", {}),
        ):
            answer = call(server, token, function, params)
            assert (answer["success"], answer["message"]) == (0, f"permission denied: {function}")
        refused = call(
            server, token, "addQueueItems", {"type": 2, "items": [home_item], "options": {"target": "/etc"}}
        )
        assert refused["message"] == "permission denied: addQueueItems"
        after = server.instance.dump()
        for table in ("jobs", "hooks", "settings", "queue_groups"):
            assert after[table] == before[table], table

    # the reseller may not back up /etc either, nor see root's settings
    answer = call(
        server,
        res,
        "manageBackupJob",
        {
            "action": "create",
            "name": "etc",
            "type": 2,
            "contains": 511,
            "structure": 1,
            "destination": [destination["_id"]],
            "include_list": ["/etc"],
        },
    )
    assert answer["message"] == "permission denied: manageBackupJob"
    assert call(server, res, "manageHook", {})["message"] == "permission denied: manageHook"
    log_text = server.log.read_text(errors="replace")
    assert "permission denied: manageHook for user res (reseller)" in log_text
