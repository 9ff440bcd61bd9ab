"""Run one command as a child process and measure it: wall time, CPU time (user + sys) and peak RSS.

Wall and CPU come from ``os.wait4``: the kernel's rusage of the child, every thread included (and the
children it waited for itself). Peak RSS needs care: Linux carries the peak RSS of the address space a
process was forked (or vforked) from into its ``ru_maxrss`` across ``exec``, so a child of this Python
harness never reports less than the harness's own peak. The command therefore runs under GNU
``/usr/bin/time``, a small C program whose fork gives the tool a clean start, and its ``%M`` (the tool's
own ``ru_maxrss``) is the figure kept. Without GNU time the raw ``wait4`` figure is used and marked.

A tool may restore or back up in several processes (snapkeep's local restore does): ``%M`` is then the
largest single process, not what the tool holds. So the harness also samples the summed resident size
of every process below the one it started (``/proc/<pid>/task/<tid>/children``, every
``TREE_SAMPLE_INTERVAL``) and keeps the larger of the two figures (``rss_tree_peak_kib`` in ``extra``).
A child with its parent's command line has not run a program of its own yet (between ``fork`` and
``exec``: a tool starting ``ssh``) or is a fork working on in the parent's memory: its resident set
is the parent's pages, shared, so only its private pages are added (``Private_Clean`` and
``Private_Dirty`` of ``/proc/<pid>/smaps_rollup``). Counted whole, one such moment added the
parent's 84 MiB a second time to a backup to SFTP (225 MiB sampled, 141 MiB for the largest
process by GNU time, one 8 MiB ``ssh`` client).
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Measurement:
    """What one command did. ``returncode`` is negative when a signal ended it (``-9`` after a timeout)."""

    command: list[str]
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_kib: int
    stdout_path: str = ""
    stderr_path: str = ""
    timed_out: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_s(self) -> float:
        """User plus system CPU seconds of the child and its threads."""
        return self.user_s + self.sys_s

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def error_text(self, lines: int = 6) -> str:
        """A short description of a failure: exit status and the last lines of stderr (then stdout)."""
        if self.ok:
            return ""
        if "start_error" in self.extra:
            return f"could not start: {self.extra['start_error']}"
        if self.timed_out:
            head = f"timed out after {self.wall_s:.0f} s"
        elif self.returncode < 0:
            head = f"killed by signal {-self.returncode}"
        else:
            head = f"exit status {self.returncode}"
        tail = _tail(self.stderr_path, lines) or _tail(self.stdout_path, lines)
        return f"{head}: {tail}" if tail else head

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cpu_s"] = self.cpu_s
        return data


def _tail(path: str, lines: int) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def run_measured(
    command: Sequence[str | os.PathLike[str]],
    *,
    log_prefix: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> Measurement:
    """Run ``command`` to completion and return its measurement; never raises for a failing command.

    stdout and stderr go to ``<log_prefix>.out`` / ``.err`` (files, so a chatty tool never blocks on a pipe).
    A command still running after ``timeout`` seconds is killed with its whole process group.
    Raises OSError only when the command cannot be started at all (e.g. the program does not exist).
    """
    argv = [os.fspath(part) for part in command]
    log_prefix.parent.mkdir(parents=True, exist_ok=True)
    stdout_path = Path(f"{log_prefix}.out")
    stderr_path = Path(f"{log_prefix}.err")
    if shutil.which(argv[0]) is None:
        raise FileNotFoundError(errno.ENOENT, "no such program", argv[0])
    rss_path = Path(f"{log_prefix}.rss")
    rss_path.unlink(missing_ok=True)
    time_program = gnu_time()
    launched = [time_program, "--quiet", "-o", str(rss_path), "-f", "%M", *argv] if time_program else argv
    killed = threading.Event()
    reaped = threading.Lock()
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(
            launched,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )

        def kill() -> None:
            with reaped:  # never signal a process group whose leader was already reaped
                if process.returncode is None:
                    killed.set()
                    os.killpg(process.pid, signal.SIGKILL)

        sampler = TreeRss(process.pid)
        sampler.start()
        timer = threading.Timer(timeout, kill) if timeout else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        with reaped:
            process.returncode = os.waitstatus_to_exitcode(status)
        if timer is not None:
            timer.cancel()
        sampler.stop()
    measured_rss = _read_time_rss(rss_path) if time_program else None
    measurement = Measurement(
        command=argv,
        returncode=process.returncode,
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        max_rss_kib=measured_rss if measured_rss is not None else int(usage.ru_maxrss),  # KiB on Linux
        stdout_path=str(stdout_path),
        stderr_path=str(stderr_path),
        timed_out=killed.is_set(),
    )
    measurement.extra["rss_source"] = "GNU time %M" if measured_rss is not None else "wait4 (harness floor)"
    measurement.extra["rss_tree_peak_kib"] = sampler.peak_kib
    if sampler.peak_kib > measurement.max_rss_kib:
        measurement.max_rss_kib = sampler.peak_kib
        measurement.extra["rss_source"] = "summed over the tool's processes (sampled)"
    return measurement


#: How often ``TreeRss`` sums the resident sizes of a tool's processes.
TREE_SAMPLE_INTERVAL = 0.02


class TreeRss:
    """Samples the summed VmRSS of every process below ``pid`` (not ``pid`` itself, which is GNU
    time when there is one) until ``stop``; ``peak_kib`` is the largest sum seen."""

    def __init__(self, pid: int, *, include_self: bool = False) -> None:
        self.pid = pid
        self.include_self = include_self
        self.peak_kib = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-tree-rss", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self.peak_kib = max(self.peak_kib, self.sample())
            self._stopped.wait(TREE_SAMPLE_INTERVAL)

    def sample(self) -> int:
        """The summed VmRSS (KiB) of the processes below ``pid`` now (0 when they are gone)."""
        total = 0
        pending: list[tuple[int, bytes | None]] = [(self.pid, None)]
        seen: set[int] = set()
        while pending:
            pid, parent_command = pending.pop()
            if pid in seen:
                continue
            seen.add(pid)
            command = _command_line(pid)
            if pid != self.pid or self.include_self:
                forked = parent_command is not None and command == parent_command
                total += _private_kib(pid) if forked else _vm_rss_kib(pid)
            pending.extend((child, command) for child in _children(pid))
        return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children") as handle:
                found.extend(int(part) for part in handle.read().split())
        except (OSError, ValueError):
            continue
    return found


def _command_line(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _private_kib(pid: int) -> int:
    """The pages only ``pid`` holds (KiB); its whole resident set when that cannot be read."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return _vm_rss_kib(pid)
    return total


def _vm_rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def gnu_time() -> str | None:
    """The GNU ``time`` program (``apt-get install time``), or None when there is none."""
    for candidate in ("/usr/bin/time", shutil.which("time")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _read_time_rss(path: Path) -> int | None:
    """The ``%M`` figure GNU time wrote last in ``path`` (it may write a status line before it)."""
    try:
        lines = path.read_text().split()
    except OSError:
        return None
    return int(lines[-1]) if lines and lines[-1].isdigit() else None


def failed_to_start(command: Sequence[str | os.PathLike[str]], error: OSError) -> Measurement:
    """A measurement standing for a command that could not be started (missing program, bad cwd)."""
    measurement = Measurement([os.fspath(part) for part in command], 127, 0.0, 0.0, 0.0, 0)
    measurement.extra["start_error"] = f"{type(error).__name__}: {error}"
    return measurement
