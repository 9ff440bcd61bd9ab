"""``make fuzz`` writes its own block into docs/RELIABILITY.md and leaves ``make reliability``'s alone."""

from __future__ import annotations

from pathlib import Path

from bench.fuzz_api import BEGIN, END, HEADING, block, write_block
from bench.fuzz_checks import leak_in
from bench.reliability import report

DOCUMENT = {
    "started": "2026-12-05 12:00 UTC",
    "seconds": 250,
    "seed": 1,
    "schemathesis": "4.32.5",
    "machine": "Linux, Python 3.11.7",
    "runs": [
        {
            "label": "root",
            "seconds": 120.5,
            "requests": 9000,
            "statuses": {"200": 8000, "400": 1000},
            "failures": 0,
            "exit_code": 0,
            "failing": [],
            "fuzzer_errors": ["POST /: Runtime Error"],
        },
    ],
    "after": {"integrity_check": "ok", "lists_answer": {"listBackupJobs": True, "listHooks": True}},
}


def test_the_block_is_appended_then_replaced_and_the_reliability_block_survives(tmp_path: Path) -> None:
    doc = tmp_path / "RELIABILITY.md"
    doc.write_text(f"# Reliability\n\ntext\n\n{report.BEGIN}\nkill table\n{report.END}\n")
    write_block(block(DOCUMENT), doc)
    first = doc.read_text()
    assert HEADING in first
    assert "| root | 120.5 s | 9000 | 200: 8000, 400: 1000 | 0 | 0 |" in first
    assert first.index(report.END) < first.index(BEGIN)
    assert "- root, schemathesis' own error (not an answer of the service): POST /: Runtime Error" in first
    again = {**DOCUMENT, "seed": 2}
    write_block(block(again), doc)
    second = doc.read_text()
    assert second.count(BEGIN) == 1
    assert second.count(END) == 1
    assert "seed 2" in second
    assert "seed 1," not in second
    _head, rest = second.split(report.BEGIN, 1)  # what bench/reliability/report.py does
    assert "kill table" in rest.split(report.END, 1)[0]
    assert BEGIN in rest.split(report.END, 1)[1]


def test_leaks_are_recognised() -> None:
    assert leak_in('Traceback (most recent call last):\n  File "x.py"', None) == "Traceback"
    assert leak_in("listBackupJobs: internal error: TypeError: unhashable", None) == "TypeError"
    assert leak_in("in /srv/snapkeep/api/dispatch.py", None) == "snapkeep/api/dispatch.py"
    assert leak_in("path /tmp/home/catalog.db", "/tmp/home") == "the server's home path"
    assert leak_in("manageBackupJob: internal error (logged as 1a2b3c4d)", "/tmp/home") is None
    assert leak_in("name: unknown field; did you mean names?", None) is None
