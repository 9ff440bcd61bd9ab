"""The command lines of each measured tool: init, backup, restore, version, and the environment they need.

Every tool keeps its caches and configuration under the benchmark's work folder, so runs are hermetic
and repeatable. A tool object knows its repository path and the label of its latest backup.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

PASSWORD = "bench-password-not-secret"
PROJECT = Path(__file__).resolve().parents[1]


class Tool:
    """One backup program. Subclasses fill in the command lines; ``latest`` is the last backup's label."""

    name = ""
    program = ""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.repository = work / f"repo-{self.name}"
        self.home = work / f"home-{self.name}"
        self.latest = ""

    def environment(self) -> dict[str, str]:
        """The process environment of every command: the caller's, plus the tool's own variables."""
        environment = dict(os.environ)
        environment.update(self.extra_environment())
        return environment

    def extra_environment(self) -> dict[str, str]:
        return {}

    def available(self) -> str:
        """Empty when the program can be run, else why not."""
        if shutil.which(self.program) is None and not Path(self.program).is_file():
            return f"{self.program} not found"
        return ""

    def version(self) -> str:
        """The program's version line, or why it could not be read."""
        try:
            completed = subprocess.run(
                self.version_command(), capture_output=True, text=True, env=self.environment(), timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"unknown ({error})"
        lines = (completed.stdout or completed.stderr).strip().splitlines()
        return lines[0] if lines else f"unknown (exit {completed.returncode})"

    def reset(self) -> None:
        """Forget every earlier run: delete the repository and the tool's caches."""
        for path in (self.repository, self.home):
            if path.exists():
                shutil.rmtree(path)
        self.home.mkdir(parents=True)
        self.latest = ""

    def version_command(self) -> list[str]:
        raise NotImplementedError

    def init_command(self) -> list[str]:
        raise NotImplementedError

    def backup_command(self, source: Path, label: str) -> list[str]:
        """The command that backs up ``source``; ``label`` names the run (first, nochange, churn)."""
        raise NotImplementedError

    def restore_command(self, target: Path) -> tuple[list[str], Path | None]:
        """(command, working folder) that restores the latest backup into ``target``."""
        raise NotImplementedError


class Snapkeep(Tool):
    """snapkeep's stand-alone repository commands: encrypted (Argon2id key), zstd level 3 by default."""

    name = "snapkeep"

    def __init__(self, work: Path) -> None:
        super().__init__(work)
        self.program = str(PROJECT / ".venv" / "bin" / "snapkeep")

    def extra_environment(self) -> dict[str, str]:
        return {"SNAPKEEP_PASSWORD": PASSWORD, "SNAPKEEP_HOME": str(self.home)}

    def version_command(self) -> list[str]:
        return [self.program, "--version"]

    def init_command(self) -> list[str]:
        return [self.program, "repo", "init", str(self.repository)]

    def backup_command(self, source: Path, label: str) -> list[str]:
        return [self.program, "repo", "backup", str(self.repository), str(source), "--tag", label]

    def restore_command(self, target: Path) -> tuple[list[str], Path | None]:
        return [self.program, "repo", "restore", str(self.repository), "latest", str(target)], None


class Restic(Tool):
    """restic with ``--compression auto`` (its default for repository format 2); always encrypted."""

    name = "restic"
    program = "restic"

    def extra_environment(self) -> dict[str, str]:
        return {
            "RESTIC_PASSWORD": PASSWORD,
            "RESTIC_REPOSITORY": str(self.repository),
            "RESTIC_CACHE_DIR": str(self.home / "cache"),
        }

    def version_command(self) -> list[str]:
        return ["restic", "version"]

    def init_command(self) -> list[str]:
        return ["restic", "init"]

    def backup_command(self, source: Path, label: str) -> list[str]:
        return ["restic", "backup", "--compression", "auto", "--tag", label, str(source)]

    def restore_command(self, target: Path) -> tuple[list[str], Path | None]:
        return ["restic", "restore", "latest", "--target", str(target)], None


class Borg(Tool):
    """BorgBackup with ``repokey`` encryption and ``zstd,3`` compression; single-threaded."""

    name = "borg"
    program = "borg"

    def extra_environment(self) -> dict[str, str]:
        return {
            "BORG_PASSPHRASE": PASSWORD,
            "BORG_BASE_DIR": str(self.home),
            "BORG_CONFIG_DIR": str(self.home / "config"),
            "BORG_CACHE_DIR": str(self.home / "cache"),
            "BORG_SECURITY_DIR": str(self.home / "security"),
            "BORG_KEYS_DIR": str(self.home / "keys"),
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_DISPLAY_PASSPHRASE": "no",
        }

    def version_command(self) -> list[str]:
        return ["borg", "--version"]

    def init_command(self) -> list[str]:
        return ["borg", "init", "-e", "repokey", str(self.repository)]

    def backup_command(self, source: Path, label: str) -> list[str]:
        return ["borg", "create", "--compression", "zstd,3", f"{self.repository}::{label}", str(source)]

    def restore_command(self, target: Path) -> tuple[list[str], Path | None]:
        return ["borg", "extract", f"{self.repository}::{self.latest}"], target


TOOLS: dict[str, type[Tool]] = {"snapkeep": Snapkeep, "restic": Restic, "borg": Borg}
