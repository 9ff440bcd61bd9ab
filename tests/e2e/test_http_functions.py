"""Every function through a real ``snapkeep serve`` (uvicorn on a free loopback port), in every encoding
a client may use: GET query string, urlencoded form, multipart form, JSON object, and /function/NAME."""

from __future__ import annotations

import pytest
from tests.e2e.conftest import Server
from tests.e2e.scenario import walk

from snapkeep.api.dispatch import FUNCTIONS

ENCODINGS = ["query", "form", "multipart", "json", "path"]


@pytest.mark.parametrize("how", ENCODINGS)
def test_every_function_over_http(server: Server, how: str) -> None:
    called = walk(lambda function, params: server.call(function, params, how=how), tag=f"http-{how}")
    assert set(FUNCTIONS) - called == set(), "functions the HTTP walk did not reach"


def test_envelope_shape_and_unknown_function(server: Server) -> None:
    answer = server.call("noSuchFunction", {}, how="query")
    assert answer["success"] == 0
    assert "noSuchFunction" in answer["message"]
    assert answer["data"] == {}
    assert set(answer["system"]) == {"version", "tier", "type", "licenseIssue"}


def test_missing_function_is_a_bad_parameter_not_a_bad_request(server: Server) -> None:
    response = server.client.get("/?api=1", headers=server.auth())
    assert response.status_code == 200
    assert response.json()["success"] == 0
    assert "function" in response.json()["message"]


def test_function_that_is_not_a_name_is_a_bad_parameter(server: Server) -> None:
    response = server.client.post("/", json={"function": ["listBackupJobs"]}, headers=server.auth())
    assert response.status_code == 200
    assert response.json()["success"] == 0
    assert response.json()["message"].startswith("function: ")


def test_query_string_and_body_combine(server: Server) -> None:
    response = server.client.post("/?api=1&function=listDestinationTypes", content=b"", headers=server.auth())
    assert response.status_code == 200
    assert response.json()["success"] == 1


def test_token_create_prints_the_bearer_string_last(server: Server) -> None:
    added = server.instance.cli("user", "add", "ops", "--role", "reseller")
    assert added.returncode == 0, added.stderr
    done = server.instance.cli("token", "create", "--user", "ops")
    assert done.returncode == 0, done.stderr
    token = done.stdout.rstrip("\n").splitlines()[-1]
    assert token.startswith("ops:")
    assert " " not in token
    response = server.client.get("/?api=1&function=listBackupJobs", headers=server.auth(token))
    assert response.status_code == 200
    assert response.json()["success"] == 1
    assert response.json()["data"]["total"] == 0, "a reseller sees only its own jobs"
    refused = server.client.get("/?api=1&function=listHooks", headers=server.auth(token)).json()
    assert refused["message"] == "permission denied: listHooks"
    assert server.call("listBackupJobs", {"limit": "1"})["success"] == 1, "the first token still works"


def test_openapi_documents_every_function_and_parameter(server: Server) -> None:
    response = server.client.get("/openapi.json")
    assert response.status_code == 200
    assert server.client.get("/docs").status_code == 404, "no page that loads scripts from a CDN"
    document = response.json()
    assert document["openapi"].startswith("3.")
    door = document["paths"]["/"]
    function_enum = next(p for p in door["get"]["parameters"] if p["name"] == "function")["schema"]["enum"]
    assert sorted(function_enum) == sorted(FUNCTIONS)
    table = {entry["name"]: entry for entry in document["x-snapkeep-functions"]}
    assert set(table) == set(FUNCTIONS)
    for name, spec in FUNCTIONS.items():
        operation = document["paths"][f"/function/{name}"]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert set(schema["properties"]) == {parameter.name for parameter in spec.parameters}, name
        required = {parameter.name for parameter in spec.parameters if parameter.required}
        assert set(schema.get("required", [])) == required, name
        assert set(operation["responses"]) >= {"200", "400", "401"}
        assert [p["name"] for p in table[name]["parameters"]] == [p.name for p in spec.parameters]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
