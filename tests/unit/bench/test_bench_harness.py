"""The benchmark harness's own code: measuring a child, data-set helpers, ratios, tables, the report file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[3]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from bench import dataset, profiling, report, summary  # noqa: E402
from bench.measure import failed_to_start, gnu_time, run_measured  # noqa: E402

ALLOCATE_AND_SPIN = """
import time
block = bytearray(96 * 1024 * 1024)
for offset in range(0, len(block), 4096):
    block[offset] = 1
deadline = time.process_time() + 0.3
while time.process_time() < deadline:
    pass
print("done")
"""


def test_measure_reports_the_childs_peak_rss_cpu_and_wall(tmp_path: Path) -> None:
    big = run_measured([sys.executable, "-c", ALLOCATE_AND_SPIN], log_prefix=tmp_path / "big")
    small = run_measured([sys.executable, "-c", "pass"], log_prefix=tmp_path / "small")

    assert big.ok
    assert big.returncode == 0
    assert big.max_rss_kib >= 96 * 1024  # the 96 MiB buffer was touched page by page
    assert small.max_rss_kib < big.max_rss_kib - 64 * 1024  # per child, not cumulative over children
    assert big.cpu_s >= 0.3
    assert big.wall_s >= 0.3
    assert Path(big.stdout_path).read_text().strip() == "done"


TWO_PROCESSES = """
import subprocess, sys, time
block = bytearray(64 * 1024 * 1024)
for offset in range(0, len(block), 4096):
    block[offset] = 1
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
child.wait()
"""


def test_peak_rss_of_a_tool_in_several_processes_is_their_sum(tmp_path: Path) -> None:
    result = run_measured(
        [sys.executable, "-c", TWO_PROCESSES, ALLOCATE_AND_SPIN.replace("0.3", "1.0")],
        log_prefix=tmp_path / "two",
    )

    assert result.ok
    # GNU time's %M is the larger process alone (96 MiB); the tool held 64 + 96 MiB at once.
    assert result.extra["rss_tree_peak_kib"] >= (64 + 96) * 1024
    assert result.max_rss_kib == result.extra["rss_tree_peak_kib"]
    assert result.extra["rss_source"] == "summed over the tool's processes (sampled)"


FORKS = """
import os, sys, time
block = bytearray(96 * 1024 * 1024)
for offset in range(0, len(block), 4096):
    block[offset] = 1
child = os.fork()
if child == 0:  # the parent's pages, shared; then, when asked, 64 MiB of its own
    if sys.argv[1] == "own":
        mine = bytearray(64 * 1024 * 1024)
        for offset in range(0, len(mine), 4096):
            mine[offset] = 1
    time.sleep(1.0)
    os._exit(0)
os.waitpid(child, 0)
"""


@pytest.mark.parametrize("child", ["shares", "own"])
def test_a_forked_child_adds_only_its_own_pages(tmp_path: Path, child: str) -> None:
    """A child with its parent's command line (a fork before its exec, or working on in the
    parent's memory) is the parent's pages, shared: counted whole it would double the figure."""
    result = run_measured([sys.executable, "-c", FORKS, child], log_prefix=tmp_path / child)

    assert result.ok
    peak = result.extra["rss_tree_peak_kib"]
    if child == "shares":
        assert 96 * 1024 <= peak < (96 + 32) * 1024
    else:
        assert peak >= (96 + 64) * 1024
        assert peak < (2 * 96 + 32) * 1024


def test_peak_rss_is_the_childs_own_not_inherited_from_the_harness(tmp_path: Path) -> None:
    ballast = bytearray(160 * 1024 * 1024)  # make this process big: Linux passes its peak to vforked children
    for offset in range(0, len(ballast), 4096):
        ballast[offset] = 1

    result = run_measured(["/bin/true"], log_prefix=tmp_path / "true")

    assert result.ok
    if gnu_time() is None:  # the fallback is marked, and shows the inherited floor it cannot avoid
        assert result.extra["rss_source"] == "wait4 (harness floor)"
        assert result.max_rss_kib >= 160 * 1024
    else:  # scripts/bench-tools.sh installs GNU time
        assert result.extra["rss_source"] == "GNU time %M"
        assert result.max_rss_kib < 32 * 1024
    del ballast


def test_measure_reports_a_failing_command_with_its_last_error_lines(tmp_path: Path) -> None:
    script = (
        "import sys; print('line one', file=sys.stderr); print('the reason', file=sys.stderr); sys.exit(3)"
    )
    result = run_measured([sys.executable, "-c", script], log_prefix=tmp_path / "fail")

    assert not result.ok
    assert result.returncode == 3
    assert result.error_text() == "exit status 3: line one | the reason"


def test_measure_kills_a_command_after_the_timeout(tmp_path: Path) -> None:
    result = run_measured(
        [sys.executable, "-c", "import time; time.sleep(30)"], log_prefix=tmp_path / "slow", timeout=0.5
    )

    assert result.timed_out
    assert not result.ok
    assert result.returncode == -9
    assert result.wall_s < 10
    assert result.error_text().startswith("timed out after")


def test_a_missing_program_becomes_a_failed_measurement(tmp_path: Path) -> None:
    command = [str(tmp_path / "no-such-program")]
    with pytest.raises(FileNotFoundError) as raised:
        run_measured(command, log_prefix=tmp_path / "missing")
    result = failed_to_start(command, raised.value)

    assert not result.ok
    assert "could not start: FileNotFoundError" in result.error_text()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2G", 2 * 1024**3), ("256M", 256 * 1024**2), ("200MiB", 200 * 1024**2), ("1.5K", 1536), ("4096", 4096)],
)
def test_parse_size_accepts_binary_suffixes(text: str, expected: int) -> None:
    assert dataset.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0"])
def test_parse_size_rejects_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        dataset.parse_size(text)


def test_disk_usage_counts_hard_links_once_and_tree_info_counts_kinds(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a").write_bytes(b"x" * 1000)
    (tmp_path / "sub" / "b").write_bytes(b"y" * 500)
    (tmp_path / "hard").hardlink_to(tmp_path / "a")
    (tmp_path / "link").symlink_to("a")
    (tmp_path / "dirlink").symlink_to("sub")

    apparent, allocated = dataset.disk_usage(tmp_path)
    info = dataset.tree_info(tmp_path)

    assert apparent == 1000 + 500 + len("a") + len("sub")
    assert allocated > 0
    assert (info.files, info.directories, info.others) == (3, 1, 2)
    assert info.bytes == 2500


def test_working_copy_sets_the_old_copy_aside_instead_of_deleting_it(tmp_path: Path) -> None:
    source = tmp_path / "data"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "f").write_bytes(b"pristine")
    tree = tmp_path / "tree"
    aside: list[Path] = []
    dataset.working_copy(source, tree, aside)
    assert aside == []
    (tree / "sub" / "f").write_bytes(b"mutated")
    dataset.working_copy(source, tree, aside)
    assert (tree / "sub" / "f").read_bytes() == b"pristine"
    # the mutated copy is kept, under another name, for the caller to delete after measuring
    assert [path.parent for path in aside] == [tmp_path]
    assert aside[0].name.startswith("tree.old-")
    assert (aside[0] / "sub" / "f").read_bytes() == b"mutated"
    dataset.working_copy(source, tree)  # without a list: deleted at once
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["data", "tree", aside[0].name])


def test_find_restored_root_knows_the_layouts_of_the_tools(tmp_path: Path) -> None:
    source = Path("/srv/data/tree")
    restic_like = tmp_path / "r"
    (restic_like / "srv" / "data" / "tree").mkdir(parents=True)
    base_name = tmp_path / "b"
    (base_name / "tree").mkdir(parents=True)
    flat = tmp_path / "f"
    (flat / "home").mkdir(parents=True)
    empty = tmp_path / "e"
    empty.mkdir()

    assert dataset.find_restored_root(restic_like, source) == restic_like / "srv" / "data" / "tree"
    assert dataset.find_restored_root(base_name, source) == base_name / "tree"
    assert dataset.find_restored_root(flat, source) == flat
    assert dataset.find_restored_root(empty, source) is None


def test_ensure_dataset_generates_once_then_reuses_the_stamped_tree(tmp_path: Path) -> None:
    data = tmp_path / "data"
    messages: list[str] = []
    first = dataset.ensure_dataset(
        data, script=dataset.DEFAULT_SCRIPT, seed=3, size=4 * 1024**2, accounts=2, log=messages.append
    )
    marker = data / "marker-of-the-first-generation"
    marker.write_text("kept")
    second = dataset.ensure_dataset(
        data, script=dataset.DEFAULT_SCRIPT, seed=3, size=4 * 1024**2, accounts=2, log=messages.append
    )
    third = dataset.ensure_dataset(
        data, script=dataset.DEFAULT_SCRIPT, seed=4, size=4 * 1024**2, accounts=2, log=messages.append
    )

    assert first["files"] > 100
    assert first["bytes"] > 1024**2
    assert second == first
    assert "reusing" in messages[1]
    assert third["seed"] == 4
    assert not marker.exists()
    stamp = json.loads((tmp_path / dataset.STAMP_NAME).read_text())
    assert stamp["seed"] == 4


def ok(wall: float, cpu: float, rss_mib: float) -> dict[str, object]:
    return {"status": "ok", "error": "", "wall_s": wall, "cpu_s": cpu, "max_rss_kib": rss_mib * 1024}


def tool_summary(scale: float, size: float, rss: float) -> dict[str, object]:
    steps = {
        step: ok(base * scale, base * scale * 1.5, rss)
        for step, base in {"init": 1.0, "first": 10.0, "nochange": 2.0, "churn": 3.0, "restore": 8.0}.items()
    }
    return {"steps": steps, "size": {"after_first": size, "after_churn": size * 1.1}}


def test_ratio_rows_compare_snapkeep_with_restic_against_targets_and_minimum() -> None:
    results = {"snapkeep": tool_summary(0.6, 104.0, 50.0), "restic": tool_summary(1.0, 100.0, 100.0)}

    rows = {row["label"]: row for row in report.ratio_rows(results)}

    first = rows["first backup, wall"]
    assert first["ratio"] == pytest.approx(0.6)
    assert (first["target_result"], first["minimum_result"]) == ("PASS", "PASS")
    nochange = rows["no-change backup, wall"]
    assert (nochange["target_result"], nochange["minimum_result"]) == ("FAIL", "PASS")  # 0.6 > 0.5
    size = rows["repository size after first backup"]
    assert size["ratio"] == pytest.approx(1.04)
    assert (size["target_result"], size["minimum_result"]) == ("FAIL", "PASS")
    assert rows["peak RSS, max over all steps"]["ratio"] == pytest.approx(0.5)
    assert rows["init + first backup, wall"]["ratio"] == pytest.approx(0.6)
    assert rows["full restore, CPU"]["target_result"] == "—"
    lines = report.verdict_lines(list(rows.values()))
    assert lines[0].endswith("PASS")
    assert lines[1] == "**Full targets met**: 3 of 7"  # first, churn, RSS


def test_a_failed_snapkeep_step_fails_its_rows_and_a_step_left_out_is_skipped() -> None:
    snapkeep = tool_summary(0.5, 90.0, 50.0)
    restic = tool_summary(1.0, 100.0, 100.0)
    snapkeep["steps"]["restore"] = {"status": "fail", "error": "exit status 1: boom", "wall_s": None}  # type: ignore[index]
    for tool in (snapkeep, restic):
        tool["steps"]["churn"] = {"status": "not-run", "error": "--data given", "wall_s": None}  # type: ignore[index]
        tool["size"]["after_churn"] = None  # type: ignore[index]

    rows = {row["label"]: row for row in report.ratio_rows({"snapkeep": snapkeep, "restic": restic})}

    assert rows["full restore, wall"]["ratio"] is None
    assert rows["full restore, wall"]["minimum_result"] == "FAIL"
    assert rows["1 % churn backup, wall"]["minimum_result"] == "SKIP"
    assert rows["repository size after churn backup"]["target_result"] == "SKIP"
    assert "not met: full restore, wall" in report.verdict_lines(list(rows.values()))[0]


def test_ratio_table_formats_figures_and_aligns_columns() -> None:
    results = {
        "snapkeep": tool_summary(0.5, 3 * 1024**3, 50.0),
        "restic": tool_summary(1.0, 2 * 1024**3, 100.0),
    }

    table = report.ratio_table(report.ratio_rows(results)).splitlines()

    assert len({len(line) for line in table}) == 1  # every line padded to the same width
    assert table[1].startswith("| ---")
    assert ": |" in table[1]
    size_line = next(line for line in table if line.startswith("| repository size after first backup"))
    cells = [cell.strip() for cell in size_line.strip("|").split("|")]
    assert cells[1:] == ["3.00 GiB", "2.00 GiB", "1.50", "≤ 1.00", "FAIL", "≤ 1.05", "FAIL"]
    first_line = next(line for line in table if line.startswith("| first backup, wall"))
    assert [cell.strip() for cell in first_line.strip("|").split("|")][1:4] == ["5.00 s", "10.0 s", "0.50"]


def test_formatters() -> None:
    assert report.format_seconds(1.234) == "1.23 s"
    assert report.format_seconds(123.45) == "123.5 s"
    assert report.format_bytes(1536 * 1024) == "1.5 MiB"
    assert report.format_kib(204800) == "200 MiB"
    assert report.format_ratio(None) == "n/a"
    assert report.ratio(1.0, 0.0) is None


def test_combine_takes_medians_over_repetitions_and_keeps_the_first_failure() -> None:
    def run(wall: float, restore_status: str) -> dict[str, dict[str, object]]:
        steps = {step: ok(wall, wall, 10.0) for step in report.STEPS}
        if restore_status != "ok":
            steps["restore"] = {"status": restore_status, "error": "bad", "wall_s": None}
        return {"restic": {**steps, "size": {"after_first": wall * 10, "after_churn": None}}}

    combined = summary.combine([run(1.0, "ok"), run(3.0, "fail"), run(2.0, "ok")])["restic"]

    assert combined["steps"]["first"]["wall_s"] == 2.0
    assert combined["steps"]["first"]["wall_all_s"] == [1.0, 3.0, 2.0]
    assert combined["steps"]["restore"]["status"] == "fail"
    assert combined["size"] == {"after_first": 20.0, "after_churn": None}


def test_write_report_replaces_only_the_generated_part(tmp_path: Path) -> None:
    path = tmp_path / "REPORT.md"
    report.write_report(path, "first table")
    text = path.read_text()
    assert "first table" in text
    assert "## Analysis" in text
    path.write_text(text.replace("(Hand-written.", "Snapkeep spends its time hashing. (Hand-written."))

    report.write_report(path, "second table")

    text = path.read_text()
    assert "second table" in text
    assert "first table" not in text
    assert "Snapkeep spends its time hashing." in text
    assert text.count(report.START_MARKER) == 1
    assert text.count(report.END_MARKER) == 1


def test_parse_collapsed_counts_self_and_inclusive_samples() -> None:
    lines = [
        "<module> (snapkeep/cli/main.py:10);backup (snapkeep/engine/archiver.py:50);hash (blake3.py:3) 7",
        "<module> (snapkeep/cli/main.py:10);backup (snapkeep/engine/archiver.py:51) 3",
        "garbage line",
    ]

    own, inclusive, total = profiling.parse_collapsed(lines)

    assert total == 10
    assert own["hash (blake3.py)"] == 7
    assert own["backup (snapkeep/engine/archiver.py)"] == 3  # two lines of one function merged
    assert inclusive["<module> (snapkeep/cli/main.py)"] == 10


def test_function_name_shortens_installed_paths() -> None:
    frame = "compress (/work/main/.venv/lib/python3.11/site-packages/zstandard/__init__.py:12)"
    assert profiling.function_name(frame) == "compress (zstandard/__init__.py)"
