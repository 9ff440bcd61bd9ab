"""``make bench``: measure snapkeep beside restic and borg on the same data, in the same run.

Order (the same for every tool, so no tool sees a different tree or a colder cache): copy the pristine
data set, read it once to warm the page cache; every tool: init, first backup, no-change backup; then
``make_dataset.py mutate --day 1`` once; every tool: churn backup; every tool: full restore of its latest
snapshot, checked with ``make_dataset.py digest`` against the mutated tree. With ``--repeat N`` the whole
sequence runs N times on fresh repositories (the tool order rotates) and the medians are reported.
A tool that fails is reported as FAIL with its error, and the run goes on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from bench import dataset, profiling, report, summary, targets  # noqa: E402
from bench.measure import Measurement, failed_to_start, run_measured  # noqa: E402
from bench.tools import REMOTE_TARGETS, REMOTE_TOOLS, TOOLS, RemoteTarget, Snapkeep, Tool  # noqa: E402

BENCH = PROJECT / "bench"


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="2G", help="data set size to generate (K/M/G suffixes; default 2G)")
    parser.add_argument("--data", type=Path, help="measure this tree instead (read-only: no churn step)")
    parser.add_argument(
        "--tools", default="snapkeep,restic,borg", help="comma-separated, from: " + ",".join(TOOLS)
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the whole sequence N times; report medians"
    )
    parser.add_argument("--profile", action="store_true", help="profile snapkeep's first backup and restore")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument(
        "--work", type=Path, default=BENCH / "work", help="scratch folder (default bench/work)"
    )
    parser.add_argument("--report", type=Path, default=BENCH / "REPORT.md")
    parser.add_argument("--results", type=Path, default=BENCH / "results.json")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds before one command is killed")
    parser.add_argument("--keep-repositories", action="store_true", help="leave the repositories in --work")
    parser.add_argument("--dataset-script", type=Path, default=dataset.DEFAULT_SCRIPT)
    parser.add_argument(
        "--remote",
        default="sftp,s3",
        help="after the local steps, back up and restore to these loopback servers: sftp, s3 (default both)",
    )
    parser.add_argument("--no-remote", action="store_true", help="skip the SFTP and S3 steps")
    parser.add_argument(
        "--only-remote",
        action="store_true",
        help="only the SFTP and S3 steps (no local steps; REPORT.md is left alone, --results is written)",
    )
    arguments = parser.parse_args(argv)
    arguments.remote = (
        [] if arguments.no_remote else [name.strip() for name in arguments.remote.split(",") if name.strip()]
    )
    unknown_remote = [name for name in arguments.remote if name not in REMOTE_TARGETS]
    if unknown_remote:
        parser.error(
            f"--remote: unknown {', '.join(unknown_remote)}; choose from {', '.join(REMOTE_TARGETS)}"
        )
    arguments.tools = [name.strip() for name in arguments.tools.split(",") if name.strip()]
    unknown = [name for name in arguments.tools if name not in TOOLS]
    if unknown or not arguments.tools:
        parser.error(
            f"--tools: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(TOOLS)}"
        )
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        arguments.size_bytes = dataset.parse_size(arguments.size)
    except ValueError as error:
        parser.error(f"--size: {error}")
    if arguments.data is not None and not arguments.data.is_dir():
        parser.error(f"--data: {arguments.data} is not a folder")
    return arguments


class Bench:
    """One benchmark run: the tools, the tree, and every record measured so far."""

    def __init__(self, arguments: argparse.Namespace) -> None:
        self.arguments = arguments
        self.work: Path = arguments.work.resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.script: Path = arguments.dataset_script.resolve()
        self.tools: list[Tool] = [TOOLS[name](self.work) for name in arguments.tools]
        self.foreign = arguments.data is not None
        self.tree = arguments.data.resolve() if self.foreign else self.work / "tree"
        self.runs: list[dict[str, dict[str, Any]]] = []
        self.remote_records: dict[str, dict[str, dict[str, Any]]] = {}
        self.meta: dict[str, Any] = {"notes": []}
        self.started = time.perf_counter()
        #: restored trees and earlier working copies of the data set, deleted only at the end of
        #: the run (see ``remove_restores``); a copy an interrupted run set aside is among them
        self.restores: list[Path] = (
            [] if self.foreign else sorted(self.tree.parent.glob(f"{self.tree.name}.old-*"))
        )

    def log(self, message: str) -> None:
        print(f"[bench {time.perf_counter() - self.started:7.1f}s] {message}", flush=True)

    # ---- one command --------------------------------------------------------------------------
    def measure(
        self, tool: Tool, step: str, repeat: int, command: list[str], cwd: Path | None = None
    ) -> Measurement:
        prefix = self.work / "logs" / f"{repeat}-{tool.name}-{step}"
        flushed = time.perf_counter()
        os.sync()  # the previous command's dirty pages must not be written back during this one
        if time.perf_counter() - flushed > 1:
            self.log(f"sync before {tool.name} {step}: {time.perf_counter() - flushed:.1f} s")
        try:
            result = run_measured(
                command, log_prefix=prefix, env=tool.environment(), cwd=cwd, timeout=self.arguments.timeout
            )
        except OSError as error:
            result = failed_to_start(command, error)
        status = "ok" if result.ok else f"FAIL ({result.error_text()})"
        self.log(
            f"{tool.name:8} {step:8} wall {result.wall_s:8.2f} s  cpu {result.cpu_s:8.2f} s  "
            f"rss {result.max_rss_kib / 1024:7.0f} MiB  {status}"
        )
        return result

    def record(self, records: dict[str, Any], step: str, result: Measurement, error: str = "") -> bool:
        ok = result.ok and not error
        records[step] = {
            "status": "ok" if ok else "fail",
            "error": error or result.error_text(),
            "wall_s": result.wall_s,
            "cpu_s": result.cpu_s,
            "max_rss_kib": result.max_rss_kib,
            "command": result.command,
            "log": result.stderr_path,
        }
        return ok

    @staticmethod
    def skip(records: dict[str, Any], step: str, status: str, reason: str) -> None:
        records[step] = {
            "status": status,
            "error": reason,
            "wall_s": None,
            "cpu_s": None,
            "max_rss_kib": None,
        }

    # ---- one repetition -----------------------------------------------------------------------
    def repetition(self, repeat: int) -> dict[str, dict[str, Any]]:
        order = self.tools[repeat % len(self.tools) :] + self.tools[: repeat % len(self.tools)]
        records: dict[str, dict[str, Any]] = {tool.name: {"size": {}} for tool in self.tools}
        alive = {tool.name: True for tool in self.tools}
        if not self.foreign:
            seconds = dataset.working_copy(self.work / "data", self.tree, self.restores)
            self.log(f"copied the pristine data set to {self.tree} in {seconds:.1f} s")
        warmed, seconds = dataset.warm(self.tree)
        self.log(f"warmed the page cache: read {warmed / 1e6:.0f} MB in {seconds:.1f} s")
        self.meta.setdefault("warm", []).append({"bytes": warmed, "seconds": round(seconds, 2)})

        for tool in order:
            tool.reset()
            steps = records[tool.name]
            reason = tool.available()
            if reason:
                for step in report.STEPS:
                    self.skip(steps, step, "fail", reason)
                alive[tool.name] = False
                self.log(f"{tool.name}: {reason}")
                continue
            alive[tool.name] = self.record(
                steps, "init", self.measure(tool, "init", repeat, tool.init_command())
            )
            for step in ("first", "nochange"):
                if not alive[tool.name]:
                    self.skip(steps, step, "skipped", "an earlier step failed")
                    continue
                command = tool.backup_command(self.tree, step)
                alive[tool.name] = self.record(steps, step, self.measure(tool, step, repeat, command))
                tool.latest = step
                if step == "first":
                    steps["size"]["after_first"] = dataset.disk_usage(tool.repository)[0]

        if self.foreign:
            for tool in order:
                self.skip(
                    records[tool.name], "churn", "not-run", "--data given: the tree is not ours to mutate"
                )
            self.meta["notes"].append("Churn step not run: --data names a tree this harness must not modify.")
        else:
            stats = dataset.mutate(self.tree, script=self.script, seed=self.arguments.seed, day=1)
            self.meta.setdefault("mutate", []).append(stats)
            self.log(f"mutate --day 1: about {stats.get('approx_changed_bytes', 0) / 1e6:.1f} MB changed")
            for tool in order:
                if not alive[tool.name]:
                    self.skip(records[tool.name], "churn", "skipped", "an earlier step failed")
                    continue
                command = tool.backup_command(self.tree, "churn")
                alive[tool.name] = self.record(
                    records[tool.name], "churn", self.measure(tool, "churn", repeat, command)
                )
                tool.latest = "churn"
                records[tool.name]["size"]["after_churn"] = dataset.disk_usage(tool.repository)[0]

        expected = self.digest(self.tree)
        for tool in order:
            if not alive[tool.name]:
                self.skip(records[tool.name], "restore", "skipped", "an earlier step failed")
                continue
            self.restore(tool, repeat, records[tool.name], expected)
        # The restored trees are deleted only at the end of the run (``remove_restores``).
        if not self.arguments.keep_repositories:
            for tool in self.tools:
                dataset.remove_tree(tool.repository)
                dataset.remove_tree(tool.home)
        return records

    def digest(self, tree: Path) -> dict[str, Any]:
        return dataset.digest(tree, script=self.script, owner=os.geteuid() == 0, mtime=True)

    def restore(self, tool: Tool, repeat: int, records: dict[str, Any], expected: dict[str, Any]) -> None:
        target = self.work / f"restore-{tool.name}-{repeat}"
        dataset.remove_tree(target)  # a leftover of an interrupted run
        target.mkdir(parents=True)
        self.restores.append(target)
        command, cwd = tool.restore_command(target)
        result = self.measure(tool, "restore", repeat, command, cwd)
        error = ""
        if result.ok:
            root = dataset.find_restored_root(target, self.tree)
            if root is None:
                error = f"nothing was restored into {target}"
            else:
                got = self.digest(root)
                if got["sha256"] != expected["sha256"]:
                    error = (
                        f"restored tree differs from the source (digest mismatch): {got['entries']} entries, "
                        f"{got['bytes']} bytes vs {expected['entries']} entries, {expected['bytes']} bytes"
                    )
                self.log(f"{tool.name:8} restore verified: {error or 'OK'}")
        self.record(records, "restore", result, error)
        records["restore"]["verified"] = result.ok and not error

    # ---- the whole run ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.meta.update(summary.machine())
        self.meta["load_before"] = os.getloadavg()
        self.meta["versions"] = {tool.name: tool.version() for tool in self.tools}
        if self.foreign:
            info = dataset.tree_info(self.tree)
            self.meta["data"] = {"path": str(self.tree), "generated": False, **vars(info)}
        else:
            stamp = dataset.ensure_dataset(
                self.work / "data",
                script=self.script,
                seed=self.arguments.seed,
                size=self.arguments.size_bytes,
                accounts=self.arguments.accounts,
                log=self.log,
            )
            self.meta["data"] = {
                "path": str(self.work / "data"),
                "generated": True,
                **{key: value for key, value in stamp.items() if key != "generator_summary"},
            }
        dataset.remove_tree(self.work / "logs")
        if self.arguments.only_remote:
            if not self.foreign:
                dataset.working_copy(self.work / "data", self.tree, self.restores)
            dataset.warm(self.tree)
        try:
            for repeat in range(0 if self.arguments.only_remote else self.arguments.repeat):
                self.log(f"repetition {repeat + 1} of {self.arguments.repeat}")
                self.runs.append(self.repetition(repeat))
            for name in self.arguments.remote:
                self.remote(name)
            if self.arguments.profile:
                self.profile()
            self.meta["load_after"] = os.getloadavg()
        finally:
            self.remove_restores()
        self.meta["elapsed_s"] = round(time.perf_counter() - self.started, 1)
        return self.meta

    def remove_restores(self) -> None:
        """Delete every restored tree (and working copy set aside), once every step is measured.

        ext4 without a journal skips recently freed inodes when it allocates new ones
        (``recently_deleted``), one inode table lookup each: for a while after a tree of 80,000
        files is deleted (seen here: more than 5 minutes), creating files costs several times the
        CPU (perf: 40-47 % of a restore in ``find_inode_bit``/``recently_deleted``). Deleting one
        step's tree, or the previous working copy, before a restore taxed whichever tool restored
        next, and snapkeep restores first (a 512 MiB S3 restore right after the SFTP trees were
        deleted: 14.9 s and 9.8 s of CPU, then 5.0 s and 3.9-4.1 s; a 2 GiB local restore: 18 s
        of system time instead of 2.7 s). At most about 7 times the data set is kept meanwhile,
        plus one set-aside working copy per repetition."""
        for target in self.restores:
            dataset.remove_tree(target)
        self.restores = []

    # ---- remote targets -----------------------------------------------------------------------
    def remote(self, name: str) -> None:
        """First backup and full restore of the tree on the ``name`` loopback server, for snapkeep and
        restic (those of ``--tools``); the server runs only for these steps."""
        target: RemoteTarget = REMOTE_TARGETS[name](self.work)
        names = [tool for tool in self.arguments.tools if tool in REMOTE_TOOLS]
        records: dict[str, dict[str, Any]] = {f"{tool}-{name}": {"size": {}} for tool in names}
        self.remote_records[name] = records
        try:
            target.start()
        except Exception as error:  # noqa: BLE001 - a missing sshd/rclone is a FAIL row, never a crash
            for steps in records.values():
                for step in ("init", "first", "restore"):
                    self.skip(steps, step, "fail", f"{name} server did not start: {error}")
            self.log(f"{name}: server did not start: {error}")
            return
        tools = [REMOTE_TOOLS[tool](self.work, target) for tool in names]
        try:
            expected = self.digest(self.tree)
            for tool in tools:
                tool.reset()
                steps = records[tool.name]
                reason = tool.available()
                alive = not reason and self.record(
                    steps, "init", self.measure(tool, "init", 0, tool.init_command())
                )
                if reason:
                    self.skip(steps, "init", "fail", reason)
                if alive:
                    command = tool.backup_command(self.tree, "first")
                    alive = self.record(steps, "first", self.measure(tool, "first", 0, command))
                    tool.latest = "first"
                    steps["size"]["after_first"] = dataset.disk_usage(tool.repository)[0]
                else:
                    self.skip(steps, "first", "skipped", "an earlier step failed")
                if alive:
                    self.restore(tool, 0, steps, expected)
                else:
                    self.skip(steps, "restore", "skipped", "an earlier step failed")
                dataset.remove_tree(tool.repository)
                dataset.remove_tree(tool.home)
            # The restored trees are deleted only at the end of the run (``remove_restores``).
        finally:
            target.stop()

    def profile(self) -> None:
        if "snapkeep" not in self.arguments.tools:
            self.meta["notes"].append("--profile ignored: snapkeep is not among --tools.")
            return
        tool = Snapkeep(self.work)
        tool.repository, tool.home = self.work / "repo-snapkeep-profile", self.work / "home-snapkeep-profile"
        tool.reset()
        files = []
        if not self.record({}, "init", self.measure(tool, "init", 0, tool.init_command())):
            self.meta["notes"].append("Profile not taken: snapkeep repo init failed.")
            return
        target = self.work / "restore-profile"
        dataset.remove_tree(target)
        target.mkdir()
        for step, (command, cwd) in (
            ("backup", (tool.backup_command(self.tree, "profile"), None)),
            ("restore", tool.restore_command(target)),
        ):
            raw = self.work / f"profile-{step}.raw"
            wrapped, name = profiling.profiler_command(command, raw)
            result = self.measure(tool, f"profile-{step}", 0, wrapped, cwd)
            text_path = self.work / f"profile-{step}.txt"
            if name == "py-spy" and raw.is_file():
                text_path.write_text(
                    profiling.top_functions_text(raw, f"snapkeep {step} ({' '.join(command)})")
                )
            elif name == "cProfile" and raw.is_file():
                raw.replace(text_path)
            if not result.ok:
                self.meta["notes"].append(f"Profiled {step} failed: {result.error_text()}")
            if text_path.is_file():
                files.append(str(text_path))
        self.meta["profiles"] = files
        dataset.remove_tree(target)
        dataset.remove_tree(tool.repository)
        dataset.remove_tree(tool.home)


def render_remote(remote: dict[str, dict[str, dict[str, Any]]], meta: dict[str, Any]) -> str:
    """The generated report's section on SFTP and S3: wall, MB/s and snapkeep/restic ratios."""
    if not remote:
        return ""
    data_bytes = int(meta.get("data", {}).get("bytes") or 0)
    lines = [
        "",
        "## Remote destinations (loopback SFTP and S3)",
        "",
        "One first backup and one full restore (verified) of the same tree per tool, to OpenSSH sshd and to",
        "`rclone serve s3` on 127.0.0.1 (the servers of `tests/servers.py`).",
        "ratio = snapkeep / restic, lower is better; memory = the peak of the tool's processes' resident",
        "sets summed (its `ssh` clients included).",
        "",
        "| target | step | snapkeep wall | restic wall | snapkeep MB/s | restic MB/s | ratio "
        "| snapkeep memory | restic memory | memory ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def cell(step: dict[str, Any] | None) -> tuple[str, str, float | None]:
        if not step or step.get("status") != "ok" or step.get("wall_s") is None:
            return (str((step or {}).get("status", "n/a")).upper(), "n/a", None)
        wall = float(step["wall_s"])
        rate = f"{data_bytes / wall / 1e6:.1f}" if data_bytes and wall else "n/a"
        return (f"{wall:.2f} s", rate, wall)

    for target, records in remote.items():
        for step in ("first", "restore"):
            ours = cell(records.get(f"snapkeep-{target}", {}).get(step))
            theirs = cell(records.get(f"restic-{target}", {}).get(step))
            ratio = f"{ours[2] / theirs[2]:.2f}" if ours[2] is not None and theirs[2] else "n/a"
            label = "backup" if step == "first" else "restore"
            memory = [
                report.step_value(records.get(f"{tool}-{target}", {}).get(step), "max_rss_kib")
                for tool in ("snapkeep", "restic")
            ]
            memory_ratio = f"{memory[0] / memory[1]:.2f}" if memory[0] is not None and memory[1] else "n/a"
            lines.append(
                f"| {target} | {label} | {ours[0]} | {theirs[0]} | {ours[1]} | {theirs[1]} | {ratio} "
                f"| {report.format_kib(memory[0])} | {report.format_kib(memory[1])} | {memory_ratio} |"
            )
        failures = [
            f"- {tool} {step}: {record.get('error')}"
            for tool, steps in records.items()
            for step, record in steps.items()
            if step != "size" and isinstance(record, dict) and record.get("status") not in ("ok", None)
        ]
        lines.extend(failures)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    bench = Bench(arguments)
    try:
        meta = bench.run()
    except dataset.DatasetError as error:
        print(f"bench: data set problem: {error}", file=sys.stderr)
        return 2
    if arguments.only_remote:
        meta["date"] = datetime.now(UTC).isoformat(timespec="seconds")
        text = render_remote(bench.remote_records, meta)
        results = {"meta": meta, "remote": bench.remote_records}
        arguments.results.write_text(json.dumps(results, indent=1, default=str) + "\n")
        print(text)
        bench.log(f"wrote {arguments.results} (--only-remote: {arguments.report} left alone)")
        return 0
    combined = summary.combine(bench.runs)
    meta["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta["host"] = socket.gethostname()
    meta["python"] = platform.python_version()
    meta["repeat"] = arguments.repeat
    meta["tools"] = arguments.tools
    results = {"meta": meta, "summary": combined, "runs": bench.runs, "remote": bench.remote_records}
    rows = report.ratio_rows(combined) if {"snapkeep", "restic"} <= set(arguments.tools) else []
    results["ratios"] = rows
    issue12, issue12_text = targets.section(combined, bench.remote_records, meta)
    results["issue12"] = issue12
    arguments.results.write_text(json.dumps(results, indent=1, default=str) + "\n")
    text = summary.render(meta, combined, rows) + render_remote(bench.remote_records, meta) + issue12_text
    report.write_report(arguments.report, text)
    print(text)
    bench.log(f"wrote {arguments.report} and {arguments.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
