"""The key store: one random repository password per encrypted job, in ``<home>/keys/<job id>``.

snapkeep creates the password the first time an encrypted job runs and keeps it in a file of mode
0600 in a folder of mode 0700. ``snapkeep keys export JOB`` prints it, so the repository on the
destination can be opened with ``snapkeep repo ... --password-file`` even when the server and its
catalog are gone. Losing the file (and every export of it) loses the backups: say so to the operator.

``put`` stores a password that came from elsewhere (``snapkeep keys import``, ``snapkeep dr import``)
the same way; ``all`` lists every stored one (``dr export``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from snapkeep.errors import ConfigError, ConflictError, NotFoundError, ValidationError
from snapkeep.ids import is_id

PASSWORD_BYTES = 32
FOLDER = "keys"
#: the longest password ``put`` accepts (``keys export`` prints 64 hex characters)
MAX_PASSWORD = 1024


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

    def has(self, job_id: str) -> bool:
        """Whether ``job_id`` has a stored password."""
        return self.path(job_id).exists()

    def all(self) -> dict[str, str]:
        """Every stored password by job ID. Raises ConfigError when one cannot be read."""
        if not self.folder.is_dir():
            return {}
        return {
            entry.name: self.get(entry.name)
            for entry in sorted(self.folder.iterdir())
            if is_id(entry.name) and entry.is_file()
        }

    def put(self, job_id: str, password: str) -> bool:
        """Store ``password`` for ``job_id`` (0600); return False when that same password was already
        stored. Raises ValidationError for an empty, over-long or non-printable-ASCII password,
        ConflictError when ``job_id`` already has a different one (never replaced: backups made with
        it would be lost), ConfigError when the key folder cannot be written."""
        text = password.strip()
        if not text or len(text) > MAX_PASSWORD or not text.isascii() or not text.isprintable():
            raise ValidationError(
                field="password",
                problem=f"must be 1-{MAX_PASSWORD} printable ASCII characters on one line",
            )
        if self.path(job_id).exists():
            if self.get(job_id) == text:
                return False
            raise ConflictError(
                f"Backup Job {job_id} already has a different repository password in {self.folder}; "
                "it is never replaced"
            )
        self._write(job_id, text)
        if self.get(job_id) != text:
            raise ConflictError(f"Backup Job {job_id} got a different repository password meanwhile")
        return True

    def remove(self, job_id: str) -> None:
        """Remove the stored password of ``job_id`` (only to undo a ``put`` that a failed import made)."""
        with contextlib.suppress(FileNotFoundError):
            self.path(job_id).unlink()

    def get_or_create(self, job_id: str) -> str:
        """The password of ``job_id``, created (random, 0600) when it has none. Raises ConfigError
        when the key folder cannot be written."""
        path = self.path(job_id)
        if path.exists():
            return self.get(job_id)
        self._write(job_id, secrets.token_hex(PASSWORD_BYTES))
        return self.get(job_id)

    def _write(self, job_id: str, password: str) -> None:
        """Write ``password`` as ``job_id``'s file (0600) unless it has one already (the first kept)."""
        path = self.path(job_id)
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
