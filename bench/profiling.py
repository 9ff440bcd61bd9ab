"""Where snapkeep's time goes: its first backup and its restore run under a sampling profiler.

py-spy (``pip install py-spy`` into the venv) samples every thread of the running process, native
stacks excluded, idle threads excluded; its collapsed stacks are reduced here to the functions with the
most samples, self and inclusive. Without py-spy the command runs under cProfile installed in every thread
(``python bench/profiling.py --child OUT -- ARGS``), which is slower and sums the threads' times.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")
TOP = 40


def py_spy() -> str | None:
    """The py-spy program beside this interpreter or on PATH, or None."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.is_file():
        return str(beside)
    return shutil.which("py-spy")


def profiler_command(command: list[str], raw_output: Path) -> tuple[list[str], str]:
    """(wrapped command, profiler name) that runs ``command`` under py-spy, or cProfile without it."""
    spy = py_spy()
    if spy is not None:
        wrapped = [spy, "record", "--rate", "100", "--format", "raw", "--output", str(raw_output), "--"]
        return wrapped + command, "py-spy"
    python = Path(command[0]).with_name("python")
    runner = [str(python if python.is_file() else sys.executable), __file__, "--child", str(raw_output), "--"]
    return runner + command[1:], "cProfile"


def function_name(frame: str) -> str:
    """``"read (snapkeep/engine/chunker.py:42)"`` -> ``"read (snapkeep/engine/chunker.py)"``."""
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    file = match.group("file")
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{match.group('function')} ({file})"


def parse_collapsed(lines: Iterable[str]) -> tuple[Counter[str], Counter[str], int]:
    """Self and inclusive sample counts per function from collapsed stacks (``a;b;c COUNT`` lines)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [function_name(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    return own, inclusive, total


def top_functions_text(raw_output: Path, title: str, top: int = TOP) -> str:
    """A plain-text ranking of the functions in py-spy's raw output."""
    own, inclusive, total = parse_collapsed(raw_output.read_text(errors="replace").splitlines())
    lines = [f"{title}", f"py-spy samples of non-idle threads (100/s, all threads summed): {total}", ""]
    for heading, counter in (("self (the function itself)", own), ("inclusive (with callees)", inclusive)):
        lines.append(f"top {top} by {heading}:")
        lines.append(f"{'samples':>8} {'share':>6}  function")
        for name, count in counter.most_common(top):
            lines.append(f"{count:>8} {100 * count / max(total, 1):>5.1f}%  {name}")
        lines.append("")
    return "\n".join(lines)


def _child(output: str, arguments: list[str]) -> int:
    """Run the snapkeep command line with cProfile in every thread; write the merged top functions."""
    import cProfile
    import io
    import pstats
    import threading

    profiles: list[cProfile.Profile] = []
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()
        try:
            original_run(self)
        finally:
            profile.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    from snapkeep.cli.main import main

    sys.argv = ["snapkeep", *arguments]
    main_profile = cProfile.Profile()
    code: int | str | None = 0
    main_profile.enable()
    try:
        main()
    except SystemExit as exit_request:
        code = exit_request.code
    finally:
        main_profile.disable()
    stats = pstats.Stats(main_profile)
    for profile in profiles:
        try:
            stats.add(profile)
        except (TypeError, ValueError):
            continue  # a thread still running has no stats yet
    buffer = io.StringIO()
    stats.stream = buffer  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(TOP)
    stats.sort_stats("cumulative").print_stats(TOP)
    Path(output).write_text("cProfile, every thread, times summed over threads\n" + buffer.getvalue())
    return code if isinstance(code, int) else 1


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--child" and sys.argv[3] == "--":
        sys.exit(_child(sys.argv[2], sys.argv[4:]))
    sys.exit("usage: profiling.py --child OUTPUT -- SNAPKEEP-ARGUMENTS")
