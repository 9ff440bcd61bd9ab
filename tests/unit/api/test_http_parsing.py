"""Request bodies of the HTTP door: forms, multipart, JSON, and what is refused (and how)."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapkeep.api.auth import authenticate, bearer_from_header
from snapkeep.api.http import BadBody, parse_body, parse_multipart
from snapkeep.errors import AuthError, ParameterError
from snapkeep.jobs.catalog import Catalog

FORM = "application/x-www-form-urlencoded"


def multipart(*parts: tuple[bytes, bytes], boundary: bytes = b"b0undary") -> tuple[str, bytes]:
    body = b""
    for name, value in parts:
        body += (
            b"--"
            + boundary
            + b'\r\nContent-Disposition: form-data; name="'
            + name
            + b'"\r\n\r\n'
            + value
            + b"\r\n"
        )
    return f"multipart/form-data; boundary={boundary.decode()}", body + b"--" + boundary + b"--\r\n"


def test_form_body_uses_brackets() -> None:
    body = b"function=manageBackupJob&destination[0]=a&destination[1]=b&monitor[notran]=2&name=Daily+Backup"
    assert parse_body(FORM, body) == {
        "function": "manageBackupJob",
        "destination": ["a", "b"],
        "monitor": {"notran": "2"},
        "name": "Daily Backup",
    }


def test_multipart_body_keeps_raw_bytes_until_decoded() -> None:
    content_type, body = multipart((b"schedules[0][_id]", b"abc"), (b"name", "caf\u00e9".encode()))
    assert parse_multipart(content_type, body) == [
        (b"schedules[0][_id]", b"abc"),
        (b"name", "caf\u00e9".encode()),
    ]
    assert parse_body(content_type, body) == {"schedules": [{"_id": "abc"}], "name": "caf\u00e9"}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [(FORM, b"name=caf\xe9"), (FORM, b"name=caf%E9"), multipart((b"name", b"caf\xe9"))],
    ids=["form-raw", "form-percent", "multipart"],
)
def test_non_utf8_values_are_refused_by_field_name(content_type: str, body: bytes) -> None:
    with pytest.raises(ParameterError) as raised:
        parse_body(content_type, body)
    assert raised.value.field == "name"
    assert "UTF-8" in str(raised.value)


def test_json_object_body_and_sniffing() -> None:
    assert parse_body("application/json", b'{"find": {"type": 2}}') == {"find": {"type": 2}}
    assert parse_body("", b' {"limit": 0}') == {"limit": 0}
    assert parse_body("text/plain", b"limit=5") == {"limit": "5"}
    assert parse_body(FORM, b"  ") == {}


@pytest.mark.parametrize(
    ("content_type", "body", "problem"),
    [
        ("application/json", b"{", "not valid JSON"),
        ("application/json", b"[1]", "JSON object is required"),
        ("application/json", b"\xff{}", "not valid JSON"),
        ("multipart/form-data", b"--x\r\n", "without a boundary"),
        ("multipart/form-data; boundary=zz", b"garbage", "multipart"),
        (
            "multipart/form-data; boundary=zz",
            b"--zz\r\nX-Other: 1\r\n\r\nv\r\n--zz--\r\n",
            "Content-Disposition",
        ),
    ],
)
def test_unparseable_bodies_raise_bad_body(content_type: str, body: bytes, problem: str) -> None:
    with pytest.raises(BadBody, match=problem):
        parse_body(content_type, body)


def test_bearer_header_parsing_and_authentication(tmp_path: Path) -> None:
    assert bearer_from_header("Bearer root:good") == "root:good"
    assert bearer_from_header("bearer  root:good ") == "root:good"
    catalog = Catalog.open(tmp_path / "home")
    token = catalog.create_token()
    caller = authenticate(catalog, f"Bearer {token}")
    assert (caller.name, caller.role) == ("root", "root")
    assert caller.admin
    for header, reason in [
        (None, "missing"),
        ("", "missing"),
        ("Basic cm9vdDpnb29k", "scheme must be Bearer"),
        ("Bearer rootgood", "USER:TOKEN"),
        ("Bearer :good", "USER:TOKEN"),
        ("Bearer root:bad", "unknown, wrong, expired or revoked token"),
    ]:
        with pytest.raises(AuthError, match=reason):
            authenticate(catalog, header)
    catalog.close()
