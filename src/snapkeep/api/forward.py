"""A download fetched through a node that did not make it (issue 16, docs/nodes.md).

A download (``addQueueItems`` type 4) is written to the disk of the node that ran it. ``GET
/download/ID`` sent to any other node is authenticated and decided there as usual; then, instead
of "not found", that node forwards the request to the node that made the file, at the API address
that node registered (``nodes.Me.api``, ``serve --advertise-url``), and streams the answer back.

- The caller's own credentials travel on (its ``Authorization`` header, or its session cookie and
  CSRF value): the owning node authenticates and decides again, with the same shared catalog, so
  forwarding grants nothing the caller could not get from that node directly. No node-to-node
  secret exists to be stolen.
- HTTPS to a node is pinned to the SHA-256 fingerprint of the certificate that node registered
  (self-signed certificates work; a certificate that does not match is refused before a byte of
  the request is sent). Plain HTTP is used only when the node registered an ``http://`` address
  (loopback, or ``--insecure-http`` behind a proxy).
- A forwarded request carries ``X-Snapkeep-Forwarded-By``; a node never forwards such a request
  again, so a stale address cannot make two nodes loop.
- Bounded: 10 s to connect, 60 s for each read; an error answer of the owning node is relayed
  (its status and envelope) when it is at most 64 KiB of JSON, else 502.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import ssl
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from snapkeep.api import envelope
from snapkeep.errors import NotFoundError
from snapkeep.jobs import nodes
from snapkeep.jobs.catalog import Catalog

log = logging.getLogger(__name__)

FORWARDED_HEADER = "x-snapkeep-forwarded-by"
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
ERROR_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Peer:
    """The node a download was made on, as this node reaches it."""

    id: str
    name: str
    api: str
    fingerprint: str


@dataclass
class Upstream:
    """The owning node's answer: status, headers, and the open response to stream (or the
    envelope of its error)."""

    status: int
    headers: dict[str, str]
    response: http.client.HTTPResponse | None = None
    connection: http.client.HTTPConnection | None = None
    body: dict[str, Any] | None = None

    def chunks(self, block: int) -> Iterator[bytes]:
        """The body, ``block`` bytes at a time; the connection is closed at the end or when the
        client goes away. Raises OSError when the owning node stops short of its length."""
        assert self.response is not None
        assert self.connection is not None
        try:
            remaining = int(self.headers.get("content-length", "-1"))
            while True:
                piece = self.response.read(block)
                if not piece:
                    break
                remaining -= len(piece)
                yield piece
            if remaining > 0:
                raise OSError(f"the node sending the download stopped {remaining} bytes short")
        finally:
            self.connection.close()


def peer(catalog: Catalog, node_id: str, group_id: str) -> Peer | tuple[int, dict[str, Any]]:
    """The node to forward to, or the answer to give when it cannot be reached: 404 when it is no
    longer in the catalog, 503 when it is down or registered no API address."""
    with catalog.transaction(write=False) as tx:
        try:
            node = nodes.get_node(tx, node_id)
        except NotFoundError:
            return 404, envelope.failure(
                f"download {group_id} was made on node {node_id}, which was removed from the catalog"
            )
    label = f"node {node['name']!r} (host {node['host']})"
    if not node["alive"]:
        return 503, envelope.failure(
            f"download {group_id} is on {label}, which is down (no heartbeat for "
            f"{node['heartbeat_age']:.0f}s): it can be fetched once that node is back"
        )
    if not node["api"]:
        return 503, envelope.failure(
            f"download {group_id} is on {label}, which registered no API address: restart its "
            "snapkeep serve (it records one; --advertise-url), or fetch it there"
        )
    return Peer(str(node["_id"]), str(node["name"]), str(node["api"]), str(node["tls_fingerprint"]))


def der_fingerprint(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate as ``AB:CD:...`` (``serve`` prints and records
    it, browsers and ``openssl x509 -fingerprint -sha256`` show it)."""
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())


def _connection(target: Peer) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(target.api)
    host = parts.hostname or ""
    if parts.scheme == "http":
        return http.client.HTTPConnection(host, parts.port or 80, timeout=CONNECT_TIMEOUT)
    if target.fingerprint:
        # pinned: the certificate's own fingerprint is the trust, not a CA (self-signed works)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context()
    return http.client.HTTPSConnection(host, parts.port or 443, timeout=CONNECT_TIMEOUT, context=context)


def _check_pin(connection: http.client.HTTPConnection, target: Peer) -> None:
    """Raise ssl.SSLError when the pinned node's certificate is not the one it registered."""
    if not isinstance(connection, http.client.HTTPSConnection) or not target.fingerprint:
        return
    sock = connection.sock
    der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
    seen = der_fingerprint(der or b"")
    if der is None or seen != target.fingerprint.upper():
        raise ssl.SSLError(
            f"its TLS certificate ({seen}) is not the one it registered ({target.fingerprint})"
        )


def fetch(target: Peer, group_id: str, credentials: dict[str, str], me: str) -> Upstream:
    """Send ``GET /download/GROUP_ID`` to ``target`` with the caller's ``credentials`` (headers)
    and return its answer (not yet read when it is 200). Never raises: a node that cannot be
    reached, or answers something else than an envelope, is a 502 Upstream."""
    connection = _connection(target)
    where = f"node {target.name!r} at {target.api}"
    try:
        connection.connect()
        _check_pin(connection, target)
        if connection.sock is not None:
            connection.sock.settimeout(READ_TIMEOUT)
        path = f"/download/{urllib.parse.quote(group_id, safe='')}"
        connection.request("GET", path, headers={**credentials, FORWARDED_HEADER: me})
        response = connection.getresponse()
    except (OSError, http.client.HTTPException) as error:  # ssl.SSLError and timeouts are OSError
        connection.close()
        log.warning("forwarding download %s to %s failed: %s", group_id, where, error)
        problem = f"download {group_id}: {where} did not answer: {error}"
        return Upstream(502, {}, body=envelope.failure(problem))
    headers = {key.lower(): value for key, value in response.getheaders()}
    if response.status == 200:
        return Upstream(200, headers, response, connection)
    try:
        raw = response.read(ERROR_BODY_LIMIT + 1)
        body = json.loads(raw) if len(raw) <= ERROR_BODY_LIMIT else None
    except (OSError, http.client.HTTPException, ValueError):
        body = None
    finally:
        connection.close()
    if isinstance(body, dict) and "success" in body and "message" in body:
        return Upstream(response.status, {}, body=body)
    problem = f"download {group_id}: {where} answered HTTP {response.status}"
    return Upstream(502, {}, body=envelope.failure(problem))


__all__ = ["FORWARDED_HEADER", "Peer", "Upstream", "fetch", "peer"]
