"""Notifications against real servers on 127.0.0.1: a small SMTP server and an HTTP server."""

from __future__ import annotations

import base64
import datetime as dt
import email
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from snapkeep.errors import ValidationError
from snapkeep.jobs import notify, settings
from snapkeep.jobs.alerts import CRITICAL, INFO, WARNING, Alert

CREATED = dt.datetime(2026, 4, 1, 8, 0, tzinfo=dt.UTC)


def alert(level: int = CRITICAL, ident: str = "a" * 24) -> Alert:
    return Alert(ident, "Backup Job failed", "Backup Job 'Sites' failed", level, CREATED)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# --- a tiny SMTP server ----------------------------------------------------------------------------


class SmtpHandler(socketserver.StreamRequestHandler):
    """Enough SMTP for smtplib: EHLO (with AUTH PLAIN), AUTH, MAIL, RCPT, DATA, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        server: SmtpServer = self.server  # type: ignore[assignment]
        self.reply("220 test ESMTP")
        envelope: dict = {"rcpt": []}
        while True:
            line = self.rfile.readline()
            if not line:
                return
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250-test")
                self.reply("250 AUTH PLAIN")
            elif verb == "HELO":
                self.reply("250 test")
            elif verb == "AUTH":
                _, user, password = base64.b64decode(command.split()[2]).split(b"\0")
                envelope["auth"] = (user.decode(), password.decode())
                self.reply("235 ok" if password == b"s3cret" else "535 bad credentials")
            elif verb == "MAIL":
                envelope["from"] = command
                self.reply("250 ok")
            elif verb == "RCPT":
                envelope["rcpt"].append(command)
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 go on")
                lines = []
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(data)
                envelope["data"] = b"".join(lines)
                server.messages.append(envelope)
                envelope = {"rcpt": []}
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


class SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SmtpHandler)
        self.messages: list[dict] = []


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


# --- an HTTP server ----------------------------------------------------------------------------------


class HookReceiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server: WebhookServer = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(server.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HookReceiver)
        self.received: list[tuple[str, str, dict]] = []
        self.status = 204

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/alerts"


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    server = WebhookServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def email_settings(smtp: SmtpServer, **fields) -> dict:
    return {
        "host": "127.0.0.1",
        "port": smtp.server_address[1],
        "sender": "snapkeep@example.test",
        "recipients": ["ops@example.test", "oncall@example.test"],
        **fields,
    }


# --- tests ---------------------------------------------------------------------------------------


def test_an_alert_is_mailed_with_login(catalog, smtp: SmtpServer) -> None:
    with catalog.transaction() as tx:
        settings.save_notification(tx, email=email_settings(smtp, username="mailer", password="s3cret"))
    deliveries = notify.notify(catalog, [alert()])
    assert deliveries == [notify.Delivery("email", "a" * 24, True)]
    (sent,) = smtp.messages
    assert sent["auth"] == ("mailer", "s3cret")
    assert "snapkeep@example.test" in sent["from"]
    assert len(sent["rcpt"]) == 2
    message = email.message_from_bytes(sent["data"])
    assert message["Subject"] == "[snapkeep critical] Backup Job failed"
    assert "Backup Job 'Sites' failed" in message.get_payload()


def test_a_webhook_gets_the_alert_as_json(catalog, webhook: WebhookServer) -> None:
    with catalog.transaction() as tx:
        settings.save_notification(tx, webhook={"url": webhook.url, "levels": [2, 3]})
    deliveries = notify.notify(catalog, [alert(WARNING), alert(INFO, "b" * 24)])
    assert deliveries == [notify.Delivery("webhook", "a" * 24, True)]  # info is not wanted
    ((path, content_type, body),) = webhook.received
    assert path == "/alerts"
    assert content_type == "application/json"
    assert body == {
        "_id": "a" * 24,
        "title": "Backup Job failed",
        "message": "Backup Job 'Sites' failed",
        "level": 2,
        "level_name": "warning",
        "created": "2026-04-01T08:00:00+00:00",
        "server": socket.gethostname(),
    }


def test_failed_notifications_are_reported_never_raised(
    catalog, webhook: WebhookServer, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    webhook.status = 500
    with catalog.transaction() as tx:
        settings.save_notification(
            tx,
            email=email_settings(smtp, username="mailer", password="wrong"),
            webhook={"url": webhook.url},
        )
    deliveries = notify.notify(catalog, [alert()])
    assert [(item.channel, item.ok) for item in deliveries] == [("email", False), ("webhook", False)]
    assert "SMTPAuthenticationError" in deliveries[0].error
    assert deliveries[1].error == "the webhook answered HTTP 500"
    assert "webhook notification failed" in caplog.text

    closed = free_port()
    with catalog.transaction() as tx:
        settings.save_notification(
            tx,
            email={**email_settings(smtp), "port": closed, "timeout": 2},
            webhook={"url": f"http://127.0.0.1:{closed}/x", "timeout": 2},
        )
    deliveries = notify.notify(catalog, [alert()])
    assert [item.ok for item in deliveries] == [False, False]
    assert "ConnectionRefusedError" in deliveries[0].error
    assert deliveries[1].error.startswith("cannot reach the webhook")


def test_disabled_channels_and_no_settings_send_nothing(catalog, smtp: SmtpServer) -> None:
    assert notify.notify(catalog, [alert()]) == []
    with catalog.transaction() as tx:
        settings.save_notification(tx, email={**email_settings(smtp), "enabled": "0"})
    assert notify.notify(catalog, [alert()]) == []
    assert smtp.messages == []


def test_settings_are_validated_stored_and_removed(catalog, smtp: SmtpServer) -> None:
    with catalog.transaction() as tx, pytest.raises(ValidationError) as caught:
        settings.save_notification(
            tx, email={"host": "", "security": "tls", "levels": [5]}, webhook={"url": "ftp://x"}
        )
    message = caught.value.message
    for expected in ("email[host]", "email[security]", "email[levels][0]", "email[sender]"):
        assert expected in message, message
    with catalog.transaction() as tx, pytest.raises(ValidationError, match=r"webhook\[url\]: .*http://"):
        settings.save_notification(tx, webhook={"url": "ftp://x"})
    with catalog.transaction() as tx:
        saved = settings.save_notification(tx, email=email_settings(smtp, password="s3cret"))
    assert saved.email is not None
    assert "s3cret" not in repr(saved.email)
    assert saved.email.password.get_secret_value() == "s3cret"
    with catalog.transaction() as tx:
        saved = settings.save_notification(tx, webhook={"url": "https://hooks.example.test/x"})
        assert saved.email is not None
        cleared = settings.save_notification(tx, email={})
    assert cleared.email is None
    assert cleared.webhook is not None
