"""Failed authentication is throttled per address on the real server (issue 11 part 5).

Ten wrong tokens within a minute from 127.0.0.1, then 429 with ``Retry-After`` for every
authenticated route, the valid token included (else the 429 would only tell a guesser when it
guessed right); the OpenAPI document stays open. Each failure is logged with the address and a
reason, never the token. Its own server: the address stays refused for a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.conftest import Instance, Server, printed_token, start_server

from snapkeep.api.throttle import FAILURE_LIMIT, WINDOW_SECONDS


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    instance = Instance("sqlite", tmp_path / "home", None)
    log = tmp_path / "serve.log"
    process, base_url, output = start_server(instance, log, "--api-only")
    running = Server(instance, process, base_url, log, printed_token(output) or "")
    try:
        yield running
    finally:
        running.stop()


def test_wrong_tokens_lead_to_429_for_everyone_on_the_address_and_are_logged(server: Server) -> None:
    user, _, secret = server.token.partition(":")
    wrong = [f"{user}:{'0' * 64}", f"nobody:{secret[:-1]}0", "Bearer-less"] + [
        f"{user}:{number:064x}" for number in range(FAILURE_LIMIT)
    ]
    statuses = []
    for token in wrong[:FAILURE_LIMIT]:
        header = token if token == "Bearer-less" else f"Bearer {token}"
        response = server.client.get("/?api=1&function=listBackupJobs", headers={"Authorization": header})
        statuses.append(response.status_code)
    assert statuses == [401] * FAILURE_LIMIT

    refused = server.client.get("/?api=1&function=listBackupJobs", headers=server.auth())
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= WINDOW_SECONDS
    answer = refused.json()
    assert answer["success"] == 0
    assert answer["message"].startswith("too many failed authentications from 127.0.0.1; retry in ")
    assert server.client.get("/download/" + "a" * 24, headers=server.auth()).status_code == 429
    assert server.client.post("/function/listBackupJobs", json={}).status_code == 429
    assert server.client.get("/openapi.json").status_code == 200

    log = server.log.read_text()
    assert log.count("authentication failed from 127.0.0.1: unknown or wrong token") == FAILURE_LIMIT - 1
    assert log.count("authentication failed from 127.0.0.1: malformed Authorization header") == 1
    assert "refused for up to 60 s" in log
    after_start = log.split(server.token, 1)[1]  # the first start prints the root token itself
    assert secret[:16] not in after_start
    assert "0" * 64 not in after_start
    assert "nobody" not in after_start


def test_requests_without_a_token_are_not_counted(server: Server) -> None:
    for _ in range(FAILURE_LIMIT * 2):
        assert server.client.get("/?api=1&function=listBackupJobs").status_code == 401
    assert server.call("listBackupJobs", {})["success"] == 1
