"""Hostile callers against the real server (attack report LOW-11, LOW-12, issue 11 part 5).

- The inputs that gave HTTP 500 (seven of them without a token) and those that answered an
  exception's class and message: every answer is below 500 and carries no traceback, no exception
  class name and no internal path.
- Slow clients: a connection that does not finish its request head in ``--header-timeout`` is
  closed; a body that stalls gets 408; a client that leaves mid-body does not disturb the service;
  normal requests are answered meanwhile.
- Failed authentication from one address is throttled (429 + Retry-After), a valid token included,
  and logged without the token.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import Instance, Server, printed_token, start_server

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
# What must never reach a caller: a traceback, an exception's class name, a source or home path.
LEAKS = re.compile(
    r"Traceback|File \"|\b[A-Z][A-Za-z]*(?:Error|Exception|Warning)\b|\bsnapkeep/[a-z_/]+\.py|site-packages"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("hostile")
    instance = Instance("sqlite", base / "home", None)
    log = base / "serve.log"
    process, base_url, output = start_server(
        instance,
        log,
        "--api-only",
        "--header-timeout",
        str(HEADER_TIMEOUT),
        "--body-timeout",
        str(BODY_TIMEOUT),
    )
    running = Server(instance, process, base_url, log, printed_token(output) or "")
    try:
        assert running.token, output
        yield running
    finally:
        running.stop()


def assert_clean(server: Server, response: httpx.Response) -> None:
    """Below 500, an envelope (or uvicorn's plain 400), and nothing internal in it."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    text = response.text
    assert not LEAKS.search(text), text[:500]
    assert str(server.instance.home) not in text
    if response.headers.get("content-type", "").startswith("application/json"):
        assert response.json()["success"] in (0, 1)


DIGITS_5000 = "1" * 5000
# The attack report's HTTP 500 inputs: (id, method, query, form body)
FIVE_HUNDREDS = [
    ("query-nest-1000", "GET", "a" + "[0]" * 1000 + "=1", None),
    ("form-nest-5000", "POST", "", "a" + "[0]" * 5000 + "=1"),
    ("query-superscript-digit", "GET", "a[\u00b2]=1", None),
    ("form-superscript-digit", "POST", "", "find[\u00b2]=1"),
    ("key-of-5000-digits", "POST", "", f"a[{DIGITS_5000}]=1"),
]


@pytest.mark.parametrize("with_token", [False, True], ids=["no-token", "token"])
@pytest.mark.parametrize(
    ("method", "query", "body"), [case[1:] for case in FIVE_HUNDREDS], ids=[c[0] for c in FIVE_HUNDREDS]
)
def test_former_500_inputs_answer_below_500_without_internals(
    server: Server, method: str, query: str, body: str | None, with_token: bool
) -> None:
    headers = server.auth() if with_token else {}
    url = f"/?api=1&function=listBackupJobs&{query}"
    if method == "GET":
        response = server.client.get(url, headers=headers)
    else:
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        response = server.client.post(url, content=(body or "").encode(), headers={**headers, **form})
    assert_clean(server, response)
    # without a token nothing is decoded (401); with one, refused by name or (``²`` is a key like
    # any other, not a list index) a filter that matches nothing
    assert response.status_code == (200 if with_token else 401)


NESTED_900 = '{"function": "listBackupJobs", "find": ' + '{"a": ' * 900 + "1" + "}" * 900 + "}"
# The inputs that reached the dispatcher's catch-all and echoed an exception: (id, JSON text)
INTERNAL_ERRORS = [
    ("action-object", json.dumps({"function": "manageBackupJob", "action": {"a": 1}})),
    ("action-list", json.dumps({"function": "manageBackupJob", "action": ["create"]})),
    ("lone-surrogate-list", '{"function": "listBackupJobs", "find": {"name": "\\ud800"}}'),
    ("lone-surrogate-create", '{"function": "manageBackupJob", "action": "create", "name": "\\ud800"}'),
    ("json-depth-900", NESTED_900),
    ("json-depth-100000", '{"function": "listBackupJobs", "a": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ("flat-key-3000", json.dumps({"function": "listBackupJobs", "a" + "[0]" * 3000: "1"})),
    ("find-superscript", json.dumps({"function": "listBackupJobs", "find[x.\u00b2]": "1"})),
    ("function-object", json.dumps({"function": {"name": "listBackupJobs"}})),
    ("huge-int", '{"function": "listBackupJobs", "limit": ' + "9" * 4400 + "}"),
]


@pytest.mark.parametrize(
    "payload", [case[1] for case in INTERNAL_ERRORS], ids=[c[0] for c in INTERNAL_ERRORS]
)
def test_former_internal_error_inputs_name_no_exception(server: Server, payload: str) -> None:
    response = server.client.post(
        "/", content=payload.encode(), headers={**server.auth(), "Content-Type": "application/json"}
    )
    assert_clean(server, response)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=" + "b" * 2000, b"--" + b"b" * 2000 + b"--\r\n"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--\r\n"),
        ("application/json; charset=utf-16", '{"function": "listBackupJobs"}'.encode("utf-16")),
        ("text/plain", b"\x00\x01\x02function=listBackupJobs"),
        ("application/x-www-form-urlencoded", b"%zz=%ff&function=listBackupJobs"),
        ("image/png", b"\x89PNG\r\n\x1a\n" + bytes(range(256))),
    ],
    ids=["long-boundary", "part-without-name", "utf16-json", "nul-bytes", "bad-percent", "binary"],
)
def test_odd_content_types_answer_an_envelope(server: Server, content_type: str, body: bytes) -> None:
    response = server.client.post("/", content=body, headers={**server.auth(), "Content-Type": content_type})
    assert_clean(server, response)
    assert response.status_code in (200, 400)


def test_unknown_routes_methods_and_oversized_heads_answer_below_500(server: Server) -> None:
    for response in (
        server.client.get("/no/such/route", headers=server.auth()),
        server.client.request("PUT", "/", headers=server.auth()),
        server.client.request("DELETE", "/function/listBackupJobs", headers=server.auth()),
    ):
        assert_clean(server, response)
        assert response.status_code in (404, 405)
        assert response.json()["message"].startswith(f"HTTP {response.status_code}: ")
    # whole in one read: 431 with the envelope; in pieces: uvicorn's plain 400
    huge = server.client.get("/", headers={**server.auth(), "X-Filler": "x" * 70_000})
    assert huge.status_code in (400, 431), huge.status_code
    assert_clean(server, huge)
    connection = raw(server)
    try:  # a 1 MiB head: answered 400/431 and closed, or reset mid-send; never 5xx, never read whole
        answer = b""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"x" * 1024 * 1024)
        with contextlib.suppress(ConnectionResetError):
            while piece := connection.recv(65536):
                answer += piece
        assert answer == b"" or answer.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 431 ")), answer[:100]
    finally:
        connection.close()
    fits = server.client.get(
        "/?api=1&function=listBackupJobs", headers={**server.auth(), "X-Filler": "x" * 30_000}
    )
    assert fits.status_code == 200


def raw(server: Server) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def closed_within(connection: socket.socket, seconds: float, trickle: bytes = b"") -> float | None:
    """Trickle ``trickle`` a byte every 0.2 s (or wait) until the server closes; the seconds it
    took, or None if it was still open after ``seconds``."""
    start = time.monotonic()
    connection.settimeout(0.2)
    sent = 0
    while time.monotonic() - start < seconds:
        try:
            if connection.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            pass
        except ConnectionResetError:
            return time.monotonic() - start
        if sent < len(trickle):
            try:
                connection.sendall(trickle[sent : sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start
            sent += 1
    return None


def test_slow_request_heads_are_closed_and_others_are_served_meanwhile(server: Server) -> None:
    slow = [raw(server) for _ in range(50)]
    try:
        for connection in slow:
            connection.sendall(b"GET /?api=1&function=listBackupJobs HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert server.call("listDestinationTypes", {})["success"] == 1
        assert time.monotonic() - started < 2.0
        trickled = closed_within(slow[0], HEADER_TIMEOUT + 4, b"X-Slow: " + b"a" * 100)
        assert trickled is not None, "a head trickled byte by byte is cut off"
        for connection in slow[1:]:
            assert closed_within(connection, HEADER_TIMEOUT + 4) is not None
    finally:
        for connection in slow:
            connection.close()
    idle = raw(server)
    try:
        assert closed_within(idle, HEADER_TIMEOUT + 4) is not None, "a silent connection is closed"
    finally:
        idle.close()


def test_a_stalled_body_gets_408_and_a_vanished_client_is_dropped_quietly(server: Server) -> None:
    connection = raw(server)
    try:
        connection.sendall(
            b"POST /?api=1&function=listBackupJobs HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {server.token}\r\n".encode()
            + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nlimit=1"
        )
        connection.settimeout(BODY_TIMEOUT + 10)
        answer = b""
        while piece := connection.recv(65536):  # the answer says Connection: close
            answer += piece
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"request body: not received in time" in answer
    finally:
        connection.close()
    gone = raw(server)
    gone.sendall(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"
    )
    gone.close()
    time.sleep(0.5)
    assert server.call("listDestinationTypes", {})["success"] == 1
    text = Path(server.log).read_text()
    assert "Exception in ASGI application" not in text
    assert "ClientDisconnect" not in text
