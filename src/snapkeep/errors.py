"""One rooted exception tree for snapkeep.

Every error carries a message template, an exit code (used by the CLI, in one place) and is turned
into an API envelope by the dispatcher (in one place). Foreign exceptions (OSError, paramiko,
botocore, SQLAlchemy) are translated into these at the edge that caught them.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SnapkeepError(Exception):
    """Root of every error snapkeep raises on purpose."""

    template: ClassVar[str] = "{message}"
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str | None = None, **fields: Any) -> None:
        self.fields = fields
        if message is None:
            message = self.template.format(**fields)
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


# --- configuration and input -------------------------------------------------------------


class ConfigError(SnapkeepError):
    """The data directory, a setting or an environment variable is wrong."""

    exit_code = 2


class ValidationError(SnapkeepError):
    """Input that does not satisfy the contract; names the field path and the problem."""

    template = "{field}: {problem}"
    exit_code = 2

    def __init__(self, message: str | None = None, *, field: str = "", problem: str = "", **fields: Any):
        if message is None and field:
            message = f"{field}: {problem}"
        elif message is None:
            message = problem
        super().__init__(message, field=field, problem=problem, **fields)
        self.field = field
        self.problem = problem


class ParameterError(ValidationError):
    """A request parameter string (bracket syntax, encoding, size) cannot be decoded."""


class NotFoundError(SnapkeepError):
    """An object named by ID does not exist."""

    template = "{kind} not found: {ident}"
    exit_code = 2


class ConflictError(SnapkeepError):
    """The request is valid but the current state refuses it (in use, already running)."""

    exit_code = 2


class AuthError(SnapkeepError):
    """Missing or wrong API token."""

    template = "Authentication failed: {reason}"
    exit_code = 3


# --- catalog -----------------------------------------------------------------------------------


class AccessDenied(SnapkeepError):
    """The caller's role or ownership does not allow the call (the API answers "permission denied:
    FUNCTION"; ``reason`` goes to the service's log only)."""

    template = "permission denied: {reason}"
    exit_code = 3

    def __init__(self, reason: str) -> None:
        super().__init__(reason=reason)
        self.reason = reason


class CatalogError(SnapkeepError):
    """The catalog database cannot be opened, migrated or written."""

    exit_code = 4


# --- storage (fatal for a run: a destination that stops answering fails the job) -------------


class StorageError(SnapkeepError):
    """A destination failed. ``transient`` errors may succeed when retried."""

    exit_code = 5
    transient: ClassVar[bool] = False


class TransientStorageError(StorageError):
    """A destination failed in a way that may succeed on retry (timeout, dropped connection)."""

    transient = True


class ObjectNotFoundError(StorageError):
    """The named object does not exist in the store."""

    template = "object not found: {name}"


class InvalidNameError(StorageError):
    """An object name that the store interface does not allow."""

    template = "invalid object name {name!r}: {reason}"


class ReadOnlyError(StorageError):
    """A write was attempted on a read-only store."""

    template = "store is read-only: cannot {operation} {name}"


class StorageFullError(StorageError):
    """The destination has no space (or quota) left."""


class PermissionDeniedError(StorageError):
    """The destination refused access (credentials, permissions)."""


class HostKeyChangedError(StorageError):
    """The SSH server offered a host key other than the one recorded for the destination."""

    template = (
        "host key of {host} changed: expected {expected}, the server offered {offered}; "
        "if the server was reinstalled, clear the destination's saved fingerprint"
    )


class DestinationNotFoundError(StorageError):
    """The destination itself (an S3 bucket, an SFTP base folder) does not exist."""


# --- engine -----------------------------------------------------------------------------------


class RepositoryError(SnapkeepError):
    """The repository is missing, of an unknown version or structurally wrong."""

    exit_code = 6


class RepositoryNotFoundError(RepositoryError):
    template = "no repository at {location}"


class WrongPasswordError(RepositoryError):
    template = "wrong password for the repository at {location}"
    exit_code = 7


class IntegrityError(RepositoryError):
    """Stored data does not match its ID or its authentication tag: never returned silently."""

    template = "integrity check failed for {what}: {reason}"
    exit_code = 8


class BlobNotFoundError(IntegrityError):
    """A blob the caller needs is not in the repository's index."""

    template = "blob {blob} is not in the index"


class LockError(RepositoryError):
    """The repository is locked by another process."""

    template = "repository is locked: {reason}"
    exit_code = 9


class UnsafePathError(RepositoryError):
    """A tree entry or requested path would write outside the restore target."""

    template = "unsafe path {path!r}: {reason}"
    exit_code = 8


class BackupAbortedError(SnapkeepError):
    """A backup was stopped on request; nothing was committed."""

    exit_code = 10


# --- sources (per-account failures: the run goes on with the other accounts) ----------------------


class DatabaseError(SnapkeepError):
    """A database server or client command failed (discovery, size, users, restore)."""

    template = "{engine} {what}: {reason}"
    exit_code = 11


class DumpError(DatabaseError):
    """A database dump did not complete (non-zero exit, killed, missing trailer): never stored as good."""

    template = "dump of {engine} database {database!r} failed: {reason}"
