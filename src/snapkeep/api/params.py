"""The bracket parameter syntax of the API (API.md section 1): decode and encode.

``destination[0]=ID&schedules[0][_id]=S&monitor[notran]=2`` becomes
``{"destination": ["ID"], "schedules": [{"_id": "S"}], "monitor": {"notran": "2"}}``.

Rules (PHP's, which JetBackup clients follow):

- ``&`` separates pairs, ``+`` is a space, values and names are percent-decoded, then read as UTF-8.
- ``name[]`` appends to a list; ``name[key]`` sets a key; brackets nest.
- A container whose keys are all decimal integers is a list, ordered by key.
- A later pair for the same scalar name wins; a name used both as a scalar and as a container is refused.
- One value may be at most ``MAX_VALUE_BYTES`` long; a request at most ``MAX_PAIRS`` pairs, a name
  at most ``MAX_NAME_BYTES`` bytes and ``MAX_DEPTH`` brackets. Decoding is linear in the input: each
  container keeps its next list index, so ``a[]=`` appends cost O(1) (attack report HIGH-2: 20,000
  appends took 41 s when each append scanned the container's keys).

Every problem raises ``ParameterError`` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from snapkeep.errors import ParameterError

MAX_VALUE_BYTES = 1024 * 1024
MAX_PAIRS = 10_000
MAX_NAME_BYTES = 512
MAX_DEPTH = 8

_NAME = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_KEY = re.compile(r"\[([^\[\]]*)\]")


def _text(raw: bytes, field: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ParameterError(
            field=field,
            problem=f"is not valid UTF-8 (byte {error.start} of the value is {raw[error.start]:#04x})",
        ) from None


def _check_size(field: str, value: str | bytes) -> None:
    size = len(value.encode("utf-8")) if isinstance(value, str) else len(value)
    if size > MAX_VALUE_BYTES:
        raise ParameterError(
            field=field, problem=f"value is too large ({size} bytes; the limit is {MAX_VALUE_BYTES} bytes)"
        )


def split_name(name: str) -> tuple[str, list[str]]:
    """Split ``a[b][]`` into ``("a", ["b", ""])``. Raises ParameterError for malformed brackets."""
    if len(name) > MAX_NAME_BYTES:
        raise ParameterError(
            field=name[:40] + "...", problem=f"parameter name is longer than {MAX_NAME_BYTES} characters"
        )
    match = _NAME.match(name)
    if match is None:
        if not name or name.startswith("["):
            raise ParameterError(field=name or "(empty)", problem="parameter name is missing")
        raise ParameterError(field=name, problem="malformed brackets in the parameter name")
    keys = _KEY.findall(match.group(2))
    if len(keys) > MAX_DEPTH:
        raise ParameterError(field=name, problem=f"more than {MAX_DEPTH} levels of brackets")
    return match.group(1), keys


def decode_query(query: str | bytes) -> dict[str, Any]:
    """Decode a URL query string (``-D`` or an HTTP query/form body) into nested params.

    Raises ParameterError naming the field for non-UTF-8 bytes, malformed brackets or a value over
    the size limit.
    """
    raw = query.encode("utf-8") if isinstance(query, str) else bytes(query)
    pairs: list[tuple[str, str]] = []
    for part in raw.split(b"&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition(b"=")
        name_bytes = unquote_to_bytes(raw_name.replace(b"+", b" "))
        name = _text(name_bytes, name_bytes.decode("utf-8", errors="replace"))
        if len(raw_value) > 3 * MAX_VALUE_BYTES:  # percent-encoding at most triples a value
            _check_size(name, raw_value)
        value = _text(unquote_to_bytes(raw_value.replace(b"+", b" ")), name)
        pairs.append((name, value))
    return decode_pairs(pairs)


def decode_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Build nested params from already-decoded ``(name, value)`` pairs. Raises ParameterError."""
    root: dict[str, Any] = {}
    next_index: dict[int, int] = {}  # id(container) -> the index ``[]`` appends at
    for count, (name, value) in enumerate(pairs, 1):
        if count > MAX_PAIRS:
            raise ParameterError(field="(request)", problem=f"more than {MAX_PAIRS} parameters")
        _check_size(name, value)
        base, keys = split_name(name)
        _assign(root, base, keys, value, name, next_index)
    result: dict[str, Any] = normalise(root)
    return result


def _assign(
    container: dict[str, Any], key: str, rest: list[str], value: str, name: str, next_index: dict[int, int]
) -> None:
    if _is_index(key):
        next_index[id(container)] = max(next_index.get(id(container), 0), int(key) + 1)
    if not rest:
        if isinstance(container.get(key), dict):
            raise ParameterError(field=name, problem="is given both as a list/object and as a single value")
        container[key] = value
        return
    child = container.get(key)
    if child is None:
        child = container[key] = {}
    elif not isinstance(child, dict):
        raise ParameterError(field=name, problem="is given both as a single value and as a list/object")
    next_key = rest[0]
    if next_key == "":
        next_key = str(next_index.get(id(child), 0))
    _assign(child, next_key, rest[1:], value, name, next_index)


def _is_index(key: str) -> bool:
    """A list index: ASCII digits only (``"²".isdigit()`` is true, but ``int`` refuses it)."""
    return key.isascii() and key.isdigit()


def normalise(value: Any) -> Any:
    """Turn mappings whose keys are all decimal integers into lists (ordered by key), recursively."""
    if isinstance(value, Mapping):
        items = {str(key): normalise(item) for key, item in value.items()}
        if items and all(_is_index(key) for key in items):
            return [items[key] for key in sorted(items, key=int)]
        return items
    if isinstance(value, list | tuple):
        return [normalise(item) for item in value]
    return value


def check_sizes(value: Any, field: str = "") -> Any:
    """Refuse any value in a decoded structure (a JSON body, Python params) over the size limit or
    of non-UTF-8 bytes; return the structure with bytes decoded to text. Raises ParameterError."""
    if isinstance(value, bytes | bytearray):
        _check_size(field or "(value)", bytes(value))
        return _text(bytes(value), field or "(value)")
    if isinstance(value, str):
        _check_size(field or "(value)", value)
    elif isinstance(value, Mapping):
        return {
            key: check_sizes(item, f"{field}[{key}]" if field else str(key)) for key, item in value.items()
        }
    elif isinstance(value, list | tuple):
        return [check_sizes(item, f"{field}[{index}]") for index, item in enumerate(value)]
    return value


def is_flat(params: Mapping[str, Any]) -> bool:
    """Whether ``params`` still holds bracket names (``a[0]``) rather than nested values."""
    return any("[" in str(key) or "]" in str(key) for key in params)


def encode(params: Mapping[str, Any]) -> str:
    """Encode nested params as a query string; ``decode_query(encode(p)) == p`` for strings,
    non-empty lists and non-empty objects whose keys are not all integers."""
    pairs: list[str] = []
    for key, value in params.items():
        _encode_into(pairs, str(key), value)
    return "&".join(pairs)


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _encode_into(pairs: list[str], name: str, value: Any) -> None:
    if isinstance(value, Mapping):
        if not value:
            pairs.append(f"{quote(name, safe='[]')}=")
        for key, item in value.items():
            _encode_into(pairs, f"{name}[{key}]", item)
    elif isinstance(value, list | tuple):
        if not value:
            pairs.append(f"{quote(name, safe='[]')}=")
        for index, item in enumerate(value):
            _encode_into(pairs, f"{name}[{index}]", item)
    else:
        pairs.append(f"{quote(name, safe='[]')}={quote(_scalar(value), safe='')}")
