"""The key store: one random repository password per encrypted job, sealed in the catalog.

snapkeep creates the password the first time an encrypted job runs and keeps it in the catalog's
``job_keys`` table, sealed with the master key (``jobs.sealing``; purpose ``job-key/<job id>``, so a
sealed key moved to another job does not open). A copy of the catalog alone reveals no key; the
catalog *and* the master key do. ``snapkeep keys export JOB`` prints a key, so the repository on
the destination can be opened with ``snapkeep repo ... --password-file`` even when the server and its
catalog are gone. Losing the key (and every export of it) loses the backups: say so to the operator.

``put`` stores a password that came from elsewhere (``snapkeep keys import``, ``snapkeep dr import``)
the same way; ``all`` lists every stored one (``dr export``). Until catalog version 7 the keys were
files in ``<home>/keys/``: ``import_key_files`` seals them into the catalog, then removes the files
(``jobs.seal_catalog`` does it when the catalog is opened).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from pathlib import Path

from sqlalchemy import delete, select

from snapkeep.errors import CatalogError, ConfigError, ConflictError, NotFoundError, ValidationError
from snapkeep.ids import is_id
from snapkeep.jobs import sealing
from snapkeep.jobs.catalog import Catalog, Transaction
from snapkeep.jobs.migrations import schema

log = logging.getLogger(__name__)

PASSWORD_BYTES = 32
#: the folder the keys lived in before catalog version 7 (migrated on open)
FOLDER = "keys"
#: the longest password ``put`` accepts (``keys export`` prints 64 hex characters)
MAX_PASSWORD = 1024


def purpose(job_id: str) -> str:
    """The sealing purpose of ``job_id``'s key."""
    return f"job-key/{job_id}"


def check_id(job_id: str) -> str:
    """``job_id`` when it is a job ID; ValidationError otherwise."""
    if not is_id(job_id):
        raise ValidationError(
            field="job", problem=f"must be a job ID of 24 lowercase hex characters (got {job_id!r})"
        )
    return job_id


def check_password(password: str) -> str:
    """``password`` without surrounding blanks; ValidationError when it is empty, over-long or not
    printable ASCII on one line."""
    text = password.strip()
    if not text or len(text) > MAX_PASSWORD or not text.isascii() or not text.isprintable():
        raise ValidationError(
            field="password",
            problem=f"must be 1-{MAX_PASSWORD} printable ASCII characters on one line",
        )
    return text


# --- rows (inside a caller's transaction) ---------------------------------------------------------


def read_sealed(tx: Transaction, job_id: str) -> str | None:
    """The sealed token stored for ``job_id``, or None."""
    table = schema.job_keys
    value = tx.connection.execute(select(table.c.sealed).where(table.c.job_id == job_id)).scalar()
    return None if value is None else str(value)


def insert_sealed(tx: Transaction, master: sealing.MasterKey, job_id: str, password: str) -> None:
    """Store ``password`` sealed as ``job_id``'s key (there must be none yet)."""
    tx.connection.execute(
        schema.job_keys.insert().values(
            job_id=job_id, sealed=master.seal(password, purpose(job_id)), created=tx.clock.now()
        )
    )


def every_sealed(tx: Transaction) -> dict[str, str]:
    """Every stored sealed token by job ID."""
    table = schema.job_keys
    rows = tx.connection.execute(select(table.c.job_id, table.c.sealed).order_by(table.c.job_id))
    return {str(row.job_id): str(row.sealed) for row in rows}


class KeyStore:
    """The passwords of the encrypted jobs of one catalog (sealed with its home's master key)."""

    def __init__(self, catalog: Catalog) -> None:
        if catalog.home is None:
            raise ConfigError("the key store needs the catalog's data directory (for the master key)")
        self.catalog = catalog
        self.home = catalog.home

    def master(self) -> sealing.MasterKey:
        """The master key new passwords are sealed with (``sealing.master_of``)."""
        return sealing.master_of(self.catalog.engine)

    def get(self, job_id: str) -> str:
        """The stored password of ``job_id``. Raises NotFoundError when the job has none yet,
        ConfigError when it does not open with a master key this process has loaded (its home's)."""
        check_id(job_id)
        with self.catalog.transaction(write=False) as tx:
            token = read_sealed(tx, job_id)
        if token is None:
            raise NotFoundError(
                f"no repository password for Backup Job {job_id} in the catalog "
                "(an encrypted job gets one on its first run)"
            )
        text = sealing.open_token(token, purpose(job_id))
        if not text:
            raise ConfigError(f"the repository password of Backup Job {job_id} is empty")
        return text

    def has(self, job_id: str) -> bool:
        """Whether ``job_id`` has a stored password."""
        check_id(job_id)
        with self.catalog.transaction(write=False) as tx:
            return read_sealed(tx, job_id) is not None

    def all(self) -> dict[str, str]:
        """Every stored password by job ID. Raises ConfigError when one does not open."""
        with self.catalog.transaction(write=False) as tx:
            stored = every_sealed(tx)
        return {job_id: sealing.open_token(token, purpose(job_id)) for job_id, token in stored.items()}

    def put(self, job_id: str, password: str) -> bool:
        """Store ``password`` for ``job_id``; return False when that same password was already
        stored. Raises ValidationError for a malformed ID or an empty, over-long or non-printable-ASCII
        password, ConflictError when ``job_id`` already has a different one (never replaced: backups
        made with it would be lost), ConfigError when the master key cannot be had."""
        check_id(job_id)
        text = check_password(password)
        if self._insert(job_id, text):
            return True
        if self.get(job_id) == text:
            return False
        raise ConflictError(
            f"Backup Job {job_id} already has a different repository password in the catalog; "
            "it is never replaced"
        )

    def remove(self, job_id: str) -> None:
        """Remove the stored password of ``job_id`` (only to undo a ``put`` that a failed import made,
        or to replace a key that opens none of the job's repositories)."""
        check_id(job_id)
        with self.catalog.transaction() as tx:
            tx.connection.execute(delete(schema.job_keys).where(schema.job_keys.c.job_id == job_id))

    def get_or_create(self, job_id: str) -> str:
        """The password of ``job_id``, created (random) when it has none. Raises ConfigError when the
        master key cannot be had."""
        check_id(job_id)
        self._insert(job_id, secrets.token_hex(PASSWORD_BYTES))
        return self.get(job_id)

    def _insert(self, job_id: str, password: str) -> bool:
        """Store ``password`` unless ``job_id`` has one (the first kept); return whether it was stored."""
        master = self.master()
        try:
            with self.catalog.transaction() as tx:
                if read_sealed(tx, job_id) is not None:
                    return False
                insert_sealed(tx, master, job_id, password)
        except CatalogError:
            # two first runs at once: the other inserted first; its key is the one kept
            if self.has(job_id):
                return False
            raise
        return True


# --- the keys/ folder of older data directories -----------------------------------------------------


def _read_file(path: Path) -> str | None:
    """The password in an old key file; None (with a warning) when it cannot be read or is not one."""
    try:
        return check_password(path.read_text(encoding="ascii"))
    except FileNotFoundError:
        return None  # another process opening the catalog moved it meanwhile
    except (OSError, UnicodeDecodeError, ValidationError) as error:
        log.warning("key file %s left where it is: cannot read a password from it (%s)", path, error)
        return None


def has_key_files(home: Path) -> bool:
    """Whether ``home`` still has key files of before catalog version 7."""
    folder = Path(home) / FOLDER
    with contextlib.suppress(OSError):
        return folder.is_dir() and any(is_id(entry.name) for entry in folder.iterdir())
    return False


def import_key_files(catalog: Catalog, master: sealing.MasterKey) -> int:
    """Seal every ``<home>/keys/<job id>`` file into the catalog, then remove the files (and the
    folder when it is left empty); return how many keys were moved. A key the catalog has already
    (an earlier open that stopped before removing the file) is kept and the file removed; a file
    that differs from it, or cannot be read, is left where it is with a warning: a key is never lost,
    and the catalog still opens (``snapkeep keys export`` shows the catalog's key to compare).
    Crash-safe: the files are removed only after the transaction that stored them has committed."""
    if catalog.home is None:
        return 0
    folder = catalog.home / FOLDER
    try:
        entries = sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return 0  # none, or another process opening the catalog moved it meanwhile
    files = {entry.name: entry for entry in entries if is_id(entry.name) and entry.is_file()}
    found = {job_id: _read_file(path) for job_id, path in files.items()}
    moved, done = 0, []
    with catalog.transaction() as tx:
        for job_id, text in found.items():
            if text is None:
                continue
            token = read_sealed(tx, job_id)
            if token is None:
                insert_sealed(tx, master, job_id, text)
                moved += 1
            elif sealing.open_token(token, purpose(job_id)) != text:
                log.warning(
                    "key file %s left where it is: it differs from Backup Job %s's key in the catalog; "
                    "find out which one opens the repository ('snapkeep keys export %s' prints the "
                    "catalog's), then remove the file by hand",
                    files[job_id],
                    job_id,
                    job_id,
                )
                continue
            done.append(job_id)
    for job_id in done:
        files[job_id].unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()
    return moved
