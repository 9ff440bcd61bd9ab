"""Disaster recovery: what a new server needs to take over, as one file sealed with a passphrase.

``export_state(catalog, home)`` gathers the catalog's jobs, destinations (with their secrets, sealed
as the catalog holds them), schedules, hooks, account filters and settings, every job key of the key
store (``jobs.keystore.KeyStore``) and the master key that opens the sealed secrets
(``jobs.sealing``); ``seal`` turns it into the file's bytes, ``write_file`` writes them
(mode 0600, never replacing a file unless asked). ``open_sealed`` reads them back and
``import_state(catalog, home, state)`` puts them into an **empty** data directory, keeping every ID so
the destinations' ``<root>/<job id>/`` repositories belong to the same jobs. The exported master key
becomes the new server's when it has none; when it has one (``SNAPKEEP_MASTER_KEY_FILE``), every
secret is sealed again with it. Backups are not in the
file: a reindex of each destination (``jobs.reindex``) lists them from the destinations themselves.
What belongs to one server (``config.toml``: its account provider and database connections; hook
scripts on disk) is not in the file either.

The file (version 1)::

    b"SNAPKEEP-DR\\n"                     magic, 12 bytes
    u16 big-endian N, N bytes            header, JSON: version, kdf "argon2id" + kdf_params
                                         (time_cost, memory_cost KiB, parallelism), salt (hex),
                                         cipher "aes-256-gcm" or "chacha20-poly1305", nonce (hex)
    ciphertext                           the state as JSON, sealed; associated data = magic + N + header
    32 bytes                             BLAKE3 of everything above (unkeyed)

The key is Argon2id(passphrase, salt) from argon2-cffi's ``hash_secret_raw``. Reading bounds every
KDF parameter (``KDF_LIMITS``) and the file size before any work, so a forged header cannot stall or
exhaust the machine. The trailing hash tells damage (``IntegrityError``) from a wrong passphrase
(``WrongPasswordError``): a file whose hash matches but does not open was sealed with another one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from snapkeep.clock import SYSTEM, Clock, isoformat
from snapkeep.errors import (
    ConfigError,
    ConflictError,
    IntegrityError,
    ValidationError,
    WrongPasswordError,
)
from snapkeep.ids import is_id
from snapkeep.jobs import destinations, keystore, sealing, settings
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.keystore import KeyStore

MAGIC = b"SNAPKEEP-DR\n"
VERSION = 1
FORMAT = "snapkeep-dr"
HASH_SIZE = 32
#: the largest file ``open_sealed`` reads (a catalog of thousands of jobs is a few MiB)
MAX_FILE = 64 * 1024 * 1024
MAX_HEADER = 4096
MIN_PASSPHRASE = 8
#: the objects carried, in the order they are imported
KINDS = ("destinations", "schedules", "hooks", "account_filters", "jobs")
#: columns of a job row that are run state, not the job (the new server starts them afresh)
JOB_STATE = ("running", "last_run", "next_run")

#: what ``seal`` uses: about a quarter of a second and 64 MiB
DEFAULT_KDF = {"time_cost": 3, "memory_cost": 64 * 1024, "parallelism": 2}
#: the bounds ``open_sealed`` accepts (inclusive)
KDF_LIMITS = {"time_cost": (1, 10), "memory_cost": (8 * 1024, 256 * 1024), "parallelism": (1, 8)}
SALT_SIZES = (16, 64)
CIPHERS: dict[str, type[AESGCM] | type[ChaCha20Poly1305]] = {
    "aes-256-gcm": AESGCM,
    "chacha20-poly1305": ChaCha20Poly1305,
}
NONCE_SIZE = 12


# --- the state ------------------------------------------------------------------------------------


def export_state(catalog: Catalog, home: Path, *, clock: Clock = SYSTEM) -> dict[str, Any]:
    """Everything ``dr export`` carries, as JSON-ready data. Raises ConfigError when a key file
    cannot be read."""
    with catalog.transaction(write=False) as tx:
        objects = {kind: [_document(kind, item) for item in tx.all(kind)] for kind in KINDS}
        values = settings.every_value(tx)
    state = {
        "format": FORMAT,
        "version": VERSION,
        "created": isoformat(clock.now()),
        "objects": objects,
        "settings": values,
        "keys": KeyStore(catalog).all(),
    }
    if sealing.has_key(home):
        state["master_key"] = sealing.master_key(home, create=False).key.hex()
    return state


def _document(kind: str, item: Mapping[str, Any]) -> dict[str, Any]:
    if kind != "jobs":
        return dict(item)
    return {key: value for key, value in item.items() if key not in JOB_STATE}


def check_state(state: Any) -> dict[str, Any]:
    """``state`` when it has the shape ``export_state`` gives; ValidationError naming the first
    problem otherwise."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValidationError(field="file", problem="is not a snapkeep disaster-recovery export")
    if state.get("version") != VERSION:
        raise ValidationError(field="version", problem=f"unsupported version {state.get('version')!r}")
    objects = state.get("objects")
    if not isinstance(objects, dict):
        raise ValidationError(field="objects", problem="is missing")
    for kind in KINDS:
        items = objects.get(kind, [])
        if not isinstance(items, list):
            raise ValidationError(field=f"objects.{kind}", problem="must be a list")
        for position, item in enumerate(items):
            if not isinstance(item, dict) or not is_id(str(item.get("_id", ""))):
                raise ValidationError(field=f"objects.{kind}[{position}]", problem="has no valid _id")
    if not isinstance(state.get("settings", {}), dict):
        raise ValidationError(field="settings", problem="must be an object")
    keys = state.get("keys", {})
    if not isinstance(keys, dict) or not all(
        is_id(str(job_id)) and isinstance(password, str) for job_id, password in keys.items()
    ):
        raise ValidationError(field="keys", problem="must map job IDs to passwords")
    master = state.get("master_key")
    if master is not None and (
        not isinstance(master, str)
        or len(master) != 2 * sealing.KEY_SIZE
        or not set(master) <= set("0123456789abcdef")
    ):
        raise ValidationError(
            field="master_key", problem=f"must be {2 * sealing.KEY_SIZE} lowercase hex characters"
        )
    return state


def occupied(catalog: Catalog, home: Path) -> list[str]:
    """What makes a data directory not empty for ``dr import`` ("3 jobs", "2 keys"); [] = empty."""
    found = []
    with catalog.transaction(write=False) as tx:
        for kind in KINDS:
            count = len(tx.ids(kind))
            if count:
                found.append(f"{count} {kind.replace('_', ' ')}")
    with catalog.transaction(write=False) as tx:
        keys = len(keystore.every_sealed(tx))
    if keys:
        found.append(f"{keys} job keys")
    return found


@dataclass(frozen=True)
class Imported:
    """How many of each thing ``import_state`` wrote."""

    counts: dict[str, int]
    keys: int
    settings: int


def import_state(catalog: Catalog, home: Path, state: Mapping[str, Any]) -> Imported:
    """Write ``state`` (checked by ``check_state``) into the empty catalog and key store, keeping
    every ID; all or nothing. Raises ConflictError when the data directory is not empty,
    ValidationError (a malformed key), ConfigError (the key folder cannot be written)."""
    checked = check_state(state)
    found = occupied(catalog, home)
    if found:
        raise ConflictError(
            f"the data directory {home} is not empty ({', '.join(found)}): dr import only fills an "
            "empty one; give a new --home (or SNAPKEEP_HOME)"
        )
    master = _target_key(home, checked.get("master_key"))
    counts: dict[str, int] = {}
    with catalog.transaction() as tx:
        for kind in KINDS:
            items = checked["objects"].get(kind, [])
            for item in items:
                document = {key: value for key, value in item.items() if key != "_id"}
                if kind == "destinations" and isinstance(document.get("options"), dict):
                    document["options"] = destinations.reseal_options(
                        master, str(document.get("type", "")), document["options"]
                    )
                tx.insert(kind, document, str(item["_id"]))
            counts[kind] = len(items)
        settings.restore_values(tx, checked.get("settings", {}))
        settings.seal_secrets(tx, master, reseal=True)
        job_keys = sorted(checked.get("keys", {}).items())
        for job_id, password in job_keys:
            keystore.insert_sealed(tx, master, job_id, keystore.check_password(password))
    return Imported(counts=counts, keys=len(job_keys), settings=len(checked.get("settings", {})))


def _target_key(home: Path, exported: str | None) -> sealing.MasterKey:
    """The master key the import seals with: the exported one, installed as ``home``'s when it has
    none; else ``home``'s own (the exported one is then only loaded, to open the file's tokens)."""
    if exported is not None:
        key = sealing.remember(sealing.MasterKey(bytes.fromhex(exported), Path("(the dr export)")))
        if not sealing.has_key(home):
            sealing.write_key(sealing.key_path(home), key.key)
    return sealing.master_key(home)


# --- sealing --------------------------------------------------------------------------------------


def _derive(passphrase: str, salt: bytes, params: Mapping[str, int]) -> bytes:
    return hash_secret_raw(
        passphrase.encode("utf-8"),
        salt,
        time_cost=params["time_cost"],
        memory_cost=params["memory_cost"],
        parallelism=params["parallelism"],
        hash_len=32,
        type=Type.ID,
    )


def check_passphrase(passphrase: str) -> str:
    """``passphrase`` when it is long enough to seal with; ValidationError otherwise."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise ValidationError(field="passphrase", problem=f"must be at least {MIN_PASSPHRASE} characters")
    return passphrase


def seal(
    state: Mapping[str, Any],
    passphrase: str,
    *,
    cipher: str = "aes-256-gcm",
    kdf_params: Mapping[str, int] | None = None,
) -> bytes:
    """The sealed file's bytes for ``state``. Raises ValidationError for a short passphrase."""
    check_passphrase(passphrase)
    params = dict(kdf_params or DEFAULT_KDF)
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(NONCE_SIZE)
    header = json.dumps(
        {
            "version": VERSION,
            "kdf": "argon2id",
            "kdf_params": params,
            "salt": salt.hex(),
            "cipher": cipher,
            "nonce": nonce.hex(),
        },
        sort_keys=True,
    ).encode("utf-8")
    prefix = MAGIC + struct.pack(">H", len(header)) + header
    plaintext = json.dumps(state, sort_keys=True, separators=(",", ":")).encode("utf-8")
    sealed = CIPHERS[cipher](_derive(passphrase, salt, params)).encrypt(nonce, plaintext, prefix)
    body = prefix + sealed
    digest: bytes = blake3.blake3(body).digest()
    return body + digest


def _header(data: bytes, what: str) -> tuple[dict[str, Any], bytes, bytes]:
    """The parsed, bounded header, the authenticated prefix and the sealed part."""
    if not data.startswith(MAGIC):
        raise ValidationError(field=what, problem="is not a snapkeep disaster-recovery export (no magic)")
    if len(data) < len(MAGIC) + 2 + HASH_SIZE:
        raise IntegrityError(what=what, reason="the file is truncated")
    body, digest = data[:-HASH_SIZE], data[-HASH_SIZE:]
    if blake3.blake3(body).digest() != digest:
        raise IntegrityError(what=what, reason="the file is damaged or truncated (checksum mismatch)")
    (length,) = struct.unpack(">H", body[len(MAGIC) : len(MAGIC) + 2])
    start = len(MAGIC) + 2
    if length > MAX_HEADER or start + length > len(body):
        raise IntegrityError(what=what, reason=f"header length {length} is out of bounds")
    try:
        header = json.loads(body[start : start + length])
        if not isinstance(header, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as error:
        raise IntegrityError(what=what, reason=f"malformed header: {error}") from None
    if header.get("version") != VERSION:
        raise ValidationError(field="version", problem=f"unsupported file version {header.get('version')!r}")
    return header, body[: start + length], body[start + length :]


def _bounded(header: Mapping[str, Any]) -> tuple[dict[str, int], bytes, str, bytes]:
    """The KDF parameters, salt, cipher and nonce of ``header``, each checked against its bounds."""
    if header.get("kdf") != "argon2id":
        raise ValidationError(field="kdf", problem=f"must be argon2id (got {header.get('kdf')!r})")
    raw = header.get("kdf_params")
    if not isinstance(raw, dict):
        raise ValidationError(field="kdf_params", problem="is missing")
    params: dict[str, int] = {}
    for name, (low, high) in KDF_LIMITS.items():
        value = raw.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValidationError(field=f"kdf_params.{name}", problem=f"must be {low}-{high} (got {value!r})")
        params[name] = value
    cipher = str(header.get("cipher"))
    if cipher not in CIPHERS:
        raise ValidationError(field="cipher", problem=f"must be one of {', '.join(CIPHERS)} (got {cipher!r})")
    try:
        salt, nonce = bytes.fromhex(str(header["salt"])), bytes.fromhex(str(header["nonce"]))
    except (KeyError, ValueError):
        raise ValidationError(field="salt", problem="salt and nonce must be hex") from None
    if not SALT_SIZES[0] <= len(salt) <= SALT_SIZES[1] or len(nonce) != NONCE_SIZE:
        raise ValidationError(field="salt", problem="salt or nonce has the wrong size")
    return params, salt, cipher, nonce


def open_sealed(data: bytes, passphrase: str, *, what: str = "the export") -> dict[str, Any]:
    """The state sealed in ``data``. Raises ValidationError (not an export, a parameter out of
    bounds), IntegrityError (damaged or truncated), WrongPasswordError (the passphrase does not open
    it)."""
    if len(data) > MAX_FILE:
        raise ValidationError(field=what, problem=f"is larger than {MAX_FILE} bytes")
    header, prefix, sealed = _header(data, what)
    params, salt, cipher, nonce = _bounded(header)
    try:
        plaintext = CIPHERS[cipher](_derive(passphrase, salt, params)).decrypt(nonce, sealed, prefix)
    except InvalidTag:
        raise WrongPasswordError(f"wrong passphrase for {what}") from None
    try:
        state = json.loads(plaintext)
    except (ValueError, UnicodeDecodeError) as error:
        raise IntegrityError(what=what, reason=f"malformed contents: {error}") from None
    return check_state(state)


# --- the file -------------------------------------------------------------------------------------


def write_file(path: Path, data: bytes, *, replace: bool = False) -> None:
    """Write ``data`` at ``path`` with mode 0600 (via a temporary file in the same folder, synced).
    Raises ConflictError when ``path`` exists and not ``replace``, ConfigError when it cannot be
    written."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if replace:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)
            except FileExistsError:
                raise ConflictError(f"{path} exists; give another name or --force") from None
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def read_file(path: Path) -> bytes:
    """The bytes of an export at ``path`` (at most ``MAX_FILE``). Raises ValidationError."""
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_FILE + 1)
    except OSError as error:
        raise ValidationError(field="FILE", problem=f"cannot read {path}: {error.strerror}") from None
    if len(data) > MAX_FILE:
        raise ValidationError(field="FILE", problem=f"{path} is larger than {MAX_FILE} bytes")
    return data
