"""The key store: one random repository password per encrypted job, in ``<home>/keys/<job id>``.

snapkeep creates the password the first time an encrypted job runs and keeps it in a file of mode
0600 in a folder of mode 0700. ``snapkeep keys export JOB`` prints it, so the repository on the
destination can be opened with ``snapkeep repo ... --password-file`` even when the server and its
catalog are gone. Losing the file (and every export of it) loses the backups: say so to the operator.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from snapkeep.errors import ConfigError, NotFoundError, ValidationError
from snapkeep.ids import is_id

PASSWORD_BYTES = 32
FOLDER = "keys"


class KeyStore:
    """The passwords of the encrypted jobs of one data directory."""

    def __init__(self, home: Path) -> None:
        self.folder = Path(home) / FOLDER

    def path(self, job_id: str) -> Path:
        """Where the password of ``job_id`` lives. Raises ValidationError for a malformed job ID."""
        if not is_id(job_id):
            raise ValidationError(
                field="job", problem=f"must be a job ID of 24 lowercase hex characters (got {job_id!r})"
            )
        return self.folder / job_id

    def get(self, job_id: str) -> str:
        """The stored password of ``job_id``. Raises NotFoundError when the job has none yet,
        ConfigError when the file cannot be read."""
        path = self.path(job_id)
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise NotFoundError(
                f"no repository password for Backup Job {job_id} in {self.folder} "
                "(an encrypted job gets one on its first run)"
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read the repository password {path}: {error}") from None
        if not text:
            raise ConfigError(f"the repository password file {path} is empty")
        return text

    def get_or_create(self, job_id: str) -> str:
        """The password of ``job_id``, created (random, 0600) when it has none. Raises ConfigError
        when the key folder cannot be written."""
        path = self.path(job_id)
        if path.exists():
            return self.get(job_id)
        password = secrets.token_hex(PASSWORD_BYTES)
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.folder, 0o700)
            temporary = self.folder / f".{job_id}.{secrets.token_hex(4)}.tmp"
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(descriptor, (password + "\n").encode("ascii"))
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            try:
                # link, not rename: two first runs at once keep the first password, never replace it
                os.link(temporary, path)
            except FileExistsError:
                pass
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
        except OSError as error:
            raise ConfigError(
                f"cannot write the repository password in {self.folder}: {error.strerror}"
            ) from None
        return self.get(job_id)
