"""``snapkeep settings`` through the installed command on both catalog backends: what ``set`` writes
the API reads, secrets stay masked, bad input exits 2."""

from __future__ import annotations

from tests.e2e.conftest import Instance

MASK = "SK|HIDDEN|********"


def test_settings_set_and_show_through_the_command(instance: Instance) -> None:
    done = instance.cli("settings", "set", "timezone=America/New_York", "logs_ttl=9")
    assert done.returncode == 0, done.stderr
    assert "America/New_York" in done.stdout
    code, answer = instance.api("getSettingsGeneral")
    assert code == 0
    assert answer["data"] == {"timezone": "America/New_York", "logs_ttl": 9, "downloads_ttl": 7}

    done = instance.cli(
        "settings",
        "set",
        "notification.email.host=smtp.example.test",
        "notification.email.sender=snapkeep@example.test",
        "notification.email.recipients=ops@example.test",
        "notification.email.password=cli-s3cret",
        "notification.email.enabled=0",
    )
    assert done.returncode == 0, done.stderr
    shown = instance.cli("settings", "show")
    assert shown.returncode == 0, shown.stderr
    assert MASK in shown.stdout
    assert "cli-s3cret" not in shown.stdout
    assert "America/New_York" in shown.stdout
    assert "backup_forks" in shown.stdout
    (row,) = [row for row in instance.dump()["settings"] if row["key"] == "notify.email"]
    assert row["value"]["password"].startswith("sk-sealed:v1:")  # sealed at rest (docs/secrets.md)
    assert "cli-s3cret" not in str(instance.dump())
    assert row["value"]["enabled"] is False

    refused = instance.cli("settings", "set", "email.security=tls")
    assert refused.returncode == 2
    assert "email[security]: must be none, starttls or ssl" in refused.stderr
    assert instance.cli("settings", "set", "notification.email=").returncode == 0
    assert instance.api("getSettingsNotification")[1]["data"] == {"email": None, "webhook": None}
