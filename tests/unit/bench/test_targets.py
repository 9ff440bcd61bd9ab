"""``bench/targets.py``: issue 12's table is worked out from the run's figures, a missing figure
fails its row, and the memory row is the worst ratio over every step, local and remote."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[3]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from bench import targets  # noqa: E402
from bench.run import render_remote  # noqa: E402


def _step(wall: float, rss_mib: float) -> dict[str, Any]:
    return {"status": "ok", "wall_s": wall, "cpu_s": wall, "max_rss_kib": rss_mib * 1024}


def _run() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    summary = {
        "snapkeep": {
            "steps": {
                "init": _step(0.2, 56),
                "first": _step(12.0, 140),
                "nochange": _step(1.6, 55),
                "churn": _step(2.6, 107),
                "restore": _step(6.0, 138),
            },
            "size": {"after_first": 98.0, "after_churn": 99.0},
        },
        "restic": {
            "steps": {
                "init": _step(2.0, 86),
                "first": _step(17.0, 151),
                "nochange": _step(3.3, 74),
                "churn": _step(4.5, 115),
                "restore": _step(12.0, 160),
            },
            "size": {"after_first": 100.0, "after_churn": 101.0},
        },
    }
    remote = {
        target: {
            f"snapkeep-{target}": {"first": _step(13.0, 150), "restore": _step(11.0, 120)},
            f"restic-{target}": {"first": _step(21.0, 164), "restore": _step(15.0, 210)},
        }
        for target in ("sftp", "s3")
    }
    meta = {"warm": [{"bytes": 1, "seconds": 2.0}, {"bytes": 1, "seconds": 1.5}]}
    return summary, remote, meta


def _by_label(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["label"]: row for row in rows}


def test_every_row_is_computed_with_its_must_and_target() -> None:
    rows, text = targets.section(*_run())
    assert [row["label"] for row in rows] == list(targets.ROWS)
    table = _by_label(rows)
    assert round(table["restore from SFTP"]["ratio"], 2) == 0.73
    assert table["restore from SFTP"]["must_result"] == "PASS"
    assert table["restore from SFTP"]["target_result"] == "FAIL"
    assert round(table["full local restore"]["ratio"], 2) == 0.5
    assert table["full local restore"]["target_result"] == "PASS"
    assert table["first local backup / reading the set"]["ratio"] == 8.0  # the last warm read
    assert table["first local backup / reading the set"]["must"] is None  # a target only
    memory = table["peak memory, every step (worst ratio)"]
    assert memory["note"] == "worst of 9 steps: local churn backup (mutate --day 1)"
    assert round(memory["ratio"], 2) == 0.93
    assert "**Must reach, all rows**: PASS (every row holds)" in text


def test_a_remote_step_over_restics_memory_fails_the_memory_row() -> None:
    summary, remote, meta = _run()
    remote["sftp"]["snapkeep-sftp"]["first"]["max_rss_kib"] = 201 * 1024
    rows, text = targets.section(summary, remote, meta)
    memory = _by_label(rows)["peak memory, every step (worst ratio)"]
    assert memory["must_result"] == "FAIL"
    assert memory["note"] == "worst of 9 steps: backup to SFTP"
    assert "not met: peak memory, every step (worst ratio)" in text


def test_a_missing_or_failed_figure_fails_its_row() -> None:
    summary, remote, meta = _run()
    remote["s3"]["snapkeep-s3"]["restore"] = {"status": "fail", "error": "boom"}
    del summary["snapkeep"]["steps"]["churn"]
    table = _by_label(targets.section(summary, remote, meta)[0])
    assert table["restore from S3"]["must_result"] == "FAIL"
    assert table["1 % churn backup"]["must_result"] == "FAIL"
    assert table["1 % churn backup"]["ratio"] is None


def test_without_both_tools_there_is_no_section() -> None:
    summary, remote, meta = _run()
    del summary["restic"]
    assert targets.section(summary, remote, meta) == ([], "")


def test_the_remote_table_shows_each_tools_memory() -> None:
    _, remote, _ = _run()
    text = render_remote(remote, {"data": {"bytes": 2_000_000_000}})
    assert "| sftp | backup | 13.00 s | 21.00 s | 153.8 | 95.2 | 0.62 | 150 MiB | 164 MiB | 0.91 |" in text
