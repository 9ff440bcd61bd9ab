"""The repository's master key and the key files that hold it wrapped by a password.

A ``MasterKey`` is two random 32-byte keys: ``encryption_key`` seals blobs and metadata, ``id_key``
keys the BLAKE3 hash that names blobs (so IDs reveal nothing about contents). Unencrypted
repositories have a master key too, kept in a plain key file, so their IDs are keyed as well.

A key file (``keys/<id>``) is JSON::

    {"version": 1, "kdf": "argon2id", "kdf_params": {"time_cost": 2, "memory_cost": 19456,
     "parallelism": 1, "salt": "<base64>"}, "cipher": "aes-256-gcm", "wrapped": "<base64>"}

``wrapped`` is ``encryption_key || id_key`` sealed with AES-256-GCM under the key-encryption key
derived from the password (Argon2id via argon2-cffi, or scrypt via hashlib). A plain key file has
``"kdf": "none"`` and the two keys in ``"master"``, unwrapped. ``"repository"`` holds the ID of the
repository (from ``config``) the key belongs to. ``unlock`` finds the repository's key file that a
password opens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from argon2.exceptions import HashingError
from argon2.low_level import Type, hash_secret_raw

from snapkeep.engine.format import (
    AD_MASTER_KEY,
    ARGON2_DEFAULTS,
    KDF_NAMES,
    KEY_SIZE,
    KEYS_PREFIX,
    SCRYPT_DEFAULTS,
    KdfId,
    kdf_by_name,
)
from snapkeep.engine.repository.crypto import AesGcmCipher
from snapkeep.errors import IntegrityError, RepositoryError, WrongPasswordError
from snapkeep.storage.base import Store

KEY_FILE_VERSION = 1
SALT_SIZE = 16
#: A key file is a few hundred bytes; a larger one is refused before it is read.
KEY_FILE_MAX_SIZE = 64 * 1024
#: Inclusive bounds of each KDF parameter accepted from a key file (memory_cost in KiB).
KDF_LIMITS: dict[KdfId, dict[str, tuple[int, int]]] = {
    KdfId.ARGON2ID: {"time_cost": (1, 10), "memory_cost": (8, 256 * 1024), "parallelism": (1, 16)},
    KdfId.SCRYPT: {"n": (2, 2**20), "r": (1, 32), "p": (1, 16)},
}
#: scrypt needs ``128 * n * r`` bytes; this is its ceiling (the same as Argon2id's memory bound).
SCRYPT_MAX_MEMORY = 256 * 1024 * 1024
SALT_MIN_SIZE = 8
SALT_MAX_SIZE = 64


@dataclass(frozen=True)
class MasterKey:
    """The repository's secret keys. Their repr is masked so they never reach a log."""

    encryption_key: bytes = field(repr=False)
    id_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.encryption_key) != KEY_SIZE or len(self.id_key) != KEY_SIZE:
            raise ValueError(f"master keys must be {KEY_SIZE} bytes each")

    @classmethod
    def generate(cls) -> MasterKey:
        """Two fresh random keys from the operating system's generator."""
        return cls(encryption_key=os.urandom(KEY_SIZE), id_key=os.urandom(KEY_SIZE))

    def to_bytes(self) -> bytes:
        """``encryption_key || id_key``."""
        return self.encryption_key + self.id_key

    @classmethod
    def from_bytes(cls, raw: bytes) -> MasterKey:
        """Inverse of ``to_bytes``; ``ValueError`` for a wrong length."""
        if len(raw) != 2 * KEY_SIZE:
            raise ValueError(f"master key material must be {2 * KEY_SIZE} bytes, got {len(raw)}")
        return cls(encryption_key=raw[:KEY_SIZE], id_key=raw[KEY_SIZE:])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, field_name: str, *, what: str = "key file") -> bytes:
    if not isinstance(text, str):
        raise RepositoryError(f"{what}: {field_name} must be a base64 string")
    if len(text) > KEY_FILE_MAX_SIZE:
        raise RepositoryError(f"{what}: {field_name} is too long")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise RepositoryError(f"{what}: {field_name} is not valid base64") from None


def check_kdf_params(
    kdf: KdfId, params: dict[str, Any], *, what: str = "key file"
) -> tuple[dict[str, int], bytes]:
    """The integer parameters and the salt of ``params``, held to ``KDF_LIMITS``.

    Raises ``RepositoryError`` naming ``what`` and the parameter when one is missing, not an
    integer or out of bounds (nothing is derived before this passes).
    """
    limits = KDF_LIMITS.get(kdf)
    if limits is None:
        raise RepositoryError(f"{what}: kdf {KDF_NAMES[kdf]!r} derives no key")
    values: dict[str, int] = {}
    for name, (low, high) in limits.items():
        if name not in params:
            raise RepositoryError(f"{what}: kdf_params is missing {name!r}")
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise RepositoryError(f"{what}: kdf_params.{name} must be an integer, got {value!r}")
        if not low <= value <= high:
            raise RepositoryError(
                f"{what}: kdf_params.{name} = {value} is outside the accepted {low}-{high} "
                "(a damaged or tampered key file)"
            )
        values[name] = value
    if kdf is KdfId.ARGON2ID and values["memory_cost"] < 8 * values["parallelism"]:
        raise RepositoryError(f"{what}: kdf_params.memory_cost must be at least 8 KiB per lane")
    if kdf is KdfId.SCRYPT:
        if values["n"] & (values["n"] - 1):
            raise RepositoryError(f"{what}: kdf_params.n = {values['n']} is not a power of two")
        if 128 * values["n"] * values["r"] > SCRYPT_MAX_MEMORY:
            raise RepositoryError(
                f"{what}: kdf_params n = {values['n']}, r = {values['r']} need "
                f"{128 * values['n'] * values['r'] // 2**20} MiB, above the accepted "
                f"{SCRYPT_MAX_MEMORY // 2**20} MiB (a damaged or tampered key file)"
            )
    if "salt" not in params:
        raise RepositoryError(f"{what}: kdf_params is missing 'salt'")
    salt = _unb64(params["salt"], "kdf_params.salt", what=what)
    if not SALT_MIN_SIZE <= len(salt) <= SALT_MAX_SIZE:
        raise RepositoryError(
            f"{what}: kdf_params.salt is {len(salt)} bytes, "
            f"outside the accepted {SALT_MIN_SIZE}-{SALT_MAX_SIZE}"
        )
    return values, salt


def derive_kek(password: str, kdf: KdfId, params: dict[str, Any], *, what: str = "key file") -> bytes:
    """The 32-byte key-encryption key for ``password`` under the KDF ``params`` (with salt).

    Raises ``RepositoryError`` naming ``what`` when the parameters are missing or out of bounds
    (``check_kdf_params``, before any work) or the derivation fails.
    """
    values, salt = check_kdf_params(kdf, params, what=what)
    secret = password.encode("utf-8")
    try:
        if kdf is KdfId.ARGON2ID:
            return hash_secret_raw(
                secret,
                salt,
                time_cost=values["time_cost"],
                memory_cost=values["memory_cost"],
                parallelism=values["parallelism"],
                hash_len=KEY_SIZE,
                type=Type.ID,
            )
        n, r, p = values["n"], values["r"], values["p"]
        return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=128 * n * r + 2**20, dklen=KEY_SIZE)
    except (HashingError, ValueError, MemoryError) as problem:
        raise RepositoryError(f"{what}: deriving the key failed: {problem}") from None


def wrap(
    master: MasterKey,
    password: str | None,
    kdf: KdfId | str = KdfId.ARGON2ID,
    *,
    kdf_params: dict[str, int] | None = None,
    repository_id: str | None = None,
) -> bytes:
    """A key file (JSON bytes) holding ``master``, wrapped by ``password`` unless it is ``None``.

    ``kdf_params`` overrides the defaults of ``format.ARGON2_DEFAULTS``/``SCRYPT_DEFAULTS`` (tests
    use small ones). ``repository_id`` ties the key file to one repository's ``config`` (a key left
    behind by an interrupted ``init`` is then ignored). Raises ``ValueError`` for an unknown KDF.
    """
    kdf_id = kdf_by_name(kdf) if isinstance(kdf, str) else kdf
    if password is None or kdf_id is KdfId.NONE:
        document: dict[str, Any] = {
            "version": KEY_FILE_VERSION,
            "kdf": KDF_NAMES[KdfId.NONE],
            "master": _b64(master.to_bytes()),
        }
    else:
        defaults = ARGON2_DEFAULTS if kdf_id is KdfId.ARGON2ID else SCRYPT_DEFAULTS
        params: dict[str, Any] = {**defaults, **(kdf_params or {}), "salt": _b64(os.urandom(SALT_SIZE))}
        kek = derive_kek(password, kdf_id, params)
        sealed = AesGcmCipher(kek).seal(master.to_bytes(), AD_MASTER_KEY)
        document = {
            "version": KEY_FILE_VERSION,
            "kdf": KDF_NAMES[kdf_id],
            "kdf_params": params,
            "cipher": "aes-256-gcm",
            "wrapped": _b64(sealed),
        }
    if repository_id is not None:
        document["repository"] = repository_id
    return json.dumps(document, sort_keys=True, indent=1).encode("utf-8")


def repository_of(data: bytes) -> str | None:
    """The repository ID a key file is tied to (``None`` when it names none)."""
    value = _parse(data).get("repository")
    return None if value is None else str(value)


def is_plain(data: bytes) -> bool:
    """Whether a key file holds its keys unwrapped (an unencrypted repository)."""
    return _parse(data).get("kdf") == KDF_NAMES[KdfId.NONE]


def _parse(data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise RepositoryError("key file is not valid JSON") from None
    if not isinstance(document, dict):
        raise RepositoryError("key file must hold a JSON object")
    if document.get("version") != KEY_FILE_VERSION:
        raise RepositoryError(f"key file: unsupported version {document.get('version')!r}")
    return document


def unwrap(data: bytes, password: str | None, *, location: str = "", name: str = "") -> MasterKey:
    """The master key in key file ``data`` (``name``: its object name, for messages).

    Raises ``WrongPasswordError`` when the password does not open it (or is missing for a wrapped
    key), ``RepositoryError`` naming the file when it is malformed or its KDF parameters are out
    of bounds (``check_kdf_params``).
    """
    what = f"key file {name}" if name else "key file"
    document = _parse(data)
    try:
        kdf = kdf_by_name(str(document.get("kdf")))
    except ValueError as problem:
        raise RepositoryError(f"{what}: {problem}") from None
    try:
        if kdf is KdfId.NONE:
            return MasterKey.from_bytes(_unb64(document.get("master"), "master", what=what))
        if password is None:
            raise WrongPasswordError("the repository is encrypted: a password is required")
        params = document.get("kdf_params")
        if not isinstance(params, dict):
            raise RepositoryError(f"{what}: kdf_params must be an object")
        sealed = _unb64(document.get("wrapped"), "wrapped", what=what)
        kek = derive_kek(password, kdf, params, what=what)
        try:
            raw = AesGcmCipher(kek).open(sealed, AD_MASTER_KEY, what=what)
        except IntegrityError:
            raise WrongPasswordError(location=location or "this location") from None
        return MasterKey.from_bytes(raw)
    except ValueError as problem:
        raise RepositoryError(f"{what}: {problem}") from None


def unlock(store: Store, repository_id: str, password: str | None, *, encrypted: bool) -> MasterKey:
    """The master key of the repository ``repository_id`` in ``store``, from the first of its key
    files that ``password`` opens. A key file that is too large, malformed or has out-of-bounds KDF
    parameters is skipped when another one opens; otherwise its ``RepositoryError`` is raised.
    Raises ``RepositoryError`` when it has no key file (or none of its own), ``WrongPasswordError``
    when none opens (or an encrypted one has no password)."""
    infos = sorted(store.list(KEYS_PREFIX), key=lambda info: info.name)
    if not infos:
        raise RepositoryError(f"{store.location}: the repository has no key file under {KEYS_PREFIX}")
    if encrypted and password is None:
        raise WrongPasswordError(f"the repository at {store.location} is encrypted: a password is required")
    candidates = 0
    refused: RepositoryError | None = None
    for info in infos:
        name = info.name
        try:
            if info.size > KEY_FILE_MAX_SIZE:
                raise RepositoryError(
                    f"key file {name}: {info.size} bytes, above the {KEY_FILE_MAX_SIZE} a key file can be"
                )
            data = store.load(name)
            if repository_of(data) not in (None, repository_id):
                continue  # left behind by an interrupted init of another repository
            candidates += 1
            return unwrap(data, password, location=store.location, name=name)
        except WrongPasswordError:
            continue
        except RepositoryError as error:
            if isinstance(error, WrongPasswordError):
                continue
            if refused is None:
                refused = error if name in str(error) else RepositoryError(f"{name}: {error}")
    if refused is not None:
        raise RepositoryError(f"{store.location}: {refused}")
    if not candidates:
        raise RepositoryError(f"{store.location}: no key file belongs to repository {repository_id}")
    raise WrongPasswordError(location=store.location)
