"""``models.destination.unmask``: the masked-secret rule on its own, including a type it has no
endpoint list for (it then counts every option that is not a secret)."""

from __future__ import annotations

import pytest

from snapkeep.errors import ValidationError
from snapkeep.jobs.models import destination
from snapkeep.jobs.models.destination import SECRET_MASK, unmask

STORED = {"host": "a.example.test", "port": 22, "username": "u", "password": "TOKEN", "path": "/x"}


def test_same_endpoint_keeps_the_stored_secret() -> None:
    sent = {**STORED, "password": SECRET_MASK, "port": "22", "path": "/elsewhere"}
    assert unmask("SFTP", sent, STORED) == {**sent, "password": "TOKEN"}


def test_a_new_endpoint_refuses_the_mask_and_names_every_change() -> None:
    sent = {**STORED, "password": SECRET_MASK, "host": "evil.example.test", "username": "root"}
    with pytest.raises(ValidationError) as caught:
        unmask("SFTP", sent, STORED)
    assert caught.value.field == "options[password]"
    assert "must be given again when host and username change" in caught.value.problem


def test_a_type_without_an_endpoint_list_counts_every_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(destination.SECRETS, "Hook", ("token",))
    stored = {"url": "https://a.example.test", "retries": 3, "token": "TOKEN"}
    assert unmask("Hook", {**stored, "token": SECRET_MASK}, stored)["token"] == "TOKEN"
    with pytest.raises(ValidationError, match="options\\[token\\]: must be given again when retries changes"):
        unmask("Hook", {**stored, "token": SECRET_MASK, "retries": 4}, stored)


def test_flags_written_differently_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(destination.SECRETS, "Tls", ("password",))
    monkeypatch.setitem(destination.ENDPOINTS, "Tls", ("host", "tls"))
    stored = {"host": "h", "tls": 1, "password": "TOKEN"}
    for same in (True, "1", "true", 1):
        assert unmask("Tls", {**stored, "tls": same, "password": SECRET_MASK}, stored)["password"] == "TOKEN"
    with pytest.raises(ValidationError, match="when tls changes"):
        unmask("Tls", {**stored, "tls": "0", "password": SECRET_MASK}, stored)
