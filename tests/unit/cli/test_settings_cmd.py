"""``snapkeep settings show|set`` through click's runner on a SQLite catalog, and its KEY=VALUE parsing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from snapkeep.cli.main import cli
from snapkeep.cli.settings_cmd import parse_assignments
from snapkeep.jobs import sealing, settings
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.models.destination import SECRET_MASK


def run(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), "settings", *args])


def stored(home: Path) -> dict[str, Any]:
    catalog = Catalog.open(home)
    try:
        return {row["key"]: row["value"] for row in catalog.dump()["settings"]}
    finally:
        catalog.close()


def opened_password(home: Path) -> str:
    catalog = Catalog.open(home)
    try:
        with catalog.transaction(write=False) as tx:
            email = settings.notification(tx).email
        assert email is not None
        return email.password.get_secret_value()
    finally:
        catalog.close()


def test_show_prints_every_section_with_defaults(tmp_path: Path) -> None:
    result = run(tmp_path, "show")
    assert result.exit_code == 0, result.output
    for text in ("Settings: performance", "backup_forks", "Settings: general", "(the server's zone)"):
        assert text in result.output
    assert "logs_ttl" in result.output
    assert "30" in result.output
    assert "email" in result.output
    assert "(not set up)" in result.output
    only = run(tmp_path, "show", "general")
    assert "Settings: general" in only.output
    assert "backup_forks" not in only.output
    assert run(tmp_path, "show", "colours").exit_code == 2


def test_set_changes_one_section_through_the_api(tmp_path: Path) -> None:
    result = run(tmp_path, "set", "timezone=Europe/Berlin", "general.logs_ttl=14")
    assert result.exit_code == 0, result.output
    assert "Europe/Berlin" in result.output
    assert "14" in result.output
    assert stored(tmp_path) == {"timezone": "Europe/Berlin", "logs_ttl": 14, "downloads_ttl": 7}
    assert run(tmp_path, "set", "performance.backup_forks=3").exit_code == 0
    assert stored(tmp_path)["performance"] == {"backup_forks": 3, "queueable_forks": 2}


def test_notification_secrets_are_masked_and_kept(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "set",
        "notification.email.host=smtp.example.test",
        "email.sender=snapkeep@example.test",
        "email.recipients=a@example.test,b@example.test",
        "email.password=smtp-s3cret",
        "notification.webhook.url=https://hooks.example.test/x",
    )
    assert result.exit_code == 0, result.output
    assert SECRET_MASK in result.output
    assert "smtp-s3cret" not in result.output
    assert "a@example.test, b@example.test" in result.output
    shown = run(tmp_path, "show", "notification")
    assert "email.password" in shown.output
    assert SECRET_MASK in shown.output
    assert "smtp-s3cret" not in shown.output
    assert run(tmp_path, "set", f"email.password={SECRET_MASK}", "email.timeout=20").exit_code == 0
    assert sealing.is_sealed(stored(tmp_path)["notify.email"]["password"])  # sealed at rest
    assert opened_password(tmp_path) == "smtp-s3cret"
    assert stored(tmp_path)["notify.email"]["timeout"] == 20
    # the masked password is kept only for the same server: a new port needs it again
    moved = run(tmp_path, "set", f"email.password={SECRET_MASK}", "email.port=587")
    assert moved.exit_code == 2
    assert "email[password]: must be given again when port changes" in moved.output
    assert run(tmp_path, "set", "email.password=smtp-s3cret", "email.port=587").exit_code == 0
    assert stored(tmp_path)["notify.email"]["port"] == 587
    assert opened_password(tmp_path) == "smtp-s3cret"
    assert run(tmp_path, "set", "notification.webhook=").exit_code == 0
    assert "notify.webhook" not in stored(tmp_path)


def test_bad_input_exits_2_names_the_field_and_changes_nothing(tmp_path: Path) -> None:
    run(tmp_path, "set", "timezone=UTC")
    before = stored(tmp_path)
    for args, needle in [
        (["timezone=Mars/Olympus"], "timezone: unknown time zone 'Mars/Olympus'"),
        (["logs_ttl=-3"], "logs_ttl: must be at least 0"),
        (["email.port=99999"], "email[port]: must be at most 65535"),
        (["timezone=UTC", "backup_forks=3"], "one section at a time"),
        (["colour=blue"], "colour: unknown setting"),
        (["general.colour=blue"], "general.colour: unknown setting of general"),
        (["timezone"], "expected KEY=VALUE"),
    ]:
        result = run(tmp_path, "set", *args)
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.output, (args, result.output)
    assert stored(tmp_path) == before
    assert run(tmp_path, "set").exit_code == 2


def test_parse_assignments_builds_nested_parameters() -> None:
    assert parse_assignments(["email.host=h", "email.levels=2,3", "webhook.url=u"]) == (
        "notification",
        {"email": {"host": "h", "levels": "2,3"}, "webhook": {"url": "u"}},
    )
    assert parse_assignments(["notification.email="]) == ("notification", {"email": ""})
    assert parse_assignments(["timezone=a=b"]) == ("general", {"timezone": "a=b"})
    with pytest.raises(click.UsageError, match="given twice"):
        parse_assignments(["timezone=UTC", "general.timezone=UTC"])
    with pytest.raises(click.UsageError, match="conflicts"):
        parse_assignments(["notification.email=", "email.host=h"])
