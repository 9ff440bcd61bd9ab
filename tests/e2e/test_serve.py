"""``snapkeep serve`` prints a token on its first start only; later starts say how to make another."""

from __future__ import annotations

import httpx
from tests.e2e.conftest import Instance, Server, printed_token, start_server


def test_first_start_prints_a_token_and_later_starts_do_not(instance: Instance) -> None:
    log = instance.home.parent / "serve-twice.log"
    process, base_url, first_output = start_server(instance, log)
    first = Server(instance, process, base_url, log, printed_token(first_output) or "")
    try:
        assert first.token.startswith("root:"), first_output
        assert first.call("listBackupJobs", {})["success"] == 1
    finally:
        first.stop()

    log.write_text("")
    process, base_url, second_output = start_server(instance, log)
    second = Server(instance, process, base_url, log, first.token)
    try:
        assert printed_token(second_output) is None
        assert "stored hashed" in second_output
        assert f"snapkeep --home {instance.home} token create" in second_output, (
            "a hint that works from any shell"
        )
        assert second.call("listBackupJobs", {})["success"] == 1, "the first token survives a restart"
        assert httpx.get(f"{base_url}/?api=1&function=listBackupJobs").status_code == 401
    finally:
        second.stop()
