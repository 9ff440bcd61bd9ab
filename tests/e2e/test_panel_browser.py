"""The web panel in a real browser (issue 15): an administrator signs in, creates a destination and a
Directories job, runs it and watches it finish, opens the backup, restores one file into another
folder, and the file is there on disk. Every page visited is screenshotted (tests/artifacts/) and
checked with axe-core: no serious or critical violation. The server is the real ``snapkeep serve``."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import Instance, Server
from tests.e2e.panel_browser import STEP_MS, Pages, browser, group_id_of, wait_for_status

__all__ = ["browser"]

ROOT_PASSWORD = "panel root password"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    """One SQLite data directory (the panel is the same over either catalog)."""
    return Instance("sqlite", tmp_path_factory.mktemp("e2e-panel") / "home", None)


def test_administrator_backs_up_and_restores_a_file(
    server: Server, browser: Any, tmp_path: Path, trusted_dir: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text(ROOT_PASSWORD + "\n")
    done = server.instance.cli("user", "passwd", "root", "--password-file", str(secret))
    assert done.returncode == 0, done.stdout + done.stderr
    source = tmp_path / "site"
    (source / "docs").mkdir(parents=True)
    (source / "docs" / "readme.txt").write_text("hello from the panel\n")
    (source / "index.html").write_text("<p>home</p>\n")
    store = tmp_path / "store"
    restored = tmp_path / "restored"

    pages = Pages("admin")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(STEP_MS)
    page.goto(server.base_url + "/")
    page.wait_for_url("**/ui/#/signin")
    page.get_by_role("heading", name="Sign in").wait_for()
    pages.check(page, "signin")
    page.get_by_label("User name").fill("root")
    page.get_by_label("Password", exact=True).fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("wrong user name, password or token").wait_for()
    # the keyboard alone: the page has the focus, Tab reaches the first field, type, Enter
    page.reload()
    page.get_by_role("heading", name="Sign in").wait_for()
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "name"
    page.keyboard.type("root")
    page.keyboard.press("Tab")
    page.keyboard.type(ROOT_PASSWORD)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Dashboard").wait_for()
    assert page.evaluate("document.activeElement.id") == "main", "focus moves to the new page"
    pages.check(page, "dashboard")

    # a destination, with the API's own message beside a bad field
    page.get_by_role("link", name="Destinations").click()
    page.get_by_role("heading", name="Destinations").wait_for()
    page.get_by_role("link", name="New Destination").click()
    page.get_by_role("heading", name="New Destination").wait_for()
    page.get_by_label("name", exact=True).fill("Panel disk")
    page.get_by_label("type", exact=True).select_option("Local")
    page.get_by_label("path (required)").fill("relative/path")
    page.get_by_role("button", name="Create").click()
    error = page.locator("#option-path-error")
    error.get_by_text("options[path]: must be an absolute path").wait_for()
    assert page.get_by_label("path (required)").get_attribute("aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "option-path"
    pages.check(page, "destination-error")
    page.get_by_label("path (required)").fill(str(store))
    page.get_by_role("button", name="Create").click()
    page.get_by_role("heading", name="Destination Panel disk").wait_for()
    page.get_by_role("button", name="Validate destination").click()
    page.locator("#form-message").get_by_text("Validated", exact=False).wait_for()
    pages.check(page, "destination")

    # a Directories job on that destination
    page.get_by_role("link", name="Jobs").click()
    page.get_by_role("link", name="New Backup Job").click()
    page.get_by_label("name", exact=True).fill("Panel site")
    page.get_by_label("type", exact=True).fill("2")
    page.get_by_label("Panel disk").check()
    page.get_by_label("contains", exact=True).fill("1")
    page.get_by_label("structure", exact=True).fill("1")
    page.get_by_label("include list", exact=True).fill(str(source))
    pages.check(page, "job-form")
    page.get_by_role("button", name="Create").click()
    page.get_by_role("heading", name="Backup Job Panel site").wait_for()
    page.get_by_role("link", name="Jobs").click()
    page.get_by_role("heading", name="Jobs").wait_for()
    pages.check(page, "jobs")
    # duplicate (the copy starts disabled), enable it, and delete it after a confirmation naming it
    page.get_by_role("button", name="Duplicate Panel site").click()
    copy_row = page.get_by_role("row").filter(has_text="Panel site - ")
    copy_row.wait_for()
    copy_name = copy_row.get_by_role("cell").first.inner_text()
    assert "disabled" in copy_row.inner_text()
    page.get_by_role("button", name=f"Enable {copy_name}").click()
    page.get_by_role("button", name=f"Disable {copy_name}").wait_for()
    asked: list[str] = []

    def confirm(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", confirm)
    page.get_by_role("button", name=f"Delete {copy_name}").click()
    page.locator("#list-status").get_by_text("Backup Job Deleted Successfully").wait_for()
    assert asked == [f'Delete Backup Job "{copy_name}"? This cannot be undone.']
    # the list is drawn again after the message: wait for the row to go (a bare count raced it in CI)
    page.get_by_role("row").filter(has_text=copy_name).wait_for(state="detached")
    assert page.get_by_role("row").filter(has_text=copy_name).count() == 0
    page.get_by_role("button", name="Run Panel site now").click()
    page.locator("#list-status").get_by_text("queued to run", exact=False).wait_for()

    # the run, watched until it finishes
    page.get_by_role("link", name="Runs").click()
    page.get_by_role("heading", name="Runs").wait_for()
    pages.check(page, "runs")
    page.get_by_role("link", name="Backup: Panel site").first.click()
    wait_for_status(page, "Completed")
    page.locator("pre.log").get_by_text("finished: status 100", exact=False).wait_for()
    pages.check(page, "run")

    # a run that fails (its folder is missing) is rerun from its page
    broken = server.call(
        "manageBackupJob",
        {
            "action": "create",
            "name": "Broken site",
            "type": 2,
            "contains": 1,
            "structure": 1,
            "destination": [server.call("listDestinations")["data"]["destinations"][0]["_id"]],
            "include_list": [str(tmp_path / "no-such-site")],
        },
        how="json",
    )["data"]
    server.call("runBackupJobManually", {"_id": broken["_id"]})
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs").click()
    page.get_by_role("link", name="Backup: Broken site").first.click()
    wait_for_status(page, "Failed")
    failed_group = group_id_of(page)
    page.locator("pre.log").get_by_text("no-such-site", exact=False).first.wait_for()
    page.get_by_role("button", name="Rerun failed").click()
    page.wait_for_url(re.compile(r"#/run/(?!" + failed_group + r")[0-9a-f]{24}$"))
    wait_for_status(page, "Failed")

    # a run held by a slow pre hook is stopped from its page: the hook is killed, the run Aborted
    script = trusted_dir / "slow-pre-hook.sh"
    marker = tmp_path / "slow-hook-started"
    script.write_text(f"#!/bin/sh\necho $$ > {marker}\nsleep 300\n")
    script.chmod(0o755)
    slow = server.call(
        "duplicateBackupJob",
        {"_id": server.call("listBackupJobs", {"filter": "Panel site"})["data"]["jobs"][0]["_id"]},
    )["data"]
    server.call(
        "manageBackupJob", {"action": "modify", "_id": slow["_id"], "name": "Slow site", "disabled": 0}
    )
    assert (
        server.call(
            "manageHook",
            {
                "action": "create",
                "name": "Slow pre hook",
                "script": str(script),
                "position_type": 1,
                "position": 1,
                "data_list": [slow["_id"]],
            },
            how="json",
        )["success"]
        == 1
    )
    server.call("runBackupJobManually", {"_id": slow["_id"]})
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs").click()
    page.get_by_role("link", name="Backup: Slow site").first.click()
    wait_for_status(page, "Processing")
    deadline = time.monotonic() + 60
    while not marker.exists():  # the hook's line is logged when it ends: wait for its process
        assert time.monotonic() < deadline, "the pre hook never started"
        time.sleep(0.1)
    page.get_by_role("button", name="Stop").click()
    wait_for_status(page, "Aborted", timeout_ms=60_000)
    page.locator("pre.log").get_by_text("the run was asked to stop", exact=False).first.wait_for()
    pages.check(page, "run-stopped")

    # the backup, and one file restored into another folder
    page.get_by_role("link", name="Backups").click()
    page.get_by_role("heading", name="Backups").wait_for()
    pages.check(page, "backups")
    page.get_by_role("row").filter(has_text="Panel site").get_by_role("link").first.click()
    page.get_by_role("heading", name="Restore from backup").wait_for()
    pages.check(page, "backup")
    # browse lazily: the top folder, one folder down, then a search by name
    page.get_by_role("button", name=re.compile("^Browse")).first.click()
    page.get_by_role("heading", name=re.compile("^Files in")).wait_for()
    top = source.parts[1]
    page.get_by_role("button", name=f"{top}/", exact=True).click()
    page.get_by_role("navigation", name="Folder").get_by_role("button", name=top, exact=True).wait_for()
    pages.check(page, "browse")
    page.get_by_label("Find a file name below this folder").fill("readme")
    page.get_by_role("button", name="Find", exact=True).click()
    wanted = str(source / "docs" / "readme.txt")
    page.get_by_label(f"Choose {wanted}", exact=True).check()
    assert page.get_by_label("Only these paths").input_value() == wanted
    assert page.locator("input[name=items]").first.is_checked()
    page.get_by_label("Restore into folder").fill(str(restored))
    page.get_by_label("When a file exists").select_option("never")
    page.get_by_role("button", name="Restore", exact=True).click()
    page.get_by_text("Restore:", exact=False).first.wait_for()
    group = group_id_of(page)
    wait_for_status(page, "Completed")
    pages.check(page, "restore-run")
    found = restored / str(source / "docs" / "readme.txt").lstrip("/")
    assert found.read_text() == "hello from the panel\n", sorted(str(p) for p in restored.rglob("*"))
    assert not (restored / str(source / "index.html").lstrip("/")).exists(), "only the chosen file"
    answer = server.call("getQueueGroup", {"_id": group})
    assert answer["data"]["status"] == 100

    # a download of the same backup, fetched with the session cookie and the CSRF secret in the link
    page.get_by_role("link", name="Backups").click()
    page.get_by_role("row").filter(has_text="Panel site").get_by_role("link").first.click()
    page.get_by_role("heading", name="Restore from backup").wait_for()
    page.get_by_role("button", name="Download", exact=True).click()
    page.get_by_text("Download:", exact=False).first.wait_for()
    wait_for_status(page, "Completed")
    link = page.get_by_role("link", name="Download the file")
    href = link.get_attribute("href")
    assert href is not None
    assert "csrf=" in href
    fetched = page.evaluate(
        "(href) => fetch(href).then(async r => [r.status, (await r.arrayBuffer()).byteLength])", href
    )
    assert fetched[0] == 200
    assert fetched[1] > 0
    bare = page.evaluate("(href) => fetch(href.split('?')[0]).then(r => r.status)", href)
    assert bare == 403, "the cookie alone does not download"

    # the other object pages, each list and its form, also pass axe
    for link, heading in (("Schedules", "Schedule"), ("Hooks", "Hook"), ("Filters", "Account Filter")):
        page.get_by_role("navigation", name="Main").get_by_role("link", name=link).click()
        page.get_by_role("heading", name=link, exact=True).wait_for()
        pages.check(page, link.lower())
        page.get_by_role("link", name=f"New {heading}").click()
        page.get_by_role("heading", name=f"New {heading}").wait_for()
        pages.check(page, f"{link.lower()}-form")

    # phone width: the dashboard still reads; then sign out ends the session
    page.set_viewport_size({"width": 390, "height": 800})
    page.get_by_role("link", name="Dashboard").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    pages.check(page, "dashboard-phone")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    status = page.evaluate("fetch('/ui/session').then(r => r.status)")
    assert status == 401
    context.close()
    assert len(pages.checked) == 20, pages.checked
