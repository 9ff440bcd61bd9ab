"""Issue 14 item 6: with neither --password-file nor $SNAPKEEP_PASSWORD, `snapkeep repo` asks for
the password on a terminal (a pseudo-terminal here, as a person would see it) and never echoes it;
without a terminal it fails with the message that says what to set."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

from tests.e2e.conftest import SNAPKEEP

PASSWORD = "correct horse battery staple"


def on_a_terminal(args: list[str], answers: list[str], timeout: float = 60.0) -> tuple[int, str]:
    """Run ``snapkeep ARGS`` on a new pseudo-terminal that is its controlling terminal (``pty.fork``,
    as a login shell would give it); type each answer when a prompt ends with ``:``.

    ``getpass`` turns echo off with TCSAFLUSH, which drops what was typed before: an answer typed
    too early is lost, so one that brings no new output within ``RETYPE`` seconds is typed again."""
    env = {key: value for key, value in os.environ.items() if key != "SNAPKEEP_PASSWORD"}
    pid, master = pty.fork()
    if pid == 0:  # the child: its stdin, stdout, stderr and /dev/tty are the pseudo-terminal
        os.execve(str(SNAPKEEP), [str(SNAPKEEP), *args], env)  # noqa: S606 (our own command, no shell)
    seen, pending, deadline = b"", list(answers), time.monotonic() + timeout
    typed: tuple[str, float, int] | None = None  # (answer, when, len(seen) then)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal: it is done
                break
            if not chunk:
                break
            seen += chunk
            if pending and seen.rstrip().endswith(b":"):
                time.sleep(0.2)  # let getpass switch echo off (and flush) before typing
                answer = pending.pop(0)
                os.write(master, answer.encode() + b"\n")
                typed = (answer, time.monotonic(), len(seen))
                seen += b"\n"
        elif typed is not None and len(seen) == typed[2] + 1 and time.monotonic() - typed[1] > RETYPE:
            os.write(master, typed[0].encode() + b"\n")  # flushed by getpass: type it again
            typed = (typed[0], time.monotonic(), typed[2])
    done, status = os.waitpid(pid, os.WNOHANG)
    if done == 0:  # the child outlived the answers: give it a moment, then never hang the suite
        time.sleep(1)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
    os.close(master)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


RETYPE = 2.0


def test_repo_asks_for_the_password_on_a_terminal_and_never_shows_it(tmp_path: Path) -> None:
    repo, source = str(tmp_path / "repo"), tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("hello\n")
    code, text = on_a_terminal(["repo", "init", repo], [PASSWORD, PASSWORD])
    assert code == 0, text
    assert "password for the new repository" in text
    code, text = on_a_terminal(["repo", "backup", repo, str(source)], [PASSWORD])
    assert code == 0, text
    assert "password for the repository at" in text
    assert PASSWORD not in text, "typed passwords are not echoed"
    code, text = on_a_terminal(["repo", "snapshots", repo], ["wrong"])
    assert code == 7, text  # WrongPasswordError
    piped = subprocess.run(
        [str(SNAPKEEP), "repo", "snapshots", repo],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={key: value for key, value in os.environ.items() if key != "SNAPKEEP_PASSWORD"},
        check=False,
    )
    assert piped.returncode == 7
    assert "a password is required" in piped.stderr


def test_progress_is_drawn_on_a_terminal_and_never_when_piped(tmp_path: Path) -> None:
    """Issue 14 item 5: a bar (with throughput and the time left) on a terminal; plain lines when
    the output is a pipe."""
    repo, source = str(tmp_path / "repo"), tmp_path / "src"
    source.mkdir()
    for number in range(40):
        (source / f"f{number}.bin").write_bytes(os.urandom(256 * 1024))
    assert (
        subprocess.run([str(SNAPKEEP), "repo", "init", repo, "--no-encryption"], check=False).returncode == 0
    )
    code, text = on_a_terminal(["repo", "backup", repo, str(source)], [])
    assert code == 0, text
    assert "\x1b[" in text, "a terminal gets the bar"
    piped = subprocess.run(
        [str(SNAPKEEP), "repo", "backup", repo, str(source)], capture_output=True, text=True, check=False
    )
    assert piped.returncode == 0, piped.stderr
    assert "\x1b[" not in piped.stdout + piped.stderr
