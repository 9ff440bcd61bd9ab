"""Catalog destinations as store parameters, and the SFTP host key they pin.

``store_params(destination, job_id)`` describes the store of the repository of ``job_id``
(``<destination root>/<job id>``; ``job_id=""`` is the root itself) in the terms of
``storage.registry``, straight from the destination's catalog options, through a table of
destination types: SFTP logs in with a password or with a private key's *text* (+ passphrase); SFTP
paths are absolute on the server; S3's ``<path>/<job id>`` is the key prefix; FTP's path is absolute
or relative to the login folder, as given, and FTPS is FTP with ``tls``. Opening the store is
``jobs.repositories``' business.

SFTP host keys: the destination document's ``fingerprint`` (shown read-only as
``options.fingerprint``) pins the key. When none is recorded, the first key seen is recorded by
``record_fingerprint`` (``validateDestination`` and the first successful run do it); a later
connection to a server offering another key fails with ``HostKeyChangedError``.

Secrets: the options ``models.destination.SECRETS`` names are stored sealed (``jobs.sealing``, purpose
``destination/<type>/<option>``): ``seal_options`` before a write, ``open_options`` (done by
``store_params``) when the store is opened. Nothing else needs them in clear.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from snapkeep.errors import ConfigError
from snapkeep.jobs import sealing
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.models.destination import SECRET_MASK, SECRETS
from snapkeep.storage.registry import FtpParams, LocalParams, S3Params, SftpParams, StoreParams

#: Seconds an SFTP or FTP call may take unless the destination says otherwise; an S3 call.
SFTP_TIMEOUT = 30.0
FTP_TIMEOUT = 30.0
S3_TIMEOUT = 60.0

#: Builds the parameters from (destination, its options, the path below its root, timeout or None).
Builder = Callable[[Mapping[str, Any], Mapping[str, Any], str, float | None], StoreParams]


def _joined(*parts: str) -> str:
    return "/".join(part.strip("/") for part in parts if part.strip("/"))


def threads(destination: Mapping[str, Any]) -> int:
    """How many calls the destination's store may serve at once (at least 1)."""
    return max(int(destination.get("threads") or 1), 1)


def _local(
    destination: Mapping[str, Any], options: Mapping[str, Any], below: str, timeout: float | None
) -> LocalParams:
    return LocalParams(path="/" + _joined(str(options["path"]), below))


def _sftp(
    destination: Mapping[str, Any], options: Mapping[str, Any], below: str, timeout: float | None
) -> SftpParams:
    return SftpParams(
        host=str(options["host"]),
        port=int(options.get("port") or 22),
        username=str(options["username"]),
        path="/" + _joined(str(options.get("path") or ""), below),
        password=options.get("password") or None,
        private_key=options.get("privatekey") or None,
        passphrase=options.get("passphrase") or None,
        fingerprint=destination.get("fingerprint") or None,
        timeout=float(timeout or options.get("timeout") or SFTP_TIMEOUT),
        threads=threads(destination),
    )


def _s3(
    destination: Mapping[str, Any], options: Mapping[str, Any], below: str, timeout: float | None
) -> S3Params:
    return S3Params(
        bucket=str(options["bucket"]),
        access_key=str(options["access_key"]),
        secret_key=str(options["secret_key"]),
        region=str(options.get("region") or "us-east-1"),
        endpoint=str(options.get("endpoint") or "") or None,
        path=_joined(str(options.get("path") or ""), below),
        threads=max(threads(destination), 2),
        timeout=float(timeout or S3_TIMEOUT),
    )


def _ftp(
    destination: Mapping[str, Any], options: Mapping[str, Any], below: str, timeout: float | None
) -> FtpParams:
    path = str(options["path"])
    return FtpParams(
        host=str(options["host"]),
        port=int(options.get("port") or 21),
        username=str(options["username"]),
        password=str(options.get("password") or ""),
        path=("/" if path.startswith("/") else "") + _joined(path, below),
        tls=bool(options.get("tls")),
        passive=bool(options.get("passive", True)),
        verify=bool(options.get("verify", True)),
        ca_file=str(options.get("ca_file") or "") or None,
        timeout=float(timeout or options.get("timeout") or FTP_TIMEOUT),
        threads=threads(destination),
    )


#: destination type -> parameters of its store.
TYPES: dict[str, Builder] = {"Local": _local, "SFTP": _sftp, "S3": _s3, "FTP": _ftp}
#: The types whose stores are remote: limited to the destination's ``threads`` calls at once.
REMOTE_TYPES = frozenset({"SFTP", "S3", "FTP"})


def secret_purpose(destination_type: str, option: str) -> str:
    """The sealing purpose of a destination secret: a token moved to another option or type fails."""
    return f"destination/{destination_type}/{option}"


def seal_options(
    master: sealing.MasterKey,
    destination_type: str,
    options: Mapping[str, Any],
    *,
    given: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``options`` with every secret sealed. A secret the caller sent in ``given`` (not the mask) is
    text to seal whatever it looks like, so a client cannot plant a token of its own; any other value
    came from the catalog: a token is kept, clear text (from before sealing) is sealed."""
    sealed = dict(options)
    sent = given or {}
    for option in SECRETS.get(destination_type, ()):
        value = sealed.get(option)
        if not isinstance(value, str) or not value:
            continue
        purpose = secret_purpose(destination_type, option)
        fresh = option in sent and sent[option] != SECRET_MASK
        sealed[option] = master.seal(value, purpose) if fresh else master.seal_value(value, purpose)
    return sealed


def reseal_options(
    master: sealing.MasterKey, destination_type: str, options: Mapping[str, Any]
) -> dict[str, Any]:
    """``options`` with every secret sealed with ``master`` (``MasterKey.reseal``: clear ones sealed,
    another loaded key's tokens sealed again). Raises ConfigError when a token does not open."""
    sealed = dict(options)
    for option in SECRETS.get(destination_type, ()):
        value = sealed.get(option)
        if isinstance(value, str) and value:
            sealed[option] = master.reseal(value, secret_purpose(destination_type, option))
    return sealed


def has_clear_secret(destination: Mapping[str, Any]) -> bool:
    """Whether a stored destination holds a secret in clear (a catalog from before sealing)."""
    options = destination.get("options") or {}
    return any(
        isinstance(options.get(option), str) and options[option] and not sealing.is_sealed(options[option])
        for option in SECRETS.get(str(destination.get("type", "")), ())
    )


def open_options(destination_type: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with every sealed secret opened. Raises ConfigError when one does not open."""
    opened = dict(options)
    for option in SECRETS.get(destination_type, ()):
        value = opened.get(option)
        if isinstance(value, str) and value:
            opened[option] = sealing.open_value(value, secret_purpose(destination_type, option))
    return opened


def store_params(destination: Mapping[str, Any], job_id: str, *, timeout: float | None = None) -> StoreParams:
    """The store parameters of ``job_id``'s repository on ``destination`` (the root for ``job_id=""``);
    ``timeout`` overrides the destination's. Raises ConfigError for an unknown type, a missing option
    or a secret that does not open with a master key of this process."""
    kind = str(destination.get("type", ""))
    name = destination.get("name", "")
    builder = TYPES.get(kind)
    if builder is None:
        raise ConfigError(f"Destination {name!r}: unknown type {kind!r}")
    try:
        options = open_options(kind, destination.get("options") or {})
        return builder(destination, options, job_id, timeout)
    except KeyError as missing:
        raise ConfigError(f"Destination {name!r}: option {missing.args[0]} is missing") from None


def record_fingerprint(tx: Transaction, ident: str, fingerprint: str | None) -> bool:
    """Save the SFTP host key ``fingerprint`` on destination ``ident`` when none is recorded yet;
    return whether it was saved. Raises nothing for a destination that is gone."""
    if not fingerprint:
        return False
    stored = tx.get("destinations", ident, lock=True)
    if stored is None or stored.get("type") != "SFTP" or stored.get("fingerprint"):
        return False
    document = {key: value for key, value in stored.items() if key != "_id"}
    document["fingerprint"] = fingerprint
    tx.replace("destinations", ident, document)
    return True
