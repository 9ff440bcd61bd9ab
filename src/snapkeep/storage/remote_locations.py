"""``sftp://`` and ``s3://`` locations for the registry: the disaster-recovery path.

A new server with nothing but the destination's details opens a repository from a URL:

* ``sftp://USER@HOST[:PORT]/PATH``: the path is absolute on the server (``sftp://u@h//srv/x`` and
  ``sftp://u@h/srv/x`` both mean ``/srv/x``). Credentials: option ``key_file`` (a private key file),
  ``password`` or ``passphrase``, else ``SNAPKEEP_SFTP_KEY_FILE``, ``SNAPKEEP_SFTP_PASSWORD``,
  ``SNAPKEEP_SFTP_PASSPHRASE``. ``fingerprint`` / ``SNAPKEEP_SFTP_FINGERPRINT`` pins the host key.
* ``s3://ENDPOINT/BUCKET[/PREFIX]`` over HTTPS, ``s3+http://ENDPOINT/BUCKET[/PREFIX]`` over plain HTTP
  (a local test server). ``s3:///BUCKET/PREFIX`` (empty endpoint) means AWS. Credentials: options
  ``access_key``/``secret_key``/``region``, else ``SNAPKEEP_S3_ACCESS_KEY``, ``SNAPKEEP_S3_SECRET_KEY``,
  ``SNAPKEEP_S3_REGION``.

Bad or incomplete locations raise ``ConfigError`` naming what is missing; no secret is ever part of a
message.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Any

from snapkeep.errors import ConfigError
from snapkeep.storage.base import Store
from snapkeep.storage.s3 import S3Store
from snapkeep.storage.sftp import SftpStore


def _option(options: dict[str, Any], key: str, variable: str) -> Any:
    value = options.pop(key, None)
    if value is None:
        value = os.environ.get(variable) or None
    return value


def open_sftp(location: str, **options: Any) -> Store:
    """Open ``sftp://USER@HOST[:PORT]/PATH``; raises ConfigError for a malformed location."""
    parsed = urllib.parse.urlsplit(location)
    if not parsed.hostname:
        raise ConfigError(f"location {_safe(location)!r}: sftp:// needs a host (sftp://USER@HOST:PORT/PATH)")
    if not parsed.username:
        raise ConfigError(f"location {_safe(location)!r}: sftp:// needs a user (sftp://USER@HOST:PORT/PATH)")
    path = "/" + urllib.parse.unquote(parsed.path).lstrip("/")
    if path == "/":
        raise ConfigError(f"location {_safe(location)!r}: sftp:// needs a path on the server")
    key_file = _option(options, "key_file", "SNAPKEEP_SFTP_KEY_FILE")
    private_key = None
    if key_file:
        try:
            private_key = Path(key_file).read_text()
        except OSError as error:
            raise ConfigError(f"SFTP key file {key_file}: {error.strerror or error}") from error
    password = _option(options, "password", "SNAPKEEP_SFTP_PASSWORD")
    if parsed.password:
        password = urllib.parse.unquote(parsed.password)
    if private_key is None and password is None:
        raise ConfigError(
            "sftp:// needs credentials: SNAPKEEP_SFTP_KEY_FILE (or --sftp-key-file) or SNAPKEEP_SFTP_PASSWORD"
        )
    return SftpStore(
        host=parsed.hostname,
        port=parsed.port or 22,
        username=urllib.parse.unquote(parsed.username),
        path=path,
        password=password,
        private_key=private_key,
        passphrase=_option(options, "passphrase", "SNAPKEEP_SFTP_PASSPHRASE"),
        fingerprint=_option(options, "fingerprint", "SNAPKEEP_SFTP_FINGERPRINT"),
        **options,
    )


def open_s3(location: str, **options: Any) -> Store:
    """Open ``s3://ENDPOINT/BUCKET[/PREFIX]`` (or ``s3+http://``); raises ConfigError when incomplete."""
    parsed = urllib.parse.urlsplit(location)
    scheme = parsed.scheme.lower()
    transport = "http" if scheme == "s3+http" else "https"
    parts = [urllib.parse.unquote(part) for part in parsed.path.split("/") if part]
    if not parts:
        raise ConfigError(f"location {_safe(location)!r}: s3:// needs a bucket (s3://ENDPOINT/BUCKET/PREFIX)")
    bucket, prefix = parts[0], "/".join(parts[1:])
    access_key = _option(options, "access_key", "SNAPKEEP_S3_ACCESS_KEY")
    secret_key = _option(options, "secret_key", "SNAPKEEP_S3_SECRET_KEY")
    if not access_key or not secret_key:
        raise ConfigError("s3:// needs credentials: SNAPKEEP_S3_ACCESS_KEY and SNAPKEEP_S3_SECRET_KEY")
    region = _option(options, "region", "SNAPKEEP_S3_REGION") or "us-east-1"
    endpoint = f"{transport}://{parsed.netloc}" if parsed.netloc else None
    return S3Store(
        bucket=bucket,
        access_key=access_key,
        secret_key=secret_key,
        region=region,
        endpoint=endpoint,
        path=prefix,
        **options,
    )


def _safe(location: str) -> str:
    """The location without a password that a URL may carry."""
    parsed = urllib.parse.urlsplit(location)
    if parsed.password is None:
        return location
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":********@")
    return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))
