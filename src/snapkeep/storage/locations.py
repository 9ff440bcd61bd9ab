"""Location strings to store parameters: how ``snapkeep repo`` (disaster recovery) names a store.

A new server with nothing but the destination's details opens a repository from a location:

* ``/PATH`` or ``file:///PATH``: a local folder;
* ``memory://NAME``: the process-wide memory store of that name;
* ``sftp://USER@HOST[:PORT]/PATH``: the path is absolute on the server (``sftp://u@h//srv/x`` and
  ``sftp://u@h/srv/x`` both mean ``/srv/x``). Log in with ``Credentials.key_file`` (a private key
  file) or a password (``Credentials.password``, or one in the URL); ``fingerprint`` pins the host key;
* ``ftp://USER@HOST[:PORT]/PATH`` (plain FTP) and ``ftps://USER@HOST[:PORT]/PATH`` (explicit TLS,
  ``AUTH TLS``): the path is absolute on the server (below its chroot, where it has one); the password
  is ``Credentials.password`` or the URL's. Query options: ``ca_file=PEM`` (trust that CA or
  self-signed certificate), ``verify=0`` (do not check the certificate), ``passive=0`` (active mode),
  ``timeout=SECONDS``;
* ``s3://ENDPOINT/BUCKET[/PREFIX]`` over HTTPS, ``s3+http://ENDPOINT/BUCKET[/PREFIX]`` over plain HTTP
  (a local test server); ``s3:///BUCKET/PREFIX`` (empty endpoint) means AWS. Needs
  ``Credentials.access_key`` and ``secret_key``.

``parse_location`` turns a location and the caller's ``Credentials`` into the backend's parameters
through a table of URL schemes; ``open_location`` opens them through ``storage.registry``.
Credentials are arguments: this module never reads the environment (the CLI maps its options and
their environment variables onto ``Credentials``). Bad or incomplete locations raise ``ConfigError``
naming what is missing; no secret is ever part of a message.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from snapkeep.errors import ConfigError
from snapkeep.storage.base import Store
from snapkeep.storage.registry import (
    FtpParams,
    LocalParams,
    MemoryParams,
    S3Params,
    SftpParams,
    StoreParams,
    open_store,
)


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """What a remote location needs besides the URL; each field is used by one scheme only."""

    key_file: str | None = None
    password: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    fingerprint: str | None = None
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    region: str | None = None


NO_CREDENTIALS = Credentials()

#: A parser turns a location (and the credentials) into its backend's parameters.
Parser = Callable[[str, Credentials], StoreParams]


def _local(location: str, credentials: Credentials) -> StoreParams:
    if location.startswith("file://"):
        parsed = urllib.parse.urlsplit(location)
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"location {location!r}: file:// URLs must name a local path (file:///path)")
        path = urllib.parse.unquote(parsed.path)
    else:
        path = location
    if not path:
        raise ConfigError(f"location {location!r}: empty path")
    return LocalParams(path=path)


def _memory(location: str, credentials: Credentials) -> StoreParams:
    name = location.partition("://")[2]
    if not name:
        raise ConfigError(f"location {location!r}: memory:// needs a name (memory://NAME)")
    return MemoryParams(name=name)


def _read_key(key_file: str) -> str:
    try:
        return Path(key_file).read_text()
    except OSError as error:
        raise ConfigError(f"SFTP key file {key_file}: {error.strerror or error}") from error


def _sftp(location: str, credentials: Credentials) -> StoreParams:
    parsed = urllib.parse.urlsplit(location)
    if not parsed.hostname:
        raise ConfigError(f"location {_safe(location)!r}: sftp:// needs a host (sftp://USER@HOST:PORT/PATH)")
    if not parsed.username:
        raise ConfigError(f"location {_safe(location)!r}: sftp:// needs a user (sftp://USER@HOST:PORT/PATH)")
    path = "/" + urllib.parse.unquote(parsed.path).lstrip("/")
    if path == "/":
        raise ConfigError(f"location {_safe(location)!r}: sftp:// needs a path on the server")
    private_key = _read_key(credentials.key_file) if credentials.key_file else None
    password = credentials.password or None
    if parsed.password:
        password = urllib.parse.unquote(parsed.password)
    if private_key is None and password is None:
        raise ConfigError(
            "sftp:// needs credentials: SNAPKEEP_SFTP_KEY_FILE (or --sftp-key-file) or SNAPKEEP_SFTP_PASSWORD"
        )
    return SftpParams(
        host=parsed.hostname,
        port=parsed.port or 22,
        username=urllib.parse.unquote(parsed.username),
        path=path,
        password=password,
        private_key=private_key,
        passphrase=credentials.passphrase or None,
        fingerprint=credentials.fingerprint or None,
    )


def _s3(location: str, credentials: Credentials) -> StoreParams:
    parsed = urllib.parse.urlsplit(location)
    transport = "http" if parsed.scheme.lower() == "s3+http" else "https"
    parts = [urllib.parse.unquote(part) for part in parsed.path.split("/") if part]
    if not parts:
        raise ConfigError(f"location {_safe(location)!r}: s3:// needs a bucket (s3://ENDPOINT/BUCKET/PREFIX)")
    if not credentials.access_key or not credentials.secret_key:
        raise ConfigError("s3:// needs credentials: SNAPKEEP_S3_ACCESS_KEY and SNAPKEEP_S3_SECRET_KEY")
    return S3Params(
        bucket=parts[0],
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        region=credentials.region or "us-east-1",
        endpoint=f"{transport}://{parsed.netloc}" if parsed.netloc else None,
        path="/".join(parts[1:]),
    )


_FTP_OPTIONS = ("ca_file", "verify", "passive", "timeout")


def _ftp_flag(location: str, key: str, value: str) -> bool:
    if value not in ("0", "1"):
        raise ConfigError(f"location {_safe(location)!r}: {key} must be 1 or 0 (got {value!r})")
    return value == "1"


def _ftp(location: str, credentials: Credentials) -> StoreParams:
    parsed = urllib.parse.urlsplit(location)
    scheme = parsed.scheme.lower()
    usage = f"{scheme}://USER@HOST:PORT/PATH"
    if not parsed.hostname:
        raise ConfigError(f"location {_safe(location)!r}: {scheme}:// needs a host ({usage})")
    if not parsed.username:
        raise ConfigError(f"location {_safe(location)!r}: {scheme}:// needs a user ({usage})")
    path = "/" + urllib.parse.unquote(parsed.path).lstrip("/")
    if path == "/":
        raise ConfigError(f"location {_safe(location)!r}: {scheme}:// needs a path on the server")
    options = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
    unknown = sorted(set(options) - set(_FTP_OPTIONS))
    if unknown:
        raise ConfigError(
            f"location {_safe(location)!r}: unknown option {unknown[0]!r} (known: {', '.join(_FTP_OPTIONS)})"
        )
    timeout = options.get("timeout", "30")
    if not timeout.isdigit() or not 1 <= int(timeout) <= 3600:
        raise ConfigError(
            f"location {_safe(location)!r}: timeout must be 1 to 3600 seconds (got {timeout!r})"
        )
    password = credentials.password or ""
    if parsed.password:
        password = urllib.parse.unquote(parsed.password)
    return FtpParams(
        host=parsed.hostname,
        port=parsed.port or 21,
        username=urllib.parse.unquote(parsed.username),
        password=password,
        path=path,
        tls=scheme == "ftps",
        passive=_ftp_flag(location, "passive", options.get("passive", "1")),
        verify=_ftp_flag(location, "verify", options.get("verify", "1")),
        ca_file=options.get("ca_file") or None,
        timeout=float(timeout),
    )


#: scheme -> parser; "" is a plain path.
SCHEMES: dict[str, Parser] = {
    "": _local,
    "file": _local,
    "memory": _memory,
    "sftp": _sftp,
    "s3": _s3,
    "s3+http": _s3,
    "s3+https": _s3,
    "ftp": _ftp,
    "ftps": _ftp,
}


def scheme_of(location: str) -> str:
    """The URL scheme of ``location`` in lower case, or ``""`` for a plain path."""
    head, separator, _ = location.partition("://")
    if not separator or "/" in head or not head.isascii() or not head.replace("+", "").isalnum():
        return ""
    return head.lower()


def parse_location(location: str, credentials: Credentials = NO_CREDENTIALS) -> StoreParams:
    """The store parameters of ``location``. Raises ``ConfigError`` for an empty location, an unknown
    scheme, a malformed location, missing credentials or an unreadable key file."""
    if not location:
        raise ConfigError("store location is empty")
    scheme = scheme_of(location)
    parser = SCHEMES.get(scheme)
    if parser is None:
        known = ", ".join(f"{name}://" for name in sorted(SCHEMES) if name)
        raise ConfigError(f"location {location!r}: unknown scheme {scheme!r} (known: a path, {known})")
    return parser(location, credentials)


def open_location(location: str, credentials: Credentials = NO_CREDENTIALS) -> Store:
    """Open the store at ``location`` (the caller closes it). Raises ``ConfigError`` (see
    ``parse_location``) and the backend's ``StorageError``."""
    return open_store(parse_location(location, credentials))


def _safe(location: str) -> str:
    """The location without a password that a URL may carry."""
    parsed = urllib.parse.urlsplit(location)
    if parsed.password is None:
        return location
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":********@")
    return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))
