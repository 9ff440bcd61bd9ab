"""``snapkeep repo`` hands remote credentials to the storage layer as an argument, never through
the environment; its options default to the documented environment variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from snapkeep.cli import repo_common
from snapkeep.cli.main import cli
from snapkeep.errors import ConfigError
from snapkeep.storage.base import Store
from snapkeep.storage.locations import Credentials

VARIABLES = (
    "SNAPKEEP_SFTP_KEY_FILE",
    "SNAPKEEP_SFTP_PASSWORD",
    "SNAPKEEP_SFTP_PASSPHRASE",
    "SNAPKEEP_SFTP_FINGERPRINT",
    "SNAPKEEP_S3_ACCESS_KEY",
    "SNAPKEEP_S3_SECRET_KEY",
    "SNAPKEEP_S3_REGION",
)


@pytest.fixture
def given(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Credentials]]:
    """What ``repo`` commands pass to ``open_location`` (which then refuses, ending the command)."""
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    seen: list[tuple[str, Credentials]] = []

    def open_location(location: str, credentials: Credentials) -> Store:
        seen.append((location, credentials))
        raise ConfigError("stopped by the test")

    monkeypatch.setattr(repo_common, "open_location", open_location)
    return seen


def test_options_become_credentials_and_never_environment(
    tmp_path: Path, given: list[tuple[str, Credentials]]
) -> None:
    before = dict(os.environ)
    arguments = [
        "--home",
        str(tmp_path),
        "repo",
        "--sftp-key-file",
        "/keys/id",
        "--sftp-fingerprint",
        "SHA256:f",
    ]
    arguments += ["--s3-access-key", "AK", "--s3-secret-key", "SK", "--s3-region", "eu-2"]
    result = CliRunner().invoke(cli, [*arguments, "snapshots", "s3://e/b/p"])
    assert isinstance(result.exception, ConfigError), result.output
    assert given == [
        (
            "s3://e/b/p",
            Credentials(
                key_file="/keys/id", fingerprint="SHA256:f", access_key="AK", secret_key="SK", region="eu-2"
            ),
        )
    ]
    assert dict(os.environ) == before


def test_environment_variables_are_the_documented_defaults(
    tmp_path: Path, given: list[tuple[str, Credentials]]
) -> None:
    environment = {variable: f"value of {variable}" for variable in VARIABLES}
    result = CliRunner(env=environment).invoke(
        cli, ["--home", str(tmp_path), "repo", "init", "--no-encryption", "sftp://u@h/p"]
    )
    assert isinstance(result.exception, ConfigError), result.output
    assert given == [
        (
            "sftp://u@h/p",
            Credentials(
                key_file="value of SNAPKEEP_SFTP_KEY_FILE",
                password="value of SNAPKEEP_SFTP_PASSWORD",
                passphrase="value of SNAPKEEP_SFTP_PASSPHRASE",
                fingerprint="value of SNAPKEEP_SFTP_FINGERPRINT",
                access_key="value of SNAPKEEP_S3_ACCESS_KEY",
                secret_key="value of SNAPKEEP_S3_SECRET_KEY",
                region="value of SNAPKEEP_S3_REGION",
            ),
        )
    ]
