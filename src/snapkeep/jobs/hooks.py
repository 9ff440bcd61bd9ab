"""Hooks (API.md section 5): run the scripts an administrator attached before and after backups,
restores and account backups, and tell the runner what their exit codes mean.

Interface (for the runner)
--------------------------
``select_hooks(hooks, position=HookPosition.BACKUP, stage=HookStage.PRE, job_id=...)``
    the hook documents that apply, in run order (name, then ID): enabled, of that position and stage,
    whose ``data_list`` is empty (every job) or names the job.
``run_stage(hooks, context, clock=SYSTEM) -> StageOutcome``
    runs them one after another. ``outcome.verdict`` is OK, FAILED (a pre hook exited non-zero: abort
    the run with status 103 and raise an alert), SKIPPED (a pre hook exited 75: status 103 with
    message "skipped by hook", no alert) or WARNING (a post hook failed: log a warning, the status stands).
    Pre hooks stop at the first that fails or skips; post hooks all run. ``outcome.log_lines`` are
    ``(level, text)`` pairs for the run's log (hook, exit code, its output).
``HookContext``
    the values a hook gets: positional arguments, ``SNAPKEEP_*`` environment variables, and the same
    values as one JSON object on stdin (lower-case keys without the prefix; numbers as numbers,
    destinations as a list). Post hooks also get the queue status (100-104) as the last argument.

Before every run the script is checked against the trust rule of ``jobs.hook_scripts`` (absolute plain
path, a regular file owned by root or the service's user, nothing on the way writable by group or
others); a script that fails it is not run and counts as a hook that could not start (pre: the run
aborts with 103 and an alert; post: a warning), with the reason in the run's log.

A hook script runs directly (it must be executable), in its own process group, with the server's
environment minus any inherited ``SNAPKEEP_*`` variable; its stdout and stderr are captured together,
bounded to ``OUTPUT_LIMIT`` bytes. When its ``timeout`` passes the whole group gets SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import selectors
import signal
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from snapkeep.clock import SYSTEM, Clock
from snapkeep.jobs.codes import HookPosition, HookStage, LogLevel, QueueStatus
from snapkeep.jobs.hook_scripts import UnsafeScript, open_script

log = logging.getLogger(__name__)

EXIT_SKIP = 75  # EX_TEMPFAIL: "not now": the run is skipped quietly
SKIPPED_MESSAGE = "skipped by hook"
OUTPUT_LIMIT = 64 * 1024
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL on timeout
DRAIN_GRACE = 1.0  # seconds to keep reading after the script exits (children holding the pipe)


class Verdict(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    WARNING = "warning"
    STOPPED = "stopped"  # a pre hook killed because the run was asked to stop


@dataclass(frozen=True)
class HookContext:
    """What a hook is told about the run. Backup Account hooks use ``account_id`` and ``username``."""

    position: int
    stage: int
    job_id: str
    log_id: str
    job_name: str = ""
    job_type: int = 0
    contains: int = 0
    structure: int = 0
    destinations: Sequence[str] = ()
    start_time: int = 0
    account_id: str = ""
    username: str = ""
    status: int | None = None

    def values(self) -> dict[str, Any]:
        """The named values for this position and stage, in argument order (then the stage)."""
        if self.position == HookPosition.BACKUP_ACCOUNT:
            values: dict[str, Any] = {
                "job_id": self.job_id,
                "account_id": self.account_id,
                "username": self.username,
                "log_id": self.log_id,
            }
        else:
            values = {
                "job_id": self.job_id,
                "job_name": self.job_name,
                "job_type": self.job_type,
                "contains": self.contains,
                "structure": self.structure,
                "destinations": list(self.destinations),
                "start_time": self.start_time,
                "log_id": self.log_id,
            }
        if self.stage == HookStage.POST:
            values["status"] = self.status if self.status is not None else 0
        return values

    def arguments(self) -> list[str]:
        """Positional arguments 1..N as strings (destinations comma-separated)."""
        return [_text(value) for value in self.values().values()]

    def environment(self) -> dict[str, str]:
        """``SNAPKEEP_*`` variables: the same values, plus ``SNAPKEEP_HOOK_STAGE``."""
        variables = {"SNAPKEEP_HOOK_STAGE": HookStage.label_of(self.stage)}
        for key, value in self.values().items():
            variables[f"SNAPKEEP_{key.upper()}"] = _text(value)
        return variables

    def json_input(self) -> bytes:
        """The JSON object written to the hook's stdin."""
        document = {"hook_stage": HookStage.label_of(self.stage), **self.values()}
        return json.dumps(document, sort_keys=True).encode("utf-8") + b"\n"


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


@dataclass(frozen=True)
class HookResult:
    """One hook's run: exit code (None when it could not start or was killed), output, duration."""

    hook_id: str
    name: str
    exit_code: int | None
    output: str
    seconds: float
    timed_out: bool = False
    error: str = ""
    truncated: int = 0
    stopped: bool = False

    def describe(self) -> str:
        if self.error:
            return self.error
        if self.stopped:
            return f"was killed after {self.seconds:.0f} s: the run was asked to stop"
        if self.timed_out:
            return f"timed out after {self.seconds:.0f} s and was killed"
        return f"exited {self.exit_code} after {self.seconds:.1f} s"


@dataclass
class StageOutcome:
    """What the hooks of one stage tell the runner."""

    verdict: Verdict = Verdict.OK
    results: list[HookResult] = field(default_factory=list)
    log_lines: list[tuple[LogLevel, str]] = field(default_factory=list)
    message: str = ""

    @property
    def status(self) -> int | None:
        """The queue status the run ends with because of the hooks (103), or None to go on."""
        stopping = (Verdict.FAILED, Verdict.SKIPPED, Verdict.STOPPED)
        return QueueStatus.ABORTED if self.verdict in stopping else None

    @property
    def alert(self) -> bool:
        """Whether the runner should raise an alert (a failing pre hook only)."""
        return self.verdict is Verdict.FAILED


def select_hooks(
    hooks: Iterable[Mapping[str, Any]], *, position: int, stage: int, job_id: str
) -> list[Mapping[str, Any]]:
    """The enabled hooks of ``position`` and ``stage`` that apply to ``job_id``, in run order."""
    chosen = [
        hook
        for hook in hooks
        if not hook.get("disabled")
        and int(hook.get("position", 0)) == position
        and int(hook.get("position_type", 0)) == stage
        and (not hook.get("data_list") or job_id in hook["data_list"])
    ]
    return sorted(chosen, key=lambda hook: (str(hook.get("name", "")), str(hook.get("_id", ""))))


def _environment(context: HookContext) -> dict[str, str]:
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("SNAPKEEP_")}
    return {**inherited, **context.environment()}


def _kill_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def run_hook(
    hook: Mapping[str, Any],
    context: HookContext,
    *,
    clock: Clock = SYSTEM,
    stopping: Callable[[], bool] | None = None,
) -> HookResult:
    """Run one hook script to completion, timeout, or until ``stopping()`` says the run was asked to
    stop (its process group is then killed as on a timeout). Never raises for the script's own
    failures: a script that cannot start gives a result with ``error`` set and no exit code."""
    ident, name = str(hook.get("_id", "")), str(hook.get("name", ""))
    script = str(hook["script"])
    timeout = float(hook.get("timeout") or 3600)
    started = clock.monotonic()
    try:  # checked again before every run: the file or a folder may have changed since it was saved
        real, descriptor = open_script(script)
    except UnsafeScript as unsafe:
        return HookResult(ident, name, None, "", 0.0, error=f"refused to run {script}: {unsafe.reason}")
    try:
        process = subprocess.Popen(
            [script, *context.arguments()],
            executable=real,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=_environment(context),
            cwd="/",
            start_new_session=True,
        )
    except OSError as error:
        reason = error.strerror or str(error)
        return HookResult(ident, name, None, "", 0.0, error=f"cannot run {script}: {reason}")
    finally:
        os.close(descriptor)
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        process.stdin.write(context.json_input())
        process.stdin.close()
    except BrokenPipeError:  # the script exited without reading: its exit code decides
        pass
    captured = bytearray()
    dropped = 0
    timed_out = stopped = False
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            now = clock.monotonic()
            if now - started >= timeout:
                timed_out = True
                break
            if stopping is not None and exited_at is None and stopping():
                stopped = True
                break
            if process.poll() is not None:
                exited_at = exited_at if exited_at is not None else now
                if now - exited_at >= DRAIN_GRACE:
                    break
            if not selector.select(timeout=min(0.1, max(0.0, timeout - (now - started)))):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            room = OUTPUT_LIMIT - len(captured)
            captured += chunk[:room]
            dropped += max(0, len(chunk) - max(room, 0))
    if timed_out or stopped:
        _kill_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=KILL_GRACE)
        _kill_group(process, signal.SIGKILL)
    code = process.wait()
    process.stdout.close()
    seconds = clock.monotonic() - started
    output = captured.decode("utf-8", errors="replace")
    killed = timed_out or stopped
    return HookResult(ident, name, None if killed else code, output, seconds, timed_out, "", dropped, stopped)


def _judge(result: HookResult, stage: int) -> Verdict:
    if result.stopped:
        return Verdict.STOPPED
    if result.exit_code == 0:
        return Verdict.OK
    if stage == HookStage.POST:
        return Verdict.WARNING
    if result.exit_code == EXIT_SKIP:
        return Verdict.SKIPPED
    return Verdict.FAILED


def _log_lines(result: HookResult, context: HookContext, verdict: Verdict) -> list[tuple[LogLevel, str]]:
    where = f"{HookStage.label_of(context.stage)} {HookPosition.label_of(context.position)}"
    level = {
        Verdict.OK: LogLevel.INFO,
        Verdict.SKIPPED: LogLevel.INFO,
        Verdict.WARNING: LogLevel.WARNING,
    }.get(verdict, LogLevel.ERROR)
    lines = [(level, f"{where} hook {result.name!r} ({result.hook_id}) {result.describe()}")]
    for line in result.output.splitlines():
        lines.append((LogLevel.INFO, f"  | {line}"))
    if result.truncated:
        lines.append((LogLevel.WARNING, f"  | ... {result.truncated} more bytes of output not kept"))
    return lines


def run_stage(
    hooks: Sequence[Mapping[str, Any]],
    context: HookContext,
    *,
    clock: Clock = SYSTEM,
    stopping: Callable[[], bool] | None = None,
) -> StageOutcome:
    """Run ``hooks`` (already selected, in order) for ``context`` and judge them. Never raises for a
    hook's failure; see the module docstring for the verdicts. A pre hook is killed when
    ``stopping()`` says the run was asked to stop (stopQueueGroup); post hooks always run to the end
    (they may be what brings a service back after a stopped run)."""
    outcome = StageOutcome()
    watch = stopping if context.stage == HookStage.PRE else None
    for hook in hooks:
        result = run_hook(hook, context, clock=clock, stopping=watch)
        verdict = _judge(result, context.stage)
        outcome.results.append(result)
        outcome.log_lines.extend(_log_lines(result, context, verdict))
        if verdict is Verdict.OK:
            continue
        log.info("hook %s (%s): %s", result.name, result.hook_id, result.describe())
        if verdict is Verdict.WARNING:
            outcome.verdict = Verdict.WARNING
            outcome.message = f"post hook {result.name!r} {result.describe()}"
            continue
        outcome.verdict = verdict
        if verdict is Verdict.SKIPPED:
            outcome.message = SKIPPED_MESSAGE
        elif verdict is Verdict.STOPPED:
            outcome.message = f"stopped on request during pre hook {result.name!r}"
        else:
            outcome.message = f"aborted: pre hook {result.name!r} {result.describe()}"
        break
    return outcome


def run_job_stage(
    all_hooks: Iterable[Mapping[str, Any]],
    job: Mapping[str, Any],
    *,
    position: int,
    stage: int,
    log_id: str,
    start_time: int,
    status: int | None = None,
    clock: Clock = SYSTEM,
    stopping: Callable[[], bool] | None = None,
) -> StageOutcome:
    """Select the hooks of ``position``/``stage`` that apply to ``job`` and run them with the job's
    values (Backup and Restore hooks). ``job`` may be empty for a restore whose job is gone: then
    only hooks meant for every job run. Never raises for a hook's failure."""
    job_id = str(job.get("_id", ""))
    chosen = select_hooks(all_hooks, position=position, stage=stage, job_id=job_id)
    if not chosen:
        return StageOutcome()
    context = HookContext(
        position=position,
        stage=stage,
        job_id=job_id,
        log_id=log_id,
        job_name=str(job.get("name", "")),
        job_type=int(job.get("type", 0)),
        contains=int(job.get("contains", 0)),
        structure=int(job.get("structure", 0)),
        destinations=list(job.get("destination", [])),
        start_time=start_time,
        status=status,
    )
    return run_stage(chosen, context, clock=clock, stopping=stopping)
