"""The settings functions (Performance, General, Notification) and ``jobs.settings``, on SQLite and
PostgreSQL: defaults, changes merged over the stored value, the stored format, bad input naming the
field with the catalog unchanged, the SMTP password masked and kept by the mask."""

from __future__ import annotations

from typing import Any

import pytest

from snapkeep.api.dispatch import Api
from snapkeep.api.params import decode_query
from snapkeep.errors import ValidationError
from snapkeep.jobs import sealing, settings
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.models.destination import SECRET_MASK

EMAIL = {
    "host": "smtp.example.test",
    "port": "587",
    "security": "starttls",
    "username": "mailer",
    "password": "smtp-s3cret",
    "sender": "snapkeep@example.test",
    "recipients": ["ops@example.test"],
}


def stored(catalog: Catalog) -> dict[str, Any]:
    return {row["key"]: row["value"] for row in catalog.dump()["settings"]}


def refused(api: Api, catalog: Catalog, function: str, params: Any, *needles: str) -> str:
    if isinstance(params, str):
        params = decode_query(params)
    before = catalog.dump()
    answer = api.call(function, params)
    assert answer["success"] == 0, answer
    assert answer["data"] == {}, answer
    for needle in needles:
        assert needle in answer["message"], answer["message"]
    assert catalog.dump() == before
    return str(answer["message"])


# --- performance --------------------------------------------------------------------------------


def test_performance_defaults_merge_and_stored_format(make: Any, catalog: Catalog) -> None:
    assert make.ok("getSettingsPerformance") == {"backup_forks": 2, "queueable_forks": 2}
    assert stored(catalog) == {}
    assert make.ok("manageSettingsPerformance", "backup_forks=4") == {"backup_forks": 4, "queueable_forks": 2}
    assert make.ok("manageSettingsPerformance", {"queueable_forks": 1}) == {
        "backup_forks": 4,
        "queueable_forks": 1,
    }
    assert make.ok("manageSettingsPerformance") == {"backup_forks": 4, "queueable_forks": 1}
    assert stored(catalog) == {"performance": {"backup_forks": 4, "queueable_forks": 1}}
    with catalog.transaction(write=False) as tx:
        assert settings.performance(tx) == settings.Performance(backup_forks=4, queueable_forks=1)


def test_performance_bad_input_names_the_field(api: Api, catalog: Catalog, make: Any) -> None:
    make.ok("manageSettingsPerformance", "backup_forks=3")
    refused(api, catalog, "manageSettingsPerformance", "backup_forks=11", "backup_forks: must be at most 10")
    refused(
        api, catalog, "manageSettingsPerformance", "queueable_forks=0", "queueable_forks: must be at least 1"
    )
    refused(api, catalog, "manageSettingsPerformance", "backup_forks=two", "backup_forks: must be an integer")
    refused(api, catalog, "manageSettingsPerformance", "forks=2", "forks: unknown field")
    refused(api, catalog, "getSettingsPerformance", "backup_forks=2", "backup_forks: unknown field")


# --- general ------------------------------------------------------------------------------------


def test_general_defaults_changes_and_stored_format(make: Any, catalog: Catalog) -> None:
    days = {"downloads_ttl": 7}  # issue 13: how long a finished download can be fetched
    assert make.ok("getSettingsGeneral") == {"timezone": "", "logs_ttl": 30, **days}
    changed = make.ok("manageSettingsGeneral", "timezone=Europe/Berlin&logs_ttl=14")
    assert changed == {"timezone": "Europe/Berlin", "logs_ttl": 14, **days}
    assert make.ok("manageSettingsGeneral", {"logs_ttl": 0}) == {
        "timezone": "Europe/Berlin",
        "logs_ttl": 0,
        **days,
    }
    assert stored(catalog) == {"timezone": "Europe/Berlin", "logs_ttl": 0, **days}
    with catalog.transaction(write=False) as tx:
        assert settings.timezone(tx) == "Europe/Berlin"
    assert make.ok("manageSettingsGeneral", "timezone=") == {"timezone": "", "logs_ttl": 0, **days}
    assert make.ok("manageSettingsGeneral", {"downloads_ttl": 2})["downloads_ttl"] == 2
    assert (
        "downloads_ttl: must be at least 1"
        in make.api.call("manageSettingsGeneral", {"downloads_ttl": 0})["message"]
    )


def test_general_bad_input_names_the_field(api: Api, catalog: Catalog, make: Any) -> None:
    make.ok("manageSettingsGeneral", "timezone=UTC&logs_ttl=7")
    message = refused(
        api,
        catalog,
        "manageSettingsGeneral",
        "timezone=Mars/Olympus&logs_ttl=-1",
        "timezone: unknown time zone 'Mars/Olympus'",
        "logs_ttl: must be at least 0",
    )
    assert "Europe/Berlin" in message  # says what a good name looks like
    refused(api, catalog, "manageSettingsGeneral", "timezone=../../etc/passwd", "timezone: unknown time zone")
    refused(api, catalog, "manageSettingsGeneral", {"timezone": 5}, "timezone: must be text")
    refused(api, catalog, "manageSettingsGeneral", "logs_ttl=soon", "logs_ttl: must be an integer")
    refused(api, catalog, "manageSettingsGeneral", "zone=UTC", "zone: unknown field")
    refused(api, catalog, "getSettingsGeneral", "timezone=UTC", "timezone: unknown field")


def test_a_stored_zone_that_is_gone_can_be_read_and_replaced(catalog: Catalog, make: Any) -> None:
    from snapkeep.jobs.migrations import schema

    with catalog.transaction() as tx:
        tx.connection.execute(schema.settings.insert().values(key="timezone", value="Gone/Away"))
    assert make.ok("getSettingsGeneral")["timezone"] == "Gone/Away"
    assert make.ok("manageSettingsGeneral", "timezone=UTC")["timezone"] == "UTC"


# --- notification -------------------------------------------------------------------------------


def password(catalog: Catalog) -> str:
    with catalog.transaction(write=False) as tx:
        email = settings.notification(tx).email
    assert email is not None
    return email.password.get_secret_value()


def test_notification_is_masked_and_the_mask_keeps_the_password(
    make: Any, api: Api, catalog: Catalog
) -> None:
    assert make.ok("getSettingsNotification") == {"email": None, "webhook": None}
    created = make.ok("manageSettingsNotification", {"email": EMAIL})
    email = created["email"]
    assert email["password"] == SECRET_MASK
    assert created["webhook"] is None
    assert (email["port"], email["enabled"], email["levels"], email["timeout"]) == (587, 1, [2, 3], 10)
    assert make.ok("getSettingsNotification") == created
    assert "smtp-s3cret" not in str(make.ok("getSettingsNotification"))
    assert sealing.is_sealed(stored(catalog)["notify.email"]["password"])  # sealed at rest
    assert password(catalog) == "smtp-s3cret"

    # read-modify-write: the whole masked answer sent back with one change keeps the password
    modified = make.ok("manageSettingsNotification", {"email": {**email, "sender": "other@example.test"}})
    assert modified["email"] == {**email, "sender": "other@example.test"}
    assert password(catalog) == "smtp-s3cret"
    # ... but only for the same server: a new host needs the password again (attack report, MEDIUM-5)
    before = catalog.dump()
    moved = refused(
        api,
        catalog,
        "manageSettingsNotification",
        {"email": {**email, "host": "mail.example.test"}},
        "email[password]: must be given again when host changes",
    )
    assert "smtp-s3cret" not in moved
    assert catalog.dump() == before
    make.ok("manageSettingsNotification", {"email": {"host": "mail.example.test", "password": "smtp-s3cret"}})
    # only the fields given change
    make.ok("manageSettingsNotification", "email[enabled]=0&email[recipients]=a@example.test,b@example.test")
    row = stored(catalog)["notify.email"]
    assert row["enabled"] is False
    assert row["recipients"] == ["a@example.test", "b@example.test"]
    assert (row["host"], password(catalog)) == ("mail.example.test", "smtp-s3cret")
    make.ok("manageSettingsNotification", {"email": {"password": "new-pass"}})
    assert password(catalog) == "new-pass"
    cleared = make.ok("manageSettingsNotification", {"email": {"password": "", "username": ""}})
    assert cleared["email"]["password"] == ""


def test_notification_webhook_and_removal(make: Any, catalog: Catalog) -> None:
    make.ok("manageSettingsNotification", {"email": EMAIL})
    both = make.ok(
        "manageSettingsNotification", "webhook[url]=https://hooks.example.test/a&webhook[levels]=1,3"
    )
    assert both["webhook"] == {
        "enabled": 1,
        "url": "https://hooks.example.test/a",
        "levels": [1, 3],
        "timeout": 10,
    }
    assert both["email"]["host"] == EMAIL["host"], "a channel not given is kept"
    assert make.ok("manageSettingsNotification", "email=")["email"] is None
    assert set(stored(catalog)) == {"notify.webhook"}
    assert make.ok("manageSettingsNotification", {"webhook": {}}) == {"email": None, "webhook": None}
    assert stored(catalog) == {}


def test_notification_bad_input_names_the_field(api: Api, catalog: Catalog, make: Any) -> None:
    make.ok("manageSettingsNotification", {"email": EMAIL})
    refused(
        api,
        catalog,
        "manageSettingsNotification",
        {"email": {"port": "70000", "security": "tls", "levels": ["5"]}, "webhook": {"url": "ftp://x"}},
        "email[port]: must be at most 65535",
        "email[security]: must be none, starttls or ssl",
        "email[levels][0]",
        "webhook[url]: must start with http:// or https://",
    )
    # a good channel is not written when the other one is bad
    refused(
        api,
        catalog,
        "manageSettingsNotification",
        {"email": {"host": "other.example.test"}, "webhook": {"levels": "2"}},
        "webhook[url]: is required",
    )
    refused(
        api, catalog, "manageSettingsNotification", {"email": {"bogus": "1"}}, "email[bogus]: unknown field"
    )
    refused(api, catalog, "manageSettingsNotification", "email=text", "email: must be an object")
    refused(api, catalog, "manageSettingsNotification", "sms[to]=1", "sms: unknown field")
    refused(api, catalog, "getSettingsNotification", "email=", "email: unknown field")


def test_a_new_channel_needs_its_required_fields(api: Api, catalog: Catalog) -> None:
    message = refused(api, catalog, "manageSettingsNotification", {"email": {"host": "smtp.example.test"}})
    assert "email[sender]: is required" in message
    assert "email[recipients]: is required" in message
    refused(
        api,
        catalog,
        "manageSettingsNotification",
        {"email": {**EMAIL, "password": SECRET_MASK, "recipients": ""}},
        "email[recipients]: needs at least one entry",
    )


def test_the_mask_for_a_channel_without_a_password_stores_none(make: Any, catalog: Catalog) -> None:
    answer = make.ok("manageSettingsNotification", {"email": {**EMAIL, "password": SECRET_MASK}})
    assert answer["email"]["password"] == ""
    assert stored(catalog)["notify.email"]["password"] == ""


def test_save_notification_replaces_whole_channels(catalog: Catalog) -> None:
    with catalog.transaction() as tx:
        settings.save_notification(tx, email=EMAIL)
        replaced = settings.save_notification(tx, email={**EMAIL, "username": ""} | {"password": ""})
        assert replaced.email is not None
        assert replaced.email.username == ""
    with catalog.transaction() as tx, pytest.raises(ValidationError, match=r"email\[host\]: is required"):
        settings.save_notification(tx, email={"port": 25})
    with catalog.transaction(write=False) as tx:
        loaded = settings.notification(tx)
    assert loaded.email is not None
    assert loaded.email.host == EMAIL["host"]
    assert loaded.webhook is None
