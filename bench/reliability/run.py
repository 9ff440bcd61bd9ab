"""``make reliability``: the long reliability series, with their figures written to docs/RELIABILITY.md.

    python bench/reliability/run.py [--series kills,crafted,diskfull] [--quick]

Series: kill -9 at random moments during backup, prune, restore and reindex (``kills``); damaged and
forged repositories (``crafted``); full file systems (``diskfull``). Results go to
``bench/reliability-results.json`` and to the generated part of ``docs/RELIABILITY.md``. Exit status 1
when any trial or case failed. ``--quick`` runs a few trials of each (what ``make test`` runs).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from bench.reliability.common import Outcome, fresh  # noqa: E402
from bench.reliability.crafted import crafted_series  # noqa: E402
from bench.reliability.diskfull import diskfull_series  # noqa: E402
from bench.reliability.kills import SERIES as KILL_SERIES  # noqa: E402
from bench.reliability.report import write_report  # noqa: E402

FULL_TRIALS = {"backup": 20, "prune": 12, "restore": 12, "reindex": 10}
QUICK_TRIALS = {"backup": 2, "prune": 1, "restore": 2, "reindex": 1}


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--series", default="kills,crafted,diskfull", help="comma-separated: kills,crafted,diskfull"
    )
    parser.add_argument("--kills", default="backup,prune,restore,reindex", help="which kill series")
    parser.add_argument("--quick", action="store_true", help="a few trials of each (the make test version)")
    parser.add_argument("--seed", type=int, default=20261205)
    parser.add_argument("--work", type=Path, default=PROJECT / "bench" / "work-reliability")
    parser.add_argument("--results", type=Path, default=PROJECT / "bench" / "reliability-results.json")
    parser.add_argument("--report", type=Path, default=PROJECT / "docs" / "RELIABILITY.md")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite docs/RELIABILITY.md")
    return parser.parse_args(argv)


def run(arguments: argparse.Namespace) -> list[Outcome]:
    rng = random.Random(arguments.seed)  # noqa: S311 - reproducible trials, not secrets
    work = fresh(arguments.work)
    trials = QUICK_TRIALS if arguments.quick else FULL_TRIALS
    series = arguments.series.split(",")
    outcomes: list[Outcome] = []
    if "kills" in series:
        for name in arguments.kills.split(","):
            started = time.monotonic()
            found = KILL_SERIES[name](fresh(work / f"kill-{name}"), rng, trials[name])
            found[-1].figures["series_s"] = round(time.monotonic() - started, 1)
            outcomes += found
            _progress(found)
    if "crafted" in series:
        bomb = (1 if arguments.quick else 10) * 2**30
        found = crafted_series(
            work / "crafted",
            rng,
            bomb_bytes=bomb,
            wide=20_000 if arguments.quick else 300_000,
            depth=16 if arguments.quick else 24,
        )
        outcomes += found
        _progress(found)
    if "diskfull" in series:
        found = diskfull_series(work / "diskfull", rng)
        outcomes += found
        _progress(found)
    return outcomes


def _progress(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        mark = "ok  " if outcome.ok else "FAIL"
        print(f"{mark} {outcome.series}: {outcome.name} {outcome.detail}", flush=True)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    started = datetime.now(UTC)
    outcomes = run(arguments)
    document = {
        "started": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "quick": arguments.quick,
        "seed": arguments.seed,
        "outcomes": [outcome.to_dict() for outcome in outcomes],
    }
    arguments.results.write_text(json.dumps(document, indent=1) + "\n")
    if not arguments.no_report:
        write_report(arguments.report, document)
    failed = [outcome for outcome in outcomes if not outcome.ok]
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} trials and cases passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
