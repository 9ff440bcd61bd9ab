"""The command lines of each measured tool: init, backup, restore, version, and the environment they need.

Every tool keeps its caches and configuration under the benchmark's work folder, so runs are hermetic
and repeatable. A tool object knows its repository path and the label of its latest backup.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# --- remote targets: the same tools writing to SFTP and S3 servers on 127.0.0.1 -------------------


class RemoteTarget:
    """A test server of ``tests/servers.py`` (OpenSSH sshd or ``rclone serve s3``) on a free loopback
    port, and how snapkeep and restic reach a repository on it. ``start``/``stop`` run the server;
    ``folder(name)`` is where that repository's files are on this machine (for sizes and cleanup)."""

    name = ""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.server: object | None = None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.server is not None:
            self.server.__exit__(None, None, None)  # type: ignore[attr-defined]
            self.server = None

    def folder(self, name: str) -> Path:
        raise NotImplementedError

    def snapkeep_location(self, name: str) -> str:
        raise NotImplementedError

    def snapkeep_environment(self) -> dict[str, str]:
        raise NotImplementedError

    def restic_arguments(self, name: str) -> list[str]:
        raise NotImplementedError

    def restic_environment(self) -> dict[str, str]:
        return {}


def _servers_module() -> object:
    tests = str(PROJECT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import servers  # tests/servers.py: the servers the test suite uses

    return servers


class SftpTarget(RemoteTarget):
    """OpenSSH sshd; both tools log in with the same Ed25519 key and pin the server's host key."""

    name = "sftp"

    def start(self) -> None:
        servers: Any = _servers_module()
        server = servers.SshServer()
        server.__enter__()
        self.server = server
        self.key_file = self.work / "sftp-client-key"
        self.key_file.write_text(server.private_key)
        self.key_file.chmod(0o600)

    def folder(self, name: str) -> Path:
        return Path(self._server.data) / name

    @property
    def _server(self) -> Any:
        assert self.server is not None, "the SFTP server is not started"
        return self.server

    def snapkeep_location(self, name: str) -> str:
        server = self._server
        return f"sftp://{server.username}@127.0.0.1:{server.port}/{str(self.folder(name)).lstrip('/')}"

    def snapkeep_environment(self) -> dict[str, str]:
        return {
            "SNAPKEEP_SFTP_KEY_FILE": str(self.key_file),
            "SNAPKEEP_SFTP_FINGERPRINT": self._server.fingerprint,
        }

    def restic_arguments(self, name: str) -> list[str]:
        server = self._server
        ssh = (
            f"ssh {server.username}@127.0.0.1 -p {server.port} -i {self.key_file} -o IdentitiesOnly=yes "
            "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -s sftp"
        )
        return ["-r", f"sftp:{server.username}@127.0.0.1:{self.folder(name)}", "-o", f"sftp.command={ssh}"]


class S3Target(RemoteTarget):
    """``rclone serve s3`` with one bucket, ``bench``; repositories are prefixes in it."""

    name = "s3"
    bucket = "bench"

    def start(self) -> None:
        servers: Any = _servers_module()
        server = servers.RcloneS3Server()
        server.__enter__()
        server.make_bucket(self.bucket)
        self.server = server

    @property
    def _server(self) -> Any:
        assert self.server is not None, "the S3 server is not started"
        return self.server

    def folder(self, name: str) -> Path:
        return Path(self._server.root) / self.bucket / name

    def snapkeep_location(self, name: str) -> str:
        return f"s3+http://127.0.0.1:{self._server.port}/{self.bucket}/{name}"

    def snapkeep_environment(self) -> dict[str, str]:
        server = self._server
        return {"SNAPKEEP_S3_ACCESS_KEY": server.access_key, "SNAPKEEP_S3_SECRET_KEY": server.secret_key}

    def restic_arguments(self, name: str) -> list[str]:
        return ["-r", f"s3:http://127.0.0.1:{self._server.port}/{self.bucket}/{name}"]

    def restic_environment(self) -> dict[str, str]:
        server = self._server
        return {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}


class RemoteSnapkeep(Snapkeep):
    """snapkeep's repository commands on a ``RemoteTarget`` location instead of a local folder."""

    def __init__(self, work: Path, target: RemoteTarget) -> None:
        self.name = f"snapkeep-{target.name}"
        super().__init__(work)
        self.target = target
        self.repository = target.folder(self.name)
        self.location = target.snapkeep_location(self.name)

    def extra_environment(self) -> dict[str, str]:
        return {**super().extra_environment(), **self.target.snapkeep_environment()}

    def init_command(self) -> list[str]:
        return [self.program, "repo", "init", self.location]

    def backup_command(self, source: Path, label: str) -> list[str]:
        return [self.program, "repo", "backup", self.location, str(source), "--tag", label]

    def restore_command(self, target: Path) -> tuple[list[str], Path | None]:
        return [self.program, "repo", "restore", self.location, "latest", str(target)], None


class RemoteRestic(Restic):
    """restic on the same ``RemoteTarget`` (``sftp:`` through ssh with the same key, or ``s3:http://``)."""

    def __init__(self, work: Path, target: RemoteTarget) -> None:
        self.name = f"restic-{target.name}"
        super().__init__(work)
        self.target = target
        self.repository = target.folder(self.name)
        self.arguments = target.restic_arguments(self.name)

    def extra_environment(self) -> dict[str, str]:
        environment = {**super().extra_environment(), **self.target.restic_environment()}
        environment.pop("RESTIC_REPOSITORY", None)
        return environment

    def init_command(self) -> list[str]:
        return ["restic", *self.arguments, "init"]

    def backup_command(self, source: Path, label: str) -> list[str]:
        return ["restic", *self.arguments, "backup", "--compression", "auto", "--tag", label, str(source)]

    def restore_command(self, target: Path) -> tuple[list[str], Path | None]:
        return ["restic", *self.arguments, "restore", "latest", "--target", str(target)], None


REMOTE_TARGETS: dict[str, type[RemoteTarget]] = {"sftp": SftpTarget, "s3": S3Target}
REMOTE_TOOLS: dict[str, type[RemoteSnapkeep] | type[RemoteRestic]] = {
    "snapkeep": RemoteSnapkeep,
    "restic": RemoteRestic,
}
