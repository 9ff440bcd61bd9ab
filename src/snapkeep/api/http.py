"""The HTTP door onto the dispatcher: a FastAPI app served by ``snapkeep serve``.

Routes (see docs/http.md):

- ``GET /?api=1&function=NAME&...`` and ``POST /`` with the parameters in the query string, a form body
  (``application/x-www-form-urlencoded`` or ``multipart/form-data``) or a JSON object body.
- ``GET|POST /function/NAME``: the same call with the function named in the path; the OpenAPI document
  describes one such path per function, so a schema-driven client or fuzzer knows every parameter.
- ``GET /download/GROUP_ID``: the file of a finished download (``addQueueItems`` type 4), streamed with
  its ``Content-Length``. The function ``downloadBackupFile`` decides (the same permission rule as every
  door: the user who queued it, or root); 404 with the envelope when it is not ready, expired or gone.

Status codes follow API.md section 2: 401 for a missing or wrong token, 400 only for a body that cannot
be parsed as a form or as JSON at all, 413 for a body beyond ``MAX_BODY_BYTES``, and 200 with the
envelope for everything else (unknown functions and bad parameters included). Parameter bytes reach the
params decoder undecoded, so non-UTF-8 input is refused naming its field.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from snapkeep import __version__
from snapkeep.api import envelope
from snapkeep.api.auth import authenticate
from snapkeep.api.dispatch import FUNCTIONS, Api
from snapkeep.api.functions.base import CallContext
from snapkeep.api.openapi import build_openapi
from snapkeep.api.params import decode_pairs, decode_query
from snapkeep.errors import AuthError, NotFoundError, ParameterError, SnapkeepError
from snapkeep.jobs.catalog import Catalog

# Above the params decoder's own per-value limit, so that a too-long value is refused naming its
# field (HTTP 200, success 0) rather than cut off here; beyond this the body is not read at all.
MAX_BODY_BYTES = 32 * 1024 * 1024

# Keys of the request that address the door, not the function.
FUNCTION_KEY = "function"
DOOR_KEYS = ("api",)

FORM_TYPES = ("application/x-www-form-urlencoded",)
MULTIPART_TYPE = "multipart/form-data"

#: The dispatcher function behind ``GET /download/GROUP_ID``, and the size of each streamed piece.
DOWNLOAD_FUNCTION = "downloadBackupFile"
DOWNLOAD_BLOCK = 1024 * 1024


class BadBody(SnapkeepError):
    """The request body cannot be parsed as a form or as JSON (HTTP 400)."""


class BodyTooLarge(SnapkeepError):
    """The request body is larger than ``MAX_BODY_BYTES`` (HTTP 413)."""


def create_app(catalog: Catalog) -> FastAPI:
    """Build the FastAPI app that serves the dispatcher over ``catalog``.

    Authentication and the call run in a worker thread (the catalog is synchronous); the catalog's
    own transactions keep concurrent calls apart.
    """
    app = FastAPI(
        title="snapkeep",
        version=__version__,
        description="JetBackup-5-compatible function API of snapkeep (see docs/http.md).",
        docs_url="/docs",
        redoc_url=None,
    )
    api = Api(catalog)

    def call(
        header: str | None,
        function: str | None,
        params: dict[str, Any],
        refused: ParameterError | None = None,
    ) -> tuple[int, dict[str, Any]]:
        try:
            caller = authenticate(catalog, header)
        except AuthError as error:
            return 401, envelope.failure(str(error))
        if refused is not None:
            return 200, envelope.failure(str(refused))
        if not function:
            return 200, envelope.failure(f"{FUNCTION_KEY}: missing; name the function to call")
        return 200, api.call(function, params, caller)

    def decode_and_call(
        header: str | None, function_in_path: str | None, query: bytes, content_type: str, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """Authenticate first, then decode the parameters and call: nothing an unauthenticated
        caller sends is decoded (attack report HIGH-2), and all of it runs in a worker thread."""
        try:
            authenticate(catalog, header)
        except AuthError as error:
            return 401, envelope.failure(str(error))
        try:
            params = decode_parameters(query, content_type, body)
        except BadBody as error:
            return 400, envelope.failure(str(error))
        except ParameterError as error:
            return call(header, None, {}, error)
        function = function_in_path
        requested = params.pop(FUNCTION_KEY, None)
        if function is None:
            if requested is not None and not isinstance(requested, str):
                refused = ParameterError(field=FUNCTION_KEY, problem="must be the name of a function")
                return call(header, None, {}, refused)
            function = requested
        for key in DOOR_KEYS:
            params.pop(key, None)
        return call(header, function, params)

    async def answer(request: Request, function_in_path: str | None) -> JSONResponse:
        header = request.headers.get("authorization")
        try:
            body = await read_body(request)
        except BodyTooLarge as error:
            return JSONResponse(envelope.failure(str(error)), status_code=413)
        status, answer_body = await run_in_threadpool(
            decode_and_call,
            header,
            function_in_path,
            request.scope.get("query_string", b""),
            request.headers.get("content-type", ""),
            body,
        )
        return JSONResponse(answer_body, status_code=status)

    @app.api_route("/", methods=["GET", "POST"], include_in_schema=False)
    async def root(request: Request) -> JSONResponse:
        return await answer(request, None)

    @app.api_route("/function/{name}", methods=["GET", "POST"], include_in_schema=False)
    async def by_path(request: Request, name: str) -> JSONResponse:
        return await answer(request, name)

    @app.get("/download/{group_id}", include_in_schema=False)
    async def download(request: Request, group_id: str) -> Response:
        header = request.headers.get("authorization")
        status, body, descriptor, name = await run_in_threadpool(open_download, catalog, header, group_id)
        if descriptor < 0:
            return JSONResponse(body, status_code=status)
        size = os.fstat(descriptor).st_size
        return StreamingResponse(
            _stream(descriptor, size),
            media_type="application/zstd",
            headers={"Content-Length": str(size), "Content-Disposition": f'attachment; filename="{name}"'},
        )

    openapi_builder: Callable[[], dict[str, Any]] = lambda: build_openapi(app)  # noqa: E731
    app.openapi = openapi_builder  # type: ignore[method-assign]
    return app


def open_download(
    catalog: Catalog, header: str | None, group_id: str
) -> tuple[int, dict[str, Any], int, str]:
    """(status, envelope, open descriptor or -1, file name) of a download request."""
    try:
        caller = authenticate(catalog, header)
    except AuthError as error:
        return 401, envelope.failure(str(error)), -1, ""
    try:
        message, data = FUNCTIONS[DOWNLOAD_FUNCTION].handler(CallContext(catalog, caller), {"_id": group_id})
        descriptor = os.open(data["file"], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except NotFoundError as error:
        return 404, envelope.failure(error.message), -1, ""
    except FileNotFoundError:
        return 404, envelope.failure(f"download {group_id}: its file was removed"), -1, ""
    except SnapkeepError as error:
        return 400, envelope.failure(error.message), -1, ""
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        return 404, envelope.failure(f"download {group_id}: its file was removed"), -1, ""
    return 200, envelope.success(message, data), descriptor, str(data["name"])


def _stream(descriptor: int, size: int) -> Iterator[bytes]:
    """The first ``size`` bytes of the open file (its size when it was opened: the promised
    ``Content-Length``), piece by piece; the descriptor is closed at the end or when the client
    goes away."""
    try:
        remaining = size
        while remaining > 0:
            piece = os.read(descriptor, min(DOWNLOAD_BLOCK, remaining))
            if not piece:
                raise OSError(f"the download shrank while it was sent ({remaining} bytes missing)")
            remaining -= len(piece)
            yield piece
    finally:
        os.close(descriptor)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read the whole request body, refusing more than ``limit`` bytes.

    Raises:
        BodyTooLarge: the declared or actual length exceeds ``limit``.
    """
    too_large = BodyTooLarge(f"request body: larger than {limit // (1024 * 1024)} MiB")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
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
    """Parse a JSON object body.

    Raises:
        BadBody: the body is not valid JSON, or is JSON but not an object.
    """
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise BadBody(f"request body: not valid JSON ({error})") from error
    if not isinstance(value, dict):
        raise BadBody(f"request body: a JSON object is required, not {type(value).__name__}")
    return value


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
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as error:
        raise BadBody(f"request body: not valid multipart/form-data ({error})") from error
    if not finished:
        raise BadBody("request body: multipart/form-data ends before its closing boundary")
    return pairs
