"""The short version of ``make reliability`` (bench/reliability): a few kill -9 trials of each
operation, every crafted and damaged repository case at a smaller scale, and the full-disk cases.

The long series (52 kill trials, a 10 GiB zstd bomb, a 300,000-entry tree, a depth-24 folder DAG)
runs under ``make reliability`` and writes docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from bench.reliability import run as reliability  # noqa: E402
from bench.reliability.common import Outcome  # noqa: E402
from bench.reliability.kills import SERIES  # noqa: E402

pytestmark = pytest.mark.slow


def failures(outcomes: list[Outcome]) -> list[str]:
    return [f"{outcome.series}: {outcome.name}: {outcome.detail}" for outcome in outcomes if not outcome.ok]


@pytest.mark.parametrize("series", sorted(SERIES))
def test_kill_series_quick(series: str, tmp_path: Path) -> None:
    outcomes = SERIES[series](tmp_path, random.Random(7), reliability.QUICK_TRIALS[series])
    trials = [outcome for outcome in outcomes if outcome.name.startswith("trial")]
    assert len(trials) == reliability.QUICK_TRIALS[series]
    assert not failures(outcomes)


def test_crafted_and_full_disks_quick_with_report(tmp_path: Path) -> None:
    report = tmp_path / "RELIABILITY.md"
    report.write_text("# Reliability\n\nHand-written part.\n")
    results = tmp_path / "results.json"
    code = reliability.main(
        [
            "--series",
            "crafted,diskfull",
            "--quick",
            "--work",
            str(tmp_path / "work"),
            "--results",
            str(results),
            "--report",
            str(report),
        ]
    )
    document = json.loads(results.read_text())
    failed = [f"{o['series']}: {o['name']}: {o['detail']}" for o in document["outcomes"] if not o["ok"]]
    assert not failed, failed
    assert code == 0
    names = {outcome["name"] for outcome in document["outcomes"]}
    assert {"every index file deleted", "tree entry named a/../../b", "archive truncated to half"} <= names
    assert any(name.startswith("zstd frame expanding") for name in names)
    text = report.read_text()
    assert text.startswith("# Reliability\n\nHand-written part.")
    assert "### Crafted and damaged repositories" in text
    assert "| plain | pack deleted (largest) |" in text
