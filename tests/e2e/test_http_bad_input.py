"""The bad inputs of issue 2 over HTTP: each answers ``success: 0`` naming the field (HTTP 200) and
leaves every catalog table as it was; bad tokens answer 401, unparseable bodies 400."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from tests.e2e.conftest import Instance, Server, printed_token, start_server

MISSING_ID = "f" * 24
TEN_MB = 10 * 1024 * 1024


@dataclass
class Objects:
    destination: str
    schedule: str
    filter: str
    group: str
    job: str
    job_name: str
    running: str


@pytest.fixture(scope="module")
def server(instance: Instance) -> Iterator[Server]:
    """``snapkeep serve --api-only``: no worker runs the queue, so the busy job stays busy and the
    catalog changes only through the requests of these tests."""
    log = instance.home.parent / "serve.log"
    process, base_url, output = start_server(instance, log, "--api-only")
    running = Server(instance, process, base_url, log, printed_token(output) or "")
    try:
        assert running.token, output
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def objects(server: Server) -> Objects:
    """A destination, a schedule and a filter group used by a job, and a job that is running."""

    def ok(function: str, params: dict[str, Any]) -> dict[str, Any]:
        answer = server.call(function, params)
        assert answer["success"] == 1, answer["message"]
        data: dict[str, Any] = answer["data"]
        return data

    destination = ok(
        "manageDestination",
        {"action": "create", "name": "Used disk", "type": "Local", "options": {"path": "/srv/b"}},
    )
    schedule = ok(
        "manageSchedule", {"action": "create", "name": "Used nightly", "type": "2", "type_data": ["1"]}
    )
    account_filter = ok(
        "manageAccountFilter",
        {"action": "create", "name": "Used filter", "type": "2", "condition": "1", "list": ["a"]},
    )
    common = {"type": "1", "contains": "511", "structure": "1", "destination": [destination["_id"]]}
    job = ok(
        "manageBackupJob",
        {
            "action": "create",
            "name": "User of everything",
            **common,
            "schedules": [{"_id": schedule["_id"], "retain": "7"}],
            "filters": [[account_filter["group_id"]]],
        },
    )
    running = ok("manageBackupJob", {"action": "create", "name": "Busy job", **common})
    ok("runBackupJobManually", {"_id": running["_id"]})
    return Objects(
        destination["_id"],
        schedule["_id"],
        account_filter["_id"],
        account_filter["group_id"],
        job["_id"],
        job["name"],
        running["_id"],
    )


JOB = {
    "action": "create",
    "name": "Bad",
    "type": "1",
    "contains": "511",
    "structure": "1",
    "destination[0]": "{destination}",
}


def job(changes: dict[str, str | None]) -> str:
    """A urlencoded create of a valid job, changed by ``changes`` (None removes a field)."""
    fields: dict[str, str | None] = {**JOB, **changes}
    return "&".join(f"{name}={value}" for name, value in fields.items() if value is not None)


DIRECTORIES = {"type": "2", "include_list[0]": "var/www"}
# (id, function, urlencoded body with {placeholders}, fragments the message must contain)
CASES = [
    ("missing-required", "manageBackupJob", job({"name": None}), ["name"]),
    ("wrong-type", "manageBackupJob", job({"type": "abc"}), ["type"]),
    ("structure-3", "manageBackupJob", job({"structure": "3"}), ["structure"]),
    ("type-9", "manageBackupJob", job({"type": "9"}), ["type"]),
    ("hourly-type-data-5", "manageSchedule", "action=create&name=Bad&type=1&type_data=5", ["type_data"]),
    ("weekday-8", "manageSchedule", "action=create&name=Bad&type=2&type_data[]=8", ["type_data"]),
    ("unknown-field", "manageBackupJob", job({"no_such_field": "1"}), ["no_such_field"]),
    ("missing-destination", "manageBackupJob", job({"destination[0]": MISSING_ID}), ["destination"]),
    (
        "missing-schedule",
        "manageBackupJob",
        job({"schedules[0][_id]": MISSING_ID, "schedules[0][retain]": "3"}),
        ["schedules"],
    ),
    (
        "negative-retain",
        "manageBackupJob",
        job({"schedules[0][_id]": "{schedule}", "schedules[0][retain]": "-1"}),
        ["retain"],
    ),
    ("relative-include", "manageBackupJob", job(DIRECTORIES), ["include_list"]),
    ("id-not-found", "getBackupJob", f"_id={MISSING_ID}", [MISSING_ID]),
    ("id-not-hex", "getBackupJob", "_id=not-an-id", ["_id"]),
    ("modify-without-id", "manageBackupJob", "action=modify&name=Renamed", ["_id"]),
    ("delete-used-destination", "deleteDestination", "_id={destination}", ["{job_name}"]),
    ("delete-used-schedule", "deleteSchedule", "_id={schedule}", ["{job_name}"]),
    ("delete-used-filter-group", "deleteAccountFilter", "_id={filter}", ["{job_name}"]),
    ("delete-running-job", "deleteBackupJob", "_id={running}", ["running"]),
    ("bracket-unclosed", "listBackupJobs", "a[0=1", ["a[0"]),
    ("bracket-empty-open", "listBackupJobs", "a[0][=1", ["a[0]["]),
    ("non-utf8-percent", "manageBackupJob", job({"name": "%FF%FEbad"}), ["name", "UTF-8"]),
]


def post_form(server: Server, function: str, body: bytes, *, headers: dict[str, str] | None = None) -> Any:
    return server.client.post(
        f"/?api=1&function={function}",
        content=body,
        headers={**server.auth(), "Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
    )


@pytest.mark.parametrize(
    ("function", "template", "fragments"), [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_names_the_field_and_writes_nothing(
    server: Server, objects: Objects, function: str, template: str, fragments: list[str]
) -> None:
    names = vars(objects) | {"job_name": objects.job_name}
    before = server.instance.dump()
    response = post_form(server, function, template.format(**names).encode())
    assert response.status_code == 200
    answer = response.json()
    assert answer["success"] == 0, answer
    assert answer["data"] == {}
    for fragment in fragments:
        assert fragment.format(**names).lower() in answer["message"].lower(), answer["message"]
    assert server.instance.dump() == before


def test_raw_non_utf8_bytes_in_a_form_body(server: Server, objects: Objects) -> None:
    before = server.instance.dump()
    body = (
        f"action=create&type=1&contains=511&structure=1&destination[0]={objects.destination}&name=".encode()
    )
    answer = post_form(server, "manageBackupJob", body + b"caf\xe9").json()
    assert answer["success"] == 0
    assert "name" in answer["message"]
    assert "UTF-8" in answer["message"]
    assert server.instance.dump() == before


def test_non_utf8_bytes_in_a_multipart_body(server: Server) -> None:
    before = server.instance.dump()
    files = [
        ("function", (None, b"manageSchedule")),
        ("action", (None, b"create")),
        ("name", (None, b"\xff\xfe")),
    ]
    response = server.client.post("/", files=files, headers=server.auth())
    assert response.status_code == 200
    answer = response.json()
    assert answer["success"] == 0
    assert "name" in answer["message"]
    assert "UTF-8" in answer["message"]
    assert server.instance.dump() == before


@pytest.mark.parametrize("how", ["form", "multipart", "json"])
def test_ten_megabyte_value_is_refused_by_name_and_the_service_stays_up(server: Server, how: str) -> None:
    before = server.instance.dump()
    huge = "x" * TEN_MB
    if how == "form":
        response = post_form(
            server, "manageSchedule", b"action=create&type=2&type_data[]=1&name=" + huge.encode()
        )
    elif how == "multipart":
        files = [
            ("function", (None, b"manageSchedule")),
            ("action", (None, b"create")),
            ("name", (None, huge.encode())),
        ]
        response = server.client.post("/", files=files, headers=server.auth())
    else:
        payload = {"function": "manageSchedule", "action": "create", "type": 2, "name": huge}
        response = server.client.post("/", json=payload, headers=server.auth())
    assert response.status_code == 200
    answer = response.json()
    assert answer["success"] == 0, answer["message"][:300]
    assert "name" in answer["message"], answer["message"][:300]
    assert server.instance.dump() == before
    assert server.call("listDestinationTypes", {})["success"] == 1


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer nocolon", "Bearer root:wrong", "Basic cm9vdDp4", "Bearer ops:{secret}"],
    ids=["missing", "empty", "no-user", "wrong-secret", "basic", "other-user"],
)
def test_missing_or_bad_token_is_401_with_an_envelope(server: Server, header: str | None) -> None:
    headers = (
        {} if header is None else {"Authorization": header.format(secret=server.token.partition(":")[2])}
    )
    before = server.instance.dump()
    response = server.client.post(
        "/",
        data={"function": "manageSchedule", "action": "create", "name": "x", "type": "2"},
        headers=headers,
    )
    assert response.status_code == 401
    answer = response.json()
    assert answer["success"] == 0
    assert answer["message"].startswith("Authentication failed: ")
    assert server.instance.dump() == before


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"function": "listBackupJobs", '),
        ("application/json", b"\xff\xfe{"),
        ("application/json", b'["listBackupJobs"]'),
        ("multipart/form-data", b"--x\r\n"),
        ("multipart/form-data; boundary=zzz", b"not a multipart body"),
        ("", b'{"function": '),
    ],
    ids=[
        "truncated-json",
        "binary-json",
        "json-array",
        "multipart-no-boundary",
        "multipart-garbage",
        "json-sniffed",
    ],
)
def test_unparseable_body_is_400_with_an_envelope(server: Server, content_type: str, body: bytes) -> None:
    headers = {**server.auth(), "Content-Type": content_type} if content_type else server.auth()
    response = server.client.post("/", content=body, headers=headers)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["success"] == 0
    assert "body" in answer["message"]


def test_parameters_are_decoded_only_after_authentication_and_counted(server: Server) -> None:
    """Attack report HIGH-2: 20,000 ``a[]=`` pairs without a token froze the service for 23 s.
    Without a valid token the body is not decoded at all (401); with one, more than
    ``MAX_PAIRS`` parameters are refused by name, and the service answers others meanwhile."""
    flood = b"function=listBackupJobs&" + b"&".join([b"a[]=1"] * 20_000)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = server.client.post("/", content=flood, headers=form)
    assert response.status_code == 401
    assert response.json()["message"].startswith("Authentication failed: ")
    response = server.client.post("/", content=flood, headers={**form, **server.auth()})
    assert response.status_code == 200
    answer = response.json()
    assert answer["success"] == 0
    assert "more than 10000 parameters" in answer["message"]
    within = b"function=listBackupJobs&" + b"&".join([b"find[x][]=1"] * 5_000)
    assert server.client.post("/", content=within, headers={**form, **server.auth()}).status_code == 200
    assert server.call("listDestinationTypes", {})["success"] == 1
