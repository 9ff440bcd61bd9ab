"""``make bench-nodes``'s own arithmetic: statement kinds, per-run costs, the 500-node estimate and its
block of docs/SCALE.md (the measured part runs only with ``make bench-nodes``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import nodes as bench_nodes

RESULTS = {
    "when": "2026-12-05T15:00:00+00:00",
    "machine": {"cpus": 2, "load_average": [4.0, 3.0, 2.0]},
    "nodes": 10,
    "jobs_per_node": 50,
    "forks": 2,
    "pool": "2+2",
    "load_seconds": 120.0,
    "groups": 1000,
    "finished": 1000,
    "statuses": {"Completed": 1000},
    "runs_per_minute": 400.0,
    "run_seconds_p50": 0.3,
    "claim_ms_p50": 5.0,
    "claim_ms_p99": 50.0,
    "claims": 1000,
    "lost": [],
    "doubled": [],
    "wrong_node": [],
    "node_queries_per_run": 50.0,
    "driver_queries_per_run": 5.0,
    "idle_queries_per_node_second": 2.0,
    "tables": {
        "jobs": {"rows": 500, "table_bytes": 10**6, "index_bytes": 10**5},
        "queue_groups": {"rows": 1000, "table_bytes": 2 * 10**6, "index_bytes": 10**6},
        "log_items": {"rows": 5000, "table_bytes": 3 * 10**6, "index_bytes": 10**6},
    },
}


def test_statements_are_counted_by_verb_and_table() -> None:
    assert (
        bench_nodes.statement_kind("SELECT queue_groups.id FROM queue_groups WHERE x")
        == "SELECT queue_groups"
    )
    assert bench_nodes.statement_kind("UPDATE nodes SET heartbeat=%(h)s") == "UPDATE nodes"
    assert bench_nodes.statement_kind("INSERT INTO log_items (id) VALUES (1)") == "INSERT log_items"


def test_the_estimate_scales_the_measured_per_run_costs() -> None:
    costs = bench_nodes.per_run(RESULTS)
    assert set(costs) == {"queue_groups", "log_items"}  # jobs and nodes do not grow with runs
    assert costs["log_items"]["rows"] == pytest.approx(5.0)
    daily = bench_nodes.estimate(RESULTS, 500, 50, 1)
    assert daily["runs_per_day"] == 25_000
    assert daily["rows_per_day"] == pytest.approx(6.0 * 25_000)
    assert daily["gib_per_day"] == pytest.approx(7_000 * 25_000 / 1024**3)
    assert daily["index_gib_30_days"] == pytest.approx(2_000 * 25_000 * 30 / 1024**3)
    assert daily["queries_per_second"] == pytest.approx(25_000 / 86400 * 55 + 500 * 2.0)


def test_the_report_replaces_only_its_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scale = tmp_path / "SCALE.md"
    scale.write_text(f"# Scale\n\nbefore\n\n{bench_nodes.BEGIN}\nold\n{bench_nodes.END}\n\nafter\n")
    monkeypatch.setattr(bench_nodes, "SCALE", scale)
    bench_nodes.write_report(RESULTS)
    text = scale.read_text()
    assert text.startswith("# Scale\n\nbefore\n\n")
    assert text.endswith("\n\nafter\n")
    assert "old" not in text
    assert "| runs per minute (all nodes) | 400.0 |" in text
    assert "| claim latency p50 / p99 | 5.0 ms / 50.0 ms (1000 claims) |" in text
    assert "| 500 nodes x 50 jobs, daily | 25,000 | 150,000 |" in text
