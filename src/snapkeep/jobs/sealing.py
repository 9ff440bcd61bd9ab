"""Secrets sealed at rest: the master key and the tokens the catalog stores instead of secrets.

The catalog (and a PostgreSQL dump of it) may be copied, backed up or read by more people than the
server itself, so no secret is stored there in clear: destination passwords, private keys and S3
secret keys, SMTP passwords and webhook URLs, and every job's repository key are stored as **tokens**
sealed with a master key that lives *outside* the catalog, in ``<home>/master.key`` (32 random
bytes, mode 0600, made on first need) or in the file ``SNAPKEEP_MASTER_KEY_FILE`` names (several
servers sharing one PostgreSQL catalog must share one master key). See docs/secrets.md.

A token is text, so it fits in any JSON document or column::

    sk-sealed:v1:<key id>:<urlsafe base64 of nonce (12 bytes) + AES-256-GCM ciphertext and tag>

The key id (8 hex characters of a keyed-off hash of the master key; it reveals nothing of the key)
says which master key sealed the token, so code that reads a destination's secrets needs no data
directory: every master key this process has loaded (``Catalog.open`` loads its home's) is known by
id (``open_value``). Writers find the key of the catalog a transaction belongs to (``master_for``).

The associated data is the token's **purpose** ("destination/SFTP/password", "job-key/<job id>"):
a token copied into another field, another destination type or another job's key does not open.
Opening takes the purpose the caller expects; a token that does not open is a ConfigError naming the
master key file (the usual cause: another server's master key). Parsing is bounded (``MAX_TOKEN``)
and strict, so a hostile catalog row cannot make it do much work.

Values that are not tokens (catalogs from before sealing) are returned as they are by
``open_value``; ``Catalog.open`` seals them in place on the first open (``jobs.seal_catalog``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from snapkeep.errors import ConfigError

PREFIX = "sk-sealed:v1:"
KEY_FILE = "master.key"
ENVIRONMENT = "SNAPKEEP_MASTER_KEY_FILE"
KEY_SIZE = 32
KEY_ID_SIZE = 8
NONCE_SIZE = 12
TAG_SIZE = 16
#: the longest token ``open`` parses (a private key of a few KiB sealed, with room to spare)
MAX_TOKEN = 64 * 1024
#: the longest secret ``seal`` accepts (what fits in ``MAX_TOKEN`` once sealed and encoded)
MAX_SECRET = (MAX_TOKEN - len(PREFIX) - KEY_ID_SIZE - 1) // 4 * 3 - NONCE_SIZE - TAG_SIZE
#: a purpose names what a token holds; short printable ASCII
MAX_PURPOSE = 200
_HEX = frozenset("0123456789abcdef")
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")


def is_sealed(value: object) -> bool:
    """Whether ``value`` is a sealed token (by its prefix; opening checks the rest)."""
    return isinstance(value, str) and value.startswith(PREFIX)


def _associated(purpose: str) -> bytes:
    if not purpose or len(purpose) > MAX_PURPOSE or not purpose.isascii() or not purpose.isprintable():
        raise ValueError(f"bad sealing purpose {purpose!r}")
    return b"snapkeep-sealed:" + purpose.encode("ascii")


@dataclass(frozen=True)
class Token:
    """A parsed token: the id of the key that sealed it and its nonce + ciphertext."""

    key_id: str
    raw: bytes


def parse(token: str, purpose: str) -> Token:
    """Split ``token`` into its parts. Raises ConfigError naming ``purpose`` for anything that is not
    a well-formed token (checked before any decoding, and bounded by ``MAX_TOKEN``)."""
    if not isinstance(token, str) or not token.startswith(PREFIX):
        raise ConfigError(f"{purpose}: not a sealed value")
    if len(token) > MAX_TOKEN:
        raise ConfigError(f"{purpose}: sealed value longer than {MAX_TOKEN} characters")
    key_id, colon, body = token[len(PREFIX) :].partition(":")
    if not colon or len(key_id) != KEY_ID_SIZE or not set(key_id) <= _HEX:
        raise ConfigError(f"{purpose}: malformed sealed value (no key id)")
    if not body or not set(body) <= _BASE64:
        raise ConfigError(f"{purpose}: malformed sealed value (not base64)")
    try:
        raw = base64.urlsafe_b64decode(body.encode("ascii"))
    except (binascii.Error, ValueError):
        raise ConfigError(f"{purpose}: malformed sealed value (not base64)") from None
    if len(raw) < NONCE_SIZE + TAG_SIZE:
        raise ConfigError(f"{purpose}: malformed sealed value (too short)")
    return Token(key_id, raw)


@dataclass(frozen=True)
class MasterKey:
    """A master key and the file it was read from (for messages)."""

    key: bytes = field(repr=False)
    path: Path

    @property
    def ident(self) -> str:
        """The key id tokens name (a one-way hash of the key: it reveals nothing of it)."""
        digest = hashlib.blake2b(self.key, digest_size=KEY_ID_SIZE // 2, person=b"snapkeep-keyid")
        return digest.hexdigest()

    def seal(self, secret: str, purpose: str) -> str:
        """``secret`` as a token bound to ``purpose``. Raises ConfigError for a secret over
        ``MAX_SECRET`` bytes (the models bound every secret far below that)."""
        data = secret.encode("utf-8")
        if len(data) > MAX_SECRET:
            raise ConfigError(f"a secret of {len(data)} bytes is too long to seal (at most {MAX_SECRET})")
        nonce = secrets.token_bytes(NONCE_SIZE)
        sealed = AESGCM(self.key).encrypt(nonce, data, _associated(purpose))
        return f"{PREFIX}{self.ident}:" + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, token: str, purpose: str) -> str:
        """The secret in ``token`` sealed for ``purpose``. Raises ConfigError, naming this key's
        file, when the token is malformed, was sealed with another master key or for another
        purpose, or was changed."""
        parsed = parse(token, purpose)
        if parsed.key_id != self.ident:
            raise ConfigError(
                f"{purpose}: sealed with master key {parsed.key_id}, but the master key {self.path} is "
                f"{self.ident} (set {ENVIRONMENT} to the file of the key that sealed the catalog)"
            )
        try:
            data = AESGCM(self.key).decrypt(
                parsed.raw[:NONCE_SIZE], parsed.raw[NONCE_SIZE:], _associated(purpose)
            )
        except InvalidTag:
            raise ConfigError(
                f"{purpose}: the sealed value does not open with the master key {self.path} (it was "
                "changed, or moved here from another field)"
            ) from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{purpose}: sealed value is not UTF-8 text") from None

    def seal_value(self, value: str, purpose: str) -> str:
        """``seal`` for a clear, non-empty value; "" and tokens as they are (an empty secret is none)."""
        return value if not value or is_sealed(value) else self.seal(value, purpose)

    def reseal(self, value: str, purpose: str) -> str:
        """``value`` sealed with this key: clear text sealed, a token of another loaded master key
        opened and sealed again (``dr import`` into a data directory with its own key), a token of
        this key and "" as they are. Raises ConfigError when a token does not open."""
        if not value:
            return value
        if not is_sealed(value):
            return self.seal(value, purpose)
        if parse(value, purpose).key_id == self.ident:
            self.open(value, purpose)  # a token of this key that does not open is not carried along
            return value
        return self.seal(open_value(value, purpose), purpose)


# --- the master key file ----------------------------------------------------------------------------


@dataclass
class _Binding:
    """What ``bind`` knows of an open catalog: its home, and how to find the key id of a value
    already sealed in it (asked before a key is made for a home that has none; see ``master_of``)."""

    home: Path
    #: called with the engine (no reference to the catalog is kept: the entry must not keep it alive)
    probe: Callable[[Any], str | None] | None = None


_lock = threading.Lock()
#: every master key this process has loaded, by key id
_known: dict[str, MasterKey] = {}
#: the data directory of each open catalog's engine (``bind``)
_homes: weakref.WeakKeyDictionary[Any, _Binding] = weakref.WeakKeyDictionary()


def key_path(home: Path) -> Path:
    """Where the master key of ``home`` is: ``SNAPKEEP_MASTER_KEY_FILE`` or ``<home>/master.key``."""
    configured = os.environ.get(ENVIRONMENT)
    return Path(configured).expanduser() if configured else Path(home) / KEY_FILE


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(KEY_SIZE * 4)
    except OSError as error:
        raise ConfigError(f"cannot read the master key {path}: {error.strerror}") from None
    text = data.strip()
    key = data
    if len(text) == KEY_SIZE * 2:
        with contextlib.suppress(UnicodeDecodeError, ValueError):
            key = bytes.fromhex(text.decode("ascii"))
    if len(key) != KEY_SIZE:
        raise ConfigError(
            f"the master key {path} must hold {KEY_SIZE} bytes (or {KEY_SIZE * 2} hex characters); "
            f"it holds {len(data)} bytes"
        )
    return key


def write_key(path: Path, key: bytes) -> bool:
    """Write ``key`` as the master key file ``path`` (hex, 0600, atomically, never replacing one);
    return False when a file was there already (the first one is kept). Raises ConfigError."""
    if len(key) != KEY_SIZE:
        raise ConfigError(f"a master key has {KEY_SIZE} bytes")
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(descriptor, 0o600)
            os.write(descriptor, key.hex().encode("ascii") + b"\n")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        try:
            # link, not rename: two processes starting at once keep the first key, never replace it
            os.link(temporary, path)
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
    except OSError as error:
        raise ConfigError(f"cannot write the master key {path}: {error.strerror}") from None
    return True


def remember(master: MasterKey) -> MasterKey:
    """Make ``master`` known to ``open_value`` (by its key id); return it."""
    with _lock:
        _known.setdefault(master.ident, master)
    return master


def master_key(home: Path, *, create: bool = True) -> MasterKey:
    """The master key of ``home``, made (random, 0600) when there is none and ``create``. Raises
    ConfigError when it cannot be read or written, or ``SNAPKEEP_MASTER_KEY_FILE`` names a file that
    does not exist (a configured key is never made up)."""
    path = key_path(home)
    if not path.exists():
        if os.environ.get(ENVIRONMENT):
            raise ConfigError(f"the master key {path} ({ENVIRONMENT}) does not exist")
        if not create:
            raise ConfigError(f"there is no master key {path}")
        write_key(path, secrets.token_bytes(KEY_SIZE))
    return remember(MasterKey(_read(path), path))


def has_key(home: Path) -> bool:
    """Whether ``home``'s master key exists (without making one)."""
    return key_path(home).exists()


def bind(engine: Any, home: Path) -> None:
    """Record that the catalog on ``engine`` belongs to ``home`` (``Catalog.open``), and load
    ``home``'s master key when it has one."""
    _homes[engine] = _Binding(Path(home))
    if has_key(home):
        master_key(home, create=False)


def probe_with(engine: Any, probe: Callable[[Any], str | None]) -> None:
    """Give the catalog on ``engine`` a way to find the key id of a value sealed in it: a home without
    a master key then gets none made while the catalog holds values sealed with one (the new key
    would seal new values with a second key)."""
    binding = _homes.get(engine)
    if binding is not None:
        binding.probe = probe


def master_of(engine: Any) -> MasterKey:
    """The master key of the catalog on ``engine``, made on first need. Raises ConfigError for a
    catalog not opened with ``Catalog.open``, and for a home without a key whose catalog holds
    values sealed with one (another server's, on a shared PostgreSQL catalog, or a lost file)."""
    binding = _homes.get(engine)
    if binding is None:
        raise ConfigError("this catalog was not opened with a data directory: no master key to seal with")
    found = None if has_key(binding.home) or binding.probe is None else binding.probe(engine)
    # looked at again after the probe: a process that seals makes the key first, so a value found
    # together with a key made meanwhile is that key's
    if found is not None and not has_key(binding.home):
        raise ConfigError(
            f"the catalog's secrets are sealed with master key {found}, and "
            f"{key_path(binding.home)} does not exist: copy that key there, or set {ENVIRONMENT} to "
            "its file (servers sharing one catalog share one master key; docs/secrets.md)"
        )
    return master_key(binding.home)


def master_for(tx: Any) -> MasterKey:
    """``master_of`` the catalog transaction ``tx`` belongs to."""
    return master_of(tx.connection.engine)


def open_token(token: str, purpose: str) -> str:
    """``open_value`` for a value that must be a token (anything else is a ConfigError)."""
    if not is_sealed(token):
        raise ConfigError(f"{purpose}: not a sealed value")
    return open_value(token, purpose)


def open_value(value: str, purpose: str) -> str:
    """The secret in ``value`` when it is a token, opened with the master key that sealed it (one
    this process has loaded); any other text (stored before sealing) as it is. Raises ConfigError
    when the token is malformed, changed, moved, or its master key is not loaded."""
    if not is_sealed(value):
        return value
    parsed = parse(value, purpose)
    with _lock:
        master = _known.get(parsed.key_id)
    if master is None:
        # a key made after the catalog was opened (by another process sharing the home) loads now
        for binding in list(_homes.values()):
            if has_key(binding.home):
                master_key(binding.home, create=False)
        with _lock:
            master = _known.get(parsed.key_id)
    with _lock:
        loaded = ", ".join(f"{key.path} ({ident})" for ident, key in _known.items()) or "none"
    if master is None:
        raise ConfigError(
            f"{purpose}: sealed with master key {parsed.key_id}, which is not loaded (loaded: "
            f"{loaded}); set {ENVIRONMENT} to the file of the key that sealed the catalog"
        )
    return master.open(value, purpose)
