"""Forwarding a download to the node that made it (issue 16, ``api/forward.py``), against a real
HTTPS server on loopback with a self-signed certificate: the pin to the registered fingerprint, the
caller's credentials passed on, the owning node's refusals relayed, and every way of not reaching
it answered clearly. The three-node run is ``tests/e2e/test_nodes_e2e.py``."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from snapkeep.api import forward
from snapkeep.cli.tls import fingerprint, self_signed
from snapkeep.errors import ValidationError
from snapkeep.jobs import nodes
from snapkeep.jobs.catalog import Catalog

GROUP = "a" * 24
BODY = bytes(range(256)) * 1000


@dataclass
class Owner:
    """A stand-in for the owning node: answers ``GET /download/...`` as configured."""

    url: str
    pin: str
    seen: list[dict[str, str]] = field(default_factory=list)
    answer: tuple[int, str, bytes] = (200, "application/zstd", BODY)


@pytest.fixture
def owner(tmp_path: Path) -> Iterator[Owner]:
    made = self_signed(tmp_path, "127.0.0.1")
    state: dict[str, Owner] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["owner"].seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            status, kind, body = state["owner"].answer
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Disposition", f'attachment; filename="{GROUP}.tar.zst"')
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(made.cert, made.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["owner"] = Owner(
        f"https://127.0.0.1:{server.server_address[1]}", fingerprint(made.cert.read_bytes())
    )
    try:
        yield state["owner"]
    finally:
        server.shutdown()
        server.server_close()


def _peer(owner: Owner, pin: str | None = None) -> forward.Peer:
    return forward.Peer("b" * 24, "node-b", owner.url, owner.pin if pin is None else pin)


def test_the_download_comes_through_pinned_with_the_callers_credentials(owner: Owner) -> None:
    credentials = {"Authorization": "Bearer secret-of-the-caller"}
    upstream = forward.fetch(_peer(owner), GROUP, credentials, "c" * 24)
    assert upstream.status == 200
    assert int(upstream.headers["content-length"]) == len(BODY)
    assert b"".join(upstream.chunks(4096)) == BODY
    (request,) = owner.seen
    assert request["path"] == f"/download/{GROUP}"
    assert request["authorization"] == "Bearer secret-of-the-caller"
    assert request[forward.FORWARDED_HEADER] == "c" * 24  # the owner never forwards it again


def test_a_certificate_other_than_the_registered_one_is_refused_before_sending(owner: Owner) -> None:
    wrong = ":".join(["AB"] * 32)
    upstream = forward.fetch(_peer(owner, wrong), GROUP, {"Authorization": "Bearer secret"}, "c" * 24)
    assert upstream.status == 502
    assert upstream.body is not None
    assert "not the one it registered" in upstream.body["message"]
    assert "node 'node-b'" in upstream.body["message"]
    assert owner.seen == []  # the caller's token never reached it


def test_the_owning_nodes_refusal_is_relayed_and_other_answers_are_502(owner: Owner) -> None:
    refusal = {"success": 0, "message": "download not found", "data": {}}
    owner.answer = (404, "application/json", json.dumps(refusal).encode())
    upstream = forward.fetch(_peer(owner), GROUP, {}, "c" * 24)
    assert (upstream.status, upstream.body) == (404, refusal)

    owner.answer = (500, "text/html", b"<html>proxy error</html>")
    upstream = forward.fetch(_peer(owner), GROUP, {}, "c" * 24)
    assert upstream.status == 502
    assert upstream.body is not None
    assert "answered HTTP 500" in upstream.body["message"]

    owner.answer = (403, "application/json", b"{" + b" " * (forward.ERROR_BODY_LIMIT + 10) + b"}")
    assert forward.fetch(_peer(owner), GROUP, {}, "c" * 24).status == 502  # too large to relay


def test_a_node_that_does_not_answer_is_a_clear_502() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nobody listens there
    target = forward.Peer("b" * 24, "node-b", f"http://127.0.0.1:{port}", "")
    upstream = forward.fetch(target, GROUP, {}, "c" * 24)
    assert upstream.status == 502
    assert upstream.body is not None
    assert f"node 'node-b' at http://127.0.0.1:{port} did not answer" in upstream.body["message"]


def test_the_node_to_forward_to_is_found_in_the_catalog(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path / "home", None)
    try:
        me = nodes.Me(id=nodes.local_id(tmp_path / "home"), name="node-a", api="https://127.0.0.1:4443")
        with catalog.transaction() as tx:
            nodes.register(tx, nodes.Me(**{**me.__dict__, "tls_fingerprint": "AB:CD"}))
        target = forward.peer(catalog, me.id, GROUP)
        assert target == forward.Peer(me.id, "node-a", "https://127.0.0.1:4443", "AB:CD")

        with catalog.transaction() as tx:  # registered again without an address (an older serve)
            nodes.register(tx, nodes.Me(id=me.id, name="node-a"))
        status, body = forward.peer(catalog, me.id, GROUP)  # type: ignore[misc]
        assert status == 503
        assert "registered no API address" in body["message"]

        with catalog.transaction() as tx:
            nodes.leave(tx, me.id)
        status, body = forward.peer(catalog, me.id, GROUP)  # type: ignore[misc]
        assert status == 503
        assert "node 'node-a'" in body["message"]
        assert "which is down" in body["message"]

        status, body = forward.peer(catalog, "f" * 24, GROUP)  # type: ignore[misc]
        assert status == 404
        assert "removed from the catalog" in body["message"]
    finally:
        catalog.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://127.0.0.1:21", "must start with http:// or https://"),
        ("https://user:pw@127.0.0.1", "without a user or password"),
        ("http://127.0.0.1:3035/api", "without a path or query"),
        ("http://127.0.0.1:99999", "no valid port"),
    ],
)
def test_an_advertised_address_must_be_an_api_root(url: str, problem: str) -> None:
    with pytest.raises(ValidationError) as raised:
        nodes.check_api_url(url)
    assert raised.value.field == "advertise-url"
    assert problem in raised.value.problem
    assert nodes.check_api_url("https://backup-3.example:3035/") == "https://backup-3.example:3035"
