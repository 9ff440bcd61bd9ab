"""Holding off slow clients at the connection level (attack report LOW-12: slowloris).

uvicorn (0.55, h11) has a keep-alive timeout, armed only *after* a response; a connection that
sends nothing, or trickles its request headers a byte at a time, is held forever (the attack report
kept 1,000 such connections open). ``h11_max_incomplete_event_size`` bounds the header *bytes*, not
the time. So this subclass of uvicorn's h11 protocol adds the missing timer:

- armed when the connection is made and again whenever a response completes (the connection is
  then waiting for the next request's headers);
- when it fires and no request is being answered (no request yet, headers still incomplete, or a
  response already sent while the client is still sending) the connection is closed without an
  answer: there is no request to answer.

A request whose headers did arrive in time is the app's: its body is read with idle and total
timeouts in ``http.read_body`` (408 envelope). Everything else is uvicorn's own code.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from snapkeep.api import envelope

log = logging.getLogger(__name__)

#: Seconds a client has to send a complete request head (request line and headers).
HEADER_TIMEOUT = 10.0
#: The most bytes of a request head (request line and headers). h11 enforces it only on a head that
#: is still incomplete after a read (uvicorn answers a plain 400); ``HeadLimit`` enforces it on a
#: head that arrived whole in one read (up to 256 KiB on loopback), so the limit holds either way.
MAX_HEADER_BYTES = 64 * 1024


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a timeout on receiving a request head."""

    header_timeout: float = HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        if answering:
            return  # the head arrived; the app reads the body under its own timeouts
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        log.info("closed %s: no complete request head within %.0f s", client, self.header_timeout)
        self.transport.close()


def guarded_protocol(header_timeout: float) -> type[GuardedH11Protocol]:
    """The protocol class with ``header_timeout`` seconds (uvicorn takes a class, not an instance)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout": header_timeout})


class HeadLimit:
    """ASGI middleware: a request whose head exceeds ``limit`` bytes gets 431 with the envelope."""

    def __init__(self, app: Any, limit: int = MAX_HEADER_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b""))
            size += sum(len(name) + len(value) + 4 for name, value in scope.get("headers", []))
            if size > self.limit:
                message = f"request head: larger than {self.limit // 1024} KiB ({size} bytes)"
                body = json.dumps(envelope.failure(message)).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                headers.append((b"connection", b"close"))
                await send({"type": "http.response.start", "status": 431, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
