"""The Destination model (API.md section 5): common fields, then ``options`` checked per ``type``.

Secrets (passwords, private keys, S3 secret keys) never leave in clear: ``mask`` replaces them with
``SECRET_MASK``; ``unmask`` puts the stored secret back when a client sends the mask on modify, but
only while the endpoint the secret belongs to (``ENDPOINTS``: SFTP host, port and user; S3 endpoint,
region, bucket and access key) stays the same: otherwise a caller could point the destination at its
own server and have the stored password sent there (attack report HIGH/MEDIUM-5).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, field_serializer, model_validator
from pydantic_core import PydanticCustomError

from snapkeep.errors import ValidationError
from snapkeep.jobs.models.base import (
    AbsolutePath,
    Flag,
    Name,
    Strict,
    Text,
    describe,
    field_error,
    integer,
    objectish,
    shown,
    validate,
)

SECRET_MASK = "SK|HIDDEN|********"
READ_ONLY_OPTIONS = ("fingerprint",)


class LocalOptions(Strict):
    path: AbsolutePath = Field(description="absolute directory backups are written under")


class SftpOptions(Strict):
    host: Annotated[str, Field(min_length=1, max_length=255)] = Field(description="server name or address")
    port: Annotated[int, integer(1, 65535)] = Field(22, description="TCP port")
    username: Name = Field(description="login name")
    password: str = Field("", description="password (secret)")
    privatekey: str = Field("", description="private key text (secret)")
    passphrase: str = Field("", description="passphrase of the private key (secret)")
    path: Text = Field(description="directory on the server backups are written under")
    timeout: Annotated[int, integer(1, 3600)] = Field(30, description="connection timeout in seconds")

    @model_validator(mode="after")
    def _credentials(self) -> SftpOptions:
        if not self.password and not self.privatekey:
            raise field_error("password", "an SFTP destination needs a password or a privatekey")
        return self


class S3Options(Strict):
    bucket: Annotated[str, Field(min_length=3, max_length=63)] = Field(description="bucket name")
    region: Text = Field("us-east-1", description="region")
    endpoint: str = Field("", description="endpoint URL for S3-compatible services (default: AWS)")
    access_key: Text = Field(description="access key ID")
    secret_key: Text = Field(description="secret access key (secret)")
    path: str = Field("", description="prefix inside the bucket")

    @model_validator(mode="after")
    def _endpoint(self) -> S3Options:
        if self.endpoint and not self.endpoint.startswith(("http://", "https://")):
            raise field_error(
                "endpoint", "must be an http:// or https:// URL (got {got})", got=shown(self.endpoint)
            )
        return self


def _no_control_characters(value: Any) -> Any:
    """FTP sends options as command arguments: a CR or LF would inject commands."""
    if isinstance(value, str) and any(ord(character) < 32 or ord(character) == 127 for character in value):
        raise PydanticCustomError("control_characters", "must not contain control characters", {})
    return value


FtpText = Annotated[str, BeforeValidator(_no_control_characters)]


class FtpOptions(Strict):
    host: Annotated[FtpText, Field(min_length=1, max_length=255)] = Field(
        description="server name or address"
    )
    port: Annotated[int, integer(1, 65535)] = Field(21, description="TCP port")
    username: Annotated[FtpText, Field(min_length=1, max_length=255)] = Field(description="login name")
    password: FtpText = Field("", description="password (secret)")
    path: Annotated[FtpText, Field(min_length=1)] = Field(
        description="directory on the server for backups (absolute, or relative to the login directory)"
    )
    tls: Flag = Field(False, description="1: FTPS, explicit TLS (AUTH TLS) for the login and every transfer")
    passive: Flag = Field(True, description="1: passive mode (the client opens data connections)")
    verify: Flag = Field(True, description="1: check the server's TLS certificate")
    ca_file: FtpText = Field(
        "", description="PEM file on this server of a CA (or self-signed certificate) to trust"
    )
    timeout: Annotated[int, integer(1, 3600)] = Field(30, description="connection timeout in seconds")

    @field_serializer("tls", "passive", "verify")
    def _as_number(self, value: bool) -> int:
        """Stored and answered as 1/0, the API's flags on input."""
        return int(value)

    @model_validator(mode="after")
    def _ca_file(self) -> FtpOptions:
        if self.ca_file and not self.ca_file.startswith("/"):
            raise field_error(
                "ca_file", "must be an absolute path starting with / (got {got})", got=shown(self.ca_file)
            )
        return self


DESTINATION_OPTIONS: dict[str, type[BaseModel]] = {
    "Local": LocalOptions,
    "SFTP": SftpOptions,
    "S3": S3Options,
    "FTP": FtpOptions,
}
SECRETS: dict[str, tuple[str, ...]] = {
    "Local": (),
    "SFTP": ("password", "privatekey", "passphrase"),
    "S3": ("secret_key",),
    "FTP": ("password",),
}
#: the options that say where (and how safely) a type's secrets are sent: a masked secret is kept
#: only while they stay. FTP: also the TLS options, since turning TLS or its checks off, or trusting
#: another CA, would hand the password to whoever listens. A type with secrets missing here counts
#: every option that is not a secret (``endpoint_options``).
ENDPOINTS: dict[str, tuple[str, ...]] = {
    "Local": (),
    "SFTP": ("host", "port", "username"),
    "S3": ("endpoint", "region", "bucket", "access_key"),
    "FTP": ("host", "port", "username", "tls", "verify", "ca_file"),
}
DESTINATION_DESCRIPTIONS = {
    "Local": "a directory on this server (or a mounted disk)",
    "SFTP": "a directory on an SSH server",
    "S3": "a bucket on Amazon S3 or an S3-compatible service",
    "FTP": "a directory on an FTP server, or FTPS with tls=1",
}
#: JetBackup's names for types snapkeep has under another name (stored and answered as the latter).
TYPE_ALIASES = {"ssh": "SFTP", "localv2": "Local"}
#: JetBackup destination types snapkeep does not implement: refused by name rather than as unknown.
UNSUPPORTED_TYPES = (
    "S3 Compatible", "Wasabi", "Backblaze", "Google Drive", "Dropbox", "Box", "OneDrive", "pCloud",
    "Clones", "Rsync", "DigitalOcean Spaces", "Azure",
)  # fmt: skip


def _type_key(value: str) -> str:
    return "".join(character for character in value.lower() if character.isalnum())


def canonical_type(value: Any) -> str | None:
    """The stored name of a destination type or of its JetBackup alias (``SSH``, ``Localv2``)."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    for name in DESTINATION_OPTIONS:
        if text == name.lower():
            return name
    return TYPE_ALIASES.get(text)


def _destination_type(value: Any) -> str:
    name = canonical_type(value)
    if name is not None:
        return name
    unsupported = [
        kind for kind in UNSUPPORTED_TYPES if isinstance(value, str) and _type_key(value) == _type_key(kind)
    ]
    if unsupported:
        raise PydanticCustomError(
            "unsupported",
            "{got} is a JetBackup destination type snapkeep does not support; use one of {allowed}",
            {"allowed": describe({t: t for t in DESTINATION_OPTIONS}), "got": shown(value)},
        )
    raise PydanticCustomError(
        "choice",
        "must be one of {allowed} (got {got})",
        {"allowed": describe({t: t for t in DESTINATION_OPTIONS}), "got": shown(value)},
    )


class DestinationFields(Strict):
    """The writable fields of a Destination; ``options`` is checked by ``validate_destination``."""

    name: Name = Field(description="free text, 1-255 characters")
    type: Annotated[str, BeforeValidator(_destination_type)] = Field(
        description="Local, SFTP, S3 or FTP (JetBackup's SSH and Localv2 are read as SFTP and Local)"
    )
    options: Annotated[dict[str, Any], BeforeValidator(objectish)] = Field(
        default_factory=dict, description="options[...] of the type (see listDestinationTypes)"
    )
    disabled: Flag = Field(False, description="a disabled destination is skipped by runs")
    readonly: Flag = Field(False, description="backups are only read from it, never written")
    threads: Annotated[int, integer(1, 64)] = Field(1, description="parallel transfers")
    disk_limit: Annotated[int, integer(0, 100)] = Field(
        0, description="percent: a run skips the destination when it is fuller (0 = no limit)"
    )


def validate_destination(data: Mapping[str, Any]) -> DestinationFields:
    """Validate the common fields, then the options of the type. Raises ValidationError."""
    fields = validate(DestinationFields, data)
    options = {key: value for key, value in fields.options.items() if key not in READ_ONLY_OPTIONS}
    checked = validate(DESTINATION_OPTIONS[fields.type], options, prefix="options")
    fields.options = checked.model_dump()
    return fields


def mask(destination_type: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with every non-empty secret replaced by SECRET_MASK."""
    secrets = SECRETS.get(destination_type, ())
    return {key: SECRET_MASK if key in secrets and value else value for key, value in options.items()}


def endpoint_options(
    destination_type: str, options: Mapping[str, Any], stored: Mapping[str, Any]
) -> list[str]:
    """The options that say where ``destination_type``'s secrets go: ``ENDPOINTS``, or for a type
    not listed there every option of either side that is not a secret (the safe side)."""
    if destination_type in ENDPOINTS:
        return list(ENDPOINTS[destination_type])
    secrets = SECRETS.get(destination_type, ())
    return sorted({*options, *stored} - {*secrets, *READ_ONLY_OPTIONS})


def _endpoint_value(destination_type: str, name: str, options: Mapping[str, Any]) -> str:
    """An endpoint option as text, its model's default when absent (``port`` 22 and "22" agree;
    flags 1, "1" and true agree)."""
    value = options.get(name)
    model = DESTINATION_OPTIONS.get(destination_type)
    if (value is None or value == "") and model is not None:
        field = model.model_fields.get(name)
        value = field.default if field is not None and not field.is_required() else ""
    if isinstance(value, bool):
        value = int(value)
    text = str(value).strip()
    return {"true": "1", "false": "0"}.get(text.lower(), text)


def changed_endpoint(
    destination_type: str, options: Mapping[str, Any], stored: Mapping[str, Any]
) -> list[str]:
    """The endpoint options (``endpoint_options``) whose value in ``options`` differs from ``stored``."""
    return [
        name
        for name in endpoint_options(destination_type, options, stored)
        if _endpoint_value(destination_type, name, options) != _endpoint_value(destination_type, name, stored)
    ]


def unmask(
    destination_type: str, options: Mapping[str, Any], stored: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``options`` with each SECRET_MASK replaced by the stored secret of the same name. ``stored``
    is None when the type changes. Raises ValidationError naming the secret when a stored secret
    would be kept for another endpoint (or another type): it must be given again."""
    secrets = SECRETS.get(destination_type, ())
    masked = [key for key, value in options.items() if key in secrets and value == SECRET_MASK]
    if masked and stored is None:
        raise ValidationError(
            field=f"options[{masked[0]}]",
            problem="must be given again when the type changes (the mask keeps no secret of another type)",
        )
    stored = stored or {}
    if any(stored.get(key) for key in masked):
        changed = changed_endpoint(destination_type, options, stored)
        if changed:
            key = next(key for key in masked if stored.get(key))
            raise ValidationError(
                field=f"options[{key}]",
                problem=f"must be given again when {' and '.join(changed)} change"
                + ("s" if len(changed) == 1 else "")
                + " (a stored secret is only kept for the same server)",
            )
    return {key: stored.get(key, "") if key in masked else value for key, value in options.items()}
