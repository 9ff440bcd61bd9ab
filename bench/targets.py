"""Issue 12's table, worked out from one ``make bench`` run: every row, its ratio, "must reach" and
"target", and whether each holds. Written into the generated part of ``bench/REPORT.md`` and into
``results.json`` (``issue12``), so that no verdict is copied by hand.

Rows (snapkeep / restic unless said otherwise):

- the remote rows: restore from and backup to the loopback SFTP and S3 servers (``render_remote``);
- the full local restore and the first local backup (wall), and the first backup against reading
  the set once (``dataset.warm``, as ``cat`` would: the last warm read of the run; a target only);
- peak memory, every step: the largest snapkeep/restic ratio over every step measured for both,
  local and remote (each step's figure is the summed resident set of the tool's processes,
  ``bench/measure.TreeRss``), naming that step;
- no-change and 1 % churn backups and the repository size: "no worse" than when the issue was
  filed (0.46 / 0.59 / 0.98). A ratio moves by a few hundredths between runs of the same code, so
  "no worse" is read as within the standing targets those figures met then: ≤ 0.5, ≤ 0.7, ≤ 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import report

Remote = dict[str, dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class Limit:
    """One row's thresholds: the issue's "must reach" and its "target" (``None``: none given)."""

    must: float | None
    target: float | None


ROWS: dict[str, Limit] = {
    "restore from SFTP": Limit(1.0, 0.7),
    "restore from S3": Limit(1.0, 0.7),
    "backup to SFTP": Limit(0.9, 0.7),
    "backup to S3": Limit(0.7, 0.6),
    "full local restore": Limit(0.6, 0.5),
    "first local backup": Limit(0.75, 0.7),
    "first local backup / reading the set": Limit(None, 2.5),
    "peak memory, every step (worst ratio)": Limit(1.0, None),
    "no-change backup": Limit(0.5, None),
    "1 % churn backup": Limit(0.7, None),
    "repository size after the first backup": Limit(1.0, None),
}
#: Where each remote row's figures are: (target, step).
_REMOTE = {
    "restore from SFTP": ("sftp", "restore"),
    "restore from S3": ("s3", "restore"),
    "backup to SFTP": ("sftp", "first"),
    "backup to S3": ("s3", "first"),
}
_LOCAL = {
    "full local restore": "restore",
    "first local backup": "first",
    "no-change backup": "nochange",
    "1 % churn backup": "churn",
}
_REMOTE_LABELS = {"first": "backup to", "restore": "restore from"}


def _remote_step(remote: Remote, tool: str, target: str, step: str) -> dict[str, Any] | None:
    return remote.get(target, {}).get(f"{tool}-{target}", {}).get(step)


def _memory_pairs(summary: dict[str, Any], remote: Remote) -> list[tuple[str, float, float]]:
    """(step label, snapkeep KiB, restic KiB) for every step measured for both tools."""
    pairs = []
    for step in report.STEPS:
        ours = report.step_value(summary.get("snapkeep", {}).get("steps", {}).get(step), "max_rss_kib")
        theirs = report.step_value(summary.get("restic", {}).get("steps", {}).get(step), "max_rss_kib")
        if ours is not None and theirs:
            pairs.append((f"local {report.STEP_LABELS[step]}", ours, theirs))
    for target in remote:
        for step in ("first", "restore"):
            ours = report.step_value(_remote_step(remote, "snapkeep", target, step), "max_rss_kib")
            theirs = report.step_value(_remote_step(remote, "restic", target, step), "max_rss_kib")
            if ours is not None and theirs:
                pairs.append((f"{_REMOTE_LABELS[step]} {target.upper()}", ours, theirs))
    return pairs


def _row(label: str, ours: float | None, theirs: float | None, unit: str, note: str = "") -> dict[str, Any]:
    limit = ROWS[label]
    value = report.ratio(ours, theirs)
    return {
        "label": label,
        "unit": unit,
        "snapkeep": ours,
        "baseline": theirs,
        "ratio": value,
        "must": limit.must,
        "target": limit.target,
        "must_result": report.verdict(value, limit.must, False),
        "target_result": report.verdict(value, limit.target, False),
        "note": note,
    }


def issue12_rows(summary: dict[str, Any], remote: Remote, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row of issue 12's table from one run (a missing figure is a FAIL, never a pass)."""
    rows = []
    for label, (target, step) in _REMOTE.items():
        ours = report.step_value(_remote_step(remote, "snapkeep", target, step), "wall_s")
        theirs = report.step_value(_remote_step(remote, "restic", target, step), "wall_s")
        rows.append(_row(label, ours, theirs, "s"))
    steps = {tool: summary.get(tool, {}).get("steps", {}) for tool in ("snapkeep", "restic")}

    def local(label: str) -> dict[str, Any]:
        step = _LOCAL[label]
        return _row(
            label,
            report.step_value(steps["snapkeep"].get(step), "wall_s"),
            report.step_value(steps["restic"].get(step), "wall_s"),
            "s",
        )

    rows += [local("full local restore"), local("first local backup")]
    warm = meta.get("warm") or []
    read = float(warm[-1]["seconds"]) if warm and warm[-1].get("seconds") else None
    first = report.step_value(steps["snapkeep"].get("first"), "wall_s")
    rows.append(
        _row("first local backup / reading the set", first, read, "s", "against reading every file once")
    )
    pairs = _memory_pairs(summary, remote)
    if pairs:
        label, ours_kib, theirs_kib = max(pairs, key=lambda pair: pair[1] / pair[2])
        note = f"worst of {len(pairs)} steps: {label}"
        rows.append(_row("peak memory, every step (worst ratio)", ours_kib, theirs_kib, "kib", note))
    else:
        rows.append(_row("peak memory, every step (worst ratio)", None, None, "kib", "no step measured"))
    rows += [local("no-change backup"), local("1 % churn backup")]
    sizes = {
        tool: summary.get(tool, {}).get("size", {}).get("after_first") for tool in ("snapkeep", "restic")
    }
    rows.append(
        _row(
            "repository size after the first backup",
            None if sizes["snapkeep"] is None else float(sizes["snapkeep"]),
            None if sizes["restic"] is None else float(sizes["restic"]),
            "bytes",
        )
    )
    return rows


def render_issue12(rows: list[dict[str, Any]], memory: list[tuple[str, float, float]]) -> str:
    """The generated section: the table, one line of verdict, and every step's memory ratio."""
    if not rows:
        return ""
    cells = []
    for row in rows:
        formatter = report.FORMATTERS[row["unit"]]
        cells.append(
            [
                row["label"],
                formatter(row["snapkeep"]),
                formatter(row["baseline"]),
                report.format_ratio(row["ratio"]),
                "—" if row["must"] is None else f"≤ {row['must']:.2f}",
                row["must_result"],
                "—" if row["target"] is None else f"≤ {row['target']:.2f}",
                row["target_result"],
                row["note"],
            ]
        )
    headers = ["figure", "snapkeep", "restic", "ratio", "must reach", "met", "target", "met", "note"]
    table = report.markdown_table(headers, cells, [False, True, True, True, True, False, True, False, False])
    failed = [row["label"] for row in rows if row["must"] is not None and row["must_result"] != "PASS"]
    verdict = "every row holds" if not failed else "not met: " + ", ".join(failed)
    lines = [
        "",
        "## Issue 12: every row of its table in this run",
        "",
        "Ratios snapkeep / restic (the reading row: snapkeep's first backup / reading every file of the",
        "set once, `dataset.warm`). Memory is each step's summed resident set of the tool's processes.",
        'No-change, churn and size must be "no worse" than when the issue was filed (0.46 / 0.59 /',
        "0.98), read as within the targets they met then (`bench/targets.py`).",
        "",
        table,
        "",
        f"- **Must reach, all rows**: {'PASS' if not failed else 'FAIL'} ({verdict})",
    ]
    if memory:
        worst = ", ".join(
            f"{label} {report.format_kib(ours)} / {report.format_kib(theirs)} ({ours / theirs:.2f})"
            for label, ours, theirs in memory
        )
        lines.append(f"- Memory of every step (snapkeep / restic): {worst}")
    return "\n".join(lines) + "\n"


def section(
    summary: dict[str, Any], remote: Remote, meta: dict[str, Any]
) -> tuple[list[dict[str, Any]], str]:
    """The rows (for ``results.json``) and the report's section."""
    if not {"snapkeep", "restic"} <= set(summary):
        return [], ""
    rows = issue12_rows(summary, remote, meta)
    return rows, render_issue12(rows, _memory_pairs(summary, remote))
