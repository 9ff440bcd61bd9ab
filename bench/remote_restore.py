"""Only the remote restore rows of ``make bench``, repeated: snapkeep beside restic, SFTP and S3.

``make bench`` backs up and restores once per tool and target; a remote restore's ratio then rests on
one pair of figures on a machine shared with other work. This backs up the generated set once per
tool to each loopback server (the same ``tests/servers.py`` servers and ``bench/tools.py`` command
lines as ``make bench``), then restores it ``--repeat`` times, alternating the tools, and prints the
walls and the median snapkeep/restic ratio. The first restore of each tool is verified with
``make_dataset.py digest``. ``--profile`` adds one snapkeep restore per target under py-spy (or
cProfile), written to ``<work>/profile-restore-<target>.txt``.

    .venv/bin/python bench/remote_restore.py --size 512M --repeat 3 [--targets sftp,s3] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from bench import dataset, profiling  # noqa: E402
from bench.measure import run_measured  # noqa: E402
from bench.tools import REMOTE_TARGETS, RemoteRestic, RemoteSnapkeep, RemoteTarget  # noqa: E402


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="512M", help="generated data set size (default 512M)")
    parser.add_argument("--repeat", type=int, default=3, help="restores per tool and target (default 3)")
    parser.add_argument("--targets", default="sftp,s3", help="comma-separated, from: sftp, s3")
    parser.add_argument("--profile", action="store_true", help="one more snapkeep restore under a profiler")
    parser.add_argument("--counts", action="store_true", help="one more snapkeep restore counting requests")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--work", type=Path, default=PROJECT / "bench" / "work")
    parser.add_argument("--results", type=Path, help="write every figure here as JSON")
    arguments = parser.parse_args(argv)
    arguments.targets = [name.strip() for name in arguments.targets.split(",") if name.strip()]
    unknown = [name for name in arguments.targets if name not in REMOTE_TARGETS]
    if unknown or not arguments.targets:
        parser.error(f"--targets: unknown {', '.join(unknown) or '(none)'}; choose from sftp, s3")
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        arguments.size_bytes = dataset.parse_size(arguments.size)
    except ValueError as error:
        parser.error(f"--size: {error}")
    return arguments


def log(message: str) -> None:
    print(f"[remote-restore {time.strftime('%H:%M:%S')}] {message}", flush=True)


def one_target(arguments: argparse.Namespace, name: str, tree: Path, script: Path) -> dict[str, Any]:
    """Back up ``tree`` with both tools to the ``name`` server, then restore it ``repeat`` times each."""
    work: Path = arguments.work.resolve()
    target: RemoteTarget = REMOTE_TARGETS[name](work)
    target.start()
    figures: dict[str, Any] = {"walls": {}, "cpu": {}}
    try:
        tools = [RemoteSnapkeep(work, target), RemoteRestic(work, target)]
        expected = dataset.digest(tree, script=script, owner=os.geteuid() == 0, mtime=True)
        for tool in tools:
            tool.reset()
            for step, command in (
                ("init", tool.init_command()),
                ("first", tool.backup_command(tree, "first")),
            ):
                result = run_measured(
                    command, log_prefix=work / "logs" / f"rr-{tool.name}-{step}", env=tool.environment()
                )
                if not result.ok:
                    raise RuntimeError(f"{tool.name} {step} failed: {result.error_text()}")
                log(f"{tool.name:16} {step:8} wall {result.wall_s:7.2f} s  cpu {result.cpu_s:7.2f} s")
        for repeat in range(arguments.repeat):
            order = tools if repeat % 2 == 0 else tools[::-1]
            for tool in order:
                restored = work / f"restore-{tool.name}-{repeat}"
                dataset.remove_tree(restored)
                restored.mkdir(parents=True)
                command, cwd = tool.restore_command(restored)
                os.sync()
                result = run_measured(
                    command,
                    log_prefix=work / "logs" / f"rr-{tool.name}-restore-{repeat}",
                    env=tool.environment(),
                    cwd=cwd,
                )
                if not result.ok:
                    raise RuntimeError(f"{tool.name} restore failed: {result.error_text()}")
                verdict = ""
                if repeat == 0:
                    root = dataset.find_restored_root(restored, tree)
                    got = (
                        dataset.digest(root, script=script, owner=os.geteuid() == 0, mtime=True)
                        if root
                        else {}
                    )
                    verdict = "verified" if got.get("sha256") == expected["sha256"] else "DIGEST MISMATCH"
                    if verdict != "verified":
                        raise RuntimeError(f"{tool.name}: the restored tree differs from the source")
                figures["walls"].setdefault(tool.name.split("-")[0], []).append(round(result.wall_s, 2))
                figures["cpu"].setdefault(tool.name.split("-")[0], []).append(round(result.cpu_s, 2))
                log(
                    f"{tool.name:16} restore  wall {result.wall_s:7.2f} s  cpu {result.cpu_s:7.2f} s  "
                    f"rss {result.max_rss_kib / 1024:5.0f} MiB {verdict}"
                )
        # Deleted only now, as bench/run.py does: ext4 creates inodes slowly for a while after a
        # large tree is deleted, which would tax whichever tool restores next.
        for repeat in range(arguments.repeat):
            for tool in tools:
                dataset.remove_tree(work / f"restore-{tool.name}-{repeat}")
        if arguments.profile:
            figures["profile"] = profile(work, tools[0], name)
        if arguments.counts:
            figures["counts"] = counts(work, tools[0], name)
        ours, theirs = figures["walls"]["snapkeep"], figures["walls"]["restic"]
        figures["ratios"] = [round(a / b, 2) for a, b in zip(ours, theirs, strict=True)]
        figures["cpu_ratio"] = round(sum(figures["cpu"]["snapkeep"]) / sum(figures["cpu"]["restic"]), 2)
        figures["median_ratio"] = round(statistics.median(ours) / statistics.median(theirs), 2)
        log(
            f"{name}: snapkeep/restic restore ratios {figures['ratios']}, median {figures['median_ratio']}, "
            f"CPU {figures['cpu_ratio']}"
        )
        for tool in tools:
            dataset.remove_tree(tool.repository)
            dataset.remove_tree(tool.home)
    finally:
        target.stop()
    return figures


def profile(work: Path, tool: RemoteSnapkeep, name: str) -> str:
    restored = work / f"restore-{tool.name}"
    dataset.remove_tree(restored)
    restored.mkdir(parents=True)
    command, cwd = tool.restore_command(restored)
    raw = work / f"profile-restore-{name}.raw"
    wrapped, profiler = profiling.profiler_command(command, raw)
    result = run_measured(
        wrapped, log_prefix=work / "logs" / f"rr-profile-{name}", env=tool.environment(), cwd=cwd
    )
    text = work / f"profile-restore-{name}.txt"
    if profiler == "py-spy" and raw.is_file():
        text.write_text(profiling.top_functions_text(raw, f"snapkeep restore from {name} ({profiler})"))
    elif raw.is_file():
        raw.replace(text)
    dataset.remove_tree(restored)
    log(f"profile ({profiler}, wall {result.wall_s:.2f} s): {text}")
    return str(text)


def counts(work: Path, tool: RemoteSnapkeep, name: str) -> dict[str, Any]:
    """Requests and bytes of one snapkeep restore (``bench/restore_counts.py``)."""
    restored = work / f"restore-{tool.name}"
    dataset.remove_tree(restored)
    restored.mkdir(parents=True)
    completed = subprocess.run(
        [sys.executable, str(PROJECT / "bench" / "restore_counts.py"), tool.location, str(restored)],
        capture_output=True,
        text=True,
        env=tool.environment(),
        check=False,
    )
    dataset.remove_tree(restored)
    if completed.returncode != 0:
        raise RuntimeError(f"restore_counts failed: {completed.stderr[-2000:]}")
    line = [text for text in completed.stdout.splitlines() if text.startswith("COUNTS ")][-1]
    figures: dict[str, Any] = json.loads(line[len("COUNTS ") :])
    log(f"{name} counts: {json.dumps(figures)}")
    return figures


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    work: Path = arguments.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    script = dataset.DEFAULT_SCRIPT.resolve()
    dataset.ensure_dataset(
        work / "data",
        script=script,
        seed=arguments.seed,
        size=arguments.size_bytes,
        accounts=arguments.accounts,
        log=log,
    )
    tree = work / "data"
    dataset.warm(tree)
    results = {"size": arguments.size, "load_before": os.getloadavg(), "targets": {}}
    for name in arguments.targets:
        results["targets"][name] = one_target(arguments, name, tree, script)
    results["load_after"] = os.getloadavg()
    text = json.dumps(results, indent=1)
    if arguments.results is not None:
        arguments.results.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
