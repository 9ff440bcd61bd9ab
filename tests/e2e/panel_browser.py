"""Shared pieces of the web panel's browser tests: Debian's Chromium driven by Playwright (never a
downloaded browser), screenshots under ``tests/artifacts/`` and an axe-core check of every page."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import require_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
#: how long one step may wait for the page (a run or a restore waits longer, by polling)
STEP_MS = 15_000


def browser_fixture() -> Iterator[Any]:
    """A headless Chromium (fails under CI=true when /usr/bin/chromium is missing)."""
    require_server(CHROMIUM.exists(), f"Chromium at {CHROMIUM} (apt-get install chromium)")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Pages:
    """Screenshots and accessibility checks of the pages one test visits."""

    def __init__(self, prefix: str) -> None:
        from axe_playwright_python.sync_playwright import Axe

        self.prefix = prefix
        self.axe = Axe()
        self.checked: list[str] = []
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def check(self, page: Any, name: str) -> None:
        """Save a screenshot of ``page`` as PREFIX-NAME.png and fail on a serious or critical axe
        violation."""
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(ARTIFACTS / f"{self.prefix}-{name}.png"), full_page=True)
        results = self.axe.run(page)
        bad = [
            f"{violation['id']} ({violation['impact']}): {violation['help']} at "
            + ", ".join(str(node["target"]) for node in violation["nodes"][:3])
            for violation in results.response["violations"]
            if violation.get("impact") in ("serious", "critical")
        ]
        assert not bad, f"{name}: accessibility violations:\n" + "\n".join(bad)
        self.checked.append(name)


def wait_for_status(page: Any, text: str, timeout_ms: int = 120_000) -> None:
    """Wait until the run page's status reads ``text`` (the page polls the API itself)."""
    page.locator("#run-state").get_by_text(text, exact=True).wait_for(timeout=timeout_ms)


def group_id_of(page: Any) -> str:
    match = re.search(r"#/run/([0-9a-f]{24})", page.url)
    assert match, page.url
    return match.group(1)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from browser_fixture()
