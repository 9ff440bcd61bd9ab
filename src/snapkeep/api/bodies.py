"""Request bodies of the HTTP door: read with size and time limits, parsed by content type.

Split from ``http.py`` so that the door (routes, authentication, answers) and the byte handling can
each be read on their own. Form and query bytes reach ``snapkeep.api.params`` undecoded, so a value
that is not UTF-8 is refused naming its field; a body that cannot be parsed at all is ``BadBody``
(HTTP 400), one that is too large ``BodyTooLarge`` (413), one that stalls ``BodyTimeout`` (408).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from snapkeep.api.params import decode_pairs, decode_query
from snapkeep.errors import ParameterError, SnapkeepError

# Above the params decoder's own per-value limit, so that a too-long value is refused naming its
# field (HTTP 200, success 0) rather than cut off here; beyond this the body is not read at all.
MAX_BODY_BYTES = 32 * 1024 * 1024
#: A body must keep coming (seconds between two pieces) and be complete within the total (408).
BODY_IDLE_TIMEOUT = 20.0
BODY_TOTAL_TIMEOUT = 120.0

#: Deeper JSON is refused whole (400): the bracket syntax allows 8 levels, objects in lists of
#: objects a few more; 900 levels made the dispatcher run out of stack (attack report LOW-11).
MAX_JSON_DEPTH = 32

FORM_TYPES = ("application/x-www-form-urlencoded",)
MULTIPART_TYPE = "multipart/form-data"


class BadBody(SnapkeepError):
    """The request body cannot be parsed as a form or as JSON (HTTP 400)."""


class BodyTooLarge(SnapkeepError):
    """The request body is larger than ``MAX_BODY_BYTES`` (HTTP 413)."""


class BodyTimeout(SnapkeepError):
    """The request body stalled or took longer than allowed (HTTP 408)."""


async def read_body(
    request: Request,
    limit: int = MAX_BODY_BYTES,
    *,
    idle_timeout: float = BODY_IDLE_TIMEOUT,
    total_timeout: float = BODY_TOTAL_TIMEOUT,
) -> bytes:
    """Read the whole request body, refusing more than ``limit`` bytes and a body that stalls
    (``idle_timeout`` seconds without a byte) or dawdles (not complete after ``total_timeout``):
    a slow client must not hold a connection and its buffer open for ever.

    Raises:
        BodyTooLarge: the declared or actual length exceeds ``limit``.
        BodyTimeout: a timeout passed.
        ClientDisconnect: the client went away.
    """
    too_large = BodyTooLarge(f"request body: larger than {limit // (1024 * 1024)} MiB")
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdecimal() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    pieces = request.stream().__aiter__()
    try:
        async with asyncio.timeout(total_timeout):
            while True:
                try:
                    chunk = await asyncio.wait_for(pieces.__anext__(), idle_timeout)
                except StopAsyncIteration:
                    break
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(
            f"request body: not received in time ({size} bytes; a body must keep coming, with at most "
            f"{idle_timeout:.0f} s between pieces, and be complete within {total_timeout:.0f} s)"
        ) from None
    return b"".join(chunks)


def decode_parameters(query: bytes, content_type: str, body: bytes) -> dict[str, Any]:
    """Decode the query string and the body into one parameter mapping (body keys win).

    Raises:
        BadBody: the body is not a form, a multipart form or a JSON object.
        ParameterError: a parameter cannot be decoded (bracket syntax, encoding, size, count); names it.
    """
    params: dict[str, Any] = dict(decode_query(query))
    params.update(parse_body(content_type, body))
    return params


def parse_body(content_type: str, body: bytes) -> Mapping[str, Any]:
    """Decode a request body by its content type; without one, a body starting with ``{`` is JSON.

    Raises:
        BadBody: the body cannot be parsed as the form or JSON it claims (or seems) to be.
        ParameterError: a form parameter cannot be decoded; names it.
    """
    if not body.strip():
        return {}
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return parse_json(body)
    if media_type == MULTIPART_TYPE:
        return decode_pairs(
            (_text(name, name), _text(value, name)) for name, value in parse_multipart(content_type, body)
        )
    if media_type in FORM_TYPES:
        return decode_query(body)
    if body.lstrip().startswith(b"{"):
        return parse_json(body)
    return decode_query(body)


def _text(raw: bytes, field: bytes) -> str:
    """Read a multipart name or value as UTF-8. Raises ParameterError naming the field."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ParameterError(
            field=field.decode("utf-8", errors="replace"),
            problem=f"is not valid UTF-8 (byte {error.start} is {raw[error.start]:#04x})",
        ) from None


def parse_json(body: bytes) -> dict[str, Any]:
    """Parse a JSON object body, no deeper than ``MAX_JSON_DEPTH`` and without lone surrogates
    (``"\\ud800"`` is valid JSON but no text: it cannot be stored or encoded).

    Raises:
        BadBody: the body is not valid JSON, or is JSON but not an object, or breaks those rules.
    """
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise BadBody(f"request body: not valid JSON ({error})") from error
    if not isinstance(value, dict):
        raise BadBody(f"request body: a JSON object is required, not {type(value).__name__}")
    _check_json(value)
    return value


def _check_json(value: Any) -> None:
    """Walk a parsed JSON value without recursion (linear in its size). Raises BadBody."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadBody(f"request body: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            for key, member in item.items():
                _check_text(key)
                pending.append((member, depth + 1))
        elif isinstance(item, list):
            pending.extend((member, depth + 1) for member in item)
        elif isinstance(item, str):
            _check_text(item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        raise BadBody(f"request body: JSON string with a lone surrogate (\\u{code:04x})") from None


def parse_multipart(content_type: str, body: bytes) -> list[tuple[bytes, bytes]]:
    """Split a ``multipart/form-data`` body into (name, raw value) pairs; files count as values.

    Raises:
        BadBody: no boundary, a part without a name, or a body that is not valid multipart.
    """
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadBody("request body: multipart/form-data without a boundary")
    pairs: list[tuple[bytes, bytes]] = []
    headers: dict[bytes, bytes] = {}
    header_field = bytearray()
    header_value = bytearray()
    data = bytearray()
    finished: list[bool] = []

    def on_part_begin() -> None:
        headers.clear()
        data.clear()

    def on_header_field(chunk: bytes, start: int, end: int) -> None:
        header_field.extend(chunk[start:end])

    def on_header_value(chunk: bytes, start: int, end: int) -> None:
        header_value.extend(chunk[start:end])

    def on_header_end() -> None:
        headers[bytes(header_field).strip().lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_part_data(chunk: bytes, start: int, end: int) -> None:
        data.extend(chunk[start:end])

    def on_part_end() -> None:
        disposition = headers.get(b"content-disposition")
        if disposition is None:
            raise BadBody("request body: a multipart part has no Content-Disposition header")
        _, part_options = parse_options_header(disposition)
        name = part_options.get(b"name")
        if name is None:
            raise BadBody("request body: a multipart part has no field name")
        pairs.append((name, bytes(data)))

    def on_end() -> None:
        finished.append(True)

    callbacks: Any = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
        "on_end": on_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except FormParserError as error:  # a bad boundary, or a body that does not follow it
        raise BadBody(f"request body: not valid multipart/form-data ({error})") from error
    if not finished:
        raise BadBody("request body: multipart/form-data ends before its closing boundary")
    return pairs
