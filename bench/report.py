"""Turn measurements into the report: tables, snapkeep/restic ratios against the issue's targets, JSON.

The summary handed to these functions is plain data (JSON-ready)::

    {tool: {"steps": {step: {"status": "ok" | "fail" | "skipped", "wall_s", "cpu_s", "max_rss_kib",
                             "error", "runs"}},
            "size": {"after_first": bytes | None, "after_churn": bytes | None}}}

``bench/REPORT.md`` is rewritten between two markers only; everything after the end marker (the
hand-written "Analysis") is kept.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STEPS = ("init", "first", "nochange", "churn", "restore")
STEP_LABELS = {
    "init": "init",
    "first": "first backup",
    "nochange": "no-change backup",
    "churn": "churn backup (mutate --day 1)",
    "restore": "full restore (latest)",
}
START_MARKER = "<!-- bench:generated:start (written by bench/run.py: edits between the markers are lost) -->"
END_MARKER = "<!-- bench:generated:end -->"
DEFAULT_ANALYSIS = """
## Analysis

(Hand-written. `bench/run.py` rewrites only the part between the markers above and keeps this section.)
"""

Summary = dict[str, Any]


@dataclass(frozen=True)
class RatioRow:
    """One snapkeep/restic comparison: how to read the figure, the issue's target and the minimum to pass."""

    label: str
    value: Callable[[Summary], float | None]
    target: float | None
    minimum: float | None
    unit: str
    steps: tuple[str, ...]


def step_value(entry: dict[str, Any] | None, key: str) -> float | None:
    """``key`` of one measured step, or None when the step is missing, failed or lacks it."""
    if not entry or entry.get("status") != "ok" or entry.get(key) is None:
        return None
    return float(entry[key])


def _step(tool: Summary, step: str, key: str) -> float | None:
    return step_value(tool.get("steps", {}).get(step), key)


def _sum(*values: float | None) -> float | None:
    return None if any(value is None for value in values) else sum(v for v in values if v is not None)


def _first(key: str) -> Callable[[Summary], float | None]:
    return lambda tool: _sum(_step(tool, "init", key), _step(tool, "first", key))


def _single(step: str, key: str) -> Callable[[Summary], float | None]:
    return lambda tool: _step(tool, step, key)


def _size(key: str) -> Callable[[Summary], float | None]:
    def read(tool: Summary) -> float | None:
        value = tool.get("size", {}).get(key)
        return float(value) if value is not None else None

    return read


def _peak_rss(tool: Summary) -> float | None:
    values = [_step(tool, step, "max_rss_kib") for step in STEPS]
    measured = [value for value in values if value is not None]
    if not measured or _step(tool, "first", "max_rss_kib") is None:
        return None
    return max(measured)


RATIO_ROWS: tuple[RatioRow, ...] = (
    RatioRow("first backup, wall", _single("first", "wall_s"), 0.7, 1.0, "s", ("first",)),
    RatioRow("no-change backup, wall", _single("nochange", "wall_s"), 0.5, 1.0, "s", ("nochange",)),
    RatioRow("1 % churn backup, wall", _single("churn", "wall_s"), 0.7, 1.0, "s", ("churn",)),
    RatioRow("full restore, wall", _single("restore", "wall_s"), 0.5, 1.0, "s", ("restore",)),
    RatioRow("repository size after first backup", _size("after_first"), 1.0, 1.05, "bytes", ("first",)),
    RatioRow("repository size after churn backup", _size("after_churn"), 1.0, 1.05, "bytes", ("churn",)),
    RatioRow("peak RSS, max over all steps", _peak_rss, 1.0, None, "kib", STEPS),
    RatioRow("init + first backup, wall", _first("wall_s"), None, None, "s", ("init", "first")),
    RatioRow("first backup, CPU", _single("first", "cpu_s"), None, None, "s", ("first",)),
    RatioRow("no-change backup, CPU", _single("nochange", "cpu_s"), None, None, "s", ("nochange",)),
    RatioRow("1 % churn backup, CPU", _single("churn", "cpu_s"), None, None, "s", ("churn",)),
    RatioRow("full restore, CPU", _single("restore", "cpu_s"), None, None, "s", ("restore",)),
)


def format_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def format_bytes(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1024**3:
        return f"{value / 1024**3:.2f} GiB"
    return f"{value / 1024**2:.1f} MiB"


def format_kib(value: float | None) -> str:
    return "—" if value is None else f"{value / 1024:.0f} MiB"


def format_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


FORMATTERS: dict[str, Callable[[float | None], str]] = {
    "s": format_seconds,
    "bytes": format_bytes,
    "kib": format_kib,
}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is zero."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def verdict(value: float | None, limit: float | None, skipped: bool) -> str:
    """PASS / FAIL of a ratio against a limit; '—' when there is no limit, SKIP when the step was skipped."""
    if limit is None:
        return "—"
    if skipped:
        return "SKIP"
    if value is None:
        return "FAIL"
    return "PASS" if value <= limit + 1e-9 else "FAIL"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """A GitHub markdown table with padded columns; ``right[i]`` right-aligns column i."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    widths = [max(width, 3) for width in widths]

    def line(cells: Sequence[str]) -> str:
        padded = [
            str(cell).rjust(width) if align else str(cell).ljust(width)
            for cell, width, align in zip(cells, widths, right, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [
        "-" * (width - 1) + ":" if align else "-" * width for width, align in zip(widths, right, strict=True)
    ]
    return "\n".join([line(headers), line(rule), *(line(row) for row in rows)])


def all_skipped(summary: dict[str, Summary], steps: Sequence[str]) -> bool:
    """True when every tool left one of ``steps`` out on purpose (``not-run``: churn on foreign data)."""
    for tool in summary.values():
        if not any(tool.get("steps", {}).get(step, {}).get("status") == "not-run" for step in steps):
            return False
    return bool(summary)


def ratio_rows(
    summary: dict[str, Summary], subject: str = "snapkeep", baseline: str = "restic"
) -> list[dict[str, Any]]:
    """The comparison rows as data: label, both figures, ratio, target/minimum and their verdicts."""
    rows = []
    for row in RATIO_ROWS:
        mine = row.value(summary.get(subject, {}))
        theirs = row.value(summary.get(baseline, {}))
        value = ratio(mine, theirs)
        skipped = all_skipped(summary, row.steps)
        rows.append(
            {
                "label": row.label,
                "unit": row.unit,
                subject: mine,
                baseline: theirs,
                "ratio": value,
                "target": row.target,
                "minimum": row.minimum,
                "target_result": verdict(value, row.target, skipped),
                "minimum_result": verdict(value, row.minimum, skipped),
            }
        )
    return rows


def ratio_table(rows: list[dict[str, Any]], subject: str = "snapkeep", baseline: str = "restic") -> str:
    headers = ["figure", subject, baseline, "ratio", "target", "target met", "minimum", "minimum met"]
    cells = []
    for row in rows:
        formatter = FORMATTERS[row["unit"]]
        cells.append(
            [
                row["label"],
                formatter(row[subject]),
                formatter(row[baseline]),
                format_ratio(row["ratio"]),
                "—" if row["target"] is None else f"≤ {row['target']:.2f}",
                row["target_result"],
                "—" if row["minimum"] is None else f"≤ {row['minimum']:.2f}",
                row["minimum_result"],
            ]
        )
    return markdown_table(headers, cells, [False, True, True, True, True, False, True, False])


def verdict_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Two sentences: is the issue's minimum met, and how many full targets are."""
    with_minimum = [row for row in rows if row["minimum"] is not None and row["minimum_result"] != "SKIP"]
    with_target = [row for row in rows if row["target"] is not None and row["target_result"] != "SKIP"]
    minimum_ok = all(row["minimum_result"] == "PASS" for row in with_minimum)
    met = sum(row["target_result"] == "PASS" for row in with_target)
    failed = [row["label"] for row in with_minimum if row["minimum_result"] != "PASS"]
    result = "PASS" if minimum_ok else "FAIL"
    first = f"**Minimum to resolve the issue** (every timing ≤ 1.0, size ≤ 1.05): {result}"
    if failed:
        first += f" (not met: {', '.join(failed)})"
    return [first, f"**Full targets met**: {met} of {len(with_target)}"]


def steps_table(summary: dict[str, Summary], data_bytes: int) -> str:
    """Every measured command: wall, CPU, peak RSS, throughput over the data set, status or error."""
    headers = ["step", "tool", "wall", "CPU (user+sys)", "CPU/wall", "peak RSS", "MB/s", "status"]
    cells = []
    for step in STEPS:
        for name, tool in summary.items():
            entry = tool.get("steps", {}).get(step)
            if entry is None:
                continue
            wall, cpu = entry.get("wall_s"), entry.get("cpu_s")
            ok = entry.get("status") == "ok"
            throughput = "—"
            if ok and step in ("first", "restore") and wall:
                throughput = f"{data_bytes / wall / 1e6:.0f}"
            status = "ok" if ok else f"{entry.get('status', '').upper()}: {entry.get('error', '')}"
            cells.append(
                [
                    STEP_LABELS[step],
                    name,
                    format_seconds(wall if ok else None),
                    format_seconds(cpu if ok else None),
                    format_ratio(ratio(cpu, wall) if ok else None),
                    format_kib(entry.get("max_rss_kib") if ok else None),
                    throughput,
                    status.replace("|", "/"),
                ]
            )
    return markdown_table(headers, cells, [False, False, True, True, True, True, True, False])


def sizes_table(summary: dict[str, Summary], data_bytes: int) -> str:
    headers = ["tool", "after first backup", "after churn backup", "first / data"]
    cells = []
    for name, tool in summary.items():
        first = tool.get("size", {}).get("after_first")
        churn = tool.get("size", {}).get("after_churn")
        cells.append([name, format_bytes(first), format_bytes(churn), format_ratio(ratio(first, data_bytes))])
    return markdown_table(headers, cells, [False, True, True, True])


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def write_report(path: Path, generated: str) -> None:
    """Replace the generated part of ``path`` (between the markers), keeping everything else as it is."""
    block = f"{START_MARKER}\n{generated.strip()}\n{END_MARKER}"
    if path.is_file():
        text = path.read_text()
        start, end = text.find(START_MARKER), text.find(END_MARKER)
        if start != -1 and end > start:
            path.write_text(text[:start] + block + text[end + len(END_MARKER) :])
            return
        path.write_text(f"# snapkeep benchmark\n\n{block}\n\n{text}")
        return
    path.write_text(f"# snapkeep benchmark\n\n{block}\n{DEFAULT_ANALYSIS}")
