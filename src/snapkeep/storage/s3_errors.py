"""botocore errors turned into snapkeep ``StorageError``s with messages a person can act on.

Transient (retried by ``RetryingStore``): timeouts, refused or dropped connections, HTTP 5xx, 429 and the
throttling codes. Permanent (fail fast): credentials, access denied, missing bucket, quota, other 4xx.
Messages name the bucket, the object and what to fix; they never contain the secret key.
"""

from __future__ import annotations

import socket

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from snapkeep.errors import (
    DestinationNotFoundError,
    ObjectNotFoundError,
    PermissionDeniedError,
    StorageError,
    StorageFullError,
    TransientStorageError,
)

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_BAD_KEY_ID = {"InvalidAccessKeyId"}
_BAD_SECRET = {"SignatureDoesNotMatch"}
_DENIED = {"AccessDenied", "403", "AllAccessDisabled", "AccountProblem", "InvalidToken", "ExpiredToken"}
_FULL = {
    "QuotaExceeded",
    "StorageQuotaExceeded",
    "XMinioStorageFull",
    "XMinioAdminBucketQuotaExceeded",
    "InsufficientStorage",
    "StorageFull",
}
_THROTTLED = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
}


def error_code(error: ClientError) -> str:
    """The S3 error code of a ``ClientError`` (``"404"`` for a HEAD without body)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _causes(error: BaseException) -> list[BaseException]:
    """``error``, the exception botocore wrapped, and their causes and contexts."""
    found: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    if isinstance(error, BotoCoreError):
        wrapped = error.kwargs.get("error")
        pending.append(wrapped if isinstance(wrapped, BaseException) else None)
    while pending:
        current = pending.pop()
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        pending.extend((current.__cause__, current.__context__))
    return found


def _connection_error(error: BotoCoreError, location: str) -> StorageError:
    causes = _causes(error)
    names = " ".join(type(cause).__name__ for cause in causes)
    if any(isinstance(cause, socket.gaierror) for cause in causes) or "NameResolution" in names:
        return StorageError(
            f"unknown host for {location}: the endpoint's name does not resolve; check the endpoint"
        )
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return TransientStorageError(
            f"connection refused by the endpoint of {location}: nothing listens there; "
            "check the endpoint URL and that the server is running"
        )
    if isinstance(error, EndpointConnectionError):
        return TransientStorageError(f"cannot connect to the endpoint of {location}: {error}")
    return TransientStorageError(f"network error talking to {location}: {error}")


def translate(
    error: BaseException,
    *,
    operation: str,
    name: str,
    bucket: str,
    location: str,
    missing_is_not_found: bool,
) -> StorageError:
    """The ``StorageError`` for a boto3 failure of ``operation`` on object ``name``."""
    detail = f"{operation} {name!r} in {location}"
    if isinstance(error, BotoConnectionError | HTTPClientError | IncompleteReadError):
        return _connection_error(error, location)
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return PermissionDeniedError(f"{detail}: access_key and secret_key must both be given")
    if isinstance(error, BotoCoreError):
        return StorageError(f"S3 {detail} failed: {error}")
    if not isinstance(error, ClientError):
        return StorageError(f"S3 {detail} failed: {type(error).__name__}: {error}")
    code = error_code(error)
    status = _status(error)
    message = str(error.response.get("Error", {}).get("Message", "") or code or status)
    if code == "NoSuchBucket":
        return DestinationNotFoundError(
            f"bucket {bucket!r} does not exist ({detail}): create it or correct the bucket name"
        )
    if code in _NOT_FOUND or (status == 404 and not code):
        if missing_is_not_found:
            return ObjectNotFoundError(name=name)
        return StorageError(f"S3 {detail} failed: not found ({message})")
    if code in _BAD_KEY_ID:
        return PermissionDeniedError(f"S3 does not know the access key ({detail}): check access_key")
    if code in _BAD_SECRET:
        return PermissionDeniedError(
            f"S3 rejected the request signature ({detail}): the secret_key is wrong for this access_key"
        )
    if code in _FULL or status == 507:
        return StorageFullError(f"the destination is over its quota or full: {detail}: {message}")
    if code in _DENIED or status == 403:
        return PermissionDeniedError(
            f"access denied: {detail}: the credentials are wrong or lack permission on bucket {bucket!r}"
        )
    if code in _THROTTLED or status == 429 or status >= 500:
        return TransientStorageError(f"S3 temporary failure: {detail}: {code or status} {message}")
    return StorageError(f"S3 {detail} failed: {code or status}: {message}")
