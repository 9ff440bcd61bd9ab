"""The web panel for an account owner, in a real browser (issue 15): root backs up three hosting
accounts (the inventory account provider, real MariaDB and PostgreSQL databases, as
tests/e2e/test_self_service_e2e.py); the owner of one account signs in with the password root gave
it, sees only its own account, restores a dropped MariaDB database, and gets "not found" for another
account's backup reached by editing the URL. Every page is screenshotted and checked with axe-core."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import require_server
from tests.e2e.conftest import Instance, Server
from tests.e2e.panel_browser import STEP_MS, Pages, browser, wait_for_status
from tests.integration.test_account_runs import Site, mariadb, mariadb_checksum, servers_answer

__all__ = ["browser"]

PASSWORD = "owner password 1"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    return Instance("sqlite", tmp_path_factory.mktemp("e2e-panel-accounts") / "home", None)


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
    answer = server.call(function, params, how="json")
    assert answer["success"] == 1, (function, answer["message"])
    return answer["data"]


def finished(server: Server, group_id: str, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        group = ok(server, "getQueueGroup", {"_id": group_id})
        if int(group["status"]) >= 100:
            return dict(group)
        assert time.monotonic() < deadline, f"queue group {group_id} did not finish: {group}"
        time.sleep(0.3)


def test_account_owner_restores_its_database_and_sees_nothing_else(
    server: Server, site: Site, browser: Any, tmp_path: Path
) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    for name in (alice, bob):
        made = ok(
            server,
            "manageUser",
            {"action": "create", "name": name, "role": "account", "account": name, "password": PASSWORD},
        )
        assert made["password"] == "SK|HIDDEN|********"
    destination = ok(
        server,
        "manageDestination",
        {
            "action": "create",
            "name": "Accounts disk",
            "type": "Local",
            "options": {"path": str(tmp_path / "b")},
        },
    )
    job = ok(
        server,
        "manageBackupJob",
        {
            "action": "create",
            "name": "All accounts",
            "type": 1,
            "contains": 511,
            "structure": 1,
            "destination": [destination["_id"]],
        },
    )
    ok(server, "runBackupJobManually", {"_id": job["_id"]})
    group = ok(server, "listQueueGroups", {"find": {"job_id": job["_id"]}})["groups"][0]
    assert finished(server, group["_id"])["status"] in (100, 101)
    theirs = ok(server, "listBackups", {"account_id": bob})["backups"][0]["_id"]

    database = f"{alice}_wp"
    rows = mariadb_checksum(database)
    mariadb(f"DROP DATABASE `{database}`")

    pages = Pages("owner")
    context = browser.new_context(viewport={"width": 414, "height": 860})  # a phone
    page = context.new_page()
    page.set_default_timeout(STEP_MS)
    page.goto(server.base_url + "/ui/")
    page.get_by_label("User name").fill(alice)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    pages.check(page, "dashboard")
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link").all_inner_texts() == ["Dashboard", "Runs", "Backups"], "no admin pages"

    nav.get_by_role("link", name="Backups").click()
    page.get_by_role("heading", name="Backups").wait_for()
    pages.check(page, "backups")
    listed = page.locator("tbody tr")
    assert listed.count() >= 1
    assert all(alice in text for text in listed.all_inner_texts()), listed.all_inner_texts()
    assert bob not in page.content()

    listed.first.get_by_role("link").click()
    page.get_by_role("heading", name="Restore from backup").wait_for()
    pages.check(page, "backup")
    assert page.get_by_label("config", exact=True).count() == 0, "config is root's and resellers' only"
    page.get_by_role("button", name="Browse homedir").click()
    page.get_by_role("heading", name="Files in homedir").wait_for()
    page.get_by_role("button", name="docs/", exact=True).click()
    page.get_by_label("Choose /docs/notes.md", exact=True).wait_for()
    pages.check(page, "browse-homedir")
    page.get_by_role("button", name="Browse databases").click()
    page.get_by_role("heading", name="Files in databases").wait_for()
    page.get_by_role("button", name="mariadb/", exact=True).click()
    page.get_by_label(f"Choose /mariadb/{database}.sql", exact=True).wait_for()
    page.get_by_label("Only these paths").fill("")
    page.get_by_label("databases", exact=True).check()
    page.get_by_label("Only these paths").fill(f"/mariadb/{database}")
    page.get_by_role("button", name="Restore", exact=True).click()
    page.get_by_text("Restore:", exact=False).first.wait_for()
    wait_for_status(page, "Completed")
    pages.check(page, "restore-run")
    assert mariadb_checksum(database) == rows
    assert page.get_by_role("button", name="Stop").count() == 0, "an account owner cannot stop runs"

    # another account's backup, reached by editing the URL: not found, nothing shown
    page.goto(f"{server.base_url}/ui/#/backup/{theirs}")
    page.get_by_role("alert").get_by_text(f"Backup not found: {theirs}").wait_for()
    assert bob not in page.content()
    pages.check(page, "other-backup")
    page.goto(f"{server.base_url}/ui/#/edit/jobs/{job['_id']}")
    page.get_by_role("alert").get_by_text("permission denied").wait_for()
    context.close()

    # a reseller owning alice's account: its pages, no hooks, no destination management without
    # the grant, and only its accounts' backups
    ok(
        server,
        "manageUser",
        {"action": "create", "name": "res", "role": "reseller", "accounts": [alice], "password": PASSWORD},
    )
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(STEP_MS)
    page.goto(server.base_url + "/ui/")
    page.get_by_label("User name").fill("res")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    pages.check(page, "reseller-dashboard")
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link").all_inner_texts() == [
        "Dashboard",
        "Jobs",
        "Destinations",
        "Schedules",
        "Filters",
        "Runs",
        "Backups",
    ]
    nav.get_by_role("link", name="Destinations").click()
    page.get_by_role("heading", name="Destinations").wait_for()
    assert page.get_by_role("link", name="New Destination").count() == 0
    nav.get_by_role("link", name="Backups").click()
    page.get_by_role("heading", name="Backups").wait_for()
    pages.check(page, "reseller-backups")
    rows = page.locator("tbody tr").all_inner_texts()
    assert rows
    assert all(alice in text for text in rows), rows
    context.close()
