"""Tokens from the command line and on the service's first start, against a real SQLite catalog."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from snapkeep.cli.main import cli
from snapkeep.cli.serve_cmd import TOKEN_HEADING, TOKENS_HASHED, announce_token
from snapkeep.jobs import users
from snapkeep.jobs.catalog import Catalog


def test_token_create_prints_the_bearer_string_as_its_last_line(tmp_path: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(cli, ["--home", str(tmp_path), "user", "add", "ops", "--role", "reseller"])
    assert added.exit_code == 0, added.output
    result = runner.invoke(cli, ["--home", str(tmp_path), "token", "create", "--user", "ops", "--name", "ci"])
    assert result.exit_code == 0, result.output
    token = result.output.splitlines()[-1]
    catalog = Catalog.open(tmp_path)
    try:
        with catalog.transaction(write=False) as tx:
            ops = users.named(tx, "ops")
        assert catalog.verify_token(token) == ops.id
        assert catalog.verify_token(token + "0") is None
    finally:
        catalog.close()


def test_token_create_refuses_an_unknown_user(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "token", "create", "--user", "a:b"])
    assert result.exit_code == 2
    assert "no user named 'a:b'" in result.output


def test_first_start_creates_and_prints_a_token_later_starts_do_not(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path)
    try:
        printed: list[str] = []
        token = announce_token(catalog, printed.append, tmp_path)
        assert token is not None
        assert printed == [TOKEN_HEADING, token]
        assert catalog.verify_token(token) == users.ROOT_ID
        printed.clear()
        assert announce_token(catalog, printed.append, tmp_path / "my home") is None
        assert printed == [TOKENS_HASHED.format(home=f"'{tmp_path / 'my home'}'")]
        assert f"snapkeep --home '{tmp_path / 'my home'}' token create" in printed[0]
        assert catalog.count_tokens() == 1
    finally:
        catalog.close()
