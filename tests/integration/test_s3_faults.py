"""S3 failures against a real ``rclone serve s3`` and a scripted HTTP server on 127.0.0.1.

The scripted server answers every request with one fixed S3 error document, the way AWS, MinIO or
Wasabi do for throttling, outages and quotas, so the translation of each answer is tested over HTTP.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from servers import RcloneS3Server, free_port
from snapkeep.errors import (
    DestinationNotFoundError,
    PermissionDeniedError,
    StorageError,
    StorageFullError,
    TransientStorageError,
)
from snapkeep.storage.probe import probe
from snapkeep.storage.s3 import MIB, S3Store


@pytest.fixture(scope="module")
def s3(s3_server: RcloneS3Server) -> RcloneS3Server:
    s3_server.make_bucket("faults")
    return s3_server


def connect(server: RcloneS3Server, **options: object) -> S3Store:
    settings: dict[str, object] = {
        "bucket": "faults",
        "endpoint": server.endpoint,
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "path": secrets.token_hex(6),
        "timeout": 5.0,
    }
    settings.update(options)
    return S3Store(**settings)  # type: ignore[arg-type]


def test_wrong_secret_key_is_access_denied(s3: RcloneS3Server) -> None:
    store = connect(s3, secret_key="wrong-secret-key-value")
    for attempt in (lambda: store.store("config", b"x"), lambda: store.load("config"), store.list):
        with pytest.raises(PermissionDeniedError, match="secret_key is wrong") as caught:
            attempt()
        assert not caught.value.transient
        assert "wrong-secret-key-value" not in str(caught.value)


def test_unknown_access_key_is_access_denied(s3: RcloneS3Server) -> None:
    store = connect(s3, access_key="NOBODY")
    with pytest.raises(PermissionDeniedError, match="does not know the access key"):
        store.store("config", b"x")


def test_missing_bucket_says_so_and_the_probe_stops_at_write(s3: RcloneS3Server) -> None:
    store = connect(s3, bucket="no-such-bucket")
    with pytest.raises(DestinationNotFoundError, match="bucket 'no-such-bucket' does not exist"):
        list(store.list())
    report = probe(store)
    assert (report.ok, report.failed_step) == (False, "write")
    assert isinstance(report.error, DestinationNotFoundError)
    assert "create it" in report.message


def test_server_killed_is_transient_and_restart_recovers(s3: RcloneS3Server) -> None:
    with connect(s3) as store:
        store.store("data/ab/one", b"before")
        s3.stop()
        try:
            with pytest.raises(TransientStorageError, match="connection refused"):
                store.load("data/ab/one")
            with pytest.raises(TransientStorageError):
                store.store("data/ab/two", b"while down")
        finally:
            s3.start()
        assert store.load("data/ab/one") == b"before"
        store.store("data/ab/two", b"after")
        assert store.load("data/ab/two") == b"after"


def test_failed_multipart_upload_is_aborted(s3: RcloneS3Server) -> None:
    with connect(s3, multipart_threshold=5 * MIB, part_size=5 * MIB) as store:
        store.store("archives/kept.tar", b"old")

        def chunks() -> Iterator[bytes]:
            yield os.urandom(6 * MIB)
            yield os.urandom(5 * MIB)
            raise RuntimeError("source broke")

        with pytest.raises(RuntimeError, match="source broke"):
            store.store_stream("archives/kept.tar", chunks())
        assert store.load("archives/kept.tar") == b"old"
        uploads = store._client.list_multipart_uploads(Bucket="faults").get("Uploads") or []
        assert [upload for upload in uploads if upload["Key"].startswith(store.prefix)] == []


def test_unknown_endpoint_host_is_permanent(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_name(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)  # no DNS query leaves the machine
    store = S3Store(bucket="b", endpoint="http://s3.example.invalid", access_key="a", secret_key="s")
    with pytest.raises(StorageError, match="unknown host") as caught:
        store.stat("config")
    assert not caught.value.transient


@pytest.fixture(scope="module")
def scripted() -> Iterator[dict[str, object]]:
    """An HTTP server on 127.0.0.1 answering every request with ``answer`` = (status, code)."""
    answer: dict[str, object] = {"status": 503, "code": "SlowDown"}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # answers "Expect: 100-continue" at once

        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            body = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{answer["code"]}</Code>'
                f"<Message>scripted {answer['code']}</Message></Error>"
            ).encode()
            self.send_response(int(answer["status"]))  # type: ignore[call-overload]
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _reply

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    answer["endpoint"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield answer
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize(
    ("status", "code", "expected", "transient"),
    [
        (503, "SlowDown", TransientStorageError, True),
        (503, "ServiceUnavailable", TransientStorageError, True),
        (500, "InternalError", TransientStorageError, True),
        (429, "TooManyRequests", TransientStorageError, True),
        (403, "QuotaExceeded", StorageFullError, False),
        (507, "InsufficientStorage", StorageFullError, False),
        (403, "AccessDenied", PermissionDeniedError, False),
        (400, "InvalidArgument", StorageError, False),
    ],
)
def test_http_errors_are_split_into_transient_and_permanent(
    scripted: dict[str, object], status: int, code: str, expected: type[StorageError], transient: bool
) -> None:
    scripted.update(status=status, code=code)
    store = S3Store(bucket="b", endpoint=str(scripted["endpoint"]), access_key="a", secret_key="s")
    with pytest.raises(expected) as caught:
        store.store("data/ab/one", b"payload")
    assert type(caught.value) is expected or expected is StorageError
    assert caught.value.transient is transient
    assert "data/ab/one" in str(caught.value)
