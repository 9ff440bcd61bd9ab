"""Database passwords in ``config.toml``: sealed with the master key, or in a private file; a clear
one still works (with a warning); every problem names the key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from snapkeep.cli.main import cli
from snapkeep.errors import ConfigError
from snapkeep.jobs import accounts, sealing


@pytest.fixture(autouse=True)
def no_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sealing.ENVIRONMENT, raising=False)


def write_config(home: Path, body: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(body)


def test_a_sealed_password_from_the_command_opens(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = CliRunner().invoke(
        cli, ["--home", str(home), "keys", "seal-password", "mariadb"], input="DBPASS-1\n"
    )
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()  # (stderr says the home is new)
    assert line.startswith('password = "sk-sealed:v1:')
    assert "DBPASS-1" not in line
    write_config(home, f"[databases.mariadb]\nuser = 'backup'\n{line}\n")
    settings = accounts.database_settings(accounts.load_config(home))
    assert settings.mariadb.password == "DBPASS-1"
    assert settings.mariadb.user == "backup"
    # sealed for MariaDB: the same value does not open as PostgreSQL's password
    write_config(home, f"[databases.postgresql]\n{line}\n")
    with pytest.raises(ConfigError, match="config/databases/postgresql/password"):
        accounts.database_settings(accounts.load_config(home))


def test_a_password_file_must_be_private(tmp_path: Path) -> None:
    secret = tmp_path / "pg.pass"
    secret.write_text("PGPASS-2\nignored second line\n")
    secret.chmod(0o600)
    config = {"databases": {"postgresql": {"password_file": str(secret)}}}
    assert accounts.database_settings(config).postgresql.password == "PGPASS-2"
    secret.chmod(0o644)
    with pytest.raises(
        ConfigError, match=r"databases\.postgresql\.password_file: .* must be a regular file of mode 0600"
    ):
        accounts.database_settings(config)
    for bad, problem in [
        ("relative/pg.pass", "must be an absolute path"),
        (str(tmp_path / "missing"), "cannot open"),
    ]:
        with pytest.raises(ConfigError, match=f"databases.postgresql.password_file: {problem}"):
            accounts.database_settings({"databases": {"postgresql": {"password_file": bad}}})
    both = {"databases": {"postgresql": {"password_file": str(secret), "password": "x"}}}
    with pytest.raises(ConfigError, match="give password or password_file, not both"):
        accounts.database_settings(both)


def test_a_clear_password_still_works_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        settings = accounts.database_settings({"databases": {"mariadb": {"password": "CLEAR-3"}}})
    assert settings.mariadb.password == "CLEAR-3"
    assert "databases.mariadb.password is in clear" in caplog.text
    assert "CLEAR-3" not in caplog.text
