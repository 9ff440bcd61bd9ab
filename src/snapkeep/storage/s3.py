"""A store under a prefix of an S3 bucket (AWS, Wasabi, Backblaze B2, MinIO, Ceph, rclone), via boto3.

Object ``a/b/c`` is the key ``<path>/a/b/c``. ``store`` is one PUT (atomic and durable when it returns).
``store_stream`` buffers up to ``multipart_threshold`` bytes: a smaller object is one PUT, a larger one
a multipart upload of ``part_size`` parts that becomes visible only at ``CompleteMultipartUpload``; on
any failure the upload is aborted, so nothing half-written is ever visible. ``load`` sends ranged GETs.

botocore's own retries are off (``RetryingStore`` owns retries and backoff) and request checksums are
sent only when an operation requires them, which more S3-compatible servers understand. A custom
``endpoint`` uses path-style addressing. ``threads`` sizes the HTTP connection pool, so that many
threads may call one store at once.

Errors are translated in ``snapkeep.storage.s3_errors``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from snapkeep.errors import InvalidNameError, ObjectNotFoundError, StorageError
from snapkeep.storage.base import ObjectInfo, Store, StoreInfo, validate_name, validate_prefix, validate_range
from snapkeep.storage.s3_errors import error_code, translate

MIB = 1024 * 1024
_MIN_PART = 5 * MIB
_MASK = "***"
_SESSION_LOCK = threading.Lock()
_SESSIONS: list[boto3.session.Session] = []


def _session() -> boto3.session.Session:
    """The process-wide boto3 session (call with ``_SESSION_LOCK`` held)."""
    if not _SESSIONS:
        _SESSIONS.append(boto3.session.Session())
    return _SESSIONS[0]


class S3Store(Store):
    """Objects as keys under ``path`` in ``bucket``. Safe to call from several threads.

    Every method raises ``StorageError`` subclasses: ``PermissionDeniedError`` (credentials, access
    denied), ``DestinationNotFoundError`` (missing bucket), ``StorageFullError`` (quota),
    ``ObjectNotFoundError``, ``TransientStorageError`` (timeouts, refused or dropped connections,
    5xx, throttling) and ``StorageError`` (unknown host, other refusals).
    """

    #: Every chunk is taken once (botocore's own retries are off; ``RetryingStore``, which writes a
    #: sequence again, says so itself), so the packer hands over a pack's parts one by one and
    #: each is released once joined into the PUT's body instead of held beside it.
    replays_writes = False
    spools_packs = True

    def __init__(
        self,
        *,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        endpoint: str | None = None,
        path: str = "",
        threads: int = 4,
        timeout: float = 60.0,
        multipart_threshold: int = 64 * MIB,
        part_size: int = 16 * MIB,
        page_size: int = 1000,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if part_size < _MIN_PART:
            raise ValueError(f"part_size must be >= {_MIN_PART} (S3's minimum part), got {part_size}")
        self.bucket = bucket
        self.region = region
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.prefix = path.strip("/") + "/" if path.strip("/") else ""
        self.threads = threads
        self.multipart_threshold = max(multipart_threshold, 1)
        self.part_size = part_size
        self.page_size = page_size
        self._access_key = access_key
        self._secret_key = secret_key
        host = self.endpoint or f"https://s3.{region}.amazonaws.com"
        self.location = f"s3://{host.split('://', 1)[-1]}/{bucket}/{self.prefix}".rstrip("/")
        config = Config(
            region_name=region,
            # No SHA-256 of every body for the signature (UNSIGNED-PAYLOAD; the headers are still
            # signed): packs are authenticated by their AEAD and named by their BLAKE3, and TLS
            # protects the rest. 16 MiB PUTs to loopback rclone: 0.41-0.79 ms of our CPU per MiB
            # instead of 1.08-1.37 (docs/destinations.md).
            s3={"addressing_style": "path" if endpoint else "auto", "payload_signing_enabled": False},
            max_pool_connections=max(threads, 2),
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        with _SESSION_LOCK:  # one session loads the service model once; clients are thread-safe
            self._client: Any = _session().client(
                "s3",
                endpoint_url=self.endpoint,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                config=config,
            )

    def __repr__(self) -> str:
        return f"S3Store({self.location!r}, access_key={self._access_key!r}, secret_key={_MASK!r})"

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _error(
        self, error: Exception, operation: str, name: str, *, missing_is_not_found: bool = True
    ) -> StorageError:
        return translate(
            error,
            operation=operation,
            name=name,
            bucket=self.bucket,
            location=self.location,
            missing_is_not_found=missing_is_not_found,
        )

    # --- writing ------------------------------------------------------------------------------------

    def store(self, name: str, data: bytes) -> None:
        """One PUT of ``data``. Raises ``StorageError`` subclasses."""
        validate_name(name)
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(name), Body=bytes(data))
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, "write", name, missing_is_not_found=False) from error

    def store_file(self, name: str, file: BinaryIO, size: int) -> int:
        """One PUT with the file as its body (read as it is sent, from its start each time this
        is called) below ``multipart_threshold``; above, ``store_stream``'s multipart upload."""
        if size >= self.multipart_threshold:
            return super().store_file(name, file, size)
        validate_name(name)
        body = _FileStart(file.fileno(), size)
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(name), Body=body, ContentLength=size)
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, "write", name, missing_is_not_found=False) from error
        return size

    def store_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        """One PUT below ``multipart_threshold``, a multipart upload above; return the size.

        An exception raised by ``chunks`` itself propagates unchanged; an unfinished multipart upload
        is aborted first, so no object (and no part) is left behind.
        """
        validate_name(name)
        pending: list[bytes] = []  # chunks not yet sent; joined once, never grown byte by byte
        pending_size = 0
        iterator = iter(chunks)
        for chunk in iterator:
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= self.multipart_threshold:
                return self._multipart(name, pending, iterator)
        data = b"".join(pending)
        pending.clear()
        self.store(name, data)
        return len(data)

    def _multipart(self, name: str, pending: list[bytes], rest: Iterator[bytes]) -> int:
        key = self._key(name)
        try:
            upload = self._client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, "start multipart upload of", name, missing_is_not_found=False) from error
        parts: list[dict[str, Any]] = []
        size = 0
        pending_size = sum(len(chunk) for chunk in pending)
        try:
            while True:
                while pending_size >= self.part_size:  # join once per part, not once per chunk
                    joined = b"".join(pending)
                    size += self._upload_part(key, upload, parts, joined[: self.part_size])
                    remainder = joined[self.part_size :]
                    pending[:] = [remainder] if remainder else []
                    pending_size = len(remainder)
                chunk = next(rest, None)
                if chunk is None:
                    break
                pending.append(chunk)
                pending_size += len(chunk)
            if pending_size or not parts:
                size += self._upload_part(key, upload, parts, b"".join(pending))
            self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException as error:
            self._abort(key, upload)
            if isinstance(error, ClientError | BotoCoreError):
                raise self._error(error, "multipart upload of", name, missing_is_not_found=False) from error
            raise
        return size

    def _upload_part(self, key: str, upload: str, parts: list[dict[str, Any]], data: bytes) -> int:
        number = len(parts) + 1
        answer = self._client.upload_part(
            Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=number, Body=data
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        return len(data)

    def _abort(self, key: str, upload: str) -> None:
        """Abort a multipart upload; a failure here is secondary to the one being raised."""
        # If the abort fails too, the bucket's lifecycle rules must collect the parts: the object
        # itself was never completed, so it is not visible.
        with contextlib.suppress(ClientError, BotoCoreError):
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)

    # --- reading ------------------------------------------------------------------------------------

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """A (ranged) GET. Raises ``ObjectNotFoundError`` and ``StorageError`` subclasses."""
        validate_name(name)
        validate_range(offset, length)
        if length == 0:
            self.stat(name)
            return b""
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(name)}
        if offset or length is not None:
            last = "" if length is None else str(offset + length - 1)
            request["Range"] = f"bytes={offset}-{last}"
        try:
            answer = self._client.get_object(**request)
            data: bytes = answer["Body"].read()
        except ClientError as error:
            if error_code(error) == "InvalidRange":  # offset at or past the end: an empty range
                self.stat(name)
                return b""
            raise self._error(error, "read", name) from error
        except BotoCoreError as error:
            raise self._error(error, "read", name) from error
        if length is not None and len(data) > length:
            data = data[:length]  # a server that ignored the Range header
        return data

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, page by page (collected before the first is yielded)."""
        validate_prefix(prefix)
        found: list[ObjectInfo] = []
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=self._key(prefix), PaginationConfig={"PageSize": self.page_size}
            ):
                for item in page.get("Contents", ()):
                    name = item["Key"][len(self.prefix) :]
                    try:
                        validate_name(name)
                    except InvalidNameError:
                        continue  # not one of ours (a folder marker, another tool's file)
                    found.append(ObjectInfo(name, int(item["Size"])))
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, "list", prefix or "/", missing_is_not_found=False) from error
        return iter(found)

    def stat(self, name: str) -> ObjectInfo:
        """A HEAD request. Raises ``ObjectNotFoundError``."""
        validate_name(name)
        try:
            answer = self._client.head_object(Bucket=self.bucket, Key=self._key(name))
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, "stat", name) from error
        return ObjectInfo(name, int(answer["ContentLength"]))

    # --- removing and space -------------------------------------------------------------------------

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        """DELETE (S3 deletes silently): a HEAD first finds a missing object unless ``missing_ok``."""
        validate_name(name)
        if not missing_ok:
            self.stat(name)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(name))
        except (ClientError, BotoCoreError) as error:
            translated = self._error(error, "delete", name)
            if missing_ok and isinstance(translated, ObjectNotFoundError):
                return
            raise translated from error

    def info(self) -> StoreInfo:
        """Usage is the bytes stored under the prefix; S3 knows no free or total space."""
        return StoreInfo(usage=sum(item.size for item in self.list()), free=None, total=None)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


class _FileStart:
    """The first ``size`` bytes of an open file as a body botocore reads as it sends (``read``,
    ``seek``, ``tell``, ``len``), with ``os.pread``: the file's own position is never moved."""

    def __init__(self, descriptor: int, size: int) -> None:
        self._descriptor = descriptor
        self._size = size
        self._position = 0

    def __len__(self) -> int:
        return self._size

    def read(self, amount: int | None = -1) -> bytes:
        left = self._size - self._position
        wanted = left if amount is None or amount < 0 else min(amount, left)
        data = os.pread(self._descriptor, wanted, self._position) if wanted else b""
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._size}[whence]
        self._position = max(0, min(self._size, base + offset))
        return self._position

    def tell(self) -> int:
        return self._position
